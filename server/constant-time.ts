/**
 * The server's one way to compare secrets (server and admin tokens, ticket signatures, resume
 * secrets): in time that does not depend on where the bytes first differ, so a client cannot
 * learn a secret byte by byte from how long a refusal takes.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

/** Bytes of a SHA-256 digest. */
export const SHA256_BYTES = 32;

export function sha256(bytes: Uint8Array | string): Buffer {
  return createHash('sha256').update(bytes).digest();
}

/**
 * Whether `a` and `b` hold the same bytes. Only the contents are compared in constant time: a
 * length mismatch answers at once, so callers compare values whose length is no secret (digests,
 * HMACs of a fixed size).
 */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && timingSafeEqual(a, b);
}

/**
 * Whether `given` equals one of `candidates`. Each side is hashed first, so lengths are equal and
 * neither the token's length nor which candidate matched shows in the time taken.
 */
export function tokenMatches(given: string, candidates: readonly string[]): boolean {
  const digest = sha256(given);
  let match = false;
  for (const candidate of candidates) match = sameBytes(digest, sha256(candidate)) || match;
  return match;
}
