/**
 * The shared registry: what an object-store backend keeps next to the bytes, so that any node can
 * resume any upload and none needs a local disk. It holds, per upload, the metadata (UploadInfo,
 * with the sha256 of the resume secret, never the secret), the object key and multipart upload id,
 * the acked parts with their xxHash64 and ETag, the completion, and the ownership lease.
 *
 * The registry is the source of truth for "acked": a part is recorded here only after the object
 * store confirmed it (UploadPart returned its ETag), and a chunk is ACKed only after its record is
 * here. The object store is never asked which parts it has (no ListParts): what is not recorded
 * here is re-sent by the client, and a part uploaded but not recorded is simply uploaded again
 * (UploadPart with the same part number replaces it).
 *
 * Ownership is a lease with a fencing token (the idea of Kleppmann's fencing tokens):
 * `acquire` makes the caller the owner and returns a token larger than every token handed out for
 * that upload before; every later write (`addParts`, `complete`) carries the token and is refused
 * with TAKEN_OVER unless it is still the current token and the lease has not run out. A node that
 * was paused, partitioned or lost the registry therefore cannot ack into an upload another node
 * now owns: its record write fails, so its ACK is never sent.
 *
 * Implementations: MemoryRegistry (one process, the default for an object store without
 * `--registry`), RedisRegistry (many nodes).
 */
import type { QuotaLimits } from '../quota.js';
import type {
  CompletionInfo,
  ContentKey,
  ContentRef,
  ListPage,
  UploadInfo,
  UploadSummary,
} from '../store/types.js';

/** Refs returned per digest by `findContent` (copies of one content beyond it add nothing). */
export const CONTENT_REFS_PER_DIGEST = 16;

/** A part the object store confirmed: chunk index (part number - 1), xxHash64, ETag as returned. */
export interface PartRecord {
  readonly index: number;
  readonly hash: bigint;
  readonly etag: string;
}

/** What the object store needs to find an upload's bytes. */
export interface ObjectLocation {
  /** Object key of the completed file. */
  readonly key: string;
  /** The multipart upload's id; absent for an empty file (written with one PutObject at completion). */
  readonly multipartId?: string;
}

/** Everything the registry holds for one upload. */
export interface RegistryEntry {
  readonly info: UploadInfo;
  readonly location: ObjectLocation;
  /** Recorded parts, ascending by index; empty once completed. */
  readonly parts: readonly PartRecord[];
  readonly completion?: CompletionInfo;
  /** Epoch ms of the last change (create, parts, completion). */
  readonly updatedAt: number;
}

/** Proof of ownership handed out by `acquire`. */
export interface Lease {
  readonly id: string;
  /** Strictly increasing per upload across every node: the fencing token. */
  readonly token: number;
  /** Who holds it (for logs and /healthz). */
  readonly holder: string;
}

/** How the registry is doing, for /healthz and /metrics. */
export interface RegistryHealth {
  readonly ok: boolean;
  readonly kind: string;
  readonly detail?: string;
}

export interface SharedRegistry {
  /** Short name for logs and /healthz ("memory", "redis"). */
  readonly kind: string;
  /** How long a lease lasts without renewal (ms); holders renew it every third of that. */
  readonly leaseTtl: number;
  /** Connect and check. Called once at registration. */
  init(): Promise<void>;
  /** Record a new upload; throws if the id exists (ids are 128 random bits: it never does). */
  create(info: UploadInfo, location: ObjectLocation): Promise<void>;
  get(id: string): Promise<RegistryEntry | undefined>;
  /** The upload's info alone (no part records): what checking a secret needs. */
  getInfo(id: string): Promise<UploadInfo | undefined>;
  /**
   * Forget an upload as `delete` does, unless someone holds its lease now (not run out): one
   * atomic step, so a node that acquires the upload a moment later finds it gone rather than
   * losing it under its connection. True when it was deleted.
   */
  deleteUnlessLeased(id: string): Promise<boolean>;
  /**
   * Throws INSUFFICIENT_STORAGE when the registry's memory is past its bound for new uploads
   * (redis-registry.ts, `maxMemory`). Absent: the registry lives in the process (memory-registry),
   * whose records the upload bounds (`maxUploads`, the TTL) already count.
   */
  admitUpload?(): Promise<void>;
  /**
   * Become the upload's owner: the previous holder (if any) loses it at once (the newest
   * connection wins, SPEC.md 7.3). The lease runs for the registry's lease time unless renewed.
   */
  acquire(id: string, holder: string): Promise<Lease>;
  /** Extend the lease; throws TAKEN_OVER when it is no longer ours. */
  renew(lease: Lease): Promise<void>;
  /** Give the lease up (no-op when someone else holds it now). */
  release(lease: Lease): Promise<void>;
  /** Record confirmed parts under the lease; throws TAKEN_OVER when the lease is not current. */
  addParts(lease: Lease, parts: readonly PartRecord[]): Promise<void>;
  /** Record the completion under the lease (the parts are dropped). */
  complete(lease: Lease, completion: CompletionInfo): Promise<void>;
  /** Forget an upload (its lease, parts and metadata). */
  delete(id: string): Promise<void>;
  /** Uploads in ascending id order, a page at a time. */
  list(page?: ListPage): Promise<UploadSummary[]>;
  /**
   * Remember that an upload delivered this content (instant upload, SPEC.md 16.10): one ref per
   * content and client (the latest), so the index grows with distinct (content, client) pairs, not
   * with deliveries. A hint: its bytes are proven before use, so a ref outliving its object is
   * harmless.
   */
  addContent(key: ContentKey & { readonly digest: string }, ref: ContentRef): Promise<void>;
  /**
   * Hints for `key` (with `key.client`, that client's only, read without touching others'): with a
   * digest, at most CONTENT_REFS_PER_DIGEST refs of that content; without, refs of that size and
   * chunk size, at most CONTENT_LOOKUP_LIMIT.
   */
  findContent(key: ContentKey): Promise<ContentRef[]>;
  /**
   * Reserve `bytes` and one unfinished upload for `client` against `limits`, counted across every
   * node (quota.ts has the same rules for one node); throws the ProtocolError naming the bound it
   * would cross (TOO_MANY_UPLOADS, INSUFFICIENT_STORAGE). Check and count are one atomic step.
   */
  reserve(id: string, client: string, bytes: number, limits: QuotaLimits): Promise<void>;
  /** Give the reservation of `id` back (completed, removed). Idempotent. */
  unreserve(id: string): Promise<void>;
  health(): Promise<RegistryHealth>;
  close(): Promise<void>;
}
