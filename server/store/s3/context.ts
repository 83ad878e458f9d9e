/**
 * What every part of the S3 backend shares: the client, the bucket and key prefix, the logger,
 * and the wrapper that times each call for /metrics (BackendObserver).
 */
import { HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { BackendObserver } from '../types.js';
import { errorLabel } from './s3-errors.js';

export type { BackendObserver };

/** Where the backend says things worth an operator's attention (Fastify's logger fits). */
export interface S3Logger {
  info(message: string): void;
  warn(message: string): void;
}

export class S3Context {
  constructor(
    readonly client: S3Client,
    readonly bucket: string,
    /** Key prefix, '' or ending in '/'. */
    readonly prefix: string,
    readonly log: S3Logger,
    public observe: BackendObserver | undefined,
  ) {}

  private async timed<T>(
    backend: 'store' | 'registry',
    operation: string,
    run: () => Promise<T>,
  ): Promise<T> {
    const started = process.hrtime.bigint();
    const seconds = (): number => Number(process.hrtime.bigint() - started) / 1e9;
    try {
      const result = await run();
      this.observe?.(backend, operation, seconds());
      return result;
    } catch (error) {
      this.observe?.(
        backend,
        operation,
        seconds(),
        backend === 'store' ? errorLabel(error) : 'error',
      );
      throw error;
    }
  }

  /** An object-store call, timed. */
  call<T>(operation: string, run: () => Promise<T>): Promise<T> {
    return this.timed('store', operation, run);
  }

  /** A registry call, timed. */
  registryCall<T>(operation: string, run: () => Promise<T>): Promise<T> {
    return this.timed('registry', operation, run);
  }

  /** Whether `key` is an object of `size` bytes (false when missing or unreadable). */
  async objectHasSize(key: string, size: number): Promise<boolean> {
    try {
      const head = await this.call('HeadObject', () =>
        this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key })),
      );
      return head.ContentLength === size;
    } catch {
      return false;
    }
  }

  /** An empty file cannot be a multipart upload (it has no part): one PutObject at completion. */
  async putEmpty(key: string, contentType: string): Promise<void> {
    await this.call('PutObject', () =>
      this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: new Uint8Array(0),
          ContentType: contentType,
        }),
      ),
    );
  }
}
