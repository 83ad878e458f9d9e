/**
 * Group commit of one flush (issue 16): a caller's change is covered by any flush that *starts*
 * after the change, so a caller that arrives while one runs joins the next one (at most one
 * running and one waiting), and N concurrent callers cost about two flushes instead of N. Each
 * caller's promise resolves only once a flush that started after its change has succeeded, and a
 * failed flush rejects every caller that joined it. The same holds for any check whose answer is
 * shared by the callers that joined it (T: what the flush answers).
 */
export class GroupCommit<T = void> {
  private running: Promise<T> | undefined;
  private waiting: Promise<T> | undefined;

  constructor(
    private readonly flush: () => Promise<T>,
    /** Called when a flush ends with none running or waiting (the owner may drop this). */
    private readonly onIdle: () => void = () => undefined,
  ) {}

  /** Whether a flush runs or waits. */
  get busy(): boolean {
    return this.running !== undefined || this.waiting !== undefined;
  }

  /** Resolves once a flush that started after this call has succeeded. */
  request(): Promise<T> {
    const running = this.running;
    if (!running) return this.start();
    this.waiting ??= running
      .catch(() => undefined)
      .then(() => {
        this.waiting = undefined;
        return this.start();
      });
    return this.waiting;
  }

  private start(): Promise<T> {
    const run: Promise<T> = this.flush().finally(() => {
      if (this.running === run) this.running = undefined;
      if (!this.busy) this.onIdle();
    });
    this.running = run;
    return run;
  }
}
