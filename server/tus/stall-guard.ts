/**
 * Bounds the time a PATCH body may hold an upload, with the limits the WebSocket endpoint already
 * has for the same thing: `idleTimeout` (no byte for that long) and `minThroughput` over
 * `throughputWindow` (a body that trickles). A body past either is destroyed, which ends the PATCH
 * like a cut connection: what arrived is kept (patch-writer.ts) and the lock is released.
 */
import type { Readable } from 'node:stream';

export interface StallLimits {
  readonly idleTimeout: number;
  readonly minThroughput: number;
  readonly throughputWindow: number;
}

export class StallError extends Error {
  override readonly name = 'StallError';
}

/** Watch `body` until `stop()`; `onBytes` must be called with every piece read from it. */
export class StallGuard {
  private lastByteAt = Date.now();
  private windowStart = Date.now();
  private windowBytes = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly body: Readable,
    private readonly limits: StallLimits,
  ) {
    const tick = Math.max(
      20,
      Math.min(1000, Math.floor(Math.min(limits.idleTimeout, limits.throughputWindow) / 4)),
    );
    this.timer = setInterval(() => this.check(Date.now()), tick);
    this.timer.unref();
  }

  onBytes(length: number): void {
    this.lastByteAt = Date.now();
    this.windowBytes += length;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private check(now: number): void {
    if (now - this.lastByteAt > this.limits.idleTimeout) {
      this.cut(`no body bytes for ${this.limits.idleTimeout} ms (idleTimeout)`);
      return;
    }
    if (now - this.windowStart < this.limits.throughputWindow) return;
    const floor = (this.limits.minThroughput * (now - this.windowStart)) / 1000;
    if (this.limits.minThroughput > 0 && this.windowBytes < floor) {
      this.cut(`body slower than ${this.limits.minThroughput} bytes/s (minThroughput)`);
      return;
    }
    this.windowStart = now;
    this.windowBytes = 0;
  }

  private cut(reason: string): void {
    this.stop();
    this.body.destroy(new StallError(reason));
  }
}
