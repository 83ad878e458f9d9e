/**
 * The completed records of uploads stored from their OPEN (SPEC.md 16.11, issue 16), kept in
 * shared files instead of one metadata file each:
 *
 *   <dir>/uploads/<random>.ledger   the open ledger: completed records appended as JSON lines
 *   <dir>/uploads/<id>.json         a hard link to the ledger that holds the upload's record
 *
 * Such an upload never had metadata of its own (nothing of it is acked before RESULT, so nothing
 * needs a record before its completion), and a file per upload was one inode made and one
 * fdatasync per small file: on ext4 without a journal, each new inode costs more the more were
 * freed in the last minutes. Here a record costs an append, a share of one fdatasync (concurrent
 * completions are group-committed, group-commit.ts) and a directory entry.
 *
 * A record is reachable only through its upload's link, made after the record was flushed: a
 * crash or a failed flush before the link leaves an unreachable line, never a record that reads
 * as completed without being durable. Readers take the last record of their upload id (the store
 * reads `<id>.json` as JSON lines, whose last whole record of that id wins), so the other uploads'
 * lines in the same file are passed over; a ledger takes at most LEDGER_MAX_RECORDS records or
 * LEDGER_MAX_BYTES, which bounds every read, and then a new one is started. A ledger's own name is
 * removed once its last link is made (or at the next start after a crash): the file lives as long
 * as any upload (or content index entry) links it, and goes with the last of them.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { link, open, readdir, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { GroupCommit } from './group-commit.js';

const { O_WRONLY, O_APPEND, O_CREAT, O_EXCL, O_NOFOLLOW } = fsConstants;

/** Records one ledger takes at most before a new one is started. */
export const LEDGER_MAX_RECORDS = 256;
/** Bytes one ledger holds at most before a new one is started (bounds a read of a record). */
export const LEDGER_MAX_BYTES = 256 * 1024;

const SUFFIX = '.ledger';

class LedgerFile {
  records = 0;
  bytes = 0;
  /** Appends not yet linked or given up. */
  pending = 0;
  retired = false;
  /** Set once the file is closed and its name removed. */
  released: Promise<void> | undefined;

  constructor(
    readonly path: string,
    readonly handle: FileHandle,
    readonly flushes: GroupCommit,
  ) {}
}

export class CompletionLedger {
  private open: LedgerFile | undefined;
  private opening: Promise<LedgerFile> | undefined;
  /** fdatasyncs of ledgers issued (tests). */
  flushesIssued = 0;

  constructor(
    /** uploads/ */
    private readonly dir: string,
    private readonly fileMode: number,
  ) {}

  /**
   * Remove the names of ledgers a crash left open (their links keep the records). Only before
   * this store appends anything.
   */
  async removeLeftNames(): Promise<void> {
    for (const name of await readdir(this.dir)) {
      if (name.endsWith(SUFFIX)) await unlink(join(this.dir, name)).catch(() => undefined);
    }
  }

  /**
   * Append `record` (one line of JSON) and flush it; then make `at` a link to the ledger that
   * holds it. `ready` must settle first: the link is the commit, and everything the record claims
   * (the flushed data) must be durable before it. Whoever calls this fsyncs the folder of `at`
   * afterwards.
   */
  async commit(record: string, at: string, ready: Promise<unknown>): Promise<void> {
    // A newline before as well as after: a write cut short (ENOSPC, EIO) cannot run into the
    // next record, which starts on a line of its own whatever is before it.
    const line = Buffer.from(`\n${record}\n`);
    const file = await this.take(line.byteLength);
    try {
      const written = (async () => {
        try {
          const { bytesWritten } = await file.handle.write(line);
          if (bytesWritten !== line.byteLength) throw new Error('ledger append cut short');
          await file.flushes.request();
        } catch (error) {
          // A ledger whose append or flush failed takes nothing more.
          this.retire(file);
          throw error;
        }
      })();
      const [flushed, before] = await Promise.allSettled([written, ready]);
      if (flushed.status === 'rejected') throw flushed.reason;
      if (before.status === 'rejected') throw before.reason;
      await link(file.path, at);
    } finally {
      file.pending--;
      this.releaseIfDone(file);
    }
  }

  /** Close the open ledger and remove its name (its links keep it). */
  async close(): Promise<void> {
    await this.opening?.catch(() => undefined);
    const file = this.open;
    if (!file) return;
    this.retire(file);
    // Appends still pending release it when they end.
    await file.released;
  }

  /** The open ledger, with room for `bytes` counted and this append pending on it. */
  private async take(bytes: number): Promise<LedgerFile> {
    for (;;) {
      const file = this.open;
      if (file && !file.retired) {
        file.records++;
        file.bytes += bytes;
        file.pending++;
        if (file.records >= LEDGER_MAX_RECORDS || file.bytes >= LEDGER_MAX_BYTES) this.retire(file);
        return file;
      }
      this.opening ??= this.start().finally(() => {
        this.opening = undefined;
      });
      await this.opening;
    }
  }

  private async start(): Promise<LedgerFile> {
    const path = join(this.dir, `${randomBytes(16).toString('hex')}${SUFFIX}`);
    const handle = await open(
      path,
      O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW,
      this.fileMode,
    );
    const file = new LedgerFile(
      path,
      handle,
      new GroupCommit(() => {
        this.flushesIssued++;
        return handle.datasync();
      }),
    );
    this.open = file;
    return file;
  }

  private retire(file: LedgerFile): void {
    if (file.retired) return;
    file.retired = true;
    if (this.open === file) this.open = undefined;
    this.releaseIfDone(file);
  }

  /** A retired ledger with nothing pending: closed, and its own name removed. */
  private releaseIfDone(file: LedgerFile): void {
    if (!file.retired || file.pending !== 0) return;
    file.pending = -1;
    file.released = file.handle
      .close()
      .catch(() => undefined)
      .then(() => unlink(file.path))
      .catch(() => undefined);
  }
}
