import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RangeSet, type ByteRange } from '../../protocol/index.js';

/** The naive model: one boolean per byte of a small universe. */
const UNIVERSE = 48;
type Bitmap = boolean[];
const emptyBitmap = (): Bitmap => Array.from({ length: UNIVERSE }, () => false);

function bitmapRanges(bits: Bitmap): ByteRange[] {
  const out: ByteRange[] = [];
  let i = 0;
  while (i < bits.length) {
    if (!bits[i]) {
      i++;
      continue;
    }
    const start = i;
    while (i < bits.length && bits[i]) i++;
    out.push({ start, end: i });
  }
  return out;
}
const count = (bits: Bitmap, start: number, end: number): number =>
  bits.slice(start, end).filter(Boolean).length;

/** The representation invariants every RangeSet must keep. */
function checkInvariants(set: RangeSet): void {
  const ranges = set.toArray();
  let total = 0;
  ranges.forEach((r, i) => {
    expect(r.end).toBeGreaterThan(r.start);
    if (i > 0) expect(r.start).toBeGreaterThan(ranges[i - 1].end); // disjoint and non-adjacent
    total += r.end - r.start;
  });
  expect(set.total).toBe(total);
  expect(set.count).toBe(ranges.length);
}

const span = fc
  .tuple(fc.nat({ max: UNIVERSE }), fc.nat({ max: UNIVERSE }))
  .map(([a, b]) => (a <= b ? { start: a, end: b } : { start: b, end: a }));
const op = fc.record({ kind: fc.constantFrom('add', 'add', 'remove'), span });

function build(ops: { kind: string; span: ByteRange }[]): { set: RangeSet; bits: Bitmap } {
  const set = new RangeSet();
  const bits = emptyBitmap();
  for (const {
    kind,
    span: { start, end },
  } of ops) {
    if (kind === 'add') {
      const expected = end - start - count(bits, start, end);
      expect(set.add(start, end)).toBe(expected);
      bits.fill(true, start, end);
    } else {
      const expected = count(bits, start, end);
      expect(set.remove(start, end)).toBe(expected);
      bits.fill(false, start, end);
    }
    checkInvariants(set);
  }
  return { set, bits };
}

describe('RangeSet against a bitmap model', () => {
  const ops = fc.array(op, { maxLength: 25 });

  it('add and remove keep exactly the model bytes, and report the bytes they changed', () => {
    fc.assert(
      fc.property(ops, (sequence) => {
        const { set, bits } = build(sequence);
        expect(set.toArray()).toEqual(bitmapRanges(bits));
      }),
      { numRuns: 1000, seed: 11 },
    );
  });

  it('covers, intersects, has, missing and total agree with the model', () => {
    fc.assert(
      fc.property(ops, span, fc.nat({ max: UNIVERSE + 5 }), (sequence, query, size) => {
        const { set, bits } = build(sequence);
        const inQuery = bits.slice(query.start, query.end);
        expect(set.covers(query.start, query.end)).toBe(inQuery.every(Boolean));
        expect(set.intersects(query.start, query.end)).toBe(inQuery.some(Boolean));
        for (let i = 0; i < UNIVERSE + 2; i++) expect(set.has(i)).toBe(bits[i] === true);
        const complement = Array.from({ length: size }, (_, i) => !bits[i]);
        expect(set.missing(size)).toEqual(bitmapRanges(complement));
        expect(set.total).toBe(bits.filter(Boolean).length);
      }),
      { numRuns: 1000, seed: 12 },
    );
  });

  it('union and subtract agree with the model and leave their operands alone', () => {
    fc.assert(
      fc.property(ops, ops, (left, right) => {
        const a = build(left);
        const b = build(right);
        const before = [a.set.toArray(), b.set.toArray()];
        const union = a.set.union(b.set);
        const difference = a.set.subtract(b.set);
        checkInvariants(union);
        checkInvariants(difference);
        expect(union.toArray()).toEqual(bitmapRanges(a.bits.map((x, i) => x || b.bits[i])));
        expect(difference.toArray()).toEqual(bitmapRanges(a.bits.map((x, i) => x && !b.bits[i])));
        expect([a.set.toArray(), b.set.toArray()]).toEqual(before);
        // Laws: A ∪ B = B ∪ A; (A \ B) ∪ (A ∩ B) = A; (A \ B) ∩ B = ∅.
        expect(union.toArray()).toEqual(b.set.union(a.set).toArray());
        expect(difference.union(a.set.subtract(a.set.subtract(b.set))).toArray()).toEqual(
          a.set.toArray(),
        );
        for (const r of b.set) expect(difference.intersects(r.start, r.end)).toBe(false);
      }),
      { numRuns: 500, seed: 13 },
    );
  });

  it('the constructor and clone build independent sets', () => {
    fc.assert(
      fc.property(ops, span, (sequence, extra) => {
        const { set } = build(sequence);
        const copy = RangeSet.from(set);
        const clone = set.clone();
        expect(copy.toArray()).toEqual(set.toArray());
        if (extra.end > extra.start) {
          clone.add(extra.start, extra.end);
          copy.remove(extra.start, extra.end);
          expect(set.toArray()).toEqual(build(sequence).set.toArray());
        }
      }),
      { numRuns: 300, seed: 14 },
    );
  });
});

describe('RangeSet edge cases', () => {
  it('merges adjacent ranges and handles the in-order fast path', () => {
    const set = new RangeSet();
    expect(set.add(0, 10)).toBe(10);
    expect(set.add(10, 20)).toBe(10); // adjacent to the last: merged
    expect(set.add(30, 40)).toBe(10); // past the last: appended
    expect(set.toArray()).toEqual([
      { start: 0, end: 20 },
      { start: 30, end: 40 },
    ]);
    expect(set.add(5, 35)).toBe(10);
    expect(set.toArray()).toEqual([{ start: 0, end: 40 }]);
  });
  it('empty ranges change nothing and are always covered, never intersecting', () => {
    const set = new RangeSet([{ start: 5, end: 10 }]);
    expect(set.add(3, 3)).toBe(0);
    expect(set.remove(7, 7)).toBe(0);
    expect(set.covers(100, 100)).toBe(true);
    expect(set.intersects(6, 6)).toBe(false);
    expect(set.toArray()).toEqual([{ start: 5, end: 10 }]);
  });
  it('works at 2^53-1', () => {
    const max = Number.MAX_SAFE_INTEGER;
    const set = new RangeSet();
    set.add(max - 10, max);
    expect(set.covers(max - 1, max)).toBe(true);
    expect(set.missing(max)).toEqual([{ start: 0, end: max - 10 }]);
  });
  it('refuses invalid ranges with RangeError', () => {
    const set = new RangeSet();
    expect(() => set.add(5, 4)).toThrow(RangeError);
    expect(() => set.add(-1, 4)).toThrow(RangeError);
    expect(() => set.add(0.5, 4)).toThrow(RangeError);
    expect(() => set.remove(0, 2 ** 53)).toThrow(RangeError);
    expect(() => set.covers(Number.NaN, 1)).toThrow(RangeError);
  });
  it('missing of a file fully acked is empty, of an empty set is the whole file, of size 0 is nothing', () => {
    expect(new RangeSet([{ start: 0, end: 100 }]).missing(100)).toEqual([]);
    expect(new RangeSet().missing(100)).toEqual([{ start: 0, end: 100 }]);
    expect(new RangeSet([{ start: 10, end: 20 }]).missing(0)).toEqual([]);
    expect(new RangeSet([{ start: 10, end: 20 }]).missing(15)).toEqual([{ start: 0, end: 10 }]);
  });
  it('stays fast for a million in-order chunk acks', () => {
    const set = new RangeSet();
    const started = performance.now();
    for (let i = 0; i < 1_000_000; i++) set.add(i * 4, i * 4 + 4);
    expect(set.count).toBe(1);
    expect(set.total).toBe(4_000_000);
    expect(performance.now() - started).toBeLessThan(5000);
  });
});
