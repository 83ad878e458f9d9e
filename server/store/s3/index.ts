/** The S3 object-store backend: import it only when it is used (it loads @aws-sdk/client-s3). */
export { S3Store, type BackendHealth } from './s3-store.js';
export { parseS3Url, S3_DEFAULTS, type S3StoreOptions } from './config.js';
export { chunkSizeForParts, MAX_PARTS, MIN_PART_BYTES } from './part-rules.js';
export type { BackendObserver, S3Logger } from './context.js';
