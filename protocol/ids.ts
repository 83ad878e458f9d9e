/**
 * Upload ids and resume secrets: random bytes on the wire, lowercase hex in URLs, JSON and files.
 * Parsing is strict (exact length, hex only), so an id can never carry a path or an escape.
 */
import { Limits } from './constants.js';

/** Bytes as lowercase hex. */
export function bytesToHex(bytes: Uint8Array): string {
  let out = '';
  for (const byte of bytes) out += byte.toString(16).padStart(2, '0');
  return out;
}

const HEX_PAIR = /^(?:[0-9a-f]{2})*$/;

/** Lowercase hex of exactly `length` bytes to bytes, or undefined when it is anything else. */
export function hexToBytes(hex: string, length: number): Uint8Array | undefined {
  if (typeof hex !== 'string' || hex.length !== length * 2 || !HEX_PAIR.test(hex)) return undefined;
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}

/** Parse an upload id in its text form (32 lowercase hex digits). */
export function parseUploadId(text: string): Uint8Array | undefined {
  return hexToBytes(text, Limits.UPLOAD_ID_BYTES);
}

/** Parse a resume secret in its text form (64 lowercase hex digits). */
export function parseSecret(text: string): Uint8Array | undefined {
  return hexToBytes(text, Limits.SECRET_BYTES);
}
