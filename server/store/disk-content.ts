/**
 * The disk store's index of delivered content (instant upload hints, SPEC.md 16.10):
 *
 *   <dir>/content/<size>-<chunk size>/<scope>/<digest>   {id, client, location}
 *
 * <scope> names the delivering client: the first 32 hex digits of sha256(UploadInfo.client), or
 * `anyone` for uploads without one. One entry per (size, chunk size, scope, digest): delivering
 * the same content again replaces it, so repeated uploads (instant ones cost nothing to send)
 * cannot grow a directory, and the index holds at most one entry per distinct file per client.
 *
 * A lookup in a client's scope reads only under that client's folder: one file for a digest, one
 * listing for a size. Other clients' entries are never read or even listed, so neither the answer
 * nor its time says anything about them. A lookup across clients (the `global` scope) reads at
 * most SCOPES_PER_LOOKUP client folders.
 *
 * Entries are hints, written without a flush: a lost one only means a later instant upload is not
 * found; a stale one (the file moved or removed) is skipped when its file is not a regular file of
 * the key's size. Entries of an earlier layout (<digest>/<id>) are not read.
 */
import { createHash } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { lstat, mkdir, open, opendir, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { CONTENT_LOOKUP_LIMIT, type ContentKey, type ContentRef } from './types.js';

const { O_RDONLY, O_WRONLY, O_CREAT, O_TRUNC, O_NOFOLLOW } = fsConstants;

/** The client folders a lookup across clients reads, at most (a bound on one OPEN's work). */
export const SCOPES_PER_LOOKUP = 16;

const DIGEST = /^[0-9a-f]{16}$/;
const SCOPE = /^(?:[0-9a-f]{32}|anyone)$/;
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

export class DiskContentIndex {
  constructor(
    /** <dir>/content */
    private readonly root: string,
    /** Where delivered files live: an entry pointing elsewhere is ignored. */
    private readonly filesDir: string,
    private readonly fileMode: number,
    private readonly dirMode: number,
  ) {}

  /** Record that upload `id` of `client` delivered `digest` at `location` (see the module comment). */
  async remember(
    key: Required<Pick<ContentKey, 'fileSize' | 'chunkSize' | 'digest'>>,
    entry: { id: string; client: string | undefined; location: string },
  ): Promise<void> {
    if (!DIGEST.test(key.digest)) throw new Error('not a digest');
    const dir = join(this.sizePath(key), contentScope(entry.client));
    await mkdir(dir, { recursive: true, mode: this.dirMode });
    // O_NOFOLLOW: a symlink planted at the name fails the write instead of being written through.
    const handle = await open(
      join(dir, key.digest),
      O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW,
      this.fileMode,
    );
    try {
      const record: Entry = {
        id: entry.id,
        client: entry.client ?? null,
        location: entry.location,
      };
      await handle.writeFile(JSON.stringify(record));
    } finally {
      await handle.close();
    }
  }

  /** Delivered content matching `key` (at most CONTENT_LOOKUP_LIMIT refs). */
  async find(key: ContentKey): Promise<ContentRef[]> {
    const scopes =
      key.client !== undefined ? [contentScope(key.client)] : await this.someScopes(key);
    const found: ContentRef[] = [];
    for (const scope of scopes) {
      const dir = join(this.sizePath(key), scope);
      if (key.digest !== undefined) {
        if (!DIGEST.test(key.digest)) return [];
        const ref = await this.refAt(join(dir, key.digest), key);
        if (ref) found.push(ref);
      } else {
        await this.collect(dir, key, found);
      }
      if (found.length >= CONTENT_LOOKUP_LIMIT) break;
    }
    return found.slice(0, CONTENT_LOOKUP_LIMIT);
  }

  private sizePath(key: Pick<ContentKey, 'fileSize' | 'chunkSize'>): string {
    return join(this.root, `${key.fileSize}-${key.chunkSize}`);
  }

  /** Up to SCOPES_PER_LOOKUP client folders of the key's size (read lazily). */
  private async someScopes(key: ContentKey): Promise<string[]> {
    const scopes: string[] = [];
    const listing = await opendir(this.sizePath(key)).catch(() => undefined);
    if (!listing) return scopes;
    try {
      for await (const entry of listing) {
        if (SCOPE.test(entry.name)) scopes.push(entry.name);
        if (scopes.length >= SCOPES_PER_LOOKUP) break;
      }
    } finally {
      await listing.close().catch(() => undefined);
    }
    return scopes;
  }

  /** The entries of one client folder (any digest), until `found` holds the lookup limit. */
  private async collect(dir: string, key: ContentKey, found: ContentRef[]): Promise<void> {
    const listing = await opendir(dir).catch(() => undefined);
    if (!listing) return;
    try {
      for await (const entry of listing) {
        if (found.length >= CONTENT_LOOKUP_LIMIT) break;
        if (!DIGEST.test(entry.name)) continue;
        const ref = await this.refAt(join(dir, entry.name), key);
        if (ref) found.push(ref);
      }
    } finally {
      await listing.close().catch(() => undefined);
    }
  }

  /** The entry at `path` if it still points at a regular file of the key's size in scope. */
  private async refAt(path: string, key: ContentKey): Promise<ContentRef | undefined> {
    let handle: FileHandle | undefined;
    try {
      handle = await open(path, O_RDONLY | O_NOFOLLOW);
      const entry = JSON.parse(await handle.readFile('utf8')) as Partial<Entry>;
      if (typeof entry.id !== 'string' || !UPLOAD_ID.test(entry.id)) return undefined;
      if (typeof entry.location !== 'string') return undefined;
      if (!entry.location.startsWith(this.filesDir)) return undefined;
      // The folder is a hash of the client: the entry itself must name the client asked for.
      if (key.client !== undefined && entry.client !== key.client) return undefined;
      // Operators move and remove delivered files: it must still be one of that size.
      const file = await lstat(entry.location);
      if (!file.isFile() || file.size !== key.fileSize) return undefined;
      return {
        id: entry.id,
        location: entry.location,
        ...(typeof entry.client === 'string' ? { client: entry.client } : {}),
      };
    } catch {
      // Missing, unreadable or torn (written without a flush): a hint not found.
      return undefined;
    } finally {
      await handle?.close().catch(() => undefined);
    }
  }
}
