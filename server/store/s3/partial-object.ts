/**
 * The partial last chunk of a tus upload on the object store (PartialChunkKeeper): a part cannot
 * be appended to, so a PATCH that ends inside a part leaves its bytes in one small object beside
 * the upload, which the next PATCH (on any node) reads back, completes and uploads as the whole
 * part. tusd's S3 store does the same with its ".part" object.
 *
 *   <prefix>.partial/<id>   the chunk's first bytes; user metadata bigup-chunk, bigup-length,
 *                           bigup-hash (xxHash64, hex) and bigup-writes describe them.
 *                           Replaced by one PutObject, which S3 makes atomic, so a reader sees
 *                           an old or a new object whole, and only while this node's lease on
 *                           the upload holds (checked just before the put).
 *
 * It outlives nothing: completion and removal delete it; a bucket lifecycle rule on the
 * `.partial/` prefix is the backstop for a node that dies first (docs/scaling.md).
 */
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { hashFromHex, hashToHex } from '../../../protocol/index.js';
import type { PartialChunk, PartialChunkKeeper } from '../types.js';
import type { S3Context } from './context.js';
import { errorLabel, isS3Error } from './s3-errors.js';

/** Where the partial chunk of upload `id` is kept. */
export function partialKey(prefix: string, id: string): string {
  return `${prefix}.partial/${id}`;
}

function isMissing(error: unknown): boolean {
  return isS3Error(error, 'NotFound') || isS3Error(error, 'NoSuchKey');
}

export class PartialObject implements PartialChunkKeeper {
  private readonly key: string;
  /** This handle saw or wrote the object: completion deletes it (else it saves the request). */
  private touched = false;

  constructor(
    private readonly s3: S3Context,
    id: string,
    /** Throws unless this node still owns the upload (the lease's fenced renewal). */
    private readonly stillOurs: () => Promise<void>,
  ) {
    this.key = partialKey(s3.prefix, id);
  }

  async describe(): Promise<PartialChunk | undefined> {
    let head;
    try {
      head = await this.s3.call('HeadObject', () =>
        this.s3.client.send(new HeadObjectCommand({ Bucket: this.s3.bucket, Key: this.key })),
      );
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
    this.touched = true;
    const meta = head.Metadata ?? {};
    const chunk = Number(meta['bigup-chunk']);
    const length = Number(meta['bigup-length']);
    const hash = meta['bigup-hash'];
    const writes = Number(meta['bigup-writes']);
    if (
      !Number.isSafeInteger(chunk) ||
      chunk < 0 ||
      !Number.isSafeInteger(length) ||
      length <= 0 ||
      !Number.isSafeInteger(writes) ||
      writes < 1 ||
      head.ContentLength !== length ||
      typeof hash !== 'string' ||
      !/^[0-9a-f]{16}$/.test(hash)
    )
      return undefined;
    return { chunk, length, hash: hashFromHex(hash), writes };
  }

  /** The kept bytes; none when the object is gone (they then fail the caller's check). */
  async read(): Promise<Uint8Array> {
    let out;
    try {
      out = await this.s3.call('GetObject', () =>
        this.s3.client.send(new GetObjectCommand({ Bucket: this.s3.bucket, Key: this.key })),
      );
    } catch (error) {
      if (isMissing(error)) return new Uint8Array(0);
      throw error;
    }
    return out.Body ? out.Body.transformToByteArray() : new Uint8Array(0);
  }

  async write(partial: PartialChunk, bytes: Uint8Array): Promise<void> {
    // A node that lost the upload (paused, taken over) must not replace another node's partial.
    await this.stillOurs();
    this.touched = true;
    await this.s3.call('PutObject', () =>
      this.s3.client.send(
        new PutObjectCommand({
          Bucket: this.s3.bucket,
          Key: this.key,
          Body: bytes,
          ContentLength: bytes.byteLength,
          Metadata: {
            'bigup-chunk': String(partial.chunk),
            'bigup-length': String(partial.length),
            'bigup-hash': hashToHex(partial.hash),
            'bigup-writes': String(partial.writes),
          },
        }),
      ),
    );
  }

  async discard(): Promise<void> {
    // Fenced like a write: only the node holding the upload drops what another node may rely on.
    await this.stillOurs();
    await deletePartial(this.s3, this.key);
  }

  /** After completion: gone if this handle knew of it (a failure is left to the lifecycle rule). */
  async discardIfTouched(): Promise<void> {
    if (this.touched) await deletePartial(this.s3, this.key);
  }
}

/** Delete the partial object of a key; a failure is logged (the lifecycle rule is the backstop). */
export async function deletePartial(s3: S3Context, key: string): Promise<void> {
  try {
    await s3.call('DeleteObject', () =>
      s3.client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: key })),
    );
  } catch (error) {
    if (isMissing(error)) return;
    s3.log.warn(
      `object store: DeleteObject of ${key} failed (${errorLabel(error)}); the bucket's lifecycle rule removes it`,
    );
  }
}
