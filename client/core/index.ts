/** The platform-free client core: types, the Uploader, and helpers. Entries in client/node and client/browser add defaults. */
export type * from './types.js';
export { TERMINAL_STATES } from './types.js';
export * from './errors.js';
