import { describe, expect, it } from 'vitest';
import { loadNodeHasher } from '../../protocol/native-hasher.js';

// Published xxHash64 (seed 0) values, and random inputs that both implementations must agree on.
describe('Node hasher', () => {
  it('uses the native xxHash64 here and matches the wasm one bit for bit', async () => {
    const native = await loadNodeHasher('native');
    const wasm = await loadNodeHasher('wasm');
    expect(native.kind).toBe('native');
    expect(wasm.kind).toBe('wasm');
    expect(native.h64(new Uint8Array(0))).toBe(0xef46db3751d8e999n);
    expect(native.h64(new TextEncoder().encode('a'))).toBe(0xd24ec4f1a98c6e5bn);
    for (const size of [1, 31, 32, 33, 65_537, 1_048_576 + 18]) {
      const bytes = new Uint8Array(size);
      for (let i = 0; i < size; i++) bytes[i] = (i * 2654435761) >>> 24;
      // A view at an odd offset, as the server hashes the payload behind an 18-byte header.
      const view = bytes.subarray(size > 18 ? 18 : 0);
      expect(native.h64(view)).toBe(wasm.h64(view));
    }
  });
});
