/**
 * Instant upload on the object store (SPEC.md 16.10): finding delivered content, reading the proof
 * ranges from it, and storing a new upload from it with a server-side copy (CopyObject: the bytes
 * never cross the network to this node).
 *
 * Where content is remembered: the registry (addContent at completion), keyed by file size, chunk
 * size and whole-file digest, like the disk store's content index. Entries are hints; before one
 * is used, its object must still exist with the right size (HeadObject).
 *
 * Bound: one CopyObject copies at most 5 GiB (S3's limit); larger content would need a multipart
 * copy (UploadPartCopy), which s3rver, the S3 server the tests run, does not implement, so it is
 * not offered: content above MAX_COPY_BYTES is never found and such files are uploaded.
 */
import { CopyObjectCommand, GetObjectCommand } from '@aws-sdk/client-s3';
import { Errors, ProtocolError } from '../../../protocol/index.js';
import type { SharedRegistry } from '../../registry/types.js';
import type { CompletionInfo, ContentKey, ContentRef, UploadInfo } from '../types.js';
import type { S3Context } from './context.js';

/** The largest object one CopyObject copies (S3's limit). */
export const MAX_COPY_BYTES = 5 * 1024 ** 3;

export class S3Content {
  constructor(
    private readonly s3: S3Context,
    private readonly registry: SharedRegistry,
  ) {}

  /** `s3://<bucket>/<key>` of an object in this bucket, as CompletionInfo.location says it. */
  location(key: string): string {
    return `s3://${this.s3.bucket}/${key}`;
  }

  /** The key of a location in this bucket, or undefined (another bucket, not a location). */
  private keyOf(location: string): string | undefined {
    const prefix = `s3://${this.s3.bucket}/`;
    return location.startsWith(prefix) && location.length > prefix.length
      ? location.slice(prefix.length)
      : undefined;
  }

  /** After a completion: remember the content (a failure costs a later instant upload only). */
  async remember(info: UploadInfo, completion: CompletionInfo): Promise<void> {
    if (info.fileSize === 0 || info.fileSize > MAX_COPY_BYTES) return;
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

  /**
   * Content refs for `key`. Without a digest (is an instant upload possible at all?) the hints
   * are returned as they are; with one, only refs whose object still has the size.
   */
  async find(key: ContentKey): Promise<ContentRef[]> {
    if (key.fileSize === 0 || key.fileSize > MAX_COPY_BYTES) return [];
    const hints = await this.s3.registryCall('findContent', () => this.registry.findContent(key));
    const inBucket = hints.filter((ref) => this.keyOf(ref.location) !== undefined);
    if (key.digest === undefined) return inBucket;
    const held: ContentRef[] = [];
    for (const ref of inBucket) {
      const objectKey = this.keyOf(ref.location);
      if (objectKey !== undefined && (await this.s3.objectHasSize(objectKey, key.fileSize)))
        held.push(ref);
    }
    return held;
  }

  /** `length` bytes at `offset` of found content (a ranged GetObject). */
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
   * Copy `ref`'s object to `key` inside the bucket (CopyObject: durable when it returns), with the
   * new upload's content type. Returns the completion to record.
   */
  async copy(
    info: UploadInfo,
    ref: ContentRef,
    key: string,
    digest: string,
  ): Promise<CompletionInfo> {
    const source = this.keyOf(ref.location);
    if (source === undefined || info.fileSize > MAX_COPY_BYTES)
      throw new ProtocolError(Errors.INTERNAL_ERROR, 'that content cannot be copied');
    await this.s3.call('CopyObject', () =>
      this.s3.client.send(
        new CopyObjectCommand({
          Bucket: this.s3.bucket,
          Key: key,
          CopySource: `${this.s3.bucket}/${source.split('/').map(encodeURIComponent).join('/')}`,
          ContentType: info.contentType,
          MetadataDirective: 'REPLACE',
        }),
      ),
    );
    return { digest, location: this.location(key), completedAt: Date.now() };
  }
}
