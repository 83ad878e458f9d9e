/**
 * The local-disk store, the embedded default. Data directory layout:
 *
 *   <dir>/uploads/<id>.part     the upload's bytes, preallocated to the full size at create and
 *                               written at offsets (never appended); <id> is 32 lowercase hex
 *   <dir>/uploads/<id>.journal  chunk records + SYNC/BOOT marks (see journal.ts)
 *   <dir>/uploads/<id>.json     metadata: UploadInfo (sha256 of the secret, never the secret),
 *                               plus `completion` once completed. Replaced atomically: written to
 *                               <id>.json.tmp, fsynced, renamed over, directory fsynced.
 *   <dir>/files/<id>/<name>     completed files; <name> is the sanitized client name, and the
 *                               per-upload directory keeps equal names apart. Moved there by
 *                               rename from uploads/<id>.part, never copied.
 *
 * A damaged upload (a journal that fails the rule in journal.ts) is never opened, cut or expired:
 * its files stay as found for the operator, who removes them (DELETE /uploads/:id) when done.
 * Damaged metadata (an <id>.json that does not parse as a MetaFile of that id, or a missing
 * <id>.json next to an <id>.journal) makes readState throw UPLOAD_DAMAGED: without it the secret
 * hash and sizes are unknown, so HTTP answers 404 and the operator removes the files by hand.
 * A missing <id>.json with no journal is an OPEN interrupted before its metadata was written: it
 * was never answered, nobody holds the id, and it is unknown (NOT_FOUND). The journal is only
 * created after the metadata is durable, and removal deletes the metadata last, so a journal
 * without metadata never comes from a crash.
 *
 * A completed upload keeps its <id>.json (with `completion`) until the TTL, so RESUME + COMPLETE
 * after a lost RESULT gets the same RESULT; its .part and .journal are gone by then.
 * Completion order: fsync data, write the json with `completion`, rename the file, fsync both
 * directories, unlink the journal. A crash in between is repaired by readState (a completed json
 * whose .part still exists finishes the rename).
 *
 * Nothing a client sends becomes a path except through `sanitizeName`, and ids are checked to be
 * 32 hex digits before any path is built from them.
 */
import { spawn } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, rm, stat, statfs, unlink, type FileHandle } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Errors, ProtocolError, loadHasher, type Hasher } from '../../protocol/index.js';
import { Journal, parseJournal } from './journal.js';
import { sanitizeName } from './names.js';
import type { ChunkRecord, CompletionInfo, StoredUpload, UploadHandle, UploadInfo, UploadStore, UploadSummary } from './types.js';

export interface DiskStoreOptions {
  /** Data directory (created if missing). */
  readonly dir: string;
  /**
   * Reserve real blocks at create with util-linux `fallocate` (when installed) so a full disk is
   * found at OPEN, not at 97%. Default true. Without it the file is only sized (sparse).
   */
  readonly preallocate?: boolean;
  /** Kernel boot id source; tests override it to simulate a reboot. Default /proc/sys/kernel/random/boot_id. */
  readonly bootId?: () => string;
}

interface MetaFile {
  readonly version: 1;
  readonly info: UploadInfo;
  readonly completion?: CompletionInfo;
}

const ID_PATTERN = /^[0-9a-f]{32}$/;

function checkId(id: string): void {
  // Defense in depth: the session parses ids from bytes, but a path is only ever built from hex.
  if (!ID_PATTERN.test(id)) throw new Error(`not an upload id: ${JSON.stringify(id)}`);
}

function readBootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    // No boot id (not Linux): every restart counts as the same boot, i.e. process-crash safety only.
    return 'unknown';
  }
}

/** Enough of a MetaFile for the upload `id` that nothing downstream trips over it. */
function isMetaFile(value: unknown, id: string): value is MetaFile {
  const meta = value as Partial<MetaFile> | null | undefined;
  const info = meta?.info as Partial<UploadInfo> | undefined;
  return typeof meta === 'object' && meta !== null && meta.version === 1 && typeof info === 'object' && info !== null
    && info.id === id && typeof info.secretHash === 'string' && /^[0-9a-f]{64}$/.test(info.secretHash)
    && Number.isSafeInteger(info.fileSize) && info.fileSize! >= 0 && Number.isSafeInteger(info.chunkSize) && info.chunkSize! > 0
    && typeof info.name === 'string' && typeof info.createdAt === 'number'
    && (info.client === undefined || typeof info.client === 'string')
    && (meta.completion === undefined || (typeof meta.completion === 'object' && meta.completion !== null
      && /^[0-9a-f]{16}$/.test(String(meta.completion.digest)) && typeof meta.completion.location === 'string'));
}

function isErrno(error: unknown, code: string): boolean {
  return typeof error === 'object' && error !== null && (error as NodeJS.ErrnoException).code === code;
}

async function fsyncDir(path: string): Promise<void> {
  const handle = await open(path, fsConstants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Run util-linux `fallocate -l <size> <path>`; 'unavailable' when the tool or the filesystem can't. */
function fallocate(path: string, size: number): Promise<'ok' | 'nospace' | 'unavailable'> {
  return new Promise((resolve) => {
    let stderr = '';
    const child = spawn('fallocate', ['-l', String(size), path], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.on('error', () => resolve('unavailable'));
    // Null when the spawn itself failed (EMFILE, ENOENT...): 'error' above answers then.
    child.stderr?.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.on('close', (code) => {
      if (code === 0) resolve('ok');
      else resolve(/no space/i.test(stderr) ? 'nospace' : 'unavailable');
    });
  });
}

export class DiskStore implements UploadStore {
  readonly dir: string;
  private readonly uploadsDir: string;
  private readonly filesDir: string;
  private readonly preallocate: boolean;
  private readonly bootIdSource: () => string;
  private hasher!: Hasher;
  private bootHash = 0n;

  constructor(options: DiskStoreOptions) {
    this.dir = options.dir;
    this.uploadsDir = join(options.dir, 'uploads');
    this.filesDir = join(options.dir, 'files');
    this.preallocate = options.preallocate ?? true;
    this.bootIdSource = options.bootId ?? readBootId;
  }

  async init(): Promise<void> {
    await mkdir(this.uploadsDir, { recursive: true });
    await mkdir(this.filesDir, { recursive: true });
    this.hasher = await loadHasher();
    this.bootHash = this.hasher.h64(new TextEncoder().encode(this.bootIdSource()));
  }

  private path(id: string, ext: 'part' | 'journal' | 'json'): string {
    checkId(id);
    return join(this.uploadsDir, `${id}.${ext}`);
  }

  async freeSpace(): Promise<number> {
    const s = await statfs(this.dir);
    return s.bavail * s.bsize;
  }

  private async writeMeta(meta: MetaFile): Promise<void> {
    const target = this.path(meta.info.id, 'json');
    const temp = `${target}.tmp`;
    const handle = await open(temp, 'w');
    try {
      await handle.writeFile(JSON.stringify(meta));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, target);
    await fsyncDir(this.uploadsDir);
  }

  /** The metadata, undefined when there is none, UPLOAD_DAMAGED when it is unreadable. */
  private async readMeta(id: string): Promise<MetaFile | undefined> {
    const path = this.path(id, 'json');
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if (isErrno(error, 'ENOENT')) return undefined;
      throw error;
    }
    let meta: unknown;
    try {
      meta = JSON.parse(text);
    } catch {
      meta = undefined;
    }
    // Written atomically (temp + fsync + rename), so no crash leaves it torn: this is damage, and
    // a retryable error would make the client retry forever.
    if (!isMetaFile(meta, id)) throw new ProtocolError(Errors.UPLOAD_DAMAGED, `metadata ${path} is unreadable (${text.length} bytes)`);
    return meta;
  }

  async create(info: UploadInfo): Promise<UploadHandle> {
    const partPath = this.path(info.id, 'part');
    const data = await open(partPath, 'wx');
    // The reservation runs in a child process (~10 ms here, about half of creating an upload);
    // sizing the file, the metadata and the journal are written meanwhile. Nothing is acked
    // before all of them are done, so OPEN still fails when the space cannot be reserved.
    const reserved = info.fileSize > 0 && this.preallocate ? fallocate(partPath, info.fileSize) : Promise.resolve('ok' as const);
    let handle: UploadHandle | undefined;
    try {
      const setUp = (async () => {
        await data.truncate(info.fileSize);
        await this.writeMeta({ version: 1, info });
        handle = await this.openHandle(info, data);
      })();
      // Both settle before any clean-up: the child creates the file if it is missing, so removing
      // it while the child still runs could leave a stray file behind.
      const [reservation, setUpResult] = await Promise.allSettled([reserved, setUp]);
      if (setUpResult.status === 'rejected') throw setUpResult.reason;
      if (reservation.status === 'fulfilled' && reservation.value === 'nospace') {
        throw new ProtocolError(Errors.INSUFFICIENT_STORAGE, 'not enough free space to reserve the file');
      }
    } catch (error) {
      if (handle) await handle.close().catch(() => undefined);
      else await data.close().catch(() => undefined);
      await rm(partPath, { force: true });
      await rm(this.path(info.id, 'journal'), { force: true });
      await rm(this.path(info.id, 'json'), { force: true });
      await rm(`${this.path(info.id, 'json')}.tmp`, { force: true });
      throw error;
    }
    return handle!;
  }

  async open(id: string): Promise<UploadHandle> {
    const meta = await this.readMeta(id);
    if (!meta || meta.completion) throw new Error(`upload ${id} is not open for writing`);
    const data = await open(this.path(id, 'part'), 'r+');
    return this.openHandle(meta.info, data);
  }

  private async openHandle(info: UploadInfo, data: FileHandle): Promise<UploadHandle> {
    try {
      const { journal } = await Journal.open(this.path(info.id, 'journal'), this.hasher, this.bootHash, () => data.datasync());
      return new DiskUpload(this, info, data, journal);
    } catch (error) {
      await data.close().catch(() => undefined);
      throw error;
    }
  }

  async readState(id: string): Promise<StoredUpload | undefined> {
    const meta = await this.readMeta(id);
    if (!meta) {
      // See the header: a journal without metadata is damage, a lone .part an unanswered OPEN.
      const journal = await stat(this.path(id, 'journal')).catch(() => undefined);
      if (journal) throw new ProtocolError(Errors.UPLOAD_DAMAGED, `metadata of upload ${id} is missing but its journal exists`);
      return undefined;
    }
    if (meta.completion) {
      await this.repairCompletion(meta.info, meta.completion);
      return { info: meta.info, chunks: [], completion: meta.completion, updatedAt: meta.completion.completedAt };
    }
    const journalPath = this.path(id, 'journal');
    let bytes: Uint8Array = new Uint8Array(0);
    let updatedAt = meta.info.createdAt;
    try {
      bytes = await readFile(journalPath);
      updatedAt = Math.max(updatedAt, (await stat(journalPath)).mtimeMs);
    } catch (error) {
      if (!isErrno(error, 'ENOENT')) throw error;
    }
    const { chunks, damage } = parseJournal(this.hasher, bytes, this.bootHash);
    if (damage) return { info: meta.info, chunks: [], updatedAt, damaged: `journal ${journalPath}: ${damage}` };
    return { info: meta.info, chunks, updatedAt };
  }

  /** Finish a completion a crash interrupted between the json write and the rename. */
  private async repairCompletion(info: UploadInfo, completion: CompletionInfo): Promise<void> {
    try {
      await stat(this.path(info.id, 'part'));
    } catch {
      return;
    }
    await mkdir(join(this.filesDir, info.id), { recursive: true });
    await rename(this.path(info.id, 'part'), completion.location);
    await rm(this.path(info.id, 'journal'), { force: true });
  }

  async remove(id: string): Promise<void> {
    const meta = await this.readMeta(id);
    // Record last: a crash midway leaves a record whose data is gone, which the sweeper removes again.
    await rm(this.path(id, 'part'), { force: true });
    await rm(this.path(id, 'journal'), { force: true });
    if (meta?.completion === undefined) await rm(join(this.filesDir, id), { recursive: true, force: true }).catch(() => undefined);
    await rm(this.path(id, 'json'), { force: true });
    await rm(`${this.path(id, 'json')}.tmp`, { force: true });
  }

  async list(): Promise<UploadSummary[]> {
    const out: UploadSummary[] = [];
    for (const entry of await readdir(this.uploadsDir)) {
      const id = entry.endsWith('.json') ? entry.slice(0, -5) : '';
      if (!ID_PATTERN.test(id)) continue;
      const state = await this.readState(id).catch(() => undefined);
      if (!state) continue;
      out.push({
        id,
        completed: state.completion !== undefined,
        updatedAt: state.updatedAt,
        fileSize: state.info.fileSize,
        empty: state.completion === undefined && state.chunks.length === 0,
        ...(state.info.client !== undefined ? { client: state.info.client } : {}),
        ...(state.damaged ? { damaged: true } : {}),
      });
    }
    return out;
  }

  /** Used by DiskUpload.finish. */
  async complete(info: UploadInfo, data: FileHandle, journal: Journal, digest: string): Promise<CompletionInfo> {
    await data.sync();
    const targetDir = join(this.filesDir, info.id);
    const completion: CompletionInfo = { digest, location: join(targetDir, sanitizeName(info.name)), completedAt: Date.now() };
    await mkdir(targetDir, { recursive: true });
    await this.writeMeta({ version: 1, info, completion });
    await data.close();
    await journal.close();
    await rename(this.path(info.id, 'part'), completion.location);
    await fsyncDir(targetDir);
    await fsyncDir(this.uploadsDir);
    await unlink(this.path(info.id, 'journal')).catch(() => undefined);
    return completion;
  }
}

class DiskUpload implements UploadHandle {
  private closed = false;

  constructor(
    private readonly store: DiskStore,
    readonly info: UploadInfo,
    private readonly data: FileHandle,
    private readonly journal: Journal,
  ) {}

  async writeAt(bytes: Uint8Array, position: number): Promise<void> {
    let done = 0;
    // A positional write can be short (rare, e.g. a signal); finish it from where it stopped.
    while (done < bytes.byteLength) {
      const { bytesWritten } = await this.data.write(bytes, done, bytes.byteLength - done, position + done);
      if (bytesWritten <= 0) throw new Error('positional write made no progress');
      done += bytesWritten;
    }
  }

  recordChunks(chunks: readonly ChunkRecord[], sync: boolean): Promise<void> {
    return this.journal.appendChunks(chunks, sync);
  }

  syncData(): Promise<void> {
    return this.data.datasync();
  }

  async checkpoint(): Promise<void> {
    const covered = this.journal.count;
    await this.data.datasync();
    await this.journal.appendSync(covered);
  }

  rollbackToCheckpoint(): Promise<readonly ChunkRecord[]> {
    return this.journal.rollback();
  }

  async finish(digest: string): Promise<CompletionInfo> {
    this.closed = true;
    return this.store.complete(this.info, this.data, this.journal, digest);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.checkpoint();
    } finally {
      await this.journal.close().catch(() => undefined);
      await this.data.close().catch(() => undefined);
    }
  }
}
