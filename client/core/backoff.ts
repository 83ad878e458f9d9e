/**
 * Reconnect schedule: exponential growth, capped, with jitter so that many clients dropped by the
 * same server restart do not reconnect in lock-step. Pure functions over a random source, so tests
 * can check the exact schedule.
 */
import type { BackoffOptions } from './types.js';

export const DEFAULT_BACKOFF: BackoffOptions = Object.freeze({
  initial: 500,
  max: 30_000,
  factor: 2,
  jitter: 0.5,
  maxAttempts: 10,
});

/** Merge user values over the defaults and check them, so a bad option fails at construction. */
export function resolveBackoff(partial: Partial<BackoffOptions> | undefined): BackoffOptions {
  const b = { ...DEFAULT_BACKOFF, ...partial };
  const bad = (what: string): never => {
    throw new RangeError(`backoff.${what} is out of range`);
  };
  if (!(b.initial >= 0) || !Number.isFinite(b.initial)) bad('initial');
  if (!(b.max >= b.initial)) bad('max');
  if (!(b.factor >= 1)) bad('factor');
  if (!(b.jitter >= 0 && b.jitter <= 1)) bad('jitter');
  if (!(b.maxAttempts >= 0)) bad('maxAttempts');
  return b;
}

/**
 * Delay before retry number `attempt` (1-based): min(max, initial * factor^(attempt-1)), of which
 * the fraction `jitter` is randomised away ("equal jitter" for 0.5: the delay lies in [d/2, d]).
 * Keeping a floor (rather than full jitter) guarantees the server some breathing room.
 */
export function backoffDelay(
  options: BackoffOptions,
  attempt: number,
  random: () => number = Math.random,
): number {
  const base = Math.min(options.max, options.initial * options.factor ** Math.max(0, attempt - 1));
  return Math.round(base * (1 - options.jitter * random()));
}
