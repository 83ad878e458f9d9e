/**
 * The object-store backend (UploadStore) for any S3-compatible endpoint. Layout in the bucket:
 *
 *   <prefix><id>/<name>          the file, as one multipart upload while unfinished (chunk i is
 *                                part i + 1) and one object once completed; <name> is the
 *                                sanitized client name (with its sanitized folders, as on disk,
 *                                names.ts safeRelativePath); <id> is 32 lowercase hex
 *
 *   <prefix>.partial/<id>        a tus PATCH's partial last part (partial-object.ts)
 *
 * Nothing else is written to the bucket: metadata, acked parts (index, xxHash64, ETag), the
 * completion and ownership live in the SharedRegistry (registry/types.ts). The trust rule: a part
 * counts as acked only when the registry holds its record, which is written after UploadPart
 * returned; the object store is never listed (no ListParts, no ListObjects).
 *
 * Lifecycle: create = CreateMultipartUpload + registry record; finish = CompleteMultipartUpload
 * (S3 joins the parts itself: no copy, no download); remove (TERMINATE, DELETE, TTL) =
 * AbortMultipartUpload, then the record goes; instant upload (content.ts) = a record created
 * completed whose location is the object already holding the content (no copy). An abort that
 * fails (a server without it, a fault) is logged and counted and the record still goes: the bucket's lifecycle rule for incomplete
 * multipart uploads (docs/scaling.md) is the backstop that frees those parts.
 *
 * Space: an object store has no free space to report; quotas (maxCommittedBytes and the per-client
 * limits) bound what unfinished uploads may hold.
 */
import {
  AbortMultipartUploadCommand,
  CreateMultipartUploadCommand,
  HeadBucketCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Errors, ProtocolError } from '../../../protocol/index.js';
import type { QuotaLimits } from '../../quota.js';
import { MemoryRegistry } from '../../registry/memory-registry.js';
import type { RegistryEntry, RegistryHealth, SharedRegistry } from '../../registry/types.js';
import { safeRelativePath } from '../names.js';
import { deletePartial, partialKey } from './partial-object.js';
import type {
  BackendObserver,
  BackendState,
  CompletionInfo,
  ContentKey,
  ContentRef,
  ListPage,
  StoredUpload,
  UploadHandle,
  UploadInfo,
  UploadStore,
  UploadSummary,
} from '../types.js';
import { defaultNodeId, makeS3Client, normalizePrefix, type S3StoreOptions } from './config.js';
import { S3Content } from './content.js';
import { S3Context } from './context.js';
import { chunkSizeForParts } from './part-rules.js';
import { errorLabel } from './s3-errors.js';
import { S3Upload } from './s3-upload.js';

const ID_PATTERN = /^[0-9a-f]{32}$/;
const SILENT = { info: () => undefined, warn: () => undefined };

/** /healthz's view of the object store and the registry. */
export interface BackendHealth {
  readonly store: BackendState & { readonly bucket: string };
  readonly registry: RegistryHealth;
}

export class S3Store implements UploadStore {
  readonly registry: SharedRegistry;
  readonly nodeId: string;
  private readonly s3: S3Context;
  private readonly content: S3Content;
  /** Quotas are counted in the registry, across every node (quota.ts's rules). */
  readonly countsQuotas = true;
  private quota: QuotaLimits | undefined;
  /** Aborts that failed since start (a server without AbortMultipartUpload, or faults). */
  abortFailures = 0;

  constructor(options: S3StoreOptions) {
    this.registry = options.registry ?? new MemoryRegistry();
    this.nodeId = options.nodeId ?? defaultNodeId();
    const client: S3Client = options.client ?? makeS3Client(options);
    this.s3 = new S3Context(
      client,
      options.bucket,
      normalizePrefix(options.prefix ?? ''),
      options.logger ?? SILENT,
      options.observe,
    );
    this.content = new S3Content(this.s3, this.registry);
  }

  get bucket(): string {
    return this.s3.bucket;
  }

  async init(): Promise<void> {
    await this.registry.init();
    try {
      await this.s3.call('HeadBucket', () =>
        this.s3.client.send(new HeadBucketCommand({ Bucket: this.s3.bucket })),
      );
    } catch (error) {
      throw new Error(
        `object store: bucket "${this.s3.bucket}" is not reachable (${errorLabel(error)}: ${error instanceof Error ? error.message : String(error)})`,
        { cause: error },
      );
    }
    this.s3.log.info(
      `object store: bucket ${this.s3.bucket}${this.s3.prefix ? ` prefix ${this.s3.prefix}` : ''}, registry ${this.registry.kind}, node ${this.nodeId}`,
    );
  }

  /** A new upload record must fit the registry's memory bound (Redis: `maxMemory`). */
  private async admitRecord(): Promise<void> {
    const registry = this.registry;
    if (!registry.admitUpload) return;
    // The refusal is an answer, not a registry failure: it is not counted as a registry error.
    const refusal = await this.s3.registryCall('admitUpload', () =>
      (registry.admitUpload?.() ?? Promise.resolve()).then(
        () => undefined,
        (error: unknown) => {
          if (error instanceof ProtocolError && error.codeName === 'INSUFFICIENT_STORAGE')
            return error;
          throw error;
        },
      ),
    );
    if (refusal) throw refusal;
  }

  async freeSpace(): Promise<number> {
    return Number.MAX_SAFE_INTEGER;
  }

  chunkSizeFor(fileSize: number, proposed: number, maxChunkSize: number): number {
    return chunkSizeForParts(fileSize, proposed, maxChunkSize);
  }

  private keyFor(info: UploadInfo): string {
    return `${this.s3.prefix}${info.id}/${safeRelativePath(info.name, info.metadata.relativePath).join('/')}`;
  }

  async create(info: UploadInfo): Promise<UploadHandle> {
    checkId(info.id);
    await this.admitRecord();
    const key = this.keyFor(info);
    const quota = this.quota;
    if (quota) {
      await this.s3.registryCall('reserve', () =>
        this.registry.reserve(info.id, info.client ?? 'unknown', info.fileSize, quota),
      );
    }
    try {
      return await this.createReserved(info, key);
    } catch (error) {
      if (quota) await this.registry.unreserve(info.id).catch(() => undefined);
      throw error;
    }
  }

  private async createReserved(info: UploadInfo, key: string): Promise<UploadHandle> {
    let multipartId: string | undefined;
    if (info.fileSize > 0) {
      const out = await this.s3.call('CreateMultipartUpload', () =>
        this.s3.client.send(
          new CreateMultipartUploadCommand({
            Bucket: this.s3.bucket,
            Key: key,
            ContentType: info.contentType,
          }),
        ),
      );
      if (!out.UploadId) throw new Error('CreateMultipartUpload returned no UploadId');
      multipartId = out.UploadId;
    }
    const location = { key, ...(multipartId !== undefined ? { multipartId } : {}) };
    try {
      await this.s3.registryCall('create', () => this.registry.create(info, location));
    } catch (error) {
      if (multipartId !== undefined) await this.abort(key, multipartId);
      throw error;
    }
    return this.openEntry(info.id);
  }

  async open(id: string): Promise<UploadHandle> {
    checkId(id);
    return this.openEntry(id);
  }

  private async openEntry(id: string): Promise<UploadHandle> {
    const lease = await this.s3.registryCall('acquire', () =>
      this.registry.acquire(id, this.nodeId),
    );
    // Read after acquiring: every part recorded under an earlier lease is in this read.
    const entry = await this.s3.registryCall('get', () => this.registry.get(id));
    if (!entry) throw new ProtocolError(Errors.UPLOAD_GONE, 'the upload was deleted or expired');
    if (entry.completion)
      throw new ProtocolError(Errors.CONFLICT, 'the upload is already complete');
    return new S3Upload(this.s3, this.registry, entry.info, entry, lease, this.content);
  }

  findContent(key: ContentKey): Promise<ContentRef[]> {
    return this.content.find(key);
  }

  readContent(ref: ContentRef, offset: number, length: number): Promise<Uint8Array> {
    return this.content.read(ref, offset, length);
  }

  /**
   * Instant upload: a new upload, recorded completed, whose completion names the object already
   * holding the content (content.ts: a reference, not a copy). Its record keeps that object's key;
   * removing the upload removes the record only, as for every completed upload.
   */
  async adoptContent(info: UploadInfo, ref: ContentRef, digest: string): Promise<CompletionInfo> {
    checkId(info.id);
    await this.admitRecord();
    const completion = await this.content.reference(info, ref, digest);
    const key = this.content.keyOf(completion.location) ?? this.keyFor(info);
    await this.s3.registryCall('create', () => this.registry.create(info, { key }));
    try {
      const lease = await this.s3.registryCall('acquire', () =>
        this.registry.acquire(info.id, this.nodeId),
      );
      await this.s3.registryCall('complete', () => this.registry.complete(lease, completion));
      await this.registry.release(lease).catch(() => undefined);
    } catch (error) {
      // No half-made upload: the client, told of a failure, sends the file as an ordinary one.
      await this.registry.delete(info.id).catch(() => undefined);
      throw error;
    }
    await this.content.remember(info, completion);
    return completion;
  }

  async readState(id: string): Promise<StoredUpload | undefined> {
    if (!ID_PATTERN.test(id)) return undefined;
    const entry = await this.s3.registryCall('get', () => this.registry.get(id));
    if (!entry) return undefined;
    return {
      info: entry.info,
      chunks: entry.parts.map(({ index, hash }) => ({ index, hash })),
      ...(entry.completion ? { completion: entry.completion } : {}),
      updatedAt: entry.updatedAt,
    };
  }

  /** The registry's info record alone (SPEC.md 7.2 checks need no part list). */
  async readInfo(id: string): Promise<UploadInfo | undefined> {
    if (!ID_PATTERN.test(id)) return undefined;
    return this.s3.registryCall('getInfo', () => this.registry.getInfo(id));
  }

  /**
   * The sweeper's removal: the records go first, in one step with the check that no node holds
   * the lease (a node acquiring it after that finds the upload gone); then the multipart upload
   * is aborted (a crash between the two leaves it to the bucket's lifecycle rule).
   */
  async removeUnlessLeased(id: string): Promise<boolean> {
    checkId(id);
    const entry = await this.s3.registryCall('get', () => this.registry.get(id));
    if (!entry) return false;
    if (!(await this.s3.registryCall('delete', () => this.registry.deleteUnlessLeased(id))))
      return false;
    await this.releaseStorage(entry);
    await this.s3.registryCall('unreserve', () => this.registry.unreserve(id));
    return true;
  }

  /** What an unfinished upload holds in the bucket: its multipart upload and partial part. */
  private async releaseStorage(entry: RegistryEntry): Promise<void> {
    if (!entry.completion && entry.location.multipartId !== undefined)
      await this.abort(entry.location.key, entry.location.multipartId);
    await deletePartial(this.s3, partialKey(this.s3.prefix, entry.info.id));
  }

  async remove(id: string): Promise<void> {
    checkId(id);
    const entry = await this.s3.registryCall('get', () => this.registry.get(id));
    if (!entry) return;
    await this.releaseStorage(entry);
    await this.s3.registryCall('delete', () => this.registry.delete(id));
    await this.s3.registryCall('unreserve', () => this.registry.unreserve(id));
  }

  /** Abort a multipart upload; a failure is logged and counted (the lifecycle rule is the backstop). */
  private async abort(key: string, multipartId: string): Promise<void> {
    try {
      await this.s3.call('AbortMultipartUpload', () =>
        this.s3.client.send(
          new AbortMultipartUploadCommand({
            Bucket: this.s3.bucket,
            Key: key,
            UploadId: multipartId,
          }),
        ),
      );
    } catch (error) {
      this.abortFailures++;
      this.s3.log.warn(
        `object store: AbortMultipartUpload of ${key} failed (${errorLabel(error)}); its parts stay until the bucket's lifecycle rule removes them`,
      );
    }
  }

  list(page?: ListPage): Promise<UploadSummary[]> {
    return this.s3.registryCall('list', () => this.registry.list(page));
  }

  /** For /healthz: can we reach the bucket and the registry? */
  async health(): Promise<BackendHealth> {
    const [store, registry] = await Promise.all([
      this.s3
        .call('HeadBucket', () =>
          this.s3.client.send(new HeadBucketCommand({ Bucket: this.s3.bucket })),
        )
        .then(
          () => ({ ok: true, kind: 's3' as const, bucket: this.s3.bucket }),
          (error: unknown) => ({
            ok: false,
            kind: 's3' as const,
            bucket: this.s3.bucket,
            detail: errorLabel(error),
          }),
        ),
      this.registry.health().catch((error: unknown): RegistryHealth => ({
        ok: false,
        kind: this.registry.kind,
        detail: error instanceof Error ? error.message : String(error),
      })),
    ]);
    return { store, registry };
  }

  setQuotaLimits(limits: QuotaLimits): void {
    this.quota = limits;
  }

  /** The plugin's metrics hook, besides the one given in the options (if any). */
  setObserver(observer: BackendObserver): void {
    const given = this.s3.observe;
    this.s3.observe = given
      ? (...call) => {
          given(...call);
          observer(...call);
        }
      : observer;
  }

  async close(): Promise<void> {
    await this.registry.close();
    this.s3.client.destroy();
  }
}

function checkId(id: string): void {
  if (!ID_PATTERN.test(id)) throw new Error(`not an upload id: ${JSON.stringify(id)}`);
}
