/**
 * The narrow storage interface under the upload session (the shape of tusd's
 * DataStore): the session enforces the protocol (offsets, hashes, window, ownership); a store only
 * moves bytes and keeps records. An object-store backend implements these two interfaces and
 * nothing in server/session.ts changes.
 *
 * Ordering contract the session relies on (protocol/SPEC.md section 8, "Durability"):
 * - `writeAt` resolves only once the bytes are handed to the OS (or durably stored);
 * - `recordChunks` resolves only once the records are written (synced when asked);
 * - records are never visible after a restart unless `recordChunks` was called for them, and a
 *   record the store hands back from `readState` names bytes it already stored.
 */

import type { QuotaLimits } from '../quota.js';

/** A chunk the store has recorded as written: index at the upload's chunk size, and its xxHash64. */
export interface ChunkRecord {
  readonly index: number;
  readonly hash: bigint;
}

/** What the session knows about an upload when it creates it. */
export interface UploadInfo {
  /** 32 lowercase hex digits. */
  readonly id: string;
  /** sha256 of the resume secret, lowercase hex; the secret itself is never stored. */
  readonly secretHash: string;
  readonly fileSize: number;
  readonly chunkSize: number;
  /** The client's name, sanitized (never a path): `sanitizeName` in names.ts. */
  readonly name: string;
  /**
   * The name exactly as the client sent it, when sanitizing changed it: for display and audit
   * only, never used to build a path.
   */
  readonly originalName?: string;
  readonly contentType: string;
  readonly metadata: Readonly<Record<string, string>>;
  /** Whole-file digest announced in OPEN (16 hex digits), if any. */
  readonly digest?: string;
  /** Who holds the reservation (quota accounting): an authorization subject or a client address. */
  readonly client?: string;
  /**
   * 32 lowercase hex digits, chosen by the server (never the client): the batch this upload
   * belongs to, i.e. the uploads with a relative path opened on one bigup.2 connection (a folder
   * sent at once). The disk store lands a batch's files in one folder (delivered-files.ts).
   */
  readonly batch?: string;
  /**
   * Created through the tus endpoint, where the upload URL is the capability: only such uploads
   * are reached by tus requests, which carry no secret. An upload opened over bigup (WebSocket or
   * the HTTP binding) is reached only with its secret, whoever learns its id.
   */
  readonly tus?: true;
  /** Epoch milliseconds. */
  readonly createdAt: number;
}

/** The outcome of a completed upload, kept until the TTL so a lost RESULT can be replayed. */
export interface CompletionInfo {
  /** Whole-file digest, 16 lowercase hex digits. */
  readonly digest: string;
  /** Where the file now lives (absolute path for the disk store; an object key elsewhere). */
  readonly location: string;
  readonly completedAt: number;
}

/** Everything the store knows about one upload. */
export interface StoredUpload {
  readonly info: UploadInfo;
  /** Trusted chunk records (after torn-tail and boot-id checks). Empty when completed. */
  readonly chunks: readonly ChunkRecord[];
  /** Set once the upload completed. */
  readonly completion?: CompletionInfo;
  /** Last time the upload changed (epoch ms): for expiry. */
  readonly updatedAt: number;
  /**
   * Set (to what was found, for the log) when the store found the upload's records damaged in a
   * way a crash cannot explain: the upload is deactivated (RESUME gets UPLOAD_DAMAGED, SPEC.md
   * 7.2), `chunks` is empty, and its files stay untouched for the operator.
   */
  readonly damaged?: string;
  /**
   * Chunks were withdrawn (REPLACE_CHUNK, SPEC.md 16.9): the client said the file changed since
   * its OPEN, so the digest announced there no longer binds the upload.
   */
  readonly chunksWithdrawn?: boolean;
}

/** A short listing entry for the sweeper and operators. */
export interface UploadSummary {
  readonly id: string;
  readonly completed: boolean;
  readonly updatedAt: number;
  /** The upload is damaged (StoredUpload.damaged): kept for the operator, never expired. */
  readonly damaged?: boolean;
  /** Bytes reserved for the upload (its file size). */
  readonly fileSize?: number;
  /** UploadInfo.client, for quotas rebuilt at start. */
  readonly client?: string;
  /** An unfinished upload with no chunk recorded: it expires after the shorter `emptyUploadTtl`. */
  readonly empty?: boolean;
  /**
   * A connection holds the upload now, on whichever node (a shared registry's live lease): the
   * sweeper leaves it, however old.
   */
  readonly leased?: boolean;
}

/** A chunk's first bytes, kept apart from the data until the rest of the chunk arrives. */
export interface PartialChunk {
  readonly chunk: number;
  /** How many of the chunk's first bytes are kept (0 < length < the chunk's length). */
  readonly length: number;
  /** xxHash64 of those bytes, as the writer computed it; kept with them. */
  readonly hash: bigint;
  /** How many writes made it (1 for the first one inside this chunk): bounds the rewrites. */
  readonly writes: number;
}

/**
 * Where a store that writes whole chunks only keeps the partial last chunk of a tus PATCH
 * (server/tus/): one per upload, replaced whole, visible to every node that shares the store.
 */
export interface PartialChunkKeeper {
  /** What is kept, or undefined when nothing is (or it cannot be read: it then counts for nothing). */
  describe(): Promise<PartialChunk | undefined>;
  /** The kept bytes (the caller checks them against what describe() said). */
  read(): Promise<Uint8Array>;
  /** Replace what is kept, atomically; durable when this resolves. */
  write(partial: PartialChunk, bytes: Uint8Array): Promise<void>;
  /** Keep nothing any more (what is kept failed its check); done when this resolves. */
  discard(): Promise<void>;
}

/** An upload open for writing. One writer at a time (the session layer guarantees it). */
export interface UploadHandle {
  readonly info: UploadInfo;
  /** Write `bytes` at `position` of the upload's data; positional, never appends. */
  writeAt(bytes: Uint8Array, position: number): Promise<void>;
  /** Persist chunk records after their data was written. `sync` also flushes them to the device. */
  recordChunks(chunks: readonly ChunkRecord[], sync: boolean): Promise<void>;
  /** Flush the data written so far to the device (fdatasync). */
  syncData(): Promise<void>;
  /**
   * Read `length` bytes at `position` of the upload's data (fewer at the end of the data). Optional:
   * the tus endpoint needs it to hash a chunk that an earlier PATCH began (server/tus/tail.ts).
   */
  readAt?(length: number, position: number): Promise<Uint8Array>;
  /**
   * Optional: present on a store that writes whole chunks only (an object store cannot append to a
   * part). The tus endpoint then keeps a partial last chunk here instead of in the data, and writes
   * every chunk whole. Absent: a partial chunk is written into the data in place and read back
   * with readAt.
   */
  readonly partialChunks?: PartialChunkKeeper;
  /**
   * Background checkpoint: flush data, then mark every record written before the flush as backed
   * by synced data, then flush the records. After an OS crash only marked records are trusted.
   */
  checkpoint(): Promise<void>;
  /**
   * After a failed flush the page cache state is unknown: keep only the records covered by the
   * last successful checkpoint and return them.
   */
  rollbackToCheckpoint(): Promise<readonly ChunkRecord[]>;
  /**
   * Withdraw the records of these chunks, durably, before their bytes are overwritten (the client
   * found them changed after a resume; SPEC.md 16.9). Optional: a store without it never has the
   * REPLACE_CHUNK capability granted. Called with no other record append in flight.
   */
  retractChunks?(indexes: readonly number[]): Promise<void>;
  /**
   * Optional, for stores shared by several server processes (an object store with a shared
   * registry): whether this handle still owns the upload, that is no other process took it over
   * since it was opened. False means the records this process loaded with it may be stale: the
   * caller drops them and opens the upload again. Absent: the process is the only writer (true).
   */
  stillOwned?(): Promise<boolean>;
  /**
   * Make the data durable, move it to its final place atomically, record the completion.
   * `rememberContent` (default true): remember the completed content for instant uploads (the
   * server passes false when it offers none, e.g. with `instantUpload: false`).
   */
  finish(digest: string, rememberContent?: boolean): Promise<CompletionInfo>;
  /** Release file handles (after a final checkpoint). The upload stays stored. */
  close(): Promise<void>;
}

/**
 * The most entries a lookup of content by size alone (no digest) returns: the registry treats a
 * full answer as "content may exist" without reading further.
 */
export const CONTENT_LOOKUP_LIMIT = 64;

/** What identifies content for an instant upload (SPEC.md 16.10). */
export interface ContentKey {
  readonly fileSize: number;
  readonly chunkSize: number;
  /**
   * Whole-file digest, 16 lowercase hex digits. Absent: content of that size and chunk size with
   * any digest (whether an instant upload is possible at all, before the client hashes).
   */
  readonly digest?: string;
  /**
   * Only content this client delivered (the dedupe scope, UploadInfo.client): a store leaves other
   * clients' content untouched (no read of its own), so the time of a lookup tells nothing of it.
   * Absent: any client's.
   */
  readonly client?: string;
  /** At most this many refs (a lookup stops there). Absent: CONTENT_LOOKUP_LIMIT. */
  readonly limit?: number;
}

/** Completed content the store can hand to a new upload without the bytes crossing the network. */
export interface ContentRef {
  /** The upload that delivered it. */
  readonly id: string;
  /** UploadInfo.client of that upload (the dedupe scope is checked against it). */
  readonly client?: string;
  /** Where the content lives (as CompletionInfo.location). */
  readonly location: string;
}

/** A slice of `UploadStore.list`. */
export interface ListPage {
  /** Only ids greater than this one. */
  readonly after?: string;
  /** At most this many summaries. */
  readonly limit?: number;
  /**
   * Only uploads that may still be unfinished: a store that can tell them apart cheaply (the disk
   * store: only they have a journal) skips reading completed ones, so a start-up with 100k
   * completed uploads on disk reads the unfinished ones alone. Completed ones may still appear:
   * callers check `completed`.
   */
  readonly unfinished?: boolean;
}

/** Told of every call a store makes to a remote backend: for latency and error metrics. */
export type BackendObserver = (
  backend: 'store' | 'registry',
  operation: string,
  seconds: number,
  /** A short label of the failure (an S3 error code, "timeout", "network"); absent on success. */
  error?: string,
) => void;

/** One backend's state for /healthz. */
export interface BackendState {
  readonly ok: boolean;
  readonly kind: string;
  readonly detail?: string;
}

/** A place uploads live. */
/** How a new upload will be used, so a store can spare what that use does not need. */
export interface CreateIntent {
  /**
   * The whole file is written and the upload completed right after `create`, in the same server
   * step (an OPEN with data, SPEC.md 16.11): nothing of it is acked before its completion, so its
   * chunk records need not outlive a crash (the disk store makes no journal file for it).
   */
  readonly completesAtOnce?: boolean;
}

export interface UploadStore {
  /**
   * Handles of this store implement `retractChunks` (the REPLACE_CHUNK capability, SPEC.md
   * 16.9, is granted only then).
   */
  readonly retractsChunks?: boolean;
  /** Optional: the state of the remote backends the store uses (object store, registry), for /healthz. */
  health?(): Promise<{ store: BackendState; registry: BackendState }>;
  /**
   * The store counts quotas itself (cluster-wide, in a shared registry) through `setQuotaLimits`;
   * the plugin's per-process ledger (quota.ts) then stays out of the way. Absent: false.
   */
  readonly countsQuotas?: boolean;
  /** Optional (with `countsQuotas`): the plugin passes the quota options here at registration. */
  setQuotaLimits?(limits: QuotaLimits): void;
  /** Optional: the plugin passes its metrics hook here (latencies and errors per backend call). */
  setObserver?(observer: BackendObserver): void;
  /** Optional: release connections; called by whoever made the store, after the app closed. */
  close?(): Promise<void>;
  /** Create the directories or buckets the store needs. Called once at registration. */
  init(): Promise<void>;
  /** Bytes available for new uploads. */
  freeSpace(): Promise<number>;
  /**
   * Completed content with this key (instant upload, SPEC.md 16.10); optional: a store without
   * it never finds anything. Entries are hints: the caller proves the bytes before using one.
   * Without a digest in the key the store may stop after `CONTENT_LOOKUP_LIMIT` entries.
   */
  findContent?(key: ContentKey): Promise<ContentRef[]>;
  /** `length` bytes of found content at `offset` (for the proof of possession). */
  readContent?(ref: ContentRef, offset: number, length: number): Promise<Uint8Array>;
  /**
   * Store a new, already completed upload whose content is `ref`'s, without copying it through
   * the network (a hard link, a server-side copy), as durably as a completion. Undefined when the
   * content cannot be shared that way here: the upload then goes on as an ordinary one.
   */
  adoptContent?(
    info: UploadInfo,
    ref: ContentRef,
    digest: string,
  ): Promise<CompletionInfo | undefined>;
  /**
   * Optional: the chunk size the store needs for a file of `fileSize` bytes when the session would
   * agree `proposed` (at most `maxChunkSize`, the largest message the server reads). An object
   * store maps chunks to parts and must keep within its part rules; throws a ProtocolError
   * (FILE_TOO_LARGE) when no chunk size fits. Absent: `proposed` is used.
   */
  chunkSizeFor?(fileSize: number, proposed: number, maxChunkSize: number): number;
  /**
   * Create an upload and reserve `info.fileSize` bytes for it. Throws ProtocolError
   * INSUFFICIENT_STORAGE when the space cannot be reserved (nothing is left behind).
   */
  create(info: UploadInfo, intent?: CreateIntent): Promise<UploadHandle>;
  /** Open an existing, incomplete upload for writing. */
  open(id: string): Promise<UploadHandle>;
  /**
   * Everything known about an upload, or undefined. `id` is already validated hex. Damaged
   * records come back with `damaged` set; damage that leaves nothing to return (unreadable
   * metadata) throws ProtocolError UPLOAD_DAMAGED.
   */
  readState(id: string): Promise<StoredUpload | undefined>;
  /**
   * What checking a request's secret needs (the info's secret hash), without the chunk records, as
   * readState would answer it (undefined, or UPLOAD_DAMAGED). A request with a wrong secret must
   * not make the server read an upload's whole journal (hostile-client rule). Absent: readState.
   */
  readInfo?(id: string): Promise<UploadInfo | undefined>;
  /**
   * `remove`, unless a connection holds the upload now on some node (a shared registry's live
   * lease): checked and removed in one step, for the sweeper. True when removed. Absent: nothing
   * is shared, and the process's own connections (which the caller checks) are all there is.
   */
  removeUnlessLeased?(id: string): Promise<boolean>;
  /** Remove an upload's data and records; for a completed upload only its record (the file stays). */
  remove(id: string): Promise<void>;
  /**
   * The uploads the store holds, in ascending id order; with a page, at most `limit` of them whose
   * id is above `after` (so a caller can walk a large store a slice at a time).
   */
  list(page?: ListPage): Promise<UploadSummary[]>;
}
