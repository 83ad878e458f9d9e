/**
 * The object-store backend and the shared registry for apps that register the plugin themselves
 * (docs/scaling.md): factories that load @aws-sdk/client-s3 and ioredis only when called, so an
 * app on the disk store never loads either. The classes' types are exported from the entry for
 * annotations. Whoever makes the store closes it after the app (`store.close()`, which closes the
 * registry too).
 */
import type { RedisRegistry, RedisRegistryOptions } from './registry/redis-registry.js';
import type { S3Store, S3StoreOptions } from './store/s3/index.js';

/** An S3-compatible object store for the plugin's `store` option (credentials: the AWS chain). */
export async function createS3Store(options: S3StoreOptions): Promise<S3Store> {
  const { S3Store } = await import('./store/s3/index.js');
  return new S3Store(options);
}

/** A Redis registry for `createS3Store({ registry })`: what lets several nodes share uploads. */
export async function createRedisRegistry(options: RedisRegistryOptions): Promise<RedisRegistry> {
  const { RedisRegistry } = await import('./registry/redis-registry.js');
  return new RedisRegistry(options);
}
