/**
 * The answer watchdog of one connection (UploaderOptions.answerTimeout, BatchOptions.answerTimeout):
 * while the server owes answers it must be heard from within the limit (ten times that while a
 * file completes: a completion flushes and moves the file), plus the time the bytes in flight take
 * at a slow uplink's pace; else the connection counts as lost. The wait counts from the later of
 * the server's last message and the moment it began to owe, so the client's own pauses (hashing, a
 * rate limit, a source check) are never charged to the server. One timer, armed by what is sent,
 * re-armed from the last message heard; nothing owed, nothing watched.
 */
import type { Clock } from './types.js';

/** The longest delay a timer takes (setTimeout fires at once past 2^31 - 1 ms). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Milliseconds of silence allowed (0: never watched); throws on anything else. */
export function answerTimeoutOf(value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (value === 0 || (Number.isFinite(value) && value > 0)) return value;
  throw new RangeError('answerTimeout must be a positive number of milliseconds, or 0 (off)');
}

/** What the watchdog asks of its connection each time it looks. */
export interface AnswerDebt {
  /** The connection is still the one in use. */
  current(): boolean;
  /** The server owes answers now. */
  owes(): boolean;
  /** One of them is a completion (or an OPEN carrying its whole file). */
  completing(): boolean;
  /** Payload bytes sent and not answered. */
  bytesInFlight(): number;
  /** The server stayed silent too long: give the connection up. */
  silent(quietMs: number): void;
}

export class AnswerWatch {
  private timer: unknown = undefined;
  private heardAt: number;
  private owedSince: number;

  constructor(
    private readonly clock: Clock,
    /** Milliseconds; 0: never. */
    private readonly limit: number,
    /** Bytes per second the slowest uplink is assumed to carry. */
    private readonly rateFloor: number,
    private readonly debt: AnswerDebt,
  ) {
    this.heardAt = this.owedSince = clock.now();
  }

  /** A message came from the server. */
  heard(): void {
    this.heardAt = this.clock.now();
  }

  /** Something the server must answer was just sent; `owedBefore`: it owed answers already. */
  sent(owedBefore: boolean): void {
    if (this.limit === 0) return;
    if (!owedBefore) this.owedSince = this.clock.now();
    if (this.timer === undefined)
      this.timer = this.clock.setTimeout(this.check, Math.min(this.limit, MAX_TIMER_MS));
  }

  stop(): void {
    this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private readonly check = (): void => {
    this.timer = undefined;
    const debt = this.debt;
    if (!debt.current() || !debt.owes()) return;
    const allowed =
      (debt.completing() ? 10 * this.limit : this.limit) +
      (debt.bytesInFlight() * 1000) / this.rateFloor;
    const quiet = this.clock.now() - Math.max(this.heardAt, this.owedSince);
    if (quiet < allowed) {
      this.timer = this.clock.setTimeout(this.check, Math.min(allowed - quiet, MAX_TIMER_MS));
      return;
    }
    debt.silent(quiet);
  };
}
