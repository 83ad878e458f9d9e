/**
 * Directory entries are made durable (issue 14, item 4): a new file survives a power loss only
 * once its directory is fsynced. node:fs/promises is wrapped (vi.mock) so every fsync of a
 * directory handle is recorded with the entries the directory held at that moment; the tests
 * check each entry the store creates or moves was in its directory when that directory was
 * fsynced. This shows the calls are made in the right order; that the kernel then persists the
 * entries is the filesystem's promise, not something a test here can observe.
 */
import { readdirSync } from 'node:fs';
import { link, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DiskStore, type UploadHandle, type UploadInfo } from '../../server/index.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

const syncs = vi.hoisted(() => [] as Array<{ dir: string; entries: string[] }>);

vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const open: typeof real.open = async (...args: Parameters<typeof real.open>) => {
    const handle = await real.open(...args);
    if (!(await handle.stat()).isDirectory()) return handle;
    const dir = String(args[0]);
    const { overrideHandle } = await import('../helpers/file-handles.js');
    return overrideHandle(handle, (prop) =>
      prop === 'sync'
        ? async () => {
            await handle.sync();
            syncs.push({ dir, entries: readdirSync(dir) });
          }
        : undefined,
    );
  };
  return { ...real, open, default: { ...real, open } };
});

const CHUNK = 65_536;
const info = (id: string): UploadInfo => ({
  id,
  secretHash: '0'.repeat(64),
  fileSize: 2 * CHUNK,
  chunkSize: CHUNK,
  name: 'done.bin',
  contentType: '',
  metadata: {},
  createdAt: Date.now(),
});

/** Write and record both chunks of an `info` upload, every byte `fill`. */
async function writeBoth(handle: UploadHandle, fill: number): Promise<void> {
  await handle.writeAt(new Uint8Array(2 * CHUNK).fill(fill), 0);
  await handle.recordChunks(
    [
      { index: 0, hash: 1n },
      { index: 1, hash: 2n },
    ],
    false,
  );
}

describe('directory fsync', () => {
  let tmp: TempDir;
  beforeEach(async () => {
    tmp = await makeTempDir();
    syncs.length = 0;
  });
  afterEach(async () => {
    await tmp.cleanup();
  });

  /** Whether `dir` was fsynced at a moment it held `entry` (and, if given, no longer held `gone`). */
  const syncedWith = (dir: string, entry: string, gone?: string) =>
    syncs.some(
      (s) =>
        s.dir === dir &&
        s.entries.includes(entry) &&
        (gone === undefined || !s.entries.includes(gone)),
    );

  it("fsyncs uploads/ with a new upload's entries before its first SYNC mark, not at create", async () => {
    const store = new DiskStore({ dir: tmp.path });
    await store.init();
    const uploads = join(tmp.path, 'uploads');
    for (const [id, mark] of [
      ['a'.repeat(32), 'checkpoint'],
      ['e'.repeat(32), 'durable record'],
    ] as const) {
      syncs.length = 0;
      const handle = await store.create(info(id));
      // ACCEPT waits for no flush: nothing a power loss could take is claimed yet (issue 16).
      expect(syncs.filter((s) => s.dir === uploads)).toEqual([]);
      await handle.writeAt(new Uint8Array(CHUNK), 0);
      if (mark === 'checkpoint') {
        await handle.recordChunks([{ index: 0, hash: 1n }], false);
        await handle.checkpoint();
      } else {
        await handle.syncData();
        await handle.recordChunks([{ index: 0, hash: 1n }], true);
      }
      for (const entry of [`${id}.journal`, `${id}.json`, `${id}.part`])
        expect(syncedWith(uploads, entry), `${entry} flushed before the ${mark}'s mark`).toBe(true);
      // Once: the next mark flushes no directory again.
      const before = syncs.length;
      await handle.recordChunks([{ index: 1, hash: 2n }], mark !== 'checkpoint');
      await handle.checkpoint();
      expect(syncs.slice(before).filter((s) => s.dir === uploads)).toEqual([]);
      await handle.close();
    }
  });

  it('at completion fsyncs files/ after making files/<id>, uploads/ after the completed metadata, files/<id> after the rename', async () => {
    const store = new DiskStore({ dir: tmp.path });
    await store.init();
    const id = 'b'.repeat(32);
    const handle = await store.create(info(id));
    await writeBoth(handle, 0);
    syncs.length = 0;
    await handle.finish('0'.repeat(16));
    expect(syncedWith(join(tmp.path, 'files'), id), 'files/ fsynced with files/<id> in it').toBe(
      true,
    );
    expect(syncedWith(join(tmp.path, 'files', id), 'done.bin')).toBe(true);
    expect(syncedWith(join(tmp.path, 'uploads'), `${id}.json`)).toBe(true);
  });

  it("a power loss that brings back the .part's old name after the rename: both names are one file, the old one is dropped", async () => {
    const store = new DiskStore({ dir: tmp.path });
    await store.init();
    const id = 'd'.repeat(32);
    const handle = await store.create(info(id));
    await writeBoth(handle, 7);
    const completion = await handle.finish('0'.repeat(16));
    const part = join(tmp.path, 'uploads', `${id}.part`);
    await link(completion.location, part);
    const state = await store.readState(id);
    expect(state?.completion?.location).toBe(completion.location);
    await expect(stat(part)).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await readFile(completion.location)).every((b) => b === 7)).toBe(true);
  });

  it('a file from a folder (relativePath a/b/name): each new folder fsynced in its parent, and the folder the file landed in after the rename', async () => {
    const store = new DiskStore({ dir: tmp.path });
    await store.init();
    const id = 'c'.repeat(32);
    const handle = await store.create({ ...info(id), metadata: { relativePath: 'a/b/done.bin' } });
    await writeBoth(handle, 0);
    syncs.length = 0;
    await handle.finish('0'.repeat(16));
    const top = join(tmp.path, 'files', id);
    expect(syncedWith(top, 'a')).toBe(true);
    expect(syncedWith(join(top, 'a'), 'b')).toBe(true);
    // Before the fix only files/<id> was fsynced after the rename, not a/b where the entry is.
    expect(syncedWith(join(top, 'a', 'b'), 'done.bin')).toBe(true);
  });

  it('the files of one batch share files/<batch>/: after the first, a file makes no folder and fsyncs only the folder it lands in', async () => {
    const store = new DiskStore({ dir: tmp.path });
    await store.init();
    const batch = 'e'.repeat(32);
    const inBatch = (id: string, name: string): UploadInfo => ({
      ...info(id),
      name,
      metadata: { relativePath: `album/${name}` },
      batch,
    });
    const first = await store.create(inBatch('1'.repeat(32), 'one.bin'));
    await writeBoth(first, 1);
    await first.finish('0'.repeat(16));
    const top = join(tmp.path, 'files', batch);
    expect(syncedWith(join(tmp.path, 'files'), batch)).toBe(true);
    expect(syncedWith(top, 'album')).toBe(true);
    expect(syncedWith(join(top, 'album'), 'one.bin')).toBe(true);
    const second = await store.create(inBatch('2'.repeat(32), 'two.bin'));
    await writeBoth(second, 2);
    syncs.length = 0;
    await second.finish('0'.repeat(16));
    expect(syncedWith(join(top, 'album'), 'two.bin')).toBe(true);
    const folderSyncs = syncs.filter((s) => s.dir.startsWith(join(tmp.path, 'files')));
    expect(folderSyncs.map((s) => s.dir)).toEqual([join(top, 'album')]);
    expect(await readFile(join(top, 'album', 'two.bin'))).toHaveLength(2 * CHUNK);
  });
});
