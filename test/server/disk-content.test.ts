/**
 * The disk store's content index (server/store/disk-content.ts): one entry per client and content,
 * a client's own content found however many others hold it, lookups in a client's scope that
 * open and list nothing of another client's, and hints that fail their checks not found.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  DiskContentIndex,
  SCOPES_PER_LOOKUP,
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
        `${SIZE}-${CHUNK}/anyone/${DIGEST}`,
      ].sort(),
    );
    expect(await index.find({ ...KEY, client: 'alice' })).toEqual([
      { id: idOf(30), client: 'alice', location: join(files, idOf(30)) },
    ]);
  });

  it("finds a client's own content however many other clients hold the same content; a lookup across clients reads a bounded number of them", async () => {
    for (let n = 1; n <= 40; n++)
      await index.remember(KEY, {
        id: idOf(n),
        client: `tenant-${n}`,
        location: await delivered(idOf(n)),
      });
    for (const n of [1, 17, 40]) {
      const found = await index.find({ ...KEY, client: `tenant-${n}` });
      expect(found.map((ref) => ref.id)).toEqual([idOf(n)]);
      expect(
        (await index.find({ fileSize: SIZE, chunkSize: CHUNK, client: `tenant-${n}` })).map(
          (r) => r.id,
        ),
      ).toEqual([idOf(n)]);
    }
    expect(await index.find({ ...KEY, client: 'nobody' })).toEqual([]);
    const across = await index.find(KEY);
    expect(across.length).toBe(SCOPES_PER_LOOKUP);
    expect((await index.find({ fileSize: SIZE, chunkSize: CHUNK })).length).toBe(SCOPES_PER_LOOKUP);
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
    const bobs = [contentScope('bob'), idOf(2), idOf(3)];
    expect(touched.filter((path) => bobs.some((part) => path.includes(part)))).toEqual([]);
    // The same lookups without a client do read bob's (the global scope).
    touched.length = 0;
    await index.find({ fileSize: SIZE, chunkSize: CHUNK });
    expect(touched.some((path) => path.includes(contentScope('bob')))).toBe(true);
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
    // Torn (a crash before the unflushed write reached the disk).
    await writeFile(entryAt(DIGEST), '{"id":"');
    expect(await index.find({ ...KEY, client: 'alice' })).toEqual([]);
    // Another client's entry copied into alice's folder names bob: not alice's.
    await writeFile(
      entryAt(DIGEST),
      JSON.stringify({ id: idOf(3), client: 'bob', location: await delivered(idOf(3)) }),
    );
    expect(await index.find({ ...KEY, client: 'alice' })).toEqual([]);
    // A symlink planted at an entry's name is neither read nor written through.
    const target = join(tmp.path, 'target');
    await writeFile(
      target,
      JSON.stringify({ id: idOf(4), client: 'alice', location: await delivered(idOf(4)) }),
    );
    const planted = entryAt('aaaaaaaaaaaaaaaa');
    await symlink(target, planted);
    expect(await index.find({ ...KEY, digest: 'aaaaaaaaaaaaaaaa', client: 'alice' })).toEqual([]);
    await expect(
      index.remember(
        { ...KEY, digest: 'aaaaaaaaaaaaaaaa' },
        { id: idOf(5), client: 'alice', location: await delivered(idOf(5)) },
      ),
    ).rejects.toThrow(/ELOOP/);
    // A key that is not a digest reads nothing.
    touched.length = 0;
    expect(await index.find({ ...KEY, digest: '../../etc', client: 'alice' })).toEqual([]);
    expect(touched).toEqual([]);
  });
});
