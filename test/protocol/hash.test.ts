import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  chunkBounds,
  chunkCount,
  hashFromHex,
  hashToHex,
  loadHasher,
  wholeFileDigest,
} from '../../protocol/index.js';

const MASK = (1n << 64n) - 1n;
const P1 = 11400714785074694791n;
const P2 = 14029467366897019727n;
const P3 = 1609587929392839161n;
const P4 = 9650029242287828579n;
const P5 = 2870177450012600261n;
const rotl = (x: bigint, r: bigint): bigint => ((x << r) | (x >> (64n - r))) & MASK;
const mul = (a: bigint, b: bigint): bigint => (a * b) & MASK;
const add = (a: bigint, b: bigint): bigint => (a + b) & MASK;

/**
 * An independent, slow xxHash64 written from the algorithm description (BigInt, little-endian
 * lanes), used only to cross-check xxhash-wasm on inputs for which no published value exists.
 */
function referenceXxh64(input: Uint8Array, seed = 0n): bigint {
  const view = new DataView(input.buffer, input.byteOffset, input.byteLength);
  const u64 = (at: number): bigint => view.getBigUint64(at, true);
  const u32 = (at: number): bigint => BigInt(view.getUint32(at, true));
  const round = (acc: bigint, lane: bigint): bigint => mul(rotl(add(acc, mul(lane, P2)), 31n), P1);
  const merge = (acc: bigint, value: bigint): bigint => add(mul(acc ^ round(0n, value), P1), P4);
  let at = 0;
  let h: bigint;
  if (input.byteLength >= 32) {
    let v1 = add(add(seed, P1), P2);
    let v2 = add(seed, P2);
    let v3 = seed;
    let v4 = (seed - P1) & MASK;
    while (at + 32 <= input.byteLength) {
      v1 = round(v1, u64(at));
      v2 = round(v2, u64(at + 8));
      v3 = round(v3, u64(at + 16));
      v4 = round(v4, u64(at + 24));
      at += 32;
    }
    h = add(add(add(rotl(v1, 1n), rotl(v2, 7n)), rotl(v3, 12n)), rotl(v4, 18n));
    h = merge(merge(merge(merge(h, v1), v2), v3), v4);
  } else {
    h = add(seed, P5);
  }
  h = add(h, BigInt(input.byteLength));
  while (at + 8 <= input.byteLength) {
    h = add(mul(rotl(h ^ round(0n, u64(at)), 27n), P1), P4);
    at += 8;
  }
  if (at + 4 <= input.byteLength) {
    h = add(mul(rotl(h ^ mul(u32(at), P1), 23n), P2), P3);
    at += 4;
  }
  while (at < input.byteLength) {
    h = mul(rotl(h ^ mul(BigInt(input[at]), P5), 11n), P1);
    at++;
  }
  h = mul(h ^ (h >> 33n), P2);
  h = mul(h ^ (h >> 29n), P3);
  return h ^ (h >> 32n);
}

/**
 * The buffer of xxHash's own sanity test (xxhsum): bytes from a generator seeded with PRIME32 and
 * multiplied by xxhsum's PRIME64 (11400714785074694797, which is not the algorithm's PRIME64_1).
 */
function sanityBuffer(length: number): Uint8Array {
  const out = new Uint8Array(length);
  let generator = 2654435761n;
  for (let i = 0; i < length; i++) {
    out[i] = Number(generator >> 56n);
    generator = mul(generator, 11400714785074694797n);
  }
  return out;
}

describe('xxHash64 (seed 0) through xxhash-wasm', () => {
  const text = (s: string): Uint8Array => new TextEncoder().encode(s);

  it('matches published values', async () => {
    const h = await loadHasher();
    // Strings: values quoted across many xxHash ports; sanity buffer: xxHash's own xxhsum self-test.
    expect(hashToHex(h.h64(new Uint8Array(0)))).toBe('ef46db3751d8e999');
    expect(hashToHex(h.h64(text('a')))).toBe('d24ec4f1a98c6e5b');
    expect(hashToHex(h.h64(text('abc')))).toBe('44bc2cf5ad770999');
    const sanity = sanityBuffer(222);
    expect(h.h64(sanity.subarray(0, 1))).toBe(0xe934a84adb052768n);
    expect(h.h64(sanity.subarray(0, 4))).toBe(0x9136a0dca57457een);
    expect(h.h64(sanity.subarray(0, 14))).toBe(0x8282dcc4994e35c8n);
    expect(h.h64(sanity)).toBe(0xb641ae8cb691c174n);
  });

  it('the reference implementation reproduces the published values too', () => {
    expect(referenceXxh64(new Uint8Array(0))).toBe(0xef46db3751d8e999n);
    expect(referenceXxh64(text('abc'))).toBe(0x44bc2cf5ad770999n);
    expect(referenceXxh64(sanityBuffer(222))).toBe(0xb641ae8cb691c174n);
    expect(referenceXxh64(sanityBuffer(1), 2654435761n)).toBe(0x5014607643a9b4c3n);
  });

  it('agrees with the reference on random inputs, including views into larger buffers', async () => {
    const h = await loadHasher();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat({ max: 7 }), (bytes, shift) => {
        const backing = new Uint8Array(bytes.byteLength + shift + 3).fill(0x5a);
        backing.set(bytes, shift);
        const view = backing.subarray(shift, shift + bytes.byteLength);
        expect(h.h64(view)).toBe(referenceXxh64(bytes));
      }),
      { numRuns: 400, seed: 21 },
    );
  });

  it('loads once and shares the instance', async () => {
    expect(loadHasher()).toBe(loadHasher());
    expect(await loadHasher()).toBe(await loadHasher());
  });
});

describe('whole-file digest (SPEC.md 7.8)', () => {
  it('is xxHash64 of the chunk hashes as 8-byte big-endian values, in order', async () => {
    const h = await loadHasher();
    fc.assert(
      fc.property(fc.array(fc.bigInt({ min: 0n, max: MASK }), { maxLength: 40 }), (hashes) => {
        const joined = new Uint8Array(hashes.length * 8);
        hashes.forEach((value, i) => {
          for (let b = 0; b < 8; b++)
            joined[i * 8 + b] = Number((value >> BigInt(56 - 8 * b)) & 0xffn);
        });
        expect(wholeFileDigest(h, hashes)).toBe(referenceXxh64(joined));
      }),
      { numRuns: 200, seed: 22 },
    );
  });
  it('of a 0-byte file is the hash of nothing, and it depends on the order of chunks', async () => {
    const h = await loadHasher();
    expect(wholeFileDigest(h, [])).toBe(0xef46db3751d8e999n);
    expect(wholeFileDigest(h, [1n, 2n])).not.toBe(wholeFileDigest(h, [2n, 1n]));
  });
  it('computed from a file split at the chunk size', async () => {
    const h = await loadHasher();
    const file = new Uint8Array(1000).map((_, i) => (i * 13) & 0xff);
    const chunk = 300;
    const hashes = Array.from({ length: chunkCount(file.length, chunk) }, (_, i) => {
      const { start, end } = chunkBounds(i, file.length, chunk);
      return h.h64(file.subarray(start, end));
    });
    expect(hashes).toHaveLength(4);
    expect(chunkBounds(3, file.length, chunk)).toEqual({ start: 900, end: 1000 });
    const joined = new Uint8Array(32);
    const view = new DataView(joined.buffer);
    hashes.forEach((value, i) => view.setBigUint64(i * 8, value, false));
    expect(wholeFileDigest(h, hashes)).toBe(referenceXxh64(joined));
  });
});

describe('chunk arithmetic and hex', () => {
  it('chunkCount', () => {
    expect(chunkCount(0, 65_536)).toBe(0);
    expect(chunkCount(1, 65_536)).toBe(1);
    expect(chunkCount(65_536, 65_536)).toBe(1);
    expect(chunkCount(65_537, 65_536)).toBe(2);
    expect(chunkCount(Number.MAX_SAFE_INTEGER, 67_108_864)).toBe(134_217_728);
  });
  it('hashToHex and hashFromHex', () => {
    expect(hashToHex(0n)).toBe('0000000000000000');
    expect(hashToHex(MASK)).toBe('ffffffffffffffff');
    expect(hashFromHex('00000000000000ff')).toBe(255n);
    expect(hashFromHex('FFFFFFFFFFFFFFFF')).toBe(MASK);
    expect(() => hashFromHex('fff')).toThrow(RangeError);
    expect(() => hashFromHex('0x00000000000000')).toThrow(RangeError);
    expect(() => hashFromHex('g000000000000000')).toThrow(RangeError);
  });
});
