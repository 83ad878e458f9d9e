/**
 * The completed records of uploads stored from their OPEN (SPEC.md 16.11, issue 16), kept in
 * shared files instead of one metadata file each:
 *
 *   <dir>/uploads/<random>.ledger   an open ledger: completed records appended as JSON lines
 *   <dir>/uploads/<id>.json         a hard link to the ledger that holds the upload's record
 *
 * Such an upload has no metadata before its completion (nothing of it is acked before RESULT, so
 * nothing needs a record earlier), and a file per upload was one inode made and one fdatasync per
 * small file: on ext4 without a journal, each new inode costs more the more were freed in the last
 * minutes. Here a record costs a share of one append and one fdatasync (the completions that
 * arrive together are group-committed, group-commit.ts: their lines go in one write) and a
 * directory entry.
 *
 * Each client (UploadInfo.client) appends to ledgers of its own, so a file holds the records of
 * one client only: a content lookup in a client's scope (disk-content.ts) reads nothing of other
 * clients. At most LEDGERS_OPEN are open at once (the least recently used is retired).
 *
 * The commit is the link, made once the record and the data are flushed: a record appended but
 * never linked (its upload failed, or a crash came first) is a line no upload's metadata names.
 * A ledger whose append, flush or link failed takes nothing more, and none of the records still
 * waiting on it is linked: after a failed flush, a later one may succeed while the disk lost what
 * the failed one held. Readers take the last record of their upload id (the store reads
 * `<id>.json` as JSON lines), so other uploads' lines in the same file are passed over; a ledger
 * takes at most LEDGER_MAX_RECORDS records or LEDGER_MAX_BYTES, which bounds every read. A
 * ledger's own name is removed when it is retired (full, failed, closed or evicted) and no append
 * on it is pending, or at the next start after a crash: the file then lives as long as an upload
 * (or a content index entry) links it. Where the filesystem makes no hard links, `commit` says so
 * and the store writes the upload's metadata file instead.
 *
 * One process per data directory: another store's start removes the names of this one's ledgers.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { link, open, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { GroupCommit } from './group-commit.js';
import { isErrno, isNoHardLink } from './errno.js';

const { O_WRONLY, O_APPEND, O_CREAT, O_EXCL, O_NOFOLLOW } = fsConstants;

/** Records one ledger takes at most before a new one is started. */
export const LEDGER_MAX_RECORDS = 64;
/** Bytes one ledger holds at most before a new one is started (bounds a read of a record). */
export const LEDGER_MAX_BYTES = 64 * 1024;
/** Ledgers open at once (one per client appending); past it the least recently used is retired. */
export const LEDGERS_OPEN = 16;

const SUFFIX = '.ledger';

class LedgerFile {
  records = 0;
  bytes = 0;
  /** Appends not yet linked or given up. */
  pending = 0;
  retired = false;
  /** Why the ledger takes nothing more: a failed append, flush or link. */
  failure: Error | undefined = undefined;
  /** Lines of commits waiting for the next flush, which appends them in one write first. */
  unwritten: Buffer[] = [];
  readonly flushes: GroupCommit;
  readonly released: Promise<void>;
  release!: () => void;

  constructor(
    readonly path: string,
    readonly handle: FileHandle,
    flush: (file: LedgerFile) => Promise<void>,
  ) {
    this.flushes = new GroupCommit(() => flush(this));
    this.released = new Promise((resolve) => {
      this.release = resolve;
    });
  }
}

export class CompletionLedger {
  /** Open ledgers by client, least recently used first. */
  private readonly open = new Map<string, LedgerFile>();
  private readonly opening = new Map<string, Promise<LedgerFile>>();
  private readonly retiredPending = new Set<LedgerFile>();
  private closed = false;
  /** fdatasyncs of ledgers issued (tests). */
  flushesIssued = 0;

  constructor(
    /** uploads/ */
    private readonly dir: string,
    private readonly fileMode: number,
  ) {}

  /** Ledgers open now (tests). */
  get openCount(): number {
    return this.open.size;
  }

  /**
   * Remove the names of ledgers a crash left open (their links keep the records), among `names`
   * (the listing of the ledgers' folder). Only before this store appends anything.
   */
  async removeLeftNames(names: readonly string[]): Promise<void> {
    for (const name of names) {
      if (name.endsWith(SUFFIX)) await unlink(join(this.dir, name)).catch(() => undefined);
    }
  }

  /**
   * Append `record` (one line of JSON) to a ledger of `client` and flush it; then make `at` a
   * link to that ledger. `ready` must succeed first: the link is the commit, and everything the
   * record claims (the flushed data) must be durable before it. Whoever calls this fsyncs the
   * folder of `at` afterwards. False (nothing linked) where the filesystem makes no hard links.
   */
  async commit(
    client: string | undefined,
    record: string,
    at: string,
    ready: Promise<unknown>,
  ): Promise<boolean> {
    // Observed at once: if no ledger can be had, `ready` may still fail, unawaited.
    ready.catch(() => undefined);
    // A newline before as well as after: a write cut short (ENOSPC, EIO) cannot run into the
    // next record, which starts on a line of its own whatever is before it.
    const line = Buffer.from(`\n${record}\n`);
    const file = await this.take(client ?? '', line.byteLength);
    try {
      const written = (async () => {
        try {
          file.unwritten.push(line);
          await file.flushes.request();
        } catch (error) {
          this.fail(file, error);
          throw error;
        }
      })();
      const [flushed, before] = await Promise.allSettled([written, ready]);
      if (flushed.status === 'rejected') throw flushed.reason;
      if (before.status === 'rejected') throw before.reason;
      // A flush failed after this record's succeeded: what the disk holds of the file is unknown.
      if (file.failure !== undefined) throw file.failure;
      try {
        await link(file.path, at);
      } catch (error) {
        if (isNoHardLink(error)) {
          // No (more) links to this file: the caller stores the record on its own.
          this.retire(file);
          return false;
        }
        // Its name gone (removed by hand or by another process's start): a new ledger next time.
        if (!isErrno(error, 'EEXIST')) this.fail(file, error);
        throw error;
      }
      return true;
    } finally {
      file.pending--;
      this.releaseIfDone(file);
    }
  }

  /** Retire every open ledger and wait until each is closed and its name removed. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.opening.values()]);
    for (const file of [...this.open.values()]) this.retire(file);
    await Promise.all([...this.retiredPending].map((file) => file.released));
  }

  /** An open ledger of `client`, with room for `bytes` counted and this append pending on it. */
  private async take(client: string, bytes: number): Promise<LedgerFile> {
    for (;;) {
      if (this.closed) throw new Error('the store is closed');
      const file = this.open.get(client);
      if (file && !file.retired) {
        // Most recently used last.
        this.open.delete(client);
        this.open.set(client, file);
        file.records++;
        file.bytes += bytes;
        file.pending++;
        if (file.records >= LEDGER_MAX_RECORDS || file.bytes >= LEDGER_MAX_BYTES) this.retire(file);
        return file;
      }
      let opening = this.opening.get(client);
      if (!opening) {
        opening = this.start(client).finally(() => this.opening.delete(client));
        this.opening.set(client, opening);
      }
      await opening;
    }
  }

  private async start(client: string): Promise<LedgerFile> {
    const path = join(this.dir, `${randomBytes(16).toString('hex')}${SUFFIX}`);
    const handle = await open(
      path,
      O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW,
      this.fileMode,
    );
    const file = new LedgerFile(path, handle, (ledger) => this.flush(ledger));
    if (this.open.size >= LEDGERS_OPEN) {
      const [oldest] = this.open.values();
      if (oldest) this.retire(oldest);
    }
    this.open.set(client, file);
    return file;
  }

  /**
   * Append the lines of the commits waiting (taken as the flush starts, so each was queued before
   * it) in one write, then fdatasync. One write per group instead of one per commit: every
   * call handed to the thread pool costs the event loop tens of microseconds on this VM, as much
   * as a small file's other work (issue 16).
   */
  private async flush(file: LedgerFile): Promise<void> {
    const lines = file.unwritten.splice(0);
    if (lines.length > 0) {
      const batch = lines.length === 1 ? lines[0] : Buffer.concat(lines);
      const { bytesWritten } = await file.handle.write(batch);
      if (bytesWritten !== batch.byteLength) throw new Error('ledger append cut short');
    }
    this.flushesIssued++;
    await file.handle.datasync();
  }

  private fail(file: LedgerFile, error: unknown): void {
    file.failure ??= error instanceof Error ? error : new Error(String(error));
    this.retire(file);
  }

  private retire(file: LedgerFile): void {
    if (file.retired) return;
    file.retired = true;
    for (const [client, open] of this.open)
      if (open === file) {
        this.open.delete(client);
        break;
      }
    this.retiredPending.add(file);
    this.releaseIfDone(file);
  }

  /** A retired ledger with nothing pending: closed, and its own name removed. */
  private releaseIfDone(file: LedgerFile): void {
    if (!file.retired || file.pending !== 0) return;
    file.pending = -1;
    void file.handle
      .close()
      .catch(() => undefined)
      .then(() => unlink(file.path))
      .catch(() => undefined)
      .then(() => {
        this.retiredPending.delete(file);
        file.release();
      });
  }
}
