/**
 * The disk store's content index (server/store/disk-content.ts): one entry per client and content,
 * a client's own content found however many others hold it, lookups in a client's scope that
 * open and list nothing of another client's, and hints that fail their checks not found.
 */
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  DiskContentIndex,
  EXAMINED_PER_LISTING,
  contentScope,
} from '../../server/store/disk-content.js';
import { listFiles, makeTempDir, type TempDir } from '../helpers/tmp.js';

/** Every path the code under test opened or listed (node:fs/promises, passed through). */
const touched = vi.hoisted(() => [] as string[]);
vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs/promises')>();
  return {
    ...actual,
    open: (path: string, ...rest: unknown[]) => {
      touched.push(String(path));
      return (actual.open as (...args: unknown[]) => unknown)(path, ...rest);
    },
    opendir: (path: string, ...rest: unknown[]) => {
      touched.push(String(path));
      return (actual.opendir as (...args: unknown[]) => unknown)(path, ...rest);
    },
    lstat: (path: string, ...rest: unknown[]) => {
      touched.push(String(path));
      return (actual.lstat as (...args: unknown[]) => unknown)(path, ...rest);
    },
  };
});

const SIZE = 1000;
const CHUNK = 4096;
const DIGEST = '0123456789abcdef';
const KEY = { fileSize: SIZE, chunkSize: CHUNK, digest: DIGEST };

describe('disk content index', () => {
  let tmp: TempDir;
  let index: DiskContentIndex;
  let files: string;

  beforeEach(async () => {
    tmp = await makeTempDir();
    files = join(tmp.path, 'files');
    await mkdir(files);
    index = new DiskContentIndex(join(tmp.path, 'content'), files, 0o600, 0o700);
    touched.length = 0;
  });
  afterEach(() => tmp.cleanup());

  /** A delivered file of SIZE bytes for upload `id`; its location. */
  async function delivered(id: string): Promise<string> {
    const location = join(files, id);
    await writeFile(location, randomBytes(SIZE));
    return location;
  }

  const idOf = (n: number): string => n.toString(16).padStart(32, '0');

  it('keeps one entry per client and content: delivering it again replaces it', async () => {
    for (let n = 1; n <= 30; n++)
      await index.remember(KEY, {
        id: idOf(n),
        client: 'alice',
        location: await delivered(idOf(n)),
      });
    await index.remember(KEY, {
      id: idOf(99),
      client: undefined,
      location: await delivered(idOf(99)),
    });
    const entries = await listFiles(join(tmp.path, 'content'));
    expect(entries).toEqual(
      [
        `${SIZE}-${CHUNK}/${contentScope('alice')}/${DIGEST}`,
        `${SIZE}-${CHUNK}/all/${DIGEST}`,
        `${SIZE}-${CHUNK}/anyone/${DIGEST}`,
      ].sort(),
    );
    // all/ holds the latest delivery by anyone.
    expect((await index.find(KEY)).map((ref) => ref.id)).toEqual([idOf(99)]);
    expect(await index.find({ ...KEY, client: 'alice' })).toEqual([
      { id: idOf(30), client: 'alice', location: join(files, idOf(30)) },
    ]);
    // An operator empties content/ while the server runs: the next delivery makes its folders again.
    await rm(join(tmp.path, 'content'), { recursive: true });
    await index.remember(KEY, {
      id: idOf(31),
      client: 'alice',
      location: await delivered(idOf(31)),
    });
    expect((await index.find({ ...KEY, client: 'alice' })).map((ref) => ref.id)).toEqual([
      idOf(31),
    ]);
    expect((await index.find(KEY)).map((ref) => ref.id)).toEqual([idOf(31)]);
  });

  it("finds a client's own content however many other clients hold the same content, and any client's content in the global scope", async () => {
    for (let n = 1; n <= 40; n++)
      await index.remember(KEY, {
        id: idOf(n),
        client: `tenant-${n}`,
        location: await delivered(idOf(n)),
      });
    // 40 other contents of the same size, one per tenant.
    const digestOf = (n: number): string => (0xd000 + n).toString(16).padStart(16, '0');
    for (let n = 1; n <= 40; n++)
      await index.remember(
        { ...KEY, digest: digestOf(n) },
        { id: idOf(100 + n), client: `tenant-${n}`, location: await delivered(idOf(100 + n)) },
      );
    for (const n of [1, 17, 40]) {
      const found = await index.find({ ...KEY, client: `tenant-${n}` });
      expect(found.map((ref) => ref.id)).toEqual([idOf(n)]);
      const bySize = await index.find({ fileSize: SIZE, chunkSize: CHUNK, client: `tenant-${n}` });
      expect(bySize.map((ref) => ref.id).sort()).toEqual([idOf(n), idOf(100 + n)].sort());
      expect((await index.find({ ...KEY, digest: digestOf(n) })).map((ref) => ref.id)).toEqual([
        idOf(100 + n),
      ]);
    }
    expect(await index.find({ ...KEY, client: 'nobody' })).toEqual([]);
    expect((await index.find(KEY)).map((ref) => ref.id)).toEqual([idOf(40)]);
    expect((await index.find({ fileSize: SIZE, chunkSize: CHUNK })).length).toBe(41);
  });

  it('stale entries cannot make a lookup long: a listing examines a bounded number and removes the stale ones it saw', async () => {
    const stale = 3 * EXAMINED_PER_LISTING;
    for (let n = 1; n <= stale; n++) {
      const location = await delivered(idOf(n));
      await index.remember(
        { ...KEY, digest: n.toString(16).padStart(16, '0') },
        { id: idOf(n), client: 'alice', location },
      );
      await rm(location);
    }
    const scopeDir = join(tmp.path, 'content', `${SIZE}-${CHUNK}`, contentScope('alice'));
    touched.length = 0;
    expect(await index.find({ fileSize: SIZE, chunkSize: CHUNK, client: 'alice' })).toEqual([]);
    // An open and an lstat per examined entry, and the listing itself.
    expect(touched.length).toBeLessThanOrEqual(2 * EXAMINED_PER_LISTING + 1);
    expect((await readdir(scopeDir)).length).toBe(stale - EXAMINED_PER_LISTING);
    for (let pass = 0; pass < 2; pass++)
      await index.find({ fileSize: SIZE, chunkSize: CHUNK, client: 'alice' });
    expect(await readdir(scopeDir)).toEqual([]);
  });

  it('a lookup with a limit stops there (an OPEN asks whether any of its size exists: one entry read)', async () => {
    for (let n = 1; n <= 20; n++)
      await index.remember(
        { ...KEY, digest: n.toString(16).padStart(16, '0') },
        { id: idOf(n), client: 'alice', location: await delivered(idOf(n)) },
      );
    touched.length = 0;
    const found = await index.find({ fileSize: SIZE, chunkSize: CHUNK, client: 'alice', limit: 1 });
    expect(found).toHaveLength(1);
    // The listing, then one entry's open and its file's lstat.
    expect(touched).toHaveLength(3);
  });

  it("a lookup in a client's scope opens, lists and stats nothing of another client's", async () => {
    await index.remember(KEY, { id: idOf(1), client: 'alice', location: await delivered(idOf(1)) });
    await index.remember(KEY, { id: idOf(2), client: 'bob', location: await delivered(idOf(2)) });
    await index.remember(
      { ...KEY, digest: 'fedcba9876543210' },
      { id: idOf(3), client: 'bob', location: await delivered(idOf(3)) },
    );
    touched.length = 0;
    expect((await index.find({ ...KEY, client: 'alice' })).map((r) => r.id)).toEqual([idOf(1)]);
    expect(
      (await index.find({ fileSize: SIZE, chunkSize: CHUNK, client: 'alice' })).map((r) => r.id),
    ).toEqual([idOf(1)]);
    expect(await index.find({ ...KEY, digest: 'fedcba9876543210', client: 'alice' })).toEqual([]);
    expect(touched.length).toBeGreaterThan(0);
    const others = [contentScope('bob'), idOf(2), idOf(3), '/all/', '/all'];
    expect(touched.filter((path) => others.some((part) => path.includes(part)))).toEqual([]);
    // The same lookups without a client read all/, which has bob's (the global scope).
    touched.length = 0;
    expect((await index.find({ fileSize: SIZE, chunkSize: CHUNK })).length).toBe(2);
    expect(touched.some((path) => path.includes('/all'))).toBe(true);
  });

  it('skips hints that fail their checks: a file moved, resized or outside files/, a torn entry, a planted symlink', async () => {
    const scopeDir = join(tmp.path, 'content', `${SIZE}-${CHUNK}`, contentScope('alice'));
    const entryAt = (digest: string) => join(scopeDir, digest);
    // Resized.
    const location = await delivered(idOf(1));
    await index.remember(KEY, { id: idOf(1), client: 'alice', location });
    await writeFile(location, randomBytes(SIZE + 1));
    expect(await index.find({ ...KEY, client: 'alice' })).toEqual([]);
    // Outside files/.
    const outside = join(tmp.path, 'elsewhere');
    await writeFile(outside, randomBytes(SIZE));
    await index.remember(KEY, { id: idOf(2), client: 'alice', location: outside });
    expect(await index.find({ ...KEY, client: 'alice' })).toEqual([]);
    // Torn (a crash before the unflushed write reached the disk): removed as stale.
    await writeFile(entryAt(DIGEST), '{"id":"');
    expect(await index.find({ ...KEY, client: 'alice' })).toEqual([]);
    expect(await readdir(scopeDir)).toEqual([]);
    // Another client's entry copied into alice's folder names bob: not alice's (and kept).
    await writeFile(
      entryAt(DIGEST),
      JSON.stringify({ id: idOf(3), client: 'bob', location: await delivered(idOf(3)) }),
    );
    expect(await index.find({ ...KEY, client: 'alice' })).toEqual([]);
    expect(await readdir(scopeDir)).toEqual([DIGEST]);
    // A symlink planted at an entry's name is neither read nor written through: a delivery
    // replaces the link itself.
    const target = join(tmp.path, 'target');
    const planted = JSON.stringify({
      id: idOf(4),
      client: 'alice',
      location: await delivered(idOf(4)),
    });
    await writeFile(target, planted);
    await symlink(target, entryAt('aaaaaaaaaaaaaaaa'));
    expect(await index.find({ ...KEY, digest: 'aaaaaaaaaaaaaaaa', client: 'alice' })).toEqual([]);
    await index.remember(
      { ...KEY, digest: 'aaaaaaaaaaaaaaaa' },
      { id: idOf(5), client: 'alice', location: await delivered(idOf(5)) },
    );
    expect(await readFile(target, 'utf8')).toBe(planted);
    expect((await lstat(entryAt('aaaaaaaaaaaaaaaa'))).isSymbolicLink()).toBe(false);
    expect(
      (await index.find({ ...KEY, digest: 'aaaaaaaaaaaaaaaa', client: 'alice' })).map((r) => r.id),
    ).toEqual([idOf(5)]);
    // A key that is not a digest reads nothing.
    touched.length = 0;
    expect(await index.find({ ...KEY, digest: '../../etc', client: 'alice' })).toEqual([]);
    expect(touched).toEqual([]);
  });
});
