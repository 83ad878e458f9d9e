/**
 * The disk store's index of delivered content (instant upload hints, SPEC.md 16.10):
 *
 *   <dir>/content/<size>-<chunk size>/<scope>/<digest>   the delivering upload's metadata
 *   <dir>/content/<size>-<chunk size>/all/<digest>       the same, for the latest delivery by anyone
 *
 * An entry is a hard link to the upload's completed metadata (uploads/<id>.json: its id, client
 * and completion.location are what a lookup needs), so remembering makes no new file: an inode
 * made per delivered file was most of the index's cost for a folder of small files, and on ext4
 * without a journal each new inode costs more the more were freed in the last minutes (issue 16).
 * That metadata may be a ledger holding the records of many uploads of one client
 * (completion-ledger.ts): a lookup takes the newest records there that delivered the entry's
 * digest (for the client asked, in a client's scope) and the first whose file is still in place.
 * Where no link can be made, or for entries of earlier versions, the entry is a file of its own
 * holding {id, client, location}; a lookup reads both.
 *
 * <scope> names the delivering client: the first 32 hex digits of sha256(UploadInfo.client), or
 * `anyone` for uploads without one. There is one entry per (size, chunk size, scope, digest), and
 * one in all/ per content: delivering the same content again replaces them, so repeated uploads
 * (instant ones cost nothing to send) cannot grow a folder. A new entry is a link made at its name
 * (a link never replaces); one that replaces an entry is written to a temp name and renamed over,
 * so a lookup reads an old entry or a new one whole. Only the latest delivery is
 * remembered: if its file is moved away, earlier copies of the content are not found.
 *
 * A lookup in a client's scope reads only under that client's folder: one file for a digest, one
 * listing for a size. Neither other clients' folders nor all/ are read or even listed, so neither
 * the answer nor its time says anything about other clients. A lookup across clients (the
 * `global` scope) reads all/ the same way.
 *
 * Entries are hints, written without a flush: a lost one only means a later instant upload is not
 * found. A stale one (its file moved, removed or resized) is removed by the lookup that finds it
 * so; a listing examines at most EXAMINED_PER_LISTING entries, so stale entries cannot make an
 * OPEN's lookup long. Entries of an earlier layout (<digest>/<id>) are not read.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { link, lstat, mkdir, open, opendir, rename, unlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { isErrno, isNoHardLink } from './errno.js';
import { readNoFollow } from './read-no-follow.js';
import { lastRecord, lastRecords } from './json-lines.js';
import { CONTENT_LOOKUP_LIMIT, type ContentKey, type ContentRef } from './types.js';

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fsConstants;

/** Entries one listing (a lookup by size) examines at most, valid or stale. */
export const EXAMINED_PER_LISTING = 2 * CONTENT_LOOKUP_LIMIT;

/** Folders remembered as made (each a path string; past it the set starts again). */
const MADE_DIRS_KEPT = 4096;

/** The folder of the latest delivery of each content by anyone (the global scope). */
const ALL = 'all';
const DIGEST = /^[0-9a-f]{16}$/;
const UPLOAD_ID = /^[0-9a-f]{32}$/;

/** The folder name of a client's entries. */
export function contentScope(client: string | undefined): string {
  if (client === undefined) return 'anyone';
  return createHash('sha256').update(client).digest('hex').slice(0, 32);
}

interface Entry {
  readonly id: string;
  readonly client: string | null;
  readonly location: string;
}

/** What an entry's file says: a ref, or why it is no longer one. */
type Reading = ContentRef | 'stale' | 'other' | undefined;

export class DiskContentIndex {
  /** Folders this process made or found (bounded: cleared whole past MADE_DIRS_KEPT). */
  private readonly madeDirs = new Set<string>();

  constructor(
    /** <dir>/content */
    private readonly root: string,
    /** Where delivered files live: an entry pointing elsewhere is ignored. */
    private readonly filesDir: string,
    private readonly fileMode: number,
    private readonly dirMode: number,
  ) {}

  /** Record that upload `id` of `client` delivered `digest` at `location` (see the module comment). */
  /**
   * `entry.metadata`: the path of the upload's completed metadata, linked as the entry (see the
   * header); without it, or where it cannot be linked, the entry is written as a file.
   */
  async remember(
    key: Required<Pick<ContentKey, 'fileSize' | 'chunkSize' | 'digest'>>,
    entry: { id: string; client: string | undefined; location: string; metadata?: string },
  ): Promise<void> {
    if (!DIGEST.test(key.digest)) throw new Error('not a digest');
    const scopeDir = join(this.sizePath(key), contentScope(entry.client));
    const allDir = join(this.sizePath(key), ALL);
    const record: Entry = { id: entry.id, client: entry.client ?? null, location: entry.location };
    try {
      await this.write(scopeDir, allDir, key.digest, record, entry.metadata);
    } catch (error) {
      if (!isErrno(error, 'ENOENT')) throw error;
      // A folder made earlier is gone (an operator cleaned content/): make it again.
      this.madeDirs.clear();
      await this.write(scopeDir, allDir, key.digest, record, entry.metadata);
    }
  }

  private async write(
    scopeDir: string,
    allDir: string,
    digest: string,
    record: Entry,
    metadata: string | undefined,
  ): Promise<void> {
    await this.makeDir(scopeDir);
    await this.makeDir(allDir);
    if (metadata) {
      // Most content is new: a link at the digest's own name is the whole write (a link never
      // replaces, and a reader sees the entry whole). One already there is replaced below, the
      // way every entry is where no link can be made.
      const linked = await Promise.all(
        [scopeDir, allDir].map((dir) => this.linkNew(metadata, join(dir, digest))),
      );
      if (linked.every((done) => done === 'linked')) return;
      if (!linked.includes('unsupported')) {
        await Promise.all(
          [scopeDir, allDir].map((dir, i) =>
            linked[i] === 'linked'
              ? Promise.resolve()
              : this.replaceWithLink(metadata, dir, digest),
          ),
        );
        return;
      }
    }
    // Temp names start with a dot: never a digest, so listings pass over them.
    const temp = `.${digest}.${randomBytes(6).toString('hex')}`;
    try {
      if (!metadata || !(await this.linkMetadata(metadata, join(scopeDir, temp)))) {
        const handle = await open(
          join(scopeDir, temp),
          O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW,
          this.fileMode,
        );
        try {
          await handle.writeFile(JSON.stringify(record));
        } finally {
          await handle.close();
        }
      }
      // One inode, two names: all/ gets its own temp name first, so both renames replace whole.
      await link(join(scopeDir, temp), join(allDir, temp));
      await rename(join(allDir, temp), join(allDir, digest));
      await rename(join(scopeDir, temp), join(scopeDir, digest));
    } catch (error) {
      await unlink(join(scopeDir, temp)).catch(() => undefined);
      await unlink(join(allDir, temp)).catch(() => undefined);
      throw error;
    }
  }

  /** A link at a name not yet taken: 'exists' when it is, 'unsupported' where no link can be made. */
  private async linkNew(
    metadata: string,
    at: string,
  ): Promise<'linked' | 'exists' | 'unsupported'> {
    try {
      await link(metadata, at);
      return 'linked';
    } catch (error) {
      if (isErrno(error, 'EEXIST')) return 'exists';
      if (isNoHardLink(error)) return 'unsupported';
      throw error;
    }
  }

  /** Replace the entry `dir/digest` with a link to `metadata`, whole: a temp name renamed over. */
  private async replaceWithLink(metadata: string, dir: string, digest: string): Promise<void> {
    const temp = join(dir, `.${digest}.${randomBytes(6).toString('hex')}`);
    await link(metadata, temp);
    try {
      await rename(temp, join(dir, digest));
    } catch (error) {
      await unlink(temp).catch(() => undefined);
      throw error;
    }
  }

  /** A new name for the metadata file; false where the filesystem makes no hard links. */
  private async linkMetadata(metadata: string, at: string): Promise<boolean> {
    try {
      await link(metadata, at);
      return true;
    } catch (error) {
      if (isNoHardLink(error)) return false;
      throw error;
    }
  }

  /** mkdir -p, once per folder while it is remembered (most deliveries go to folders made before). */
  private async makeDir(dir: string): Promise<void> {
    if (this.madeDirs.has(dir)) return;
    await mkdir(dir, { recursive: true, mode: this.dirMode });
    if (this.madeDirs.size >= MADE_DIRS_KEPT) this.madeDirs.clear();
    this.madeDirs.add(dir);
  }

  /** Delivered content matching `key` (at most key.limit refs, CONTENT_LOOKUP_LIMIT by default). */
  async find(key: ContentKey): Promise<ContentRef[]> {
    const dir = join(this.sizePath(key), key.client === undefined ? ALL : contentScope(key.client));
    if (key.digest === undefined) return this.collect(dir, key);
    if (!DIGEST.test(key.digest)) return [];
    const ref = await this.readEntry(join(dir, key.digest), key);
    return typeof ref === 'object' ? [ref] : [];
  }

  private sizePath(key: Pick<ContentKey, 'fileSize' | 'chunkSize'>): string {
    return join(this.root, `${key.fileSize}-${key.chunkSize}`);
  }

  /** The entries of one folder (any digest), examining at most EXAMINED_PER_LISTING. */
  private async collect(dir: string, key: ContentKey): Promise<ContentRef[]> {
    const found: ContentRef[] = [];
    const limit = Math.min(key.limit ?? CONTENT_LOOKUP_LIMIT, CONTENT_LOOKUP_LIMIT);
    const listing = await opendir(dir).catch(() => undefined);
    if (!listing) return found;
    let examined = 0;
    try {
      for await (const entry of listing) {
        if (found.length >= limit || examined >= EXAMINED_PER_LISTING) break;
        if (!DIGEST.test(entry.name)) continue;
        examined++;
        const ref = await this.readEntry(join(dir, entry.name), key);
        if (typeof ref === 'object') found.push(ref);
      }
    } finally {
      await listing.close().catch(() => undefined);
    }
    return found;
  }

  /**
   * The entry at `path` if it still points at a regular file of the key's size in scope. One
   * found stale is removed (a delivery that replaces it meanwhile may go with it: a lost hint).
   */
  private async readEntry(path: string, key: ContentKey): Promise<Reading> {
    const reading = await this.read(path, key);
    if (reading === 'stale') await unlink(path).catch(() => undefined);
    return reading;
  }

  private async read(path: string, key: ContentKey): Promise<Reading> {
    let text: string;
    try {
      text = await readNoFollow(path, 'utf8');
    } catch {
      // Missing, or not ours to read (a planted symlink): not found, left alone.
      return undefined;
    }
    let other = false;
    for (const entry of entriesOf(text, basename(path), key.client)) {
      if (typeof entry.id !== 'string' || !UPLOAD_ID.test(entry.id)) continue;
      if (typeof entry.location !== 'string' || !entry.location.startsWith(this.filesDir)) continue;
      // The folder is a hash of the client: the entry itself must name the client asked for.
      if (key.client !== undefined && entry.client !== key.client) {
        other = true;
        continue;
      }
      // Operators move and remove delivered files: it must still be one of that size.
      const file = await lstat(entry.location).catch(() => undefined);
      if (!file?.isFile() || file.size !== key.fileSize) continue;
      return {
        id: entry.id,
        location: entry.location,
        ...(typeof entry.client === 'string' ? { client: entry.client } : {}),
      };
    }
    return other ? 'other' : 'stale';
  }
}

/** Records of one ledger examined for a digest at most (see `entriesOf`). */
const DELIVERIES_EXAMINED = 4;

/**
 * An entry's records, read as {id, client, location}, the newest first: the entry's own record,
 * or the completed upload metadata it links ({info: {id, client}, completion: {location,
 * digest}}, JSON lines). Metadata may be a ledger of many uploads (completion-ledger.ts): its
 * records that delivered `digest` (for `client`, when asked in a client's scope; else any, which
 * the caller reports as another client's), up to DELIVERIES_EXAMINED, since the newest may be one
 * whose completion failed or has not moved its file yet, while an older one still holds it.
 */
function entriesOf(text: string, digest: string, client: string | undefined): Partial<Entry>[] {
  let deliveries = lastDeliveries(text, digest, client);
  if (deliveries.length === 0 && client !== undefined)
    deliveries = lastDeliveries(text, digest, undefined);
  if (deliveries.length > 0)
    return deliveries.map((delivery) => ({
      id: delivery.info?.id as string,
      client: typeof delivery.info?.client === 'string' ? delivery.info.client : null,
      location: delivery.completion?.location as string,
    }));
  // An entry of its own names no digest (its file name is the digest).
  const own = lastRecord(
    text,
    (v): v is Partial<Entry> =>
      typeof v === 'object' && v !== null && (v as MetadataRecord).info === undefined,
  );
  return own ? [own] : [];
}

/** The completed records in `text` that delivered `digest` (for `client`, if given), newest first. */
function lastDeliveries(
  text: string,
  digest: string,
  client: string | undefined,
): MetadataRecord[] {
  return lastRecords(
    text,
    (v): v is MetadataRecord => {
      if (typeof v !== 'object' || v === null) return false;
      const meta = v as MetadataRecord;
      return (
        typeof meta.info === 'object' &&
        meta.info !== null &&
        meta.completion?.digest === digest &&
        (client === undefined || meta.info.client === client)
      );
    },
    DELIVERIES_EXAMINED,
    digest,
  );
}

interface MetadataRecord {
  info?: { id?: unknown; client?: unknown };
  completion?: { location?: unknown; digest?: unknown };
}
