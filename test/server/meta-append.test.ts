/**
 * A completion commits by appending its record to uploads/<id>.json (disk-store.ts header), not by
 * a temp file renamed over it: one inode fewer made and freed per upload (issue 16). The last
 * whole line wins, so an append a crash cut short leaves the upload as it was before.
 */
import { appendFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DiskStore } from '../../server/index.js';
import { uploadInfo } from '../helpers/upload-info.js';
import { storedMeta } from '../helpers/stored.js';
import { listFiles, makeTempDir, type TempDir } from '../helpers/tmp.js';

const CHUNK = 65_536;
const ID = 'ab'.repeat(16);
const info = uploadInfo({ id: ID, fileSize: 2 * CHUNK, chunkSize: CHUNK });

describe('completion record appended to the metadata', () => {
  let tmp: TempDir;
  beforeEach(async () => {
    tmp = await makeTempDir();
  });
  afterEach(async () => {
    await tmp.cleanup();
  });

  it('the completion keeps the metadata file (same inode) and appends the completed record', async () => {
    const store = new DiskStore({ dir: tmp.path });
    await store.init();
    const handle = await store.create(info);
    await handle.writeAt(new Uint8Array(2 * CHUNK).fill(3), 0);
    await handle.recordChunks(
      [
        { index: 0, hash: 1n },
        { index: 1, hash: 2n },
      ],
      false,
    );
    const metaPath = join(tmp.path, 'uploads', `${ID}.json`);
    const before = (await stat(metaPath)).ino;
    const completion = await handle.finish('1'.repeat(16));
    expect((await stat(metaPath)).ino).toBe(before);
    expect((await storedMeta(tmp.path, ID)).completion).toEqual(completion);
    const restarted = new DiskStore({ dir: tmp.path });
    await restarted.init();
    expect((await restarted.readState(ID))?.completion).toEqual(completion);
  });

  it('a torn last line (an append a crash cut short) is passed over: the upload is as before, and completes later', async () => {
    const store = new DiskStore({ dir: tmp.path });
    await store.init();
    const handle = await store.create(info);
    await handle.writeAt(new Uint8Array(2 * CHUNK).fill(4), 0);
    await handle.recordChunks(
      [
        { index: 0, hash: 1n },
        { index: 1, hash: 2n },
      ],
      true,
    );
    await handle.close();
    const metaPath = join(tmp.path, 'uploads', `${ID}.json`);
    await appendFile(metaPath, '\n{"version":1,"info":{"id":"' + ID + '","secretHash":"00');
    const restarted = new DiskStore({ dir: tmp.path });
    await restarted.init();
    const state = await restarted.readState(ID);
    expect(state?.completion).toBeUndefined();
    expect(state?.chunks.map((c) => c.index)).toEqual([0, 1]);
    const reopened = await restarted.open(ID);
    const completion = await reopened.finish('2'.repeat(16));
    expect((await restarted.readState(ID))?.completion).toEqual(completion);
  });

  it('the content index entry is a hard link to the completed metadata (no inode of its own), and lookups read it', async () => {
    const store = new DiskStore({ dir: tmp.path });
    await store.init();
    const handle = await store.create({ ...info, client: 'alice' });
    await handle.writeAt(new Uint8Array(2 * CHUNK).fill(5), 0);
    await handle.recordChunks(
      [
        { index: 0, hash: 1n },
        { index: 1, hash: 2n },
      ],
      false,
    );
    const completion = await handle.finish('3'.repeat(16));
    const meta = await stat(join(tmp.path, 'uploads', `${ID}.json`));
    const sizeDir = join(tmp.path, 'content', `${2 * CHUNK}-${CHUNK}`);
    const entries = await listFiles(sizeDir);
    expect(entries).toHaveLength(2); // <scope>/<digest> and all/<digest>
    for (const entry of entries) expect((await stat(join(sizeDir, entry))).ino).toBe(meta.ino);
    const key = { fileSize: 2 * CHUNK, chunkSize: CHUNK, digest: '3'.repeat(16) };
    expect(await store.findContent({ ...key, client: 'alice' })).toEqual([
      { id: ID, client: 'alice', location: completion.location },
    ]);
    expect(await store.findContent(key)).toEqual([
      { id: ID, client: 'alice', location: completion.location },
    ]);
    expect(await store.findContent({ ...key, client: 'bob' })).toEqual([]);
  });
});
