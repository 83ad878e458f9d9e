import { describe, expect, it } from 'vitest';
import { decodeClientMessage, encodeOpen, encodeData, loadHasher, RangeSet, Errors, ProtocolError } from '../../protocol/index.js';

describe('protocol smoke', () => {
  it('round-trips OPEN', () => {
    const bytes = encodeOpen({ fileSize: 10, chunkSize: 0, name: 'a.bin', contentType: '', token: '', metadata: { __proto__x: 'y' } });
    const m = decodeClientMessage(bytes);
    expect(m).toMatchObject({ type: 'open', fileSize: 10, name: 'a.bin' });
  });
  it('refuses DATA offsets above 2^53-1', async () => {
    const h = await loadHasher();
    const { header, payload } = encodeData(0, h.h64(new Uint8Array([1])), new Uint8Array([1]));
    const bad = new Uint8Array([...header, ...payload]);
    bad[2] = 0xff;
    try { decodeClientMessage(bad); expect.unreachable(); } catch (e) { expect((e as ProtocolError).code).toBe(Errors.INTEGER_TOO_LARGE.code); }
  });
  it('merges ranges', () => {
    const s = new RangeSet();
    s.add(10, 20); s.add(0, 5); s.add(5, 10);
    expect(s.toArray()).toEqual([{ start: 0, end: 20 }]);
    expect(s.missing(30)).toEqual([{ start: 20, end: 30 }]);
  });
});
