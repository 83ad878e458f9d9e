/**
 * ResumeStore in a small state file, so re-running the same `big-uploader send` resumes.
 *
 * Location (first that applies): the `path` you pass (CLI `--state FILE`), `$BIG_UPLOADER_STATE`,
 * `$XDG_STATE_HOME/big-uploader/state.json`, `~/.big-uploader/state.json`.
 *
 * The file is an append-only log of JSON lines (issue 16: a folder of thousands of files must not
 * rewrite the whole state per file). Line 1 is the header `{"bigUploaderState":2}`; every later
 * line is `{"set":KEY,"record":{...}}` or `{"remove":KEY}`, and the last line for a key wins. An
 * edit costs one appended line: edits made while a write is in progress are written together
 * with one write and one fdatasync (group commit), so its cost per file does not grow with the
 * number of records. Reads use an index in memory and catch up with lines other processes
 * appended (one `stat`, and a read of the new tail only).
 *
 * The file holds resume secrets, so it is created with mode 0600 in a 0700 directory. A torn
 * last line (a crash during an append) or a damaged line is skipped: it costs at most a fresh
 * upload of that file. When dead lines outnumber live records by COMPACT_RATIO (and at least
 * COMPACT_MIN_DEAD of them), the live records are rewritten to a temp file, fsynced and renamed
 * over the log; a line another process appends during that rename can be lost, which again
 * costs at most a fresh upload. A state file of the earlier format (one JSON object,
 * `{"version":1,"records":{...}}`) is read and rewritten as a log on first use.
 */
import { mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import type { ResumeRecord, ResumeStore } from '../core/types.js';

export function defaultStatePath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.BIG_UPLOADER_STATE) return env.BIG_UPLOADER_STATE;
  if (env.XDG_STATE_HOME) return join(env.XDG_STATE_HOME, 'big-uploader', 'state.json');
  return join(homedir(), '.big-uploader', 'state.json');
}

const HEADER_LINE = '{"bigUploaderState":2}';
const HEADER = `${HEADER_LINE}\n`;
/** Compact when dead lines exceed this many times the live records... */
const COMPACT_RATIO = 4;
/** ...and there are at least this many of them (a small log is never worth a rewrite). */
const COMPACT_MIN_DEAD = 1024;

type LogLine = { set: string; record: ResumeRecord } | { remove: string };

export class JsonFileResumeStore implements ResumeStore {
  private readonly records = new Map<string, ResumeRecord>();
  /** Bytes of the file already applied to `records`. */
  private applied = 0;
  /** The log's inode when `applied` was counted: compaction replaces the file. */
  private inode = -1;
  /** Lines in the file that no longer hold a live record (superseded or removed). */
  private deadLines = 0;
  /** Serialises reads, flushes and compactions within this process. */
  private chain: Promise<unknown> = Promise.resolve();
  private pending: Array<{ line: string; done: () => void; fail: (error: unknown) => void }> = [];
  private flushScheduled = false;

  constructor(readonly path: string = defaultStatePath()) {}

  async get(fingerprint: string): Promise<ResumeRecord | undefined> {
    await this.serial(() => this.catchUp());
    return this.records.get(fingerprint);
  }

  set(fingerprint: string, record: ResumeRecord): Promise<void> {
    return this.append({ set: fingerprint, record });
  }

  remove(fingerprint: string): Promise<void> {
    return this.append({ remove: fingerprint });
  }

  async entries(): Promise<ReadonlyArray<readonly [string, ResumeRecord]>> {
    await this.serial(() => this.catchUp());
    return [...this.records];
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn);
    this.chain = next.catch(() => undefined);
    return next;
  }

  private append(line: LogLine): Promise<void> {
    return new Promise<void>((done, fail) => {
      this.pending.push({ line: `${JSON.stringify(line)}\n`, done, fail });
      if (this.flushScheduled) return;
      this.flushScheduled = true;
      void this.serial(() => this.flush());
    });
  }

  /** Writes every queued line with one write and one fdatasync. */
  private async flush(): Promise<void> {
    this.flushScheduled = false;
    const batch = this.pending;
    this.pending = [];
    try {
      await this.catchUp();
      await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
      const fh = await open(this.path, 'a', 0o600);
      try {
        const fresh = (await fh.stat()).size === 0;
        await fh.write(`${fresh ? HEADER : ''}${batch.map((p) => p.line).join('')}`);
        await fh.datasync();
      } finally {
        await fh.close();
      }
      // Reads back our lines and any another process appended meanwhile, in file order.
      await this.catchUp();
      if (this.deadLines >= COMPACT_MIN_DEAD && this.deadLines > COMPACT_RATIO * this.records.size)
        await this.compact();
      for (const p of batch) p.done();
    } catch (error) {
      for (const p of batch) p.fail(error);
    }
  }

  /** Applies lines appended since the last read (by this process or another), or reads it all. */
  private async catchUp(): Promise<void> {
    let info: Stats;
    try {
      info = await stat(this.path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      this.reset();
      return;
    }
    if (info.ino !== this.inode || info.size < this.applied) {
      // Another process compacted it (a new file renamed over the log), or it was truncated.
      this.reset();
      this.inode = info.ino;
    }
    const size = info.size;
    if (size === this.applied) return;
    const from = this.applied;
    const fh = await open(this.path, 'r');
    let read: Buffer;
    try {
      const buffer = Buffer.alloc(size - from);
      const { bytesRead } = await fh.read(buffer, 0, buffer.length, from);
      read = buffer.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
    const start = read.toString('utf8', 0, HEADER.length);
    // A file that is not a log, unless its header is still being written.
    if (from === 0 && start !== HEADER && !HEADER.startsWith(start)) {
      await this.migrate(read.toString('utf8'));
      return;
    }
    // Only whole lines: a line still being appended is read on the next catch-up.
    const end = read.lastIndexOf(0x0a) + 1;
    this.applied = from + end;
    for (const raw of read.subarray(0, end).toString('utf8').split('\n')) {
      if (raw === '' || raw === HEADER_LINE) continue;
      try {
        this.apply(JSON.parse(raw) as LogLine);
      } catch {
        // A damaged or torn line costs at most a fresh upload; never refuse to send because of it.
        this.deadLines++;
      }
    }
  }

  private apply(line: LogLine): void {
    if ('set' in line && typeof line.set === 'string' && line.record) {
      if (this.records.has(line.set)) this.deadLines++;
      this.records.set(line.set, line.record);
    } else if ('remove' in line && typeof line.remove === 'string') {
      if (this.records.delete(line.remove)) this.deadLines++;
      this.deadLines++;
    } else {
      this.deadLines++;
    }
  }

  private reset(): void {
    this.records.clear();
    this.deadLines = 0;
    this.applied = 0;
    this.inode = -1;
  }

  /**
   * A file that does not start with the header: the earlier format (one JSON object holding every
   * record) is taken over; anything else is damage. Either way it is rewritten as a log.
   */
  private async migrate(text: string): Promise<void> {
    this.reset();
    try {
      const parsed = JSON.parse(text) as { version?: unknown; records?: unknown };
      if (parsed.version === 1 && parsed.records && typeof parsed.records === 'object') {
        for (const [key, record] of Object.entries(parsed.records as Record<string, ResumeRecord>))
          this.records.set(key, record);
      }
    } catch {
      // Damaged: start afresh (see above).
    }
    await this.compact();
  }

  /** Rewrites the live records to a temp file and renames it over the log. */
  private async compact(): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
    const temp = `${this.path}.${process.pid}.${Date.now()}.tmp`;
    let text = HEADER;
    for (const [key, record] of this.records) text += `${JSON.stringify({ set: key, record })}\n`;
    const fh = await open(temp, 'wx', 0o600);
    try {
      await fh.writeFile(text);
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await rename(temp, this.path);
    } catch (error) {
      await unlink(temp).catch(() => undefined);
      throw error;
    }
    this.applied = Buffer.byteLength(text);
    this.inode = (await stat(this.path)).ino;
    this.deadLines = 0;
  }
}
