/** bigup.1: the wire protocol shared by server and client. Pure, no I/O. See SPEC.md. */
export * from './constants.js';
export * from './errors.js';
export type * from './messages.js';
export * from './codec.js';
export * from './ranges.js';
export * from './chunk-grid.js';
export * from './hash.js';
export * from './ids.js';
