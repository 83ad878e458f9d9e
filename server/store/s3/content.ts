/**
 * Instant upload on the object store (SPEC.md 16.10): finding delivered content, reading the proof
 * ranges from it, and recording a new upload whose content is that object.
 *
 * Where content is remembered: the registry (addContent at completion), keyed by file size, chunk
 * size and whole-file digest, one ref per client, like the disk store's content index. A lookup in
 * a client's scope reads that client's refs only (ContentKey.client), so another tenant's content
 * costs no request and its existence cannot be timed.
 *
 * The new upload is a reference, not a copy: its completion names the object that holds the
 * content (a hard link's counterpart). A copy per instant upload (CopyObject) would let a client
 * holding one large file multiply the bucket's storage without sending a byte, and S3 copies at
 * most 5 GiB in one request. Removing an upload never deletes a completed object (the store's
 * rule), so a shared object outlives every upload that names it.
 */
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { Errors, ProtocolError } from '../../../protocol/index.js';
import type { SharedRegistry } from '../../registry/types.js';
import {
  CONTENT_LOOKUP_LIMIT,
  type CompletionInfo,
  type ContentKey,
  type ContentRef,
  type UploadInfo,
} from '../types.js';
import type { S3Context } from './context.js';

export class S3Content {
  constructor(
    private readonly s3: S3Context,
    private readonly registry: SharedRegistry,
  ) {}

  /** The key of a location in this bucket (`s3://<bucket>/<key>`), or undefined. */
  keyOf(location: string): string | undefined {
    const prefix = `s3://${this.s3.bucket}/`;
    return location.startsWith(prefix) && location.length > prefix.length
      ? location.slice(prefix.length)
      : undefined;
  }

  /** After a completion: remember the content (a failure costs a later instant upload only). */
  async remember(info: UploadInfo, completion: CompletionInfo): Promise<void> {
    if (info.fileSize === 0) return;
    try {
      await this.s3.registryCall('addContent', () =>
        this.registry.addContent(
          { fileSize: info.fileSize, chunkSize: info.chunkSize, digest: completion.digest },
          {
            id: info.id,
            location: completion.location,
            ...(info.client !== undefined ? { client: info.client } : {}),
          },
        ),
      );
    } catch (error) {
      this.s3.log.warn(
        `object store: content of ${info.id} not remembered for instant uploads (${error instanceof Error ? error.message : String(error)})`,
      );
    }
  }

  /** Content refs for `key` in this bucket: hints, proven by the caller before use. */
  async find(key: ContentKey): Promise<ContentRef[]> {
    if (key.fileSize === 0) return [];
    const hints = await this.s3.registryCall('findContent', () => this.registry.findContent(key));
    return hints
      .filter((ref) => this.keyOf(ref.location) !== undefined)
      .slice(0, key.limit ?? CONTENT_LOOKUP_LIMIT);
  }

  /** `length` bytes at `offset` of found content (a ranged GetObject; none when it is gone). */
  async read(ref: ContentRef, offset: number, length: number): Promise<Uint8Array> {
    const key = this.keyOf(ref.location);
    if (key === undefined || length <= 0) return new Uint8Array(0);
    const out = await this.s3.call('GetObject', () =>
      this.s3.client.send(
        new GetObjectCommand({
          Bucket: this.s3.bucket,
          Key: key,
          Range: `bytes=${offset}-${offset + length - 1}`,
        }),
      ),
    );
    return out.Body ? out.Body.transformToByteArray() : new Uint8Array(0);
  }

  /**
   * The completion of a new upload whose content is `ref`'s object, once that object is checked
   * to still be there with the upload's size (an operator may have replaced it since).
   */
  async reference(info: UploadInfo, ref: ContentRef, digest: string): Promise<CompletionInfo> {
    const key = this.keyOf(ref.location);
    if (key === undefined || !(await this.s3.objectHasSize(key, info.fileSize)))
      throw new ProtocolError(
        Errors.STORAGE_ERROR,
        'the content the server held is gone or changed; send the file again',
      );
    return { digest, location: ref.location, completedAt: Date.now() };
  }
}
