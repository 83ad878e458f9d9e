/**
 * The TTL sweeper: removes incomplete uploads idle longer than the TTL, and completion records
 * older than the TTL (their delivered files stay), and unfinished uploads that never stored a
 * chunk after the shorter `emptyUploadTtl`. An upload with a live connection is never touched,
 * however old.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { ServerMetrics } from './metrics.js';
import type { UploadStore } from './store/types.js';
import type { UploadRegistry } from './uploads.js';

export class Sweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;
  /** Where the next pass continues: each pass reads the state of at most `batch` uploads. */
  private cursor: string | undefined;

  constructor(
    private readonly store: UploadStore,
    private readonly registry: UploadRegistry,
    private readonly ttl: number,
    private readonly emptyTtl: number,
    private readonly batch: number,
    private readonly metrics: ServerMetrics,
    private readonly log: FastifyBaseLogger,
  ) {}

  start(interval: number): void {
    this.timer = setInterval(() => void this.sweep(), interval);
    this.timer.unref();
  }

  stop(): Promise<unknown> {
    clearInterval(this.timer);
    return this.running ?? Promise.resolve();
  }

  /**
   * One pass over the next `batch` uploads (in id order, wrapping around); returns how many it
   * removed. Passes never overlap. A store of N uploads is covered every ceil(N / batch) passes,
   * and no pass reads more than `batch` records.
   */
  sweep(now = Date.now()): Promise<number> {
    this.running ??= this.pass(now).finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async pass(now: number): Promise<number> {
    let removed = 0;
    try {
      const page = await this.store.list({
        ...(this.cursor !== undefined ? { after: this.cursor } : {}),
        limit: this.batch,
      });
      // A short page reached the end: the next pass starts over.
      this.cursor = page.length < this.batch ? undefined : page[page.length - 1].id;
      for (const summary of page) {
        // Damaged uploads are evidence for the operator (SPEC.md 7.2): never expired.
        if (summary.damaged) continue;
        // Held by a connection on another node (shared registry): that node's to judge.
        if (summary.leased) continue;
        const loaded = this.registry.peek(summary.id);
        if (loaded?.owner) continue;
        const last = Math.max(summary.updatedAt, loaded?.lastActivity ?? 0);
        // An upload that never stored a chunk only holds a reservation: it goes sooner.
        const empty = summary.empty === true && (loaded === undefined || loaded.acked.total === 0);
        if (now - last <= (empty ? Math.min(this.emptyTtl, this.ttl) : this.ttl)) continue;
        // An owner may appear while we list: remove checks again inside the registry's lock.
        if (await this.registry.remove(summary.id, undefined, true)) {
          removed++;
          if (!summary.completed) this.metrics.uploadsExpired.inc();
          this.log.info({ upload: summary.id, completed: summary.completed }, 'upload expired');
        }
      }
    } catch (error) {
      this.log.error({ err: error }, 'sweep failed');
    }
    return removed;
  }
}
