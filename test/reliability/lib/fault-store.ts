/**
 * A store wrapper for fault injection, in front of the real DiskStore (the server's `store`
 * option). Two jobs:
 *
 * 1. Storage faults: make the Nth write / record / flush / checkpoint of an upload fail with EIO
 *    or ENOSPC, without touching the disk, as a real failing syscall would.
 * 2. Power loss: it tracks which data writes and journal bytes were covered by a completed
 *    fdatasync. `powerOff()` freezes the store (nothing after that instant reaches the disk or is
 *    acked), and `applyPowerLoss()` then rewrites the files as a device that lost its volatile
 *    cache would hold them: data writes not covered by a completed flush are dropped, kept or torn
 *    at a 4 KiB boundary (at random), and the journal keeps its flushed prefix plus a random
 *    prefix of the unflushed tail (torn mid-record). A restart with a new boot id is the "reboot".
 */
import { readFileSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DiskStore } from '../../../server/index.js';
import type {
  ChunkRecord,
  CompletionInfo,
  StoredUpload,
  UploadHandle,
  UploadInfo,
  UploadStore,
  UploadSummary,
  ListPage,
} from '../../../server/index.js';
import type { Rng } from './rng.js';

export type FaultOp = 'write' | 'record' | 'syncData' | 'checkpoint';
export type FaultCode = 'EIO' | 'ENOSPC';

export interface FaultRule {
  readonly op: FaultOp;
  readonly code: FaultCode;
  /** Only this upload (32 hex). Default: any. */
  readonly uploadId?: string;
  /** Let this many matching calls through first. Default 0. */
  readonly after?: number;
  /** Fail this many calls, then the rule is spent. Default 1. */
  readonly times?: number;
}

export function errnoError(code: FaultCode | 'EPOWER', syscall: string): NodeJS.ErrnoException {
  const error: NodeJS.ErrnoException = new Error(`${code}: injected fault, ${syscall}`);
  error.code = code;
  error.syscall = syscall;
  return error;
}

const RECORD = 32;
const SYNC_TYPE = 2;

/**
 * Bytes of the journal holding records: the file also has zero-filled slots reserved ahead
 * (journal.ts, "Reserved space"), which are free space, not written records.
 */
function recordsLength(bytes: Uint8Array): number {
  let end = bytes.byteLength;
  while (end > 0 && bytes[end - 1] === 0) end--;
  return Math.ceil(end / RECORD) * RECORD;
}

async function journalLength(path: string): Promise<number> {
  return recordsLength(await readFile(path));
}

interface Tracked {
  /** Data writes started (done: returned), and whether a completed flush covers them. */
  writes: Array<{ position: number; length: number; done: boolean; synced: boolean }>;
  /** Journal bytes known to be on the device. */
  journalSynced: number;
  /** Journal size when the current handle was opened (its BOOT + SYNC were flushed by then). */
  journalAtOpen: number;
  /** Checkpoints of the current handle that completed. */
  checkpointsDone: number;
  /** performance.now() at the start of each completed checkpoint. */
  checkpointStarts: number[];
  /** Journal length at the power cut. */
  journalAtCut?: number;
}

export interface LossReport {
  readonly uploads: number;
  readonly dataWritesDropped: number;
  readonly dataWritesTorn: number;
  readonly dataWritesKept: number;
  readonly journalBytesDropped: number;
}

export class FaultStore implements UploadStore {
  private readonly rules: Array<FaultRule & { seen: number; fired: number }> = [];
  private readonly tracked = new Map<string, Tracked>();
  private dead = false;
  /** Handles handed out and not closed yet. */
  openHandles = 0;
  /** Each injected fault: the upload and the byte positions whose fate it decided. */
  readonly failures: Array<{ op: FaultOp; id: string; positions: number[] }> = [];
  /** Faults actually injected, by op and code. */
  readonly injected = new Map<string, number>();

  constructor(
    readonly inner: DiskStore,
    readonly dir: string,
  ) {}

  inject(rule: FaultRule): void {
    this.rules.push({ ...rule, seen: 0, fired: 0 });
  }

  get injectedTotal(): number {
    let n = 0;
    for (const v of this.injected.values()) n += v;
    return n;
  }

  /** Journal path of an upload (the disk store's documented layout). */
  journalPath(id: string): string {
    return join(this.dir, 'uploads', `${id}.journal`);
  }

  partPath(id: string): string {
    return join(this.dir, 'uploads', `${id}.part`);
  }

  /** Throw the injected error if a rule matches this call. */
  check(op: FaultOp, id: string): void {
    if (this.dead) throw errnoError('EPOWER', op);
    for (const rule of this.rules) {
      if (rule.op !== op || (rule.uploadId !== undefined && rule.uploadId !== id)) continue;
      if (rule.fired >= (rule.times ?? 1)) continue;
      rule.seen++;
      if (rule.seen <= (rule.after ?? 0)) continue;
      rule.fired++;
      const key = `${op}:${rule.code}`;
      this.injected.set(key, (this.injected.get(key) ?? 0) + 1);
      throw errnoError(rule.code, op);
    }
  }

  get isDead(): boolean {
    return this.dead;
  }

  /** The power is cut now: from here on nothing reaches the disk and no store call succeeds. */
  powerOff(): void {
    this.dead = true;
    // Whatever reaches the journal after this instant (the frozen server's close() checkpoint)
    // was never on the device: remember each journal's length at the cut.
    for (const [id, t] of this.tracked) {
      try {
        t.journalAtCut = recordsLength(readFileSync(this.journalPath(id)));
      } catch {
        t.journalAtCut = t.journalSynced;
      }
    }
  }

  /** performance.now() of the start of the last checkpoint of `id` that completed before the cut. */
  lastCheckpointStart(id: string): number | undefined {
    const t = this.tracked.get(id)?.checkpointStarts;
    return t && t.length > 0 ? t[t.length - 1] : undefined;
  }

  track(id: string): Tracked {
    let t = this.tracked.get(id);
    if (!t) {
      t = {
        writes: [],
        journalSynced: 0,
        journalAtOpen: 0,
        checkpointsDone: 0,
        checkpointStarts: [],
      };
      this.tracked.set(id, t);
    }
    return t;
  }

  async afterOpen(id: string): Promise<void> {
    const t = this.track(id);
    // Journal.open flushed its BOOT + SYNC marks before the handle was handed out.
    const size = await journalLength(this.journalPath(id));
    t.journalSynced = size;
    t.journalAtOpen = size;
    t.checkpointsDone = 0;
  }

  /** The end of the k-th SYNC mark appended after `from` (1-based), or undefined. */
  async syncMarkEnd(id: string, from: number, k: number): Promise<number | undefined> {
    const bytes = await readFile(this.journalPath(id));
    let seen = 0;
    for (let at = from; at + RECORD <= bytes.byteLength; at += RECORD) {
      if (bytes[at] === SYNC_TYPE && ++seen === k) return at + RECORD;
    }
    return undefined;
  }

  /** Offset of the first SYNC mark at or after `from` (record aligned), or `end` if none. */
  async firstSyncMarkAfter(id: string, from: number, end: number): Promise<number> {
    const bytes = await readFile(this.journalPath(id));
    for (let at = from; at + RECORD <= Math.min(end, bytes.byteLength); at += RECORD) {
      if (bytes[at] === SYNC_TYPE) return at;
    }
    return end;
  }

  /**
   * Rewrite the files as the device holds them after the power cut. Call after the frozen server
   * was closed (its handles are released; whatever it did after the cut is undone here).
   */
  async applyPowerLoss(rng: Rng, harsh: boolean): Promise<LossReport> {
    let dropped = 0;
    let torn = 0;
    let kept = 0;
    let journalDropped = 0;
    for (const [id, t] of this.tracked) {
      let part;
      try {
        part = await open(this.partPath(id), 'r+');
      } catch {
        continue; // completed or removed
      }
      try {
        for (const w of t.writes) {
          if (w.synced) continue;
          // The region held zeros before (preallocated, never written: acked chunks are not rewritten).
          const fate = harsh ? 'drop' : rng.pick(['drop', 'drop', 'torn', 'keep'] as const);
          if (fate === 'keep') {
            kept++;
            continue;
          }
          const keep =
            fate === 'torn'
              ? Math.min(w.length, 4096 * rng.int(0, Math.floor(w.length / 4096)))
              : 0;
          if (fate === 'torn') torn++;
          else dropped++;
          await part.write(Buffer.alloc(w.length - keep), 0, w.length - keep, w.position + keep);
        }
      } finally {
        await part.close();
      }
      const size = Math.min(await journalLength(this.journalPath(id)), t.journalAtCut ?? Infinity);
      const tail = size - t.journalSynced;
      // A SYNC mark past the confirmed prefix belongs to a checkpoint that was still running at the
      // cut; whether its data flush had finished is unknown here, so the kept tail stops before it
      // (losing it is always a legal outcome, keeping it is only legal if the flush finished).
      const limit = await this.firstSyncMarkAfter(id, t.journalSynced, size);
      const keepTail = harsh || tail <= 0 ? 0 : rng.int(0, Math.min(tail, limit - t.journalSynced));
      // The lost tail reads back as the zeros the reserve held before it was written.
      const journal = await open(this.journalPath(id), 'r+');
      try {
        const from = t.journalSynced + keepTail;
        const end = Math.max(from, await journalLength(this.journalPath(id)));
        await journal.write(Buffer.alloc(end - from), 0, end - from, from);
      } finally {
        await journal.close();
      }
      journalDropped += Math.max(0, tail - keepTail);
    }
    return {
      uploads: this.tracked.size,
      dataWritesDropped: dropped,
      dataWritesTorn: torn,
      dataWritesKept: kept,
      journalBytesDropped: journalDropped,
    };
  }

  // UploadStore -------------------------------------------------------------------------------

  init(): Promise<void> {
    return this.inner.init();
  }

  freeSpace(): Promise<number> {
    return this.inner.freeSpace();
  }

  async create(info: UploadInfo): Promise<UploadHandle> {
    if (this.dead) throw errnoError('EPOWER', 'create');
    const handle = await this.inner.create(info);
    this.openHandles++;
    await this.afterOpen(info.id);
    return new FaultHandle(this, handle);
  }

  async open(id: string): Promise<UploadHandle> {
    if (this.dead) throw errnoError('EPOWER', 'open');
    const handle = await this.inner.open(id);
    this.openHandles++;
    this.tracked.delete(id);
    await this.afterOpen(id);
    return new FaultHandle(this, handle);
  }

  readState(id: string): Promise<StoredUpload | undefined> {
    return this.inner.readState(id);
  }

  remove(id: string): Promise<void> {
    if (this.dead) return Promise.reject(errnoError('EPOWER', 'remove'));
    this.tracked.delete(id);
    return this.inner.remove(id);
  }

  list(page?: ListPage): Promise<UploadSummary[]> {
    return this.inner.list(page);
  }
}

class FaultHandle implements UploadHandle {
  constructor(
    private readonly store: FaultStore,
    private readonly inner: UploadHandle,
  ) {}

  get info(): UploadInfo {
    return this.inner.info;
  }

  /** Positions of returned writes no flush has covered yet. */
  private unflushed(): number[] {
    return this.t.writes.filter((w) => w.done && !w.synced).map((w) => w.position);
  }

  /** Inject a fault if a rule says so, remembering which bytes it concerned. */
  private guard(op: FaultOp, positions: number[]): void {
    try {
      this.store.check(op, this.info.id);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EPOWER')
        this.store.failures.push({ op, id: this.info.id, positions });
      throw error;
    }
  }

  private get t(): Tracked {
    return this.store.track(this.inner.info.id);
  }

  async writeAt(bytes: Uint8Array, position: number): Promise<void> {
    this.guard('write', [position]);
    // Tracked from the start: a write still running at the cut is as unflushed as any.
    const entry = { position, length: bytes.byteLength, done: false, synced: false };
    this.t.writes.push(entry);
    await this.inner.writeAt(bytes, position);
    // A write that returns after the cut never happened as far as anyone can tell.
    if (this.store.isDead) throw errnoError('EPOWER', 'write');
    entry.done = true;
  }

  async recordChunks(chunks: readonly ChunkRecord[], sync: boolean): Promise<void> {
    this.guard(
      'record',
      chunks.map((c) => c.index * this.info.chunkSize),
    );
    await this.inner.recordChunks(chunks, sync);
    if (this.store.isDead) throw errnoError('EPOWER', 'record');
    if (sync) {
      // Durable mode: the session serializes record batches per upload, so nothing else was
      // appended between this flush and the stat.
      this.t.journalSynced = await journalLength(this.store.journalPath(this.info.id));
    }
  }

  async syncData(): Promise<void> {
    this.guard('syncData', this.unflushed());
    const covered = this.t.writes.filter((w) => w.done && !w.synced);
    await this.inner.syncData();
    if (this.store.isDead) throw errnoError('EPOWER', 'syncData');
    for (const w of covered) w.synced = true;
  }

  async checkpoint(): Promise<void> {
    this.guard('checkpoint', this.unflushed());
    const startedAt = performance.now();
    const covered = this.t.writes.filter((w) => w.done && !w.synced);
    await this.inner.checkpoint();
    if (this.store.isDead) throw errnoError('EPOWER', 'checkpoint');
    const t = this.t;
    for (const w of covered) w.synced = true;
    t.checkpointsDone++;
    t.checkpointStarts.push(startedAt);
    // Checkpoints of one handle are serialized, so this one's SYNC mark is the k-th since open.
    const end = await this.store.syncMarkEnd(this.info.id, t.journalAtOpen, t.checkpointsDone);
    if (end !== undefined) t.journalSynced = Math.max(t.journalSynced, end);
  }

  rollbackToCheckpoint(): Promise<readonly ChunkRecord[]> {
    if (this.store.isDead) return Promise.reject(errnoError('EPOWER', 'rollback'));
    return this.inner.rollbackToCheckpoint();
  }

  async finish(digest: string): Promise<CompletionInfo> {
    if (this.store.isDead) throw errnoError('EPOWER', 'finish');
    const done = await this.inner.finish(digest);
    this.release();
    return done;
  }

  private released = false;
  private release(): void {
    if (!this.released) {
      this.released = true;
      this.store.openHandles--;
    }
  }

  async close(): Promise<void> {
    // Always release the real file handles; after a cut applyPowerLoss undoes what close wrote.
    try {
      await this.inner.close();
    } finally {
      this.release();
    }
    if (this.store.isDead) return;
    // close() checkpoints: every write so far is flushed and nothing appends to the journal now.
    const t = this.t;
    for (const w of t.writes) w.synced = true;
    t.journalSynced = await journalLength(this.store.journalPath(this.info.id)).catch(
      () => t.journalSynced,
    );
  }
}
