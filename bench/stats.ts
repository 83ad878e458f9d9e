/** Small, exact statistics for a handful of runs: median and range, nothing that pretends to more. */

export interface Spread {
  median: number;
  min: number;
  max: number;
  n: number;
}

/** Median (mean of the two middle values for an even count). Throws on an empty list. */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError('median of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Median and min-max of finite values; undefined when none are finite (a figure nobody measured). */
export function spread(values: readonly (number | undefined)[]): Spread | undefined {
  const finite = values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  if (finite.length === 0) return undefined;
  return {
    median: median(finite),
    min: Math.min(...finite),
    max: Math.max(...finite),
    n: finite.length,
  };
}

/** Throughput in MB/s (10^6 bytes per second, as disks and networks are quoted). */
export function mbPerSecond(bytes: number, seconds: number): number {
  return seconds > 0 ? bytes / seconds / 1e6 : Number.NaN;
}

/** CPU seconds per GiB moved: comparable across file sizes. */
export function cpuPerGiB(cpuSeconds: number, bytes: number): number {
  return bytes > 0 ? cpuSeconds / (bytes / 2 ** 30) : Number.NaN;
}
