/**
 * S3 backend options and their defaults. Every resource the
 * backend holds is bounded here: sockets to the endpoint, attempts and time per request.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { S3Client } from '@aws-sdk/client-s3';
import type { SharedRegistry } from '../../registry/types.js';
import type { BackendObserver, S3Logger } from './context.js';

export { normalizePrefix, parseS3Url } from './url.js';

export interface S3StoreOptions {
  readonly bucket: string;
  /** Key prefix for every object ("uploads/"); a trailing "/" is added when missing. Default none. */
  readonly prefix?: string;
  /** Where upload records live. Default: a MemoryRegistry (one node, forgotten at restart). */
  readonly registry?: SharedRegistry;
  /** A ready client (tests, custom credentials); the connection options below are then ignored. */
  readonly client?: S3Client;
  /** S3-compatible endpoint URL (MinIO, R2, Ceph RGW, s3rver). Default: AWS for `region`. */
  readonly endpoint?: string;
  /** Default: AWS_REGION, else us-east-1. */
  readonly region?: string;
  /** Address buckets as https://endpoint/BUCKET/KEY (most non-AWS servers need it). Default false. */
  readonly forcePathStyle?: boolean;
  /** Attempts per request, first included; 5xx, SlowDown and timeouts are retried with backoff. Default 3. */
  readonly maxAttempts?: number;
  /** A request that sends or receives nothing for this long fails (ms). Default 60 000. */
  readonly requestTimeout?: number;
  /** Concurrent connections to the endpoint. Default 64. */
  readonly maxSockets?: number;
  /** This node's name on leases (logs, /healthz). Default hostname:pid:random. */
  readonly nodeId?: string;
  readonly logger?: S3Logger;
  /** Told of every object-store and registry call (latency, error): wired to /metrics by the plugin. */
  readonly observe?: BackendObserver;
}

export const S3_DEFAULTS = {
  maxAttempts: 3,
  requestTimeout: 60_000,
  maxSockets: 64,
  region: 'us-east-1',
} as const;

export function defaultNodeId(): string {
  return `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
}

/** The S3 client for `options`; credentials come from the SDK's default chain (AWS_* env vars first). */
export function makeS3Client(options: S3StoreOptions): S3Client {
  return new S3Client({
    region: options.region ?? process.env.AWS_REGION ?? S3_DEFAULTS.region,
    ...(options.endpoint !== undefined ? { endpoint: options.endpoint } : {}),
    forcePathStyle: options.forcePathStyle ?? false,
    maxAttempts: options.maxAttempts ?? S3_DEFAULTS.maxAttempts,
    // Checksums only where S3 requires them: every chunk is already verified with xxHash64, and
    // several S3-compatible servers reject the newer checksum headers.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: {
      requestTimeout: options.requestTimeout ?? S3_DEFAULTS.requestTimeout,
      // Without this the SDK only logs a warning when the timeout passes, and a request to an
      // endpoint that stopped answering holds its chunk (and the upload) forever.
      throwOnRequestTimeout: true,
      connectionTimeout: Math.min(10_000, options.requestTimeout ?? S3_DEFAULTS.requestTimeout),
      httpAgent: { maxSockets: options.maxSockets ?? S3_DEFAULTS.maxSockets, keepAlive: true },
      httpsAgent: { maxSockets: options.maxSockets ?? S3_DEFAULTS.maxSockets, keepAlive: true },
    },
  });
}
