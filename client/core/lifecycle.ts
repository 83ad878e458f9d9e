/**
 * The Uploader's lifecycle as one state machine: the public `UploadState`, the pause or cancel
 * under way, and the promises that wait on them. Every change of state is a named transition from
 * the table below; a transition from a state the table does not list throws (an internal bug), so
 * an illegal move cannot happen silently.
 *
 *   start       idle | paused | failed                        -> connecting
 *   reconnect   connecting | uploading | completing | retrying -> connecting
 *   accept      connecting                                    -> uploading
 *   sendAgain   uploading | completing                        -> uploading   (INCOMPLETE)
 *   complete    uploading                                     -> completing  (COMPLETE sent)
 *   retry       connecting | uploading | completing           -> retrying
 *   pause       connecting | uploading | completing | retrying -> paused
 *   succeed     completing                                    -> done
 *   fail        connecting | uploading | completing | retrying -> failed
 *   cancel      any state but done and cancelled              -> cancelled
 *
 * Two requests run alongside: a *pause* asked while moving (the state stays where it is until
 * the in-flight chunks are answered, then `pause` is taken), and a *cancel*, which takes
 * `cancel` at once: 'cancelled' is final and silent, so every later transition is ignored.
 */
import type { UploadOutcome, UploadState } from './types.js';

/** States in which the uploader is moving by itself (a connection, a retry timer or preparation). */
const MOVING = ['connecting', 'uploading', 'completing', 'retrying'] as const;

const TRANSITIONS = {
  start: { from: ['idle', 'paused', 'failed'], to: 'connecting' },
  reconnect: { from: MOVING, to: 'connecting' },
  accept: { from: ['connecting'], to: 'uploading' },
  sendAgain: { from: ['uploading', 'completing'], to: 'uploading' },
  complete: { from: ['uploading'], to: 'completing' },
  retry: { from: ['connecting', 'uploading', 'completing'], to: 'retrying' },
  pause: { from: MOVING, to: 'paused' },
  succeed: { from: ['completing'], to: 'done' },
  fail: { from: MOVING, to: 'failed' },
  cancel: {
    from: ['idle', 'connecting', 'uploading', 'completing', 'retrying', 'paused', 'failed'],
    to: 'cancelled',
  },
} as const satisfies Record<string, { from: readonly UploadState[]; to: UploadState }>;

export type Transition = keyof typeof TRANSITIONS;

export interface StateChange {
  readonly state: UploadState;
  readonly previous: UploadState;
  readonly retryInMs?: number;
}

export class Lifecycle {
  private current: UploadState = 'idle';
  private pauseAsked = false;
  private run: { promise: Promise<UploadOutcome>; settle: (o: UploadOutcome) => void } | undefined;
  private readonly pauseWaiters: Array<() => void> = [];
  private terminated: (() => void) | undefined;

  /** `onChange` hears every transition that changes the state (or re-arms a retry). */
  constructor(private readonly onChange: (change: StateChange) => void) {}

  get state(): UploadState {
    return this.current;
  }

  /** The uploader is moving by itself: a pause or cancel has something to stop. */
  get moving(): boolean {
    return (MOVING as readonly UploadState[]).includes(this.current);
  }

  /** A pause was asked and the state is not 'paused' yet: send nothing new. */
  get pausing(): boolean {
    return this.pauseAsked;
  }

  /** cancel() was called: final, and no event goes out any more. */
  get cancelled(): boolean {
    return this.current === 'cancelled';
  }

  /** Sending must stop: a pause or a cancel is under way. */
  get stopping(): boolean {
    return this.pauseAsked || this.cancelled;
  }

  /** The promise start() returned, while that run has not settled. */
  get running(): Promise<UploadOutcome> | undefined {
    return this.run?.promise;
  }

  /**
   * Take `transition`. Ignored once cancelled; throws if the table does not allow it from the
   * current state. A transition to the same state is silent unless it carries `retryInMs`.
   */
  go(transition: Transition, retryInMs?: number): void {
    if (this.cancelled) return;
    const { from, to } = TRANSITIONS[transition];
    const previous = this.current;
    if (!(from as readonly UploadState[]).includes(previous))
      throw new Error(`internal: the uploader cannot ${transition} from ${previous}`);
    this.current = to;
    // Reaching rest (or starting over) answers any pause asked before.
    if (!this.moving || transition === 'start') this.pauseAsked = false;
    if (previous === to && retryInMs === undefined) return;
    this.onChange(
      retryInMs === undefined ? { state: to, previous } : { state: to, previous, retryInMs },
    );
  }

  /** Begin a run (after `start`): the returned promise settles with the run's outcome. */
  beginRun(): Promise<UploadOutcome> {
    let settle: (o: UploadOutcome) => void = () => undefined;
    const promise = new Promise<UploadOutcome>((resolve) => {
      settle = resolve;
    });
    this.run = { promise, settle };
    return promise;
  }

  /** Whether a run is waiting to settle. */
  get hasRun(): boolean {
    return this.run !== undefined;
  }

  /** Settle the current run (if any) and everyone waiting for a pause. */
  settle(outcome: UploadOutcome): void {
    const run = this.run;
    this.run = undefined;
    run?.settle(outcome);
    this.releasePauseWaiters();
  }

  /**
   * Ask for a pause; resolves when the uploader comes to rest. Returns `first: true` only for the
   * call that made the request (the caller then starts stopping).
   */
  requestPause(): { first: boolean; rested: Promise<void> } {
    const rested = new Promise<void>((resolve) => this.pauseWaiters.push(resolve));
    const first = !this.pauseAsked;
    this.pauseAsked = true;
    return { first, rested };
  }

  releasePauseWaiters(): void {
    for (const resolve of this.pauseWaiters.splice(0)) resolve();
  }

  /** Wait for the server to confirm a TERMINATE (or for `confirmTerminated` by a timeout). */
  awaitTerminated(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.terminated = resolve;
    });
  }

  /** The server confirmed TERMINATE, or there is no point waiting any more. */
  confirmTerminated(): void {
    const terminated = this.terminated;
    this.terminated = undefined;
    terminated?.();
  }
}
