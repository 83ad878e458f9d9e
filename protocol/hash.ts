/**
 * xxHash64 (seed 0) for chunk hashes and the whole-file digest (SPEC.md, "Integrity").
 * Backed by xxhash-wasm, loaded once per process or page and shared; works in browsers and Node.
 */
import xxhash from 'xxhash-wasm';

/** The one hash function bigup.1 uses: xxHash64 with seed 0, as an unsigned 64-bit bigint. */
export interface Hasher {
  h64(bytes: Uint8Array): bigint;
}

let loading: Promise<Hasher> | undefined;

/** Load xxhash-wasm once; later calls share the same instance. */
export function loadHasher(): Promise<Hasher> {
  loading ??= xxhash().then((api) => ({
    h64: (bytes: Uint8Array) => api.h64Raw(bytes, 0n),
  }));
  return loading;
}

/**
 * The whole-file digest: xxHash64 over the concatenation of the chunk hashes, each as 8 bytes
 * big-endian, in chunk order. A server can compute it from the hashes it already verified, without
 * re-reading the file. `chunkHashes[i]` is the hash of chunk i (bytes [i*chunkSize, (i+1)*chunkSize)).
 */
export function wholeFileDigest(hasher: Hasher, chunkHashes: ArrayLike<bigint>): bigint {
  const joined = new Uint8Array(chunkHashes.length * 8);
  const view = new DataView(joined.buffer);
  for (let i = 0; i < chunkHashes.length; i++) view.setBigUint64(i * 8, chunkHashes[i]);
  return hasher.h64(joined);
}

/** Number of chunks a file of `fileSize` bytes has at `chunkSize` (a 0-byte file has none). */
export function chunkCount(fileSize: number, chunkSize: number): number {
  return Math.ceil(fileSize / chunkSize);
}

/** Byte range of chunk `index`: [start, end). The last chunk may be short. */
export function chunkBounds(
  index: number,
  fileSize: number,
  chunkSize: number,
): { start: number; end: number } {
  const start = index * chunkSize;
  return { start, end: Math.min(start + chunkSize, fileSize) };
}

/** A 64-bit hash as 16 lowercase hex digits (how digests appear in JSON and logs). */
export function hashToHex(hash: bigint): string {
  return hash.toString(16).padStart(16, '0');
}

/** Parse 16 hex digits back into a 64-bit hash; throws RangeError on anything else. */
export function hashFromHex(hex: string): bigint {
  if (!/^[0-9a-f]{16}$/i.test(hex))
    throw new RangeError(`not a 64-bit hex hash: ${JSON.stringify(hex)}`);
  return BigInt(`0x${hex}`);
}
