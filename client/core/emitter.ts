/** A tiny typed event emitter. Handlers that throw are isolated so one bad listener cannot stall an upload. */
export class Emitter<Events extends object> {
  private readonly handlers = new Map<keyof Events, Set<(payload: never) => void>>();
  /** Once muted (after cancel), nothing is delivered any more. */
  private muted = false;

  on<K extends keyof Events>(event: K, handler: (payload: Events[K]) => void): () => void {
    let set = this.handlers.get(event);
    if (!set) {
      set = new Set();
      this.handlers.set(event, set);
    }
    const h = handler as (payload: never) => void;
    set.add(h);
    return () => {
      set.delete(h);
    };
  }

  emit<K extends keyof Events>(event: K, payload: Events[K]): void {
    if (this.muted) return;
    const set = this.handlers.get(event);
    if (!set) return;
    for (const handler of [...set]) {
      try {
        (handler as (payload: Events[K]) => void)(payload);
      } catch (error) {
        // Report asynchronously, as the DOM does for listener errors, without breaking the upload.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }

  mute(): void {
    this.muted = true;
  }
}
