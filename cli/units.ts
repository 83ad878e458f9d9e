/**
 * Human units for command-line options and environment variables: sizes (`4MiB`, `10GiB`, `1.5GB`)
 * and durations (`30s`, `24h`). Every parse either returns an exact value or throws a UsageError
 * that names the option, so a typo fails at start with one clear line.
 */

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  m: 1e6,
  mb: 1e6,
  g: 1e9,
  gb: 1e9,
  t: 1e12,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/** Parse a byte size such as `4MiB`, `10GiB`, `500MB`, `1048576`. */
export function parseSize(text: string, option = 'size'): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = match ? SIZE_UNITS[match[2].toLowerCase()] : undefined;
  if (!match || unit === undefined) {
    throw new UsageError(
      `${option}: "${text}" is not a size (examples: 1048576, 4MiB, 10GiB, 500MB)`,
    );
  }
  const value = Math.round(Number(match[1]) * unit);
  if (!Number.isSafeInteger(value)) throw new UsageError(`${option}: "${text}" is too large`);
  return value;
}

const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** Parse a duration such as `30s`, `15m`, `24h`, `7d`, `250ms` into milliseconds. A bare number is seconds. */
export function parseDuration(text: string, option = 'duration'): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(text);
  if (!match)
    throw new UsageError(`${option}: "${text}" is not a duration (examples: 30s, 15m, 24h, 7d)`);
  return Math.round(Number(match[1]) * DURATION_UNITS[match[2] ?? 's']);
}

/** Format a byte count for people: `1.5 GiB`. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let i = 0;
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024;
    i++;
  }
  return i === 0 ? `${bytes} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${units[i]}`;
}
