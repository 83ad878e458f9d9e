/**
 * big-uploader server: the Fastify plugin, its options, the store interface, the disk store, and
 * factories for the S3 store and the Redis registry (loaded only when called).
 */
export { bigUploader, default } from './plugin.js';
export type { BigUploaderEvents, BigUploaderInstance } from './plugin.js';
export { resolveOptions, DEFAULTS as SERVER_DEFAULTS, OptionsError } from './options.js';
export type {
  AuthorizeUploadContext,
  AuthorizeUploadResult,
  BigUploaderOptions,
  CompletedUpload,
  ResolvedOptions,
} from './options.js';
export { mintUploadTicket, verifyUploadTicket } from './tickets.js';
export type { UploadTicketClaims } from './tickets.js';
export { HttpErrors } from './http-errors.js';
export type { HttpErrorDefinition, HttpErrorName } from './http-errors.js';
export { buildApp, loggerOptions, redactUrl, DEFAULT_PAGE_DIR } from './app.js';
export type { AppOptions } from './app.js';
export { DiskStore } from './store/disk-store.js';
export type { DiskStoreOptions } from './store/disk-store.js';
export { sanitizeName } from './store/names.js';
export { createRedisRegistry, createS3Store } from './backends.js';
export type { BackendHealth, S3Logger, S3Store, S3StoreOptions } from './store/s3/index.js';
export type {
  IoRedisClient,
  RedisRegistry,
  RedisRegistryOptions,
} from './registry/redis-registry.js';
export { MemoryRegistry } from './registry/memory-registry.js';
export type { MemoryRegistryOptions } from './registry/memory-registry.js';
export type * from './registry/types.js';
export type {
  ChunkRecord,
  CompletionInfo,
  CreateIntent,
  StoredUpload,
  UploadHandle,
  UploadInfo,
  UploadStore,
  UploadSummary,
  ListPage,
  BackendObserver,
  BackendState,
} from './store/types.js';
export type { UploadStateBody } from './http.js';
export { SERVER_NODE_ENV, SERVER_NODE_FLAGS } from './node-flags.js';
