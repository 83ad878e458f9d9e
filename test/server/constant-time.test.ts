import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { sameBytes, tokenMatches } from '../../server/constant-time.js';

describe('constant-time compares', () => {
  it('sameBytes is equality of bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ maxLength: 40 }), (a, b) => {
        const same = a.byteLength === b.byteLength && a.every((x, i) => x === b[i]);
        expect(sameBytes(a, b)).toBe(same);
        expect(sameBytes(a, a.slice())).toBe(true);
      }),
      { numRuns: 500, seed: 32 },
    );
    expect(sameBytes(Uint8Array.of(1, 2, 3), Uint8Array.of(1, 2, 4))).toBe(false);
    expect(sameBytes(Uint8Array.of(1, 2), Uint8Array.of(1, 2, 0))).toBe(false);
  });

  it('tokenMatches finds a token among several, of any length, and nothing else', () => {
    const tokens = ['old-token', 'a-much-longer-current-token'];
    expect(tokenMatches('old-token', tokens)).toBe(true);
    expect(tokenMatches('a-much-longer-current-token', tokens)).toBe(true);
    expect(tokenMatches('old-token ', tokens)).toBe(false);
    expect(tokenMatches('', tokens)).toBe(false);
    expect(tokenMatches('old-token', [])).toBe(false);
  });
});
