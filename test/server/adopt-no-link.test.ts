/**
 * DiskStore.adoptContent where no hard link can be made to the content (here another filesystem:
 * EXDEV) and no clone either (tmpfs): no copy is made, since a copy would write the whole file for
 * a proof of a few hashes, outside every quota. The store says so (undefined), leaves nothing
 * behind, the OPEN goes on as an ordinary upload, and the store finds no content from then on.
 */
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DiskStore } from '../../server/index.js';
import type { UploadInfo } from '../../server/store/types.js';
import { listFiles, makeTempDir, type TempDir } from '../helpers/tmp.js';

describe('adoptContent without a hard link', () => {
  let tmp: TempDir;
  let elsewhere: string;
  beforeEach(async () => {
    tmp = await makeTempDir();
    // /dev/shm is a tmpfs on every Linux this runs on: another filesystem than the temp dir's.
    elsewhere = await mkdtemp('/dev/shm/bigup-adopt-');
  });
  afterEach(async () => {
    await tmp.cleanup();
    await rm(elsewhere, { recursive: true, force: true });
  });

  it('copies nothing and answers undefined; no file lands, no record is written', async () => {
    const store = new DiskStore({ dir: tmp.path });
    await store.init();
    const content = join(elsewhere, 'held.bin');
    await writeFile(content, Buffer.alloc(100_000, 7));
    const info: UploadInfo = {
      id: 'a'.repeat(32),
      secretHash: '0'.repeat(64),
      fileSize: 100_000,
      chunkSize: 65_536,
      name: 'copy.bin',
      contentType: '',
      metadata: {},
      client: 'address:127.0.0.1',
      createdAt: Date.now(),
    };
    const adopted = await store.adoptContent(
      info,
      { id: 'b'.repeat(32), client: info.client, location: content },
      '0123456789abcdef',
    );
    expect(adopted).toBeUndefined();
    expect((await listFiles(tmp.path)).filter((f) => !f.endsWith('/'))).toEqual([]);
    expect(await readdir(join(tmp.path, 'uploads'))).toEqual([]);
    // Neither a link nor a clone (tmpfs across filesystems): the store stops finding content, so
    // no client is challenged to hash a file for an instant upload that cannot happen.
    expect(
      await store.findContent({ fileSize: 100_000, chunkSize: 65_536, digest: '0123456789abcdef' }),
    ).toEqual([]);
    await store.close();
  });
});
