/**
 * Rate measurement and rate limiting, both driven by an injected clock (ms) so they are
 * deterministic in tests and never spin: the limiter answers "wait this long", the caller sets one
 * timer.
 */

/**
 * Smoothed throughput: an exponentially weighted moving average with a time constant (default
 * 3 s), updated at most every `minIntervalMs` so bursts of ACKs arriving in the same millisecond
 * do not produce absurd instantaneous rates.
 */
export class RateMeter {
  private rate = 0;
  private primed = false;
  private pendingBytes = 0;
  private lastTime: number | undefined;

  constructor(
    private readonly timeConstantMs = 3000,
    private readonly minIntervalMs = 200,
  ) {}

  /** Record `bytes` completed at time `now`. */
  add(bytes: number, now: number): void {
    if (this.lastTime === undefined) {
      this.lastTime = now;
      this.pendingBytes = 0;
    }
    this.pendingBytes += bytes;
    const dt = now - this.lastTime;
    if (dt < this.minIntervalMs) return;
    const instant = (this.pendingBytes * 1000) / dt;
    if (!this.primed) {
      this.rate = instant;
      this.primed = true;
    } else {
      const alpha = 1 - Math.exp(-dt / this.timeConstantMs);
      this.rate += alpha * (instant - this.rate);
    }
    this.pendingBytes = 0;
    this.lastTime = now;
  }

  /** Bytes per second (0 until the first interval has passed). */
  get bytesPerSecond(): number {
    return this.rate;
  }

  /** Forget the time base (after a pause or reconnect) but keep the estimate as a prior. */
  restart(): void {
    this.lastTime = undefined;
    this.pendingBytes = 0;
  }
}

/**
 * Token bucket for `limitRate`. Tokens accrue at `bytesPerSecond` up to a burst of
 * `burstSeconds` worth; a send may drive the balance negative (a chunk is never split), and the
 * next send waits until the debt is repaid. Long-run rate is exact; bursts are at most one chunk
 * plus the burst allowance.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;
  private readonly capacity: number;

  constructor(
    private readonly bytesPerSecond: number,
    now: number,
    burstSeconds = 0.25,
  ) {
    if (!(bytesPerSecond > 0))
      throw new RangeError('limitRate must be a positive number of bytes per second');
    this.capacity = bytesPerSecond * burstSeconds;
    this.tokens = 0;
    this.last = now;
  }

  private refill(now: number): void {
    const elapsed = Math.max(0, now - this.last);
    this.last = now;
    this.tokens = Math.min(this.capacity, this.tokens + (elapsed * this.bytesPerSecond) / 1000);
  }

  /** Ms to wait before a send may start (0: go now). Does not consume. */
  delay(now: number): number {
    this.refill(now);
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / this.bytesPerSecond);
  }

  /** Consume `bytes` (call only when delay() returned 0). */
  take(bytes: number, now: number): void {
    this.refill(now);
    this.tokens -= bytes;
  }
}
