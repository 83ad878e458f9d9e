/** The platform-free client core: types, the Uploader, and helpers. Entries in client/node and client/browser add defaults. */
export type * from './types.js';
export { ABNORMAL_CLOSURE, TERMINAL_STATES, UPLOADER_EVENTS } from './types.js';
export * from './errors.js';
// Exported as UPLOADER_DEFAULTS: the server's are SERVER_DEFAULTS, so an app importing both
// gets two names that say whose defaults they are.
export {
  FileUploader,
  BigUploader,
  createUploader,
  DEFAULTS as UPLOADER_DEFAULTS,
} from './uploader.js';
export { DEFAULT_BACKOFF, backoffDelay, resolveBackoff } from './backoff.js';
export { RateMeter, TokenBucket } from './rate.js';
export { defaultFingerprint, endpointKey, sampleHash } from './fingerprint.js';
export { MemoryResumeStore } from './memory-store.js';
export { BatchUploader, BATCH_DEFAULTS } from './batch-uploader.js';
export type { BatchEntry, BatchOptions, BatchResult, BatchSummary } from './batch-uploader.js';
