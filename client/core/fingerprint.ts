/**
 * Resume-store keys. A fingerprint must be stable for "the same file picked again" (after a page
 * reload or a new CLI run) and differ when the file was replaced: name, size and lastModified
 * catch most changes, and a hash of three 64 KiB samples (start, middle, end) catches files that
 * were rewritten in place with a preserved mtime. Reading 192 KiB is cheap even for a 50 GiB file.
 */
import { hashToHex, loadHasher } from '../../protocol/index.js';
import type { FileSource } from './types.js';

const SAMPLE = 65_536;

/** The endpoint without its query (the `token` must never end up in a stored key). */
export function endpointKey(endpoint: string): string {
  const q = endpoint.indexOf('?');
  return q === -1 ? endpoint : endpoint.slice(0, q);
}

export async function sampleHash(file: FileSource): Promise<string> {
  const hasher = await loadHasher();
  const starts = new Set<number>([
    0,
    Math.max(0, Math.floor(file.size / 2) - SAMPLE / 2),
    Math.max(0, file.size - SAMPLE),
  ]);
  const parts: Uint8Array[] = [];
  for (const start of starts) {
    const end = Math.min(file.size, start + SAMPLE);
    if (end > start) parts.push(await file.read(start, end));
  }
  const total = parts.reduce((n, p) => n + p.byteLength, 0);
  const joined = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    joined.set(p, at);
    at += p.byteLength;
  }
  return hashToHex(hasher.h64(joined));
}

/** Default fingerprint: `bigup1|endpoint|name|size|lastModified|sampleHash`. */
export async function defaultFingerprint(file: FileSource, endpoint: string): Promise<string> {
  return [
    'bigup1',
    endpointKey(endpoint),
    file.name,
    file.size,
    Math.floor(file.lastModified),
    await sampleHash(file),
  ].join('|');
}
