/**
 * xxHash64 for Node processes (the server, and the Node client behind `send` and the bench), which
 * hash every byte they move: prefers the native @node-rs/xxhash (an optional dependency: it hashes
 * the buffer in place at ~7 GB/s here, where xxhash-wasm first copies each chunk into WebAssembly
 * memory and runs at ~4 GB/s, docs/measurements.md) and falls back to xxhash-wasm when the native
 * package is not installed. Both give the same values (test/protocol/native-hasher.test.ts).
 *
 * Node only: deliberately not exported from protocol/index.ts, so browser bundles never reach the
 * native import. Loading a module is the only thing it does besides hashing; no file or socket I/O.
 */
import { loadHasher, type Hasher } from './hash.js';

interface NativeXxhash {
  xxh64(input: Uint8Array, seed?: bigint): bigint;
}

/** Load the fastest available xxHash64; `prefer: 'wasm'` forces the portable one. */
export async function loadNodeHasher(
  prefer: 'native' | 'wasm' = 'native',
): Promise<Hasher & { readonly kind: 'native' | 'wasm' }> {
  if (prefer === 'native') {
    try {
      const native = (await import('@node-rs/xxhash')) as unknown as NativeXxhash;
      return { kind: 'native', h64: (bytes: Uint8Array) => native.xxh64(bytes, 0n) };
    } catch {
      // Not installed for this platform: the wasm hasher is correct, only slower.
    }
  }
  const wasm = await loadHasher();
  return { kind: 'wasm', h64: (bytes: Uint8Array) => wasm.h64(bytes) };
}
