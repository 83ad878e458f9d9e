import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bytesToHex, hexToBytes, parseSecret, parseUploadId } from '../../protocol/index.js';

describe('ids and secrets', () => {
  it('hex round-trips any bytes, lowercase', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const text = bytesToHex(bytes);
        expect(text).toMatch(/^[0-9a-f]*$/);
        expect(text).toHaveLength(bytes.byteLength * 2);
        expect(hexToBytes(text, bytes.byteLength)).toEqual(bytes);
      }),
      { numRuns: 300, seed: 31 },
    );
  });

  it('bytesToHex of known bytes', () => {
    expect(bytesToHex(Uint8Array.of(0, 1, 0xab, 0xff))).toBe('0001abff');
  });

  it('parses only exact-length lowercase hex, so an id can never carry a path', () => {
    const id = '00112233445566778899aabbccddeeff';
    expect(parseUploadId(id)).toEqual(
      Uint8Array.from([
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee,
        0xff,
      ]),
    );
    for (const bad of [
      id.toUpperCase(),
      id.slice(2),
      `${id}00`,
      `${id.slice(0, 30)}zz`,
      '../../../../etc/passwd0000000000',
      `${id.slice(0, 31)}/`,
      ` ${id.slice(1)}`,
      '',
    ]) {
      expect(parseUploadId(bad)).toBeUndefined();
    }
    expect(parseUploadId(undefined as unknown as string)).toBeUndefined();
    expect(parseSecret('ab'.repeat(32))).toHaveLength(32);
    expect(parseSecret('ab'.repeat(16))).toBeUndefined();
    expect(parseUploadId('ab'.repeat(32))).toBeUndefined();
  });
});
