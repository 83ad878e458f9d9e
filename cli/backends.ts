/**
 * `serve --store s3://...` and `--registry redis://...`: the object-store backend and the shared
 * registry, loaded only when asked for (the AWS SDK and ioredis are not imported in disk mode), with
 * a plain error when the package is missing.
 */
import { createRedisRegistry, createS3Store } from '../server/backends.js';
import type { SharedRegistry } from '../server/registry/types.js';
import type { UploadStore } from '../server/store/types.js';
import { UsageError } from './units.js';

/** What the command line asked for; built into a store by `openBackend`. */
export interface BackendSpec {
  readonly bucket: string;
  readonly prefix: string;
  readonly endpoint?: string;
  readonly region?: string;
  readonly forcePathStyle: boolean;
  readonly maxAttempts?: number;
  readonly requestTimeout?: number;
  readonly maxSockets?: number;
  readonly registry?: {
    readonly url: string;
    readonly leaseTtl?: number;
    readonly commandTimeout?: number;
    readonly maxMemory?: number;
  };
}

async function load<T>(what: string, pkg: string, importer: () => Promise<T>): Promise<T> {
  try {
    return await importer();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException | undefined)?.code;
    if (code === 'ERR_MODULE_NOT_FOUND' && String((error as Error).message).includes(pkg)) {
      throw new UsageError(`${what} needs the package ${pkg}: npm install ${pkg}`);
    }
    throw error;
  }
}

export interface Logger {
  info(message: string): void;
  warn(message: string): void;
}

/** Build the S3 store (and its Redis registry) for `spec`. The caller closes it after the app. */
export async function openBackend(
  spec: BackendSpec,
  log: Logger,
): Promise<UploadStore & { close(): Promise<void> }> {
  let registry: SharedRegistry | undefined;
  if (spec.registry) {
    const { url, leaseTtl, commandTimeout, maxMemory } = spec.registry;
    registry = await load('--registry redis://', 'ioredis', () =>
      createRedisRegistry({
        url,
        ...(leaseTtl !== undefined ? { leaseTtl } : {}),
        ...(commandTimeout !== undefined ? { commandTimeout } : {}),
        ...(maxMemory !== undefined ? { maxMemory } : {}),
        logger: log,
      }),
    );
  } else {
    log.warn(
      'object store without --registry: upload records live in this process only (one node; unfinished uploads are forgotten at restart)',
    );
  }
  return load('--store s3://', '@aws-sdk/client-s3', () =>
    createS3Store({
      bucket: spec.bucket,
      prefix: spec.prefix,
      ...(spec.endpoint !== undefined ? { endpoint: spec.endpoint } : {}),
      ...(spec.region !== undefined ? { region: spec.region } : {}),
      forcePathStyle: spec.forcePathStyle,
      ...(spec.maxAttempts !== undefined ? { maxAttempts: spec.maxAttempts } : {}),
      ...(spec.requestTimeout !== undefined ? { requestTimeout: spec.requestTimeout } : {}),
      ...(spec.maxSockets !== undefined ? { maxSockets: spec.maxSockets } : {}),
      ...(registry ? { registry } : {}),
      logger: log,
    }),
  );
}
