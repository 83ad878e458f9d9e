/**
 * A set of byte offsets held as sorted, disjoint, non-adjacent half-open ranges. The acked-range
 * set is the single source of truth for resume (SPEC.md, "Acknowledgement"); server and client
 * both use this type so they agree on what "covered" and "missing" mean.
 */
import type { ByteRange } from './messages.js';

export class RangeSet {
  /** Flat [start0, end0, start1, end1, ...]; sorted, disjoint and non-adjacent. */
  private bounds: number[] = [];
  private covered = 0;

  constructor(ranges: Iterable<ByteRange> = []) {
    for (const range of ranges) this.add(range.start, range.end);
  }

  static from(ranges: Iterable<ByteRange>): RangeSet {
    return new RangeSet(ranges);
  }

  /** Number of disjoint ranges. */
  get count(): number {
    return this.bounds.length / 2;
  }

  /** Total bytes covered. */
  get total(): number {
    return this.covered;
  }

  /** Index of the first range whose end is >= offset (binary search over ends). */
  private firstEndingAtOrAfter(offset: number): number {
    let low = 0;
    let high = this.count;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.bounds[mid * 2 + 1] < offset) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  /** Add [start, end), merging with overlapping or adjacent ranges. Returns the bytes newly covered. */
  add(start: number, end: number): number {
    checkRange(start, end);
    if (start === end) return 0;
    const n = this.bounds.length;
    // Fast path: appending at or after the last range, the common case of in-order uploads.
    if (n === 0 || start > this.bounds[n - 1]) {
      this.bounds.push(start, end);
      this.covered += end - start;
      return end - start;
    }
    const first = this.firstEndingAtOrAfter(start);
    let last = first;
    let mergedStart = start;
    let mergedEnd = end;
    let removed = 0;
    while (last < this.count && this.bounds[last * 2] <= end) {
      const s = this.bounds[last * 2];
      const e = this.bounds[last * 2 + 1];
      mergedStart = Math.min(mergedStart, s);
      mergedEnd = Math.max(mergedEnd, e);
      removed += e - s;
      last++;
    }
    this.bounds.splice(first * 2, (last - first) * 2, mergedStart, mergedEnd);
    const added = mergedEnd - mergedStart - removed;
    this.covered += added;
    return added;
  }

  /** Remove [start, end). Returns the bytes no longer covered. */
  remove(start: number, end: number): number {
    checkRange(start, end);
    if (start === end || this.count === 0) return 0;
    const first = this.firstEndingAtOrAfter(start + 1);
    const replacement: number[] = [];
    let last = first;
    let removed = 0;
    while (last < this.count && this.bounds[last * 2] < end) {
      const s = this.bounds[last * 2];
      const e = this.bounds[last * 2 + 1];
      if (s < start) replacement.push(s, start);
      if (e > end) replacement.push(end, e);
      removed += Math.min(e, end) - Math.max(s, start);
      last++;
    }
    this.bounds.splice(first * 2, (last - first) * 2, ...replacement);
    this.covered -= removed;
    return removed;
  }

  /** True when every byte of [start, end) is in the set. An empty range is always covered. */
  covers(start: number, end: number): boolean {
    checkRange(start, end);
    if (start === end) return true;
    const i = this.firstEndingAtOrAfter(end);
    return i < this.count && this.bounds[i * 2] <= start;
  }

  /** True when at least one byte of [start, end) is in the set. */
  intersects(start: number, end: number): boolean {
    checkRange(start, end);
    if (start === end) return false;
    const i = this.firstEndingAtOrAfter(start + 1);
    return i < this.count && this.bounds[i * 2] < end;
  }

  /** True when the byte at `offset` is in the set. */
  has(offset: number): boolean {
    return this.covers(offset, offset + 1);
  }

  /** The ranges of [0, size) that are not in the set, in order. */
  missing(size: number): ByteRange[] {
    const gaps: ByteRange[] = [];
    let cursor = 0;
    for (let i = 0; i < this.count && cursor < size; i++) {
      const s = this.bounds[i * 2];
      const e = this.bounds[i * 2 + 1];
      if (s > cursor) gaps.push({ start: cursor, end: Math.min(s, size) });
      cursor = Math.max(cursor, e);
    }
    if (cursor < size) gaps.push({ start: cursor, end: size });
    return gaps;
  }

  /** A new set holding the bytes of this one that are not in `other`. */
  subtract(other: RangeSet): RangeSet {
    const result = this.clone();
    for (const range of other) result.remove(range.start, range.end);
    return result;
  }

  /** A new set holding the bytes of both. */
  union(other: RangeSet): RangeSet {
    const result = this.clone();
    for (const range of other) result.add(range.start, range.end);
    return result;
  }

  clone(): RangeSet {
    const copy = new RangeSet();
    copy.bounds = this.bounds.slice();
    copy.covered = this.covered;
    return copy;
  }

  toArray(): ByteRange[] {
    return [...this];
  }

  *[Symbol.iterator](): IterableIterator<ByteRange> {
    for (let i = 0; i < this.bounds.length; i += 2) {
      yield { start: this.bounds[i], end: this.bounds[i + 1] };
    }
  }
}

function checkRange(start: number, end: number): void {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
    throw new RangeError(`invalid byte range [${start}, ${end})`);
  }
}
