/**
 * The server's xxHash64. It hashes every received byte, so it prefers the native @node-rs/xxhash
 * (an optional dependency: it hashes the socket's buffer in place, where xxhash-wasm first copies
 * each chunk into WebAssembly memory) and falls back to the protocol's xxhash-wasm when the native
 * package is not installed. Both give the same values (checked in test/server/hasher.test.ts).
 */
import { loadHasher, type Hasher } from '../protocol/index.js';

interface NativeXxhash {
  xxh64(input: Uint8Array, seed?: bigint): bigint;
}

/** Load the fastest available xxHash64; `prefer: 'wasm'` forces the portable one. */
export async function loadServerHasher(prefer: 'native' | 'wasm' = 'native'): Promise<Hasher & { readonly kind: 'native' | 'wasm' }> {
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
