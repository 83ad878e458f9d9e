/**
 * The local-disk store, the embedded default. Data directory layout:
 *
 *   <dir>/uploads/<id>.part     the upload's bytes, sized to the full size at create (sparse; the
 *                               size is counted against the free space, see `preallocate`) and
 *                               written at offsets (never appended); <id> is 32 lowercase hex
 *   <dir>/uploads/<id>.journal  chunk records + SYNC/BOOT marks, then zero-filled slots reserved
 *                               for the records still to come (see journal.ts)
 *   <dir>/uploads/<id>.json     metadata: UploadInfo (sha256 of the secret, never the secret),
 *                               plus `completion` once completed, as JSON lines: the last line
 *                               that is a whole record of this upload is the metadata. Created at
 *                               its name (O_EXCL) with one line at create, its contents fsynced
 *                               before the upload's first SYNC mark (not before ACCEPT, see
 *                               below); the completion appends a line with `completion` and
 *                               fdatasyncs it (a torn last line is passed over: the completion did
 *                               not happen). A rare rewrite (instant upload, a relocated
 *                               completion) replaces it atomically: <id>.json.tmp, fsync, rename.
 *                               An upload stored from its OPEN (SPEC.md 16.11) has no metadata
 *                               until it completes, and then its <id>.json is a hard link to a
 *                               ledger shared with other such uploads' completed records (the
 *                               last record of this upload's id wins there too).
 *   <dir>/uploads/<random>.ledger  the ledger such records are appended to now
 *                               (completion-ledger.ts); a full one loses this name and lives on
 *                               through its uploads' links.
 *   <dir>/files/<id>/<name>     completed files; <name> is the sanitized client name, and the
 *                               per-upload directory keeps equal names apart. Moved there by
 *                               rename from uploads/<id>.part, never copied.
 *   <dir>/files/<id>/<a>/<b>/<name>  a file uploaded from a folder (metadata `relativePath`
 *                               `a/b/name`): its folders kept, each component sanitized, `..`
 *                               dropped (names.ts safeRelativePath).
 *   <dir>/files/<batch>/<a>/<b>/<name>  the same for an upload of a batch (UploadInfo.batch: the
 *                               uploads with a relative path on one bigup.2 connection): the
 *                               batch's files share their folders; a place that is taken sends
 *                               the file to files/<id>/ (delivered-files.ts). The metadata's
 *                               `completion.location` says where each file is. Copying the
 *                               contents of every files/<x>/ into one folder rebuilds the trees.
 *   <dir>/content/<size>-<chunk size>/<client scope>/<digest>  delivered content: hints for
 *                               instant upload (SPEC.md 16.10), one per client and content, each a
 *                               hard link to the upload's completed metadata (no file of its
 *                               own), unflushed (disk-content.ts); none with instantUpload off;
 *                               an instant upload is a hard link to the found file (a clone or a
 *                               local copy across filesystems), never bytes over the network.
 *
 * A damaged upload (a journal that fails the rule in journal.ts) is never opened, cut or expired:
 * its files stay as found for the operator, who removes them (DELETE /uploads/:id) when done.
 * Damaged metadata (an <id>.json that does not parse as a MetaFile of that id, or is missing)
 * next to a journal that trusts a chunk (journal.ts) makes readState throw UPLOAD_DAMAGED: without
 * it the secret hash and sizes are unknown, so HTTP answers 404 and the operator removes the files
 * by hand. Without such a journal it is unknown (NOT_FOUND): an OPEN never answered (a lone .part,
 * removed at the next start; or metadata a crash cut short before the journal was made), or one a
 * power loss caught before its first SYNC mark (metadata or .part lost, or metadata cut short).
 * An upload stored from its OPEN has neither metadata nor journal until its completion: a crash
 * before it leaves a lone .part. That is the only way a crash leaves these: create writes the
 * .part, then the metadata unflushed, then the journal, and
 * flushes none of their entries; before the upload's first SYNC mark the metadata's contents
 * and the entries (one fsync of uploads/) are flushed (so a mark that survives finds them), the
 * same boot keeps the page cache (every record trusted, metadata whole once the journal exists),
 * and removal deletes the metadata last.
 *
 * A completed upload keeps its <id>.json (with `completion`) until the TTL, so RESUME + COMPLETE
 * after a lost RESULT gets the same RESULT; its .part and .journal are gone by then.
 * Completion order: at once, fdatasync data (noted in the journal's memory as covering every
 * record, so a failure further on rolls nothing back), make files/<id or batch> (and the relative
 * path's folders) and fsync their parents (a batch's folders once, delivered-files.ts), and fsync
 * uploads/ if the upload's entries were never flushed (a small file's first flush); once all
 * three succeeded, append the completed record to <id>.json and fdatasync it (the commit; for an
 * upload stored from its OPEN: the record appended to the ledger and fdatasynced alongside the data
 * flush, then <id>.json linked to it and uploads/ fsynced, completion-ledger.ts), move
 * the file (rename; link + unlink into a batch's folder, which never replaces a file there),
 * fsync the folder it landed in, unlink the journal. (The record used to be a temp file renamed
 * over the metadata: one more inode made and one freed per upload, and on ext4 without a journal
 * every inode freed in the last seconds is scanned past by each new one, issue 16.)
 * A crash in between is
 * repaired by readState (a completed json whose .part still exists finishes the rename).
 *
 * Nothing a client sends becomes a path except through `sanitizeName`, and ids are checked to be
 * 32 hex digits before any path is built from them.
 *
 * Nothing planted in the data directory redirects a write: every file is created with
 * O_CREAT|O_EXCL|O_NOFOLLOW (an existing name, a symlink included, is never opened for writing
 * through), existing files are opened with O_NOFOLLOW, and a directory under files/ (per upload
 * or batch) is made with a plain mkdir and checked with lstat before the completed file is moved
 * into it (a symlink inside a batch's folder sends the file to its own folder instead). A
 * symlink found where a store file or directory belongs is removed (the link, never its target).
 * Files are created 0600 and directories 0700 unless `groupReadable` is set (0640 / 0750); the
 * process umask can only remove bits.
 *
 * Directory entries are made durable: the uploads directory is fsynced before an upload's first
 * SYNC mark (with its .part, metadata and journal in it; in `--durable` mode that is before the
 * first ACK), before a completion's commit where the upload's entries were never flushed, after a
 * metadata file's rename and after a ledger link, every folder's parent after the folder is made,
 * and the folder a completed file lands in after the move, so no ACK that claims to outlive a power
 * loss rests on a file a power loss could unlink. A directory whose fsync failed fails every later
 * sync of it until the process restarts (directory-syncs.ts).
 *
 * One server process per data directory: a store's start removes what it finds no upload will
 * claim (lone .part files, the names of open ledgers), which another live process may be using.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import {
  chmod,
  copyFile,
  link,
  lstat,
  mkdir,
  open,
  readdir,
  rename,
  rm,
  stat,
  statfs,
  unlink,
  type FileHandle,
} from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { safeRelativePath } from './names.js';
import { dirname, join } from 'node:path';
import {
  Errors,
  ProtocolError,
  chunkCount,
  loadHasher,
  type Hasher,
} from '../../protocol/index.js';
import { Journal, RECORD_BYTES, journalSlotsFor, parseJournal, type ChunkLog } from './journal.js';
import { UnjournaledChunks } from './unjournaled-chunks.js';
import { DiskContentIndex } from './disk-content.js';
import { readNoFollow } from './read-no-follow.js';
import { lastRecord } from './json-lines.js';
import { DirectorySyncs } from './directory-syncs.js';
import { CompletionLedger } from './completion-ledger.js';
import { DeliveredFiles, type Place } from './delivered-files.js';
import { isErrno, isNoHardLink, isOutOfSpace } from './errno.js';
import type {
  BackendState,
  ChunkRecord,
  CompletionInfo,
  CreateIntent,
  StoredUpload,
  UploadHandle,
  UploadInfo,
  UploadStore,
  UploadSummary,
  ListPage,
  ContentKey,
  ContentRef,
} from './types.js';

/** Where the store says things worth an operator's attention (Fastify's logger fits). */
export interface DiskStoreLogger {
  info(message: string): void;
  warn(message: string): void;
}

export interface DiskStoreOptions {
  /** Data directory (created if missing). */
  readonly dir: string;
  /**
   * Hold each unfinished upload's full size against the free space, so a disk that cannot take
   * an upload refuses it at OPEN (INSUFFICIENT_STORAGE), not at 97%. Default true.
   *
   * What this does and does not do: the data file is sized with ftruncate (sparse, instant) and
   * no blocks are reserved with the filesystem: Node has no fallocate(2), no maintained native
   * binding exists, and a process per upload cost half the time of an OPEN and was silently
   * skipped where the tool was missing. Instead `freeSpace()` reports the filesystem's free space
   * minus the bytes every unfinished upload in this store may still write (its size minus the
   * blocks its file already has), and `create` checks and counts a new upload under one lock, so
   * concurrent OPENs cannot overcommit (the free space is measured at most once a second, see
   * `freeSpace`). Something else writing to the same filesystem can still
   * fill it: then a data write fails with STORAGE_FULL and every acked chunk stays acked (the
   * journal's own space is reserved, see journal.ts). Logged once at `init`.
   * false: no accounting; OPEN only compares the size with the free space at that moment.
   */
  readonly preallocate?: boolean;
  /**
   * Free inodes below which `freeSpace` refuses new uploads (INSUFFICIENT_STORAGE): a folder of
   * empty files fills a disk's inodes long before its bytes. Default 10,000; 0: not looked at.
   * Filesystems that report no inode count (some network ones) are not looked at either.
   */
  readonly minFreeInodes?: number;
  /**
   * Let the group read completed files and list the store's directories: files 0640 and
   * directories 0750 instead of 0600 and 0700. Default false. Metadata (sha256 of the resume
   * secret) and journals get the same modes; nothing is ever world-accessible.
   */
  readonly groupReadable?: boolean;
  /** Told once at `init` how space is accounted, and of symlinks removed. Default: silent. */
  readonly logger?: DiskStoreLogger;
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
  return (
    typeof meta === 'object' &&
    meta !== null &&
    meta.version === 1 &&
    typeof info === 'object' &&
    info !== null &&
    info.id === id &&
    typeof info.secretHash === 'string' &&
    /^[0-9a-f]{64}$/.test(info.secretHash) &&
    typeof info.fileSize === 'number' &&
    Number.isSafeInteger(info.fileSize) &&
    info.fileSize >= 0 &&
    typeof info.chunkSize === 'number' &&
    Number.isSafeInteger(info.chunkSize) &&
    info.chunkSize > 0 &&
    typeof info.name === 'string' &&
    (info.originalName === undefined || typeof info.originalName === 'string') &&
    typeof info.createdAt === 'number' &&
    (info.client === undefined || typeof info.client === 'string') &&
    (info.batch === undefined || (typeof info.batch === 'string' && ID_PATTERN.test(info.batch))) &&
    (info.tus === undefined || info.tus === true) &&
    (meta.completion === undefined ||
      (typeof meta.completion === 'object' &&
        meta.completion !== null &&
        /^[0-9a-f]{16}$/.test(String(meta.completion.digest)) &&
        typeof meta.completion.location === 'string'))
  );
}

const { O_RDONLY, O_RDWR, O_WRONLY, O_APPEND, O_CREAT, O_EXCL, O_NOFOLLOW } = fsConstants;
/** Open flags for a file the store creates: never an existing name, never through a symlink. */
const CREATE_FLAGS = O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW;

/** How long a measured free space is reused by `DiskStore.freeSpace` (1 s). */
export const FREE_SPACE_REUSE_MS = 1000;

/**
 * A symlink where an upload's file belongs: someone tampered with the data directory. The
 * upload is treated as damaged (never written through, kept for the operator).
 */
function planted(path: string): ProtocolError {
  return new ProtocolError(
    Errors.UPLOAD_DAMAGED,
    `${path} is a symlink: the data directory was tampered with`,
  );
}

export class DiskStore implements UploadStore {
  readonly retractsChunks = true;
  readonly dir: string;
  private readonly uploadsDir: string;
  private readonly filesDir: string;
  /** content/: completed content by key (instant upload hints, disk-content.ts). */
  private readonly contentDir: string;
  private readonly content: DiskContentIndex;
  /** Completed records of uploads stored from their OPEN (completion-ledger.ts). */
  private readonly ledger: CompletionLedger;
  private readonly preallocate: boolean;
  private readonly minFreeInodes: number;
  private readonly fileMode: number;
  private readonly dirMode: number;
  private readonly logger: DiskStoreLogger | undefined;
  private readonly bootIdSource: () => string;
  private hasher!: Hasher;
  private bootHash = 0n;
  /** Unfinished uploads whose size counts against the free space (preallocate): id -> file size. */
  private readonly commitments = new Map<string, number>();
  /** fsyncs of the shared directories (uploads/, files/), group-committed across uploads. */
  private readonly directorySyncs = new DirectorySyncs();
  /** False once content could be neither linked nor cloned (linkContent): nothing is found. */
  private sharesContent = true;
  /** Repairs of interrupted completions in progress, by upload id (see `repairCompletion`). */
  private readonly repairs = new Map<string, Promise<CompletionInfo>>();
  /**
   * Uploads whose completion runs in this process: between its record and its move, a completed
   * record next to the data file is that completion's, not one a crash interrupted, and a repair
   * would move the file from under it.
   */
  private readonly completing = new Set<string>();
  /** Where completed files land under files/ (delivered-files.ts). */
  private readonly delivered: DeliveredFiles;
  /** Serializes the space check and the commitment of concurrent creates. */
  private admission: Promise<unknown> = Promise.resolve();
  /** The last measured free space, net of commitments admitted since (see `freeSpace`). */
  private space:
    { measuredAt: number; free: Promise<number>; freeInodes: Promise<number> } | undefined;

  constructor(options: DiskStoreOptions) {
    this.dir = options.dir;
    this.uploadsDir = join(options.dir, 'uploads');
    this.filesDir = join(options.dir, 'files');
    this.contentDir = join(options.dir, 'content');
    this.preallocate = options.preallocate ?? true;
    this.minFreeInodes = options.minFreeInodes ?? 10_000;
    this.fileMode = options.groupReadable ? 0o640 : 0o600;
    this.dirMode = options.groupReadable ? 0o750 : 0o700;
    this.logger = options.logger;
    this.content = new DiskContentIndex(
      this.contentDir,
      this.filesDir,
      this.fileMode,
      this.dirMode,
    );
    this.ledger = new CompletionLedger(this.uploadsDir, this.fileMode);
    this.bootIdSource = options.bootId ?? readBootId;
    this.delivered = new DeliveredFiles(
      this.dir,
      this.filesDir,
      this.dirMode,
      this.directorySyncs,
      this.logger,
    );
  }

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: this.dirMode });
    for (const dir of [this.uploadsDir, this.filesDir, this.contentDir]) {
      await mkdir(dir, { recursive: true, mode: this.dirMode });
      const found = await lstat(dir);
      if (!found.isDirectory())
        throw new Error(`${dir} must be a directory, not a symlink or a file`);
      // Ours alone: tighten what an older version (or umask) left. A directory we may not chmod
      // (another owner) is left as it is, with a word to the operator.
      if ((found.mode & 0o777) !== this.dirMode) {
        await chmod(dir, this.dirMode).catch((error: unknown) => {
          this.logger?.warn(
            `disk store: could not set mode ${this.dirMode.toString(8)} on ${dir}: ${(error as Error).message}`,
          );
        });
      }
    }
    this.hasher = await loadHasher();
    this.bootHash = this.hasher.h64(new TextEncoder().encode(this.bootIdSource()));
    // One listing for both clean-ups (names only; uploads/ may hold 100k completed records).
    const names = await readdir(this.uploadsDir);
    await this.ledger.removeLeftNames(names);
    await this.removeUnknownData(new Set(names));
    if (this.preallocate) {
      // Unfinished uploads only (those with a data file in uploads/): start-up reads O(active)
      // records, however many completion records the TTL keeps (100k completed uploads once kept
      // a server from starting within Fastify's plugin timeout). Reading one that a crash cut
      // between its completed record and its move finishes the move.
      for (const summary of await this.list({ unfinished: true })) {
        if (summary.completed || summary.damaged) continue;
        const meta = await this.readMeta(summary.id).catch(() => undefined);
        if (meta) this.commitments.set(summary.id, meta.info.fileSize);
      }
      this.logger?.info(
        "disk store: disk blocks are not reserved at OPEN (Node has no fallocate); each unfinished upload's size is counted against the free space instead",
      );
    } else {
      this.logger?.info(
        "disk store: preallocate is off: OPEN compares an upload's size with the free space at that moment only",
      );
    }
  }

  /**
   * Data files no upload will ever claim, removed at start (nothing runs yet): a .part without
   * metadata and without a journal that trusts a chunk is an OPEN a crash cut before its answer
   * (an upload stored from its OPEN has metadata only once completed), unknown to readState and
   * so never listed for the sweeper.
   */
  private async removeUnknownData(names: ReadonlySet<string>): Promise<void> {
    for (const name of names) {
      if (!name.endsWith('.part')) continue;
      const id = name.slice(0, -'.part'.length);
      if (!ID_PATTERN.test(id) || names.has(`${id}.json`)) continue;
      if (await this.journalTrustsAChunk(id)) continue;
      this.logger?.info(`disk store: removed ${name}, an upload a crash cut before its answer`);
      await rm(this.path(id, 'part'), { force: true });
      await rm(this.path(id, 'journal'), { force: true });
    }
  }

  /** fdatasyncs of completion ledgers issued (tests). */
  get ledgerFlushes(): number {
    return this.ledger.flushesIssued;
  }

  /**
   * For /healthz: not ok once a directory fsync failed (directory-syncs.ts), since from then on
   * uploads that need that directory flushed fail until the process restarts. No path in the
   * answer (/healthz may be public); the failed calls' errors, in the log, name the directory.
   */
  health(): Promise<{ store: BackendState; registry: BackendState }> {
    const failure = this.directorySyncs.failure;
    return Promise.resolve({
      store: failure ? { ok: false, kind: 'disk', detail: failure } : { ok: true, kind: 'disk' },
      registry: { ok: true, kind: 'memory' },
    });
  }

  /** Close the ledger of completed records (its name goes; what it holds stays linked). */
  async close(): Promise<void> {
    await this.ledger.close();
  }

  private path(id: string, ext: 'part' | 'journal' | 'json'): string {
    checkId(id);
    return join(this.uploadsDir, `${id}.${ext}`);
  }

  /**
   * Free space net of what unfinished uploads may still write. Measuring it costs a statfs and a
   * stat of every unfinished upload's file (O(active)), so a measurement is reused for
   * FREE_SPACE_REUSE_MS, with every upload admitted since subtracted from it (`admit`): concurrent
   * OPENs still cannot overcommit, our own writes change the measured and the committed bytes
   * alike, and only other writers to the filesystem are seen up to that much later. Measured once
   * per OPEN, it was 2 statfs + 2 x (uploads in flight) stats, serialized, on every OPEN (issue 16).
   */
  freeSpace(): Promise<number> {
    const now = Date.now();
    if (this.space && now - this.space.measuredAt < FREE_SPACE_REUSE_MS) return this.space.free;
    const measured = (async () => {
      const s = await statfs(this.dir);
      if (s.files > 0 && s.ffree < this.minFreeInodes)
        throw new ProtocolError(
          Errors.INSUFFICIENT_STORAGE,
          `the data directory's filesystem has ${s.ffree} free inodes, fewer than the ${this.minFreeInodes} kept free (minFreeInodes)`,
        );
      return {
        bytes: s.bavail * s.bsize - (await this.unwrittenCommitments()),
        inodes: s.files > 0 ? s.ffree : Number.POSITIVE_INFINITY,
      };
    })();
    const free = measured.then((m) => m.bytes);
    const freeInodes = measured.then((m) => m.inodes);
    freeInodes.catch(() => undefined);
    this.space = { measuredAt: now, free, freeInodes };
    // A failed measurement is not reused.
    free.catch(() => {
      if (this.space?.free === free) this.space = undefined;
    });
    return free;
  }

  /** Count `bytes` and `inodes` just committed against the reused measurement (see `freeSpace`). */
  private subtractFromSpace(bytes: number, inodes: number): void {
    if (!this.space) return;
    const { free, freeInodes } = this.space;
    this.space = {
      ...this.space,
      free: free.then((value) => value - bytes),
      freeInodes: freeInodes.then((value) => value - inodes),
    };
  }

  /** Space came back (an upload removed, a create undone): measure again next time. */
  private forgetSpace(): void {
    this.space = undefined;
  }

  /** Bytes unfinished uploads may still write: size minus the blocks each data file already has. */
  private async unwrittenCommitments(): Promise<number> {
    const pending = await Promise.all(
      [...this.commitments].map(async ([id, size]) => {
        const part = await stat(this.path(id, 'part')).catch(() => undefined);
        return Math.max(0, size - (part ? part.blocks * 512 : 0));
      }),
    );
    return pending.reduce((a, b) => a + b, 0);
  }

  /**
   * Create `path` for writing (O_EXCL, O_NOFOLLOW, the store's mode). A stale or planted entry
   * (a temp file a crash left, a symlink) is removed first when `replace` is set: unlink removes
   * a symlink itself, never its target.
   */
  private async createFile(path: string, replace: boolean): Promise<FileHandle> {
    try {
      return await open(path, CREATE_FLAGS, this.fileMode);
    } catch (error) {
      if (!replace || !isErrno(error, 'EEXIST')) throw error;
      if ((await lstat(path)).isSymbolicLink())
        this.logger?.warn(`disk store: removed a symlink planted at ${path}`);
      await unlink(path);
      return open(path, CREATE_FLAGS, this.fileMode);
    }
  }

  /** Replace the metadata atomically: temp file, fsync, rename, fsync of uploads/. */
  private async writeMeta(meta: MetaFile): Promise<void> {
    const target = this.path(meta.info.id, 'json');
    const handle = await this.createFile(`${target}.tmp`, true);
    try {
      await handle.writeFile(JSON.stringify(meta));
      await handle.sync();
    } finally {
      await handle.close();
    }
    // rename replaces a symlink at `target` itself; it never writes through one.
    await rename(`${target}.tmp`, target);
    await this.directorySyncs.sync(this.uploadsDir);
  }

  /**
   * The completion's commit: the completed record appended to the metadata as a line of its own,
   * and the file fdatasynced (with whatever of its first line was not flushed yet).
   */
  private async appendCompletion(meta: MetaFile): Promise<void> {
    const path = this.path(meta.info.id, 'json');
    let handle: FileHandle;
    try {
      handle = await open(path, O_WRONLY | O_APPEND | O_NOFOLLOW);
    } catch (error) {
      throw isErrno(error, 'ELOOP') ? planted(path) : error;
    }
    try {
      const before = (await handle.stat()).size;
      try {
        await handle.writeFile(`\n${JSON.stringify(meta)}\n`);
        await handle.datasync();
      } catch (error) {
        // Not committed: a record left in the page cache after a failed flush would read as
        // completed (and a retry would answer RESULT) while the disk may never hold it. Cut it
        // off again; if even that fails, the error stands and the upload is left to the repair.
        await handle
          .truncate(before)
          .then(() => handle.datasync())
          .catch(() => undefined);
        throw error;
      }
    } finally {
      await handle.close();
    }
  }

  /**
   * The metadata of a new upload, written at its name (no temp file, no rename: nothing is there
   * to replace, issue 16) and not flushed: `flushMeta` runs before the upload's first SYNC mark
   * (DiskUpload), and until then no acked range outlives a power loss anyway; a small file's first
   * flush is its completion, which replaces the metadata (`writeMeta`). The caller fsyncs
   * uploads/ once for this entry and the journal's. A crash can leave it empty or short only
   * before the journal exists (it is made after this returns) or before the first SYNC mark
   * (after a power loss), which readState reports as unknown, as a missing file (see the header).
   */
  private async writeNewMeta(meta: MetaFile): Promise<void> {
    const handle = await this.createFile(this.path(meta.info.id, 'json'), true);
    try {
      await handle.writeFile(JSON.stringify(meta));
    } finally {
      await handle.close();
    }
  }

  /** A completed record as the upload's new metadata file, flushed (no ledger link possible). */
  private async writeCompletedMeta(meta: MetaFile): Promise<void> {
    const handle = await this.createFile(this.path(meta.info.id, 'json'), true);
    try {
      await handle.writeFile(JSON.stringify(meta));
      await handle.datasync();
    } finally {
      await handle.close();
    }
  }

  /** The metadata, undefined when there is none, UPLOAD_DAMAGED when it is unreadable. */
  private async readMeta(id: string): Promise<MetaFile | undefined> {
    const path = this.path(id, 'json');
    let text: string;
    try {
      text = await readNoFollow(path, 'utf8');
    } catch (error) {
      if (isErrno(error, 'ENOENT')) return undefined;
      if (isErrno(error, 'ELOOP')) throw planted(path);
      throw error;
    }
    // A torn line after the last whole record is an append whose completion never committed.
    // The file may be a ledger shared with other uploads' records (completion-ledger.ts).
    const meta = lastRecord(text, (value): value is MetaFile => isMetaFile(value, id), id);
    if (meta) return meta;
    // The first line is flushed before anything of the upload is trusted, and a replacement is
    // atomic: no crash leaves no whole record. This is damage, and a retryable error would make
    // the client retry forever.
    throw new ProtocolError(
      Errors.UPLOAD_DAMAGED,
      `metadata ${path} is unreadable (${text.length} bytes)`,
    );
  }

  /**
   * Before a new upload's first SYNC mark: its metadata's contents (written unflushed, see
   * `writeNewMeta`) and the directory entries of its files (not flushed at create), so a mark that
   * survives a power loss finds them. The two flushes run at once; both must succeed.
   */
  async flushNewUpload(id: string): Promise<void> {
    await Promise.all([this.flushMeta(id), this.directorySyncs.sync(this.uploadsDir)]);
  }

  /** fsync the metadata's contents (written unflushed at create, see `writeNewMeta`). */
  async flushMeta(id: string): Promise<void> {
    const handle = await open(this.path(id, 'json'), O_RDONLY | O_NOFOLLOW);
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  async create(info: UploadInfo, intent: CreateIntent = {}): Promise<UploadHandle> {
    const unjournaled = intent.completesAtOnce === true;
    const journalBytes = unjournaled
      ? 0
      : journalSlotsFor(chunkCount(info.fileSize, info.chunkSize)) * RECORD_BYTES;
    if (this.preallocate)
      await this.admit(
        info.id,
        info.fileSize + journalBytes,
        info.fileSize,
        // Data, metadata and journal files, and at most one folder per part of its place.
        3 + 1 + safeRelativePath(info.name, info.metadata.relativePath).length,
      );
    const partPath = this.path(info.id, 'part');
    let data: FileHandle | undefined;
    let handle: UploadHandle | undefined;
    try {
      data = await this.createFile(partPath, false);
      // Sparse: the size is counted (preallocate), not reserved; see DiskStoreOptions.preallocate.
      // A file written whole right away needs no sizing first.
      if (!unjournaled) await data.truncate(info.fileSize);
      // One completed at once gets its only record at completion, in the ledger.
      if (!unjournaled) await this.writeNewMeta({ version: 1, info });
      // No fsync of uploads/ here: the entries of the data, the metadata and the journal are
      // flushed with the metadata's contents before the upload's first SYNC mark
      // (`flushNewUpload`). Until that mark a power loss keeps no acked range anyway (no record
      // is trusted after a reboot without one), so losing the entries then only makes the upload
      // unknown, as losing the unflushed metadata already did; a small file's first flush is its
      // completion, whose fsync of uploads/ covers them (issue 16: one fsync of uploads/ per
      // OPEN saved, and ACCEPT no longer waits for a flush).
      handle = unjournaled
        ? new DiskUpload(this, info, data, new UnjournaledChunks(), false)
        : await this.openHandle(info, data, true);
    } catch (error) {
      if (handle) await handle.close().catch(() => undefined);
      else await data?.close().catch(() => undefined);
      this.commitments.delete(info.id);
      this.forgetSpace();
      // Only what this call created: an EEXIST from createFile means the name was not ours.
      if (data) {
        await rm(partPath, { force: true });
        await rm(this.path(info.id, 'journal'), { force: true });
        await rm(this.path(info.id, 'json'), { force: true });
        await rm(`${this.path(info.id, 'json')}.tmp`, { force: true });
      }
      if (isOutOfSpace(error))
        throw new ProtocolError(
          Errors.INSUFFICIENT_STORAGE,
          'not enough free space for the upload and its journal',
        );
      throw error;
    }
    return handle;
  }

  /**
   * Check that `need` bytes fit in the free space net of other uploads' commitments, and commit
   * `size` for `id`, under one lock so concurrent creates see each other.
   */
  private admit(id: string, need: number, size: number, inodes: number): Promise<void> {
    const run = this.admission.then(async () => {
      const free = await this.freeSpace();
      if (need > free)
        throw new ProtocolError(
          Errors.INSUFFICIENT_STORAGE,
          `upload of ${need} bytes (data and journal) exceeds the ${Math.max(0, free)} bytes not yet committed`,
        );
      // The measurement is reused for a second: the inodes admitted meanwhile count against it,
      // as bytes do, or a burst of deep folders of empty files ran past the floor (found by an
      // attack helper: 2,244 of the 10,000 kept free taken before the next measurement).
      const freeInodes = (await this.space?.freeInodes) ?? Number.POSITIVE_INFINITY;
      if (freeInodes - inodes < this.minFreeInodes)
        throw new ProtocolError(
          Errors.INSUFFICIENT_STORAGE,
          `the data directory's filesystem has about ${freeInodes} free inodes; this upload's ${inodes} would leave fewer than the ${this.minFreeInodes} kept free (minFreeInodes)`,
        );
      this.commitments.set(id, size);
      this.subtractFromSpace(need, inodes);
    });
    this.admission = run.catch(() => undefined);
    return run;
  }

  async open(id: string): Promise<UploadHandle> {
    const meta = await this.readMeta(id);
    if (!meta || meta.completion) throw new Error(`upload ${id} is not open for writing`);
    // The process that created it may have died before its first checkpoint flushed the
    // metadata; the open's SYNC mark below must not outlast it.
    await this.flushMeta(id);
    let data: FileHandle;
    try {
      data = await open(this.path(id, 'part'), O_RDWR | O_NOFOLLOW);
    } catch (error) {
      throw isErrno(error, 'ELOOP') ? planted(this.path(id, 'part')) : error;
    }
    try {
      const handle = await this.openHandle(meta.info, data, false);
      // A journal found missing was created again: its entry must outlive a power loss too.
      await this.directorySyncs.sync(this.uploadsDir).catch(async (error: unknown) => {
        await handle.close().catch(() => undefined);
        throw error;
      });
      return handle;
    } catch (error) {
      // The journal could not reserve its slots (journal.ts): nothing is lost, space may come back.
      if (isOutOfSpace(error))
        throw new ProtocolError(
          Errors.STORAGE_FULL,
          "no space for the upload's journal; retry when space is freed",
        );
      if (isErrno(error, 'ELOOP')) throw planted(this.path(id, 'journal'));
      throw error;
    }
  }

  private async openHandle(
    info: UploadInfo,
    data: FileHandle,
    create: boolean,
  ): Promise<UploadHandle> {
    try {
      const { journal } = await Journal.open(
        this.path(info.id, 'journal'),
        this.hasher,
        this.bootHash,
        {
          chunks: chunkCount(info.fileSize, info.chunkSize),
          create,
          mode: this.fileMode,
          flushData: () => data.datasync(),
        },
      );
      return new DiskUpload(this, info, data, journal, !create);
    } catch (error) {
      await data.close().catch(() => undefined);
      throw error;
    }
  }

  /** The metadata; undefined when the upload is unknown, UPLOAD_DAMAGED as readState says. */
  private async knownMeta(id: string): Promise<MetaFile | undefined> {
    let meta: MetaFile | undefined;
    let unreadable: ProtocolError | undefined;
    try {
      meta = await this.readMeta(id);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      unreadable = error;
    }
    if (meta) return meta;
    // See the header: metadata missing or unreadable next to a journal that trusts a chunk is
    // damage; otherwise it is what a power loss can leave of an OPEN before its first flush
    // (or a lone .part: an OPEN never answered), and nothing acked in it survived: unknown.
    if (await this.journalTrustsAChunk(id))
      throw (
        unreadable ??
        new ProtocolError(
          Errors.UPLOAD_DAMAGED,
          `metadata of upload ${id} is missing but its journal exists`,
        )
      );
    return undefined;
  }

  /** The metadata alone (one small file): the journal is read only for an upload without it. */
  async readInfo(id: string): Promise<UploadInfo | undefined> {
    return (await this.knownMeta(id))?.info;
  }

  async readState(id: string): Promise<StoredUpload | undefined> {
    const meta = await this.knownMeta(id);
    if (!meta) return undefined;
    if (meta.completion) {
      // The folder it landed in failed an fsync in this process (after the commit, so its client
      // got an error): its entry may not be on disk, and no RESULT may say it is until a restart.
      this.directorySyncs.assertNotFailed(dirname(meta.completion.location));
      const completion = await this.repairCompletion(meta.info, meta.completion);
      return {
        info: meta.info,
        chunks: [],
        completion,
        updatedAt: completion.completedAt,
      };
    }
    const journalPath = this.path(id, 'journal');
    let bytes: Uint8Array = new Uint8Array(0);
    let updatedAt = meta.info.createdAt;
    try {
      bytes = await readNoFollow(journalPath);
      updatedAt = Math.max(updatedAt, (await stat(journalPath)).mtimeMs);
    } catch (error) {
      if (isErrno(error, 'ELOOP'))
        return { info: meta.info, chunks: [], updatedAt, damaged: planted(journalPath).message };
      if (!isErrno(error, 'ENOENT')) throw error;
    }
    const { chunks, damage, withdrew } = parseJournal(this.hasher, bytes, this.bootHash);
    if (damage)
      return {
        info: meta.info,
        chunks: [],
        updatedAt,
        damaged: `journal ${journalPath}: ${damage}`,
      };
    // The entries of a new upload are flushed at its first SYNC mark, not at create: a power loss
    // before it may keep the metadata's entry and lose the data file's. Nothing was trusted, so
    // the upload is unknown, as when the metadata is lost (see the header).
    if (chunks.length === 0 && !(await lstat(this.path(id, 'part')).catch(() => undefined)))
      return undefined;
    return { info: meta.info, chunks, updatedAt, ...(withdrew ? { chunksWithdrawn: true } : {}) };
  }

  /** Whether the upload's journal holds a chunk record the trust rule keeps (or is damaged). */
  private async journalTrustsAChunk(id: string): Promise<boolean> {
    const bytes = await readNoFollow(this.path(id, 'journal')).catch(() => undefined);
    if (!bytes) return false;
    const { chunks, damage } = parseJournal(this.hasher, bytes, this.bootHash);
    return damage !== undefined || chunks.length > 0;
  }

  /**
   * Finish a completion a crash interrupted between the json write and the move of the file; the
   * completion as it stands after (a shared place found taken sends the file to its own folder).
   */
  private repairCompletion(info: UploadInfo, completion: CompletionInfo): Promise<CompletionInfo> {
    if (this.completing.has(info.id)) return Promise.resolve(completion);
    // One at a time per upload: readState runs for the sweeper, HEAD and RESUME alike, and two
    // repairs at once could each move the file somewhere else (one relocating after the other's
    // move), leaving the metadata naming a place the file is not.
    const running = this.repairs.get(info.id);
    if (running) return running;
    const run = this.repairOnce(info, completion).finally(() => this.repairs.delete(info.id));
    this.repairs.set(info.id, run);
    return run;
  }

  private async repairOnce(info: UploadInfo, completion: CompletionInfo): Promise<CompletionInfo> {
    const part = this.path(info.id, 'part');
    try {
      await stat(part);
    } catch {
      return completion;
    }
    const [from, to] = await Promise.all([
      lstat(part),
      lstat(completion.location).catch(() => undefined),
    ]);
    let repaired = completion;
    if (to && to.ino === from.ino && to.dev === from.dev) {
      // The move reached the disk but uploads/ lost the removal of the old name (completion does
      // not fsync uploads/ after it): both names are one file, drop the old one.
      await unlink(part);
    } else if (this.delivered.isShared(info, completion.location)) {
      // Another upload of the batch may have taken the place since: never replace its file.
      const place = to ? undefined : this.delivered.reclaim(completion.location);
      try {
        if (!place || !(await this.placeFile(part, place)))
          repaired = await this.relocate(info, completion);
      } finally {
        place?.release();
      }
    } else {
      await this.placeFile(part, {
        location: completion.location,
        shared: false,
        release: () => undefined,
      });
    }
    await this.directorySyncs.sync(this.uploadsDir);
    await rm(this.path(info.id, 'journal'), { force: true });
    this.commitments.delete(info.id);
    return repaired;
  }

  /** Make the place's folders, then `moveInto` it. */
  private async placeFile(from: string, place: Place): Promise<boolean> {
    await this.delivered.makeFolders(place);
    return this.moveInto(from, place);
  }

  /**
   * Move the file at `from` into its place (folders made) and flush its entry. False when a
   * shared place turned out taken (nothing moved). A folder removed by hand since it was made (the
   * store's note of made folders is stale) is made again, once.
   */
  private async moveInto(from: string, place: Place): Promise<boolean> {
    let moved: boolean;
    try {
      moved = await this.delivered.moveIn(from, place);
    } catch (error) {
      if (!isErrno(error, 'ENOENT')) throw error;
      this.delivered.forgetFolders();
      await this.delivered.makeFolders(place);
      moved = await this.delivered.moveIn(from, place);
    }
    if (moved) await this.delivered.landed(place.location);
    return moved;
  }

  /**
   * A completed upload whose shared place is taken: its own folder instead, recorded before the
   * file moves there (the metadata says where the file is, or where a repair will put it).
   */
  private async relocate(info: UploadInfo, completion: CompletionInfo): Promise<CompletionInfo> {
    const own = this.delivered.ownPlace(info);
    const relocated: CompletionInfo = { ...completion, location: own.location };
    await this.writeMeta({ version: 1, info, completion: relocated });
    await this.placeFile(this.path(info.id, 'part'), own);
    return relocated;
  }

  async remove(id: string): Promise<void> {
    const meta = await this.readMeta(id);
    // Record last: a crash midway leaves a record whose data is gone, which the sweeper removes again.
    await rm(this.path(id, 'part'), { force: true });
    await rm(this.path(id, 'journal'), { force: true });
    if (meta?.completion === undefined)
      await rm(join(this.filesDir, id), { recursive: true, force: true }).catch(() => undefined);
    await rm(this.path(id, 'json'), { force: true });
    await rm(`${this.path(id, 'json')}.tmp`, { force: true });
    this.commitments.delete(id);
    this.forgetSpace();
  }

  async list(page: ListPage = {}): Promise<UploadSummary[]> {
    const out: UploadSummary[] = [];
    // Names only (cheap), then the state of the page's uploads alone. Unfinished uploads are the
    // ones with a data file in uploads/ (the completion moves it out, so a crash may leave a
    // completed one in); not the journal: an upload stored from its OPEN has none.
    const suffix = page.unfinished === true ? '.part' : '.json';
    const ids = (await readdir(this.uploadsDir))
      .map((entry) => (entry.endsWith(suffix) ? entry.slice(0, -suffix.length) : ''))
      .filter((id) => ID_PATTERN.test(id) && (page.after === undefined || id > page.after))
      .sort();
    for (const id of ids.slice(0, page.limit ?? ids.length)) {
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
  async complete(
    info: UploadInfo,
    data: FileHandle,
    journal: ChunkLog,
    digest: string,
    entriesFlushed: boolean,
    rememberContent: boolean,
  ): Promise<CompletionInfo> {
    this.completing.add(info.id);
    try {
      return await this.completeOnce(info, data, journal, digest, entriesFlushed, rememberContent);
    } finally {
      this.completing.delete(info.id);
    }
  }

  private async completeOnce(
    info: UploadInfo,
    data: FileHandle,
    journal: ChunkLog,
    digest: string,
    entriesFlushed: boolean,
    rememberContent: boolean,
  ): Promise<CompletionInfo> {
    const covered = journal.count;
    const place = await this.delivered.claim(info);
    let completion: CompletionInfo = { digest, location: place.location, completedAt: Date.now() };
    try {
      // Three steps that make nothing visible run at once: the data's flush, the folders (with
      // their parents' fsyncs), and the upload's own entries in uploads/ (flushed at its first
      // SYNC mark, so only a small file's first flush needs it). Only the completed record,
      // appended after all three, says the upload is complete (SPEC.md 8). One after another
      // they were three rounds of waits per file, and two flushes at once can share a filesystem
      // journal commit (issue 16).
      const flushed = data.datasync().then(() => {
        // That flush covers every record: if a step below fails (ENOSPC writing the metadata on a
        // full disk) the rollback that follows keeps every acked chunk instead of falling back to
        // the last background checkpoint. Noted, not written: the journal is deleted on success.
        journal.noteFlushed(covered);
      });
      if (journal.persistent) {
        const steps = await Promise.allSettled([
          flushed,
          this.delivered.makeFolders(place),
          entriesFlushed ? undefined : this.directorySyncs.sync(this.uploadsDir),
        ]);
        for (const step of steps) if (step.status === 'rejected') throw step.reason;
        await this.appendCompletion({ version: 1, info, completion });
      } else {
        // Stored from its OPEN: the record goes to the ledger (flushed alongside the data), and
        // the link that makes it the upload's metadata is the commit; the fsync of uploads/ after
        // it covers the link and the data file's entry alike.
        const meta: MetaFile = { version: 1, info, completion };
        const ready = Promise.all([flushed, this.delivered.makeFolders(place)]);
        if (
          !(await this.ledger.commit(
            info.client,
            JSON.stringify(meta),
            this.path(info.id, 'json'),
            ready,
          ))
        )
          // No hard links here: the record as a file of its own, flushed (its fsync of uploads/
          // follows as for a link).
          await this.writeCompletedMeta(meta);
        await this.directorySyncs.sync(this.uploadsDir).catch(async (error: unknown) => {
          // Not committed: the link may or may not be on disk. Removed, so no reader takes the
          // upload as completed while its client is told it failed.
          await unlink(this.path(info.id, 'json')).catch(() => undefined);
          throw error;
        });
      }
      await data.close();
      await journal.close();
      // Then the folder it landed in is flushed. The old name's removal from uploads/ is not: if
      // a power loss brings it back, readState finds both names on one file and drops it
      // (repairCompletion).
      if (!(await this.moveInto(this.path(info.id, 'part'), place)))
        completion = await this.relocate(info, completion);
    } finally {
      place.release();
    }
    if (journal.persistent) await unlink(this.path(info.id, 'journal')).catch(() => undefined);
    this.commitments.delete(info.id);
    if (rememberContent) await this.indexContent(info, completion);
    return completion;
  }

  /**
   * Remember delivered content (disk-content.ts). A hint: a failure to write it is logged, and
   * only means a later instant upload of that content is not found.
   */
  private async indexContent(info: UploadInfo, completion: CompletionInfo): Promise<void> {
    if (info.fileSize === 0) return;
    try {
      await this.content.remember(
        { fileSize: info.fileSize, chunkSize: info.chunkSize, digest: completion.digest },
        {
          id: info.id,
          client: info.client,
          location: completion.location,
          metadata: this.path(info.id, 'json'),
        },
      );
    } catch (error) {
      this.logger?.warn(
        `disk store: content index entry for ${info.id} not written: ${String(error)}`,
      );
    }
  }

  findContent(key: ContentKey): Promise<ContentRef[]> {
    if (!this.sharesContent) return Promise.resolve([]);
    return this.content.find(key);
  }

  async readContent(ref: ContentRef, offset: number, length: number): Promise<Uint8Array> {
    const handle = await open(ref.location, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
    try {
      const out = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await handle.read(out, done, length - done, offset + done);
        if (bytesRead <= 0) break;
        done += bytesRead;
      }
      return out.subarray(0, done);
    } finally {
      await handle.close();
    }
  }

  async adoptContent(
    info: UploadInfo,
    ref: ContentRef,
    digest: string,
  ): Promise<CompletionInfo | undefined> {
    let place = await this.delivered.claim(info);
    try {
      await this.delivered.makeFolders(place);
      let linked = await this.linkContent(ref.location, place);
      if (linked === 'taken') {
        place.release();
        place = this.delivered.ownPlace(info);
        await this.delivered.makeFolders(place);
        linked = await this.linkContent(ref.location, place);
      }
      if (linked === 'no-link') return undefined;
      await this.delivered.landed(place.location);
    } finally {
      place.release();
    }
    const completion: CompletionInfo = {
      digest,
      location: place.location,
      completedAt: Date.now(),
    };
    try {
      await this.writeMeta({ version: 1, info, completion });
    } catch (error) {
      // No record names the new name: it would be a file no upload, sweep or DELETE ever finds.
      await unlink(place.location).catch(() => undefined);
      throw error;
    }
    await this.indexContent(info, completion);
    return completion;
  }

  /**
   * A new name for delivered content at `place` (never replacing what is there): 'taken' when a
   * shared place turned out taken, 'no-link' where no hard link can be made (another filesystem,
   * one without links, or the file's link count at its limit). No copy is made then: a copy
   * would write the whole file for a PROOF of a few hashes, outside every quota; the upload goes
   * on as an ordinary one, whose bytes are counted as they come.
   */
  /** Whether a file made in uploads/ can be hard-linked into `folder` (linkContent's probe). */
  private async linksWork(folder: string): Promise<boolean> {
    const name = `.link-probe-${randomBytes(8).toString('hex')}`;
    const probe = join(this.uploadsDir, name);
    const target = join(folder, name);
    try {
      await (await open(probe, CREATE_FLAGS, this.fileMode)).close();
      await link(probe, target);
      return true;
    } catch {
      return false;
    } finally {
      await rm(probe, { force: true });
      await rm(target, { force: true });
    }
  }

  private async linkContent(from: string, place: Place): Promise<'linked' | 'taken' | 'no-link'> {
    try {
      // The delivered file is already durable: a new name for it costs a directory entry only.
      await link(from, place.location);
      return 'linked';
    } catch (error) {
      if (place.shared && isErrno(error, 'EEXIST')) return 'taken';
      if (!isNoHardLink(error)) throw error;
      // A file at its link-count limit: this content only (a new upload of it is indexed).
      if (isErrno(error, 'EMLINK')) return 'no-link';
    }
    // No link for this content (another filesystem, one without links, or a file the kernel's
    // link protection refuses): a clone shares the blocks where the filesystem can (copy-on-write),
    // never a copy.
    try {
      await copyFile(
        from,
        place.location,
        fsConstants.COPYFILE_FICLONE_FORCE | fsConstants.COPYFILE_EXCL,
      );
    } catch (error) {
      if (place.shared && isErrno(error, 'EEXIST')) return 'taken';
      // Where even a file of the server's own cannot be linked there, the filesystem makes no
      // links: instant upload is off until restart, since every CHALLENGE would cost a client a
      // read of its whole file for an upload that goes on as an ordinary one anyway. Otherwise
      // it was this content alone (a full disk or an I/O error during the clone, too).
      if (!(await this.linksWork(dirname(place.location)))) {
        this.sharesContent = false;
        this.logger?.warn(
          `disk store: delivered content can be neither linked nor cloned here (${String(error)}); instant upload is off`,
        );
      }
      return 'no-link';
    }
    try {
      const clone = await open(place.location, fsConstants.O_RDONLY);
      try {
        await clone.sync();
      } finally {
        await clone.close();
      }
    } catch (error) {
      // Not durable: a name no record will ever give.
      await unlink(place.location).catch(() => undefined);
      throw error;
    }
    return 'linked';
  }
}

class DiskUpload implements UploadHandle {
  private closed = false;

  constructor(
    private readonly store: DiskStore,
    readonly info: UploadInfo,
    private readonly data: FileHandle,
    private readonly journal: ChunkLog,
    /**
     * Whether the metadata's contents and the upload's directory entries are flushed (not yet
     * after create, see `DiskStore.flushNewUpload`).
     */
    private metaFlushed: boolean,
  ) {}

  /** Before any SYNC mark: a mark that outlives a power loss must find the metadata there too. */
  private async flushMetaOnce(): Promise<void> {
    if (this.metaFlushed) return;
    await this.store.flushNewUpload(this.info.id);
    this.metaFlushed = true;
  }

  async writeAt(bytes: Uint8Array, position: number): Promise<void> {
    if (bytes.byteLength === 0) return;
    // The record slots of the chunks these bytes fall in, before the bytes (journal.ts, "Reserved
    // space"): a chunk whose data went in can always be recorded.
    const { chunkSize } = this.info;
    await this.journal.claimSlots(
      Math.floor(position / chunkSize),
      Math.floor((position + bytes.byteLength - 1) / chunkSize),
    );
    let done = 0;
    // A positional write can be short (rare, e.g. a signal); finish it from where it stopped.
    while (done < bytes.byteLength) {
      const { bytesWritten } = await this.data.write(
        bytes,
        done,
        bytes.byteLength - done,
        position + done,
      );
      if (bytesWritten <= 0) throw new Error('positional write made no progress');
      done += bytesWritten;
    }
  }

  async readAt(length: number, position: number): Promise<Uint8Array> {
    const bytes = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.data.read(bytes, done, length - done, position + done);
      if (bytesRead <= 0) break;
      done += bytesRead;
    }
    return bytes.subarray(0, done);
  }

  async recordChunks(chunks: readonly ChunkRecord[], sync: boolean): Promise<void> {
    // Records that outlive nothing need nothing flushed under them (the completion flushes all).
    if (sync && this.journal.persistent) await this.flushMetaOnce();
    return this.journal.appendChunks(chunks, sync);
  }

  syncData(): Promise<void> {
    return this.data.datasync();
  }

  async checkpoint(): Promise<void> {
    // Nothing recorded since the last mark: no flush and no mark (a RESUME that sent nothing).
    if (!this.journal.unmarked) return;
    const covered = this.journal.count;
    await this.flushMetaOnce();
    await this.data.datasync();
    await this.journal.appendSync(covered);
  }

  retractChunks(indexes: readonly number[]): Promise<void> {
    return this.journal.retractChunks(indexes, async () => {
      await this.flushMetaOnce();
      await this.data.datasync();
    });
  }

  async rollbackToCheckpoint(): Promise<readonly ChunkRecord[]> {
    // The rollback ends with a SYNC mark, which like every mark needs the metadata on disk first
    // (a completion that failed after its data flush may be the upload's first mark).
    await this.flushMetaOnce();
    return this.journal.rollback();
  }

  async finish(digest: string, rememberContent = true): Promise<CompletionInfo> {
    this.closed = true;
    try {
      return await this.store.complete(
        this.info,
        this.data,
        this.journal,
        digest,
        this.metaFlushed,
        rememberContent,
      );
    } catch (error) {
      // Not completed: the upload stays, and a later close() must still release the handles.
      this.closed = false;
      throw error;
    }
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
