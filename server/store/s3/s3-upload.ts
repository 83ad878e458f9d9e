/**
 * One unfinished upload on the object store, open for writing on this node (UploadHandle).
 *
 * Chunk i is part i + 1. The session hands over only whole, hash-checked chunks (a DATA message is
 * a whole chunk, SPEC.md 7.4), so a part is uploaded only once its whole chunk arrived; a chunk cut
 * by a reconnect never reaches the store and is sent again by the client. Order does not matter:
 * parts are uploaded by number as chunks come, and completion lists them in order.
 *
 *   writeAt        the lease checked (a fenced renew), then UploadPart; the ETag is kept in
 *                  memory until the record is written
 *   recordChunks   the parts (index, xxHash64, ETag) go to the registry under the lease (fenced);
 *                  only then may the session ACK (the bytes are in the object store and the record
 *                  says so)
 *   finish         CompleteMultipartUpload with the recorded parts (no copy, no ListParts); the
 *                  content is then remembered for instant uploads (content.ts)
 *   partialChunks  where the tus endpoint keeps a PATCH's partial last chunk (partial-object.ts)
 *
 * The payload is held only while its UploadPart runs; the session's window bounds how many are
 * outstanding. The lease is renewed every third of its time while the handle is open; once it
 * cannot be (lost registry, taken over) every further write fails with the lease's error, so the
 * node stops acking and says so.
 */
import { CompleteMultipartUploadCommand, UploadPartCommand } from '@aws-sdk/client-s3';
import { Errors, ProtocolError, chunkCount } from '../../../protocol/index.js';
import type { Lease, PartRecord, RegistryEntry, SharedRegistry } from '../../registry/types.js';
import type { ChunkRecord, CompletionInfo, UploadHandle, UploadInfo } from '../types.js';
import type { S3Content } from './content.js';
import type { S3Context } from './context.js';
import { PartialObject } from './partial-object.js';
import { isS3Error } from './s3-errors.js';

export class S3Upload implements UploadHandle {
  /** A tus PATCH's partial last chunk: a part cannot be appended to (partial-object.ts). */
  readonly partialChunks: PartialObject;
  /** ETags of parts uploaded and not yet recorded. */
  private readonly etags = new Map<number, string>();
  private readonly renewTimer: NodeJS.Timeout;
  /** Set once the lease could not be renewed: every later write fails with it. */
  private lost: ProtocolError | undefined;
  private closed = false;

  constructor(
    private readonly s3: S3Context,
    private readonly registry: SharedRegistry,
    readonly info: UploadInfo,
    private readonly entry: RegistryEntry,
    private readonly lease: Lease,
    private readonly content: S3Content,
  ) {
    this.partialChunks = new PartialObject(s3, info.id, () =>
      this.s3.registryCall('renew', () => this.registry.renew(this.lease)),
    );
    this.renewTimer = setInterval(
      () => {
        this.registry.renew(this.lease).catch((error: unknown) => {
          if (this.lost) return;
          this.lost =
            error instanceof ProtocolError
              ? error
              : new ProtocolError(
                  Errors.STORAGE_ERROR,
                  'the registry is unreachable: this node stops acking',
                );
          this.s3.log.warn(
            `upload ${info.id}: lease lost (${error instanceof Error ? error.message : String(error)}); no more chunks are acked on this node`,
          );
        });
      },
      Math.max(10, Math.floor(registry.leaseTtl / 3)),
    );
    this.renewTimer.unref();
  }

  private get multipartId(): string {
    const id = this.entry.location.multipartId;
    if (id === undefined)
      throw new ProtocolError(Errors.INTERNAL_ERROR, 'an empty upload takes no data');
    return id;
  }

  async writeAt(bytes: Uint8Array, position: number): Promise<void> {
    if (this.lost) throw this.lost;
    const index = position / this.info.chunkSize;
    if (!Number.isInteger(index))
      throw new Error(`write at ${position} is not on a chunk boundary`);
    // The lease is checked before the part is written, not only when it is recorded: a part
    // number is one slot in the object store, and a write from a connection another node took
    // over would replace the bytes the new owner recorded there (its record then fails, the part
    // stays replaced). One registry round trip per chunk of at least 5 MiB.
    await this.s3
      .registryCall('renew', () => this.registry.renew(this.lease))
      .catch((error: unknown) => {
        if (error instanceof ProtocolError) this.lost ??= error;
        throw error;
      });
    const out = await this.s3.call('UploadPart', () =>
      this.s3.client.send(
        new UploadPartCommand({
          Bucket: this.s3.bucket,
          Key: this.entry.location.key,
          UploadId: this.multipartId,
          PartNumber: index + 1,
          Body: bytes,
          ContentLength: bytes.byteLength,
        }),
      ),
    );
    if (!out.ETag) throw new Error(`UploadPart ${index + 1} returned no ETag`);
    this.etags.set(index, out.ETag);
  }

  async recordChunks(chunks: readonly ChunkRecord[]): Promise<void> {
    if (this.lost) throw this.lost;
    const parts: PartRecord[] = chunks.map(({ index, hash }) => {
      const etag = this.etags.get(index);
      if (etag === undefined)
        throw new Error(`chunk ${index} is recorded before its part was uploaded`);
      return { index, hash, etag };
    });
    await this.s3.registryCall('addParts', () => this.registry.addParts(this.lease, parts));
    for (const { index } of chunks) this.etags.delete(index);
  }

  /** UploadPart returned: the bytes are durable in the object store; nothing to flush. */
  async syncData(): Promise<void> {}

  async checkpoint(): Promise<void> {}

  /** Every recorded part is durable, so the "checkpoint" is all of them. */
  async rollbackToCheckpoint(): Promise<readonly ChunkRecord[]> {
    const entry = await this.registry.get(this.info.id);
    return entry?.parts.map(({ index, hash }) => ({ index, hash })) ?? [];
  }

  /**
   * Renewing the lease is the check: it succeeds only while the fence is still this handle's token
   * and the lease has not run out. Any failure (taken over, expired, registry unreachable) says
   * "not owned"; the caller then acquires anew, which reports an unreachable registry itself.
   */
  async stillOwned(): Promise<boolean> {
    if (this.lost || this.closed) return false;
    try {
      await this.s3.registryCall('renew', () => this.registry.renew(this.lease));
      return true;
    } catch {
      return false;
    }
  }

  async finish(digest: string, rememberContent = true): Promise<CompletionInfo> {
    if (this.lost) throw this.lost;
    // Still ours? A node that lost the upload must not complete it.
    await this.s3.registryCall('renew', () => this.registry.renew(this.lease));
    const completion: CompletionInfo = {
      digest,
      location: `s3://${this.s3.bucket}/${this.entry.location.key}`,
      completedAt: Date.now(),
    };
    if (this.info.fileSize === 0) {
      await this.s3.putEmpty(this.entry.location.key, this.info.contentType);
    } else {
      const current = await this.registry.get(this.info.id);
      const parts = current?.parts ?? [];
      const expected = chunkCount(this.info.fileSize, this.info.chunkSize);
      if (parts.length !== expected)
        throw new ProtocolError(
          Errors.INCOMPLETE,
          `${expected - parts.length} parts are not recorded`,
        );
      try {
        await this.s3.call('CompleteMultipartUpload', () =>
          this.s3.client.send(
            new CompleteMultipartUploadCommand({
              Bucket: this.s3.bucket,
              Key: this.entry.location.key,
              UploadId: this.multipartId,
              MultipartUpload: {
                Parts: parts.map((p) => ({ PartNumber: p.index + 1, ETag: p.etag })),
              },
            }),
          ),
        );
      } catch (error) {
        // A completion whose answer was lost (or whose registry write failed) left the object in
        // place and the multipart id gone: the object of the right size is the completion.
        if (
          !isS3Error(error, 'NoSuchUpload') ||
          !(await this.s3.objectHasSize(this.entry.location.key, this.info.fileSize))
        )
          throw error;
      }
    }
    await this.s3.registryCall('complete', () => this.registry.complete(this.lease, completion));
    await this.partialChunks.discardIfTouched();
    if (rememberContent) await this.content.remember(this.info, completion);
    // The reservation became a delivered file (a failure here only over-counts until expiry).
    await this.registry.unreserve(this.info.id).catch(() => undefined);
    this.stop();
    await this.registry.release(this.lease).catch(() => undefined);
    return completion;
  }

  private stop(): void {
    this.closed = true;
    clearInterval(this.renewTimer);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.stop();
    await this.registry.release(this.lease).catch(() => undefined);
  }
}
