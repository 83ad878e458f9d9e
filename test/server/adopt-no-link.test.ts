/**
 * DiskStore.adoptContent where no hard link can be made to the content (here it lies on another
 * filesystem: EXDEV) and no clone either (tmpfs): no copy is made, since a copy would write the
 * whole file for a proof of a few hashes, outside every quota. The store says so (undefined),
 * leaves nothing behind, and the OPEN goes on as an ordinary upload. A file of the server's own can
 * still be linked there, so it was this content alone: instant upload stays on for the rest.
 */
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadHasher, wholeFileDigest, hashToHex } from '../../protocol/index.js';
import { DiskStore } from '../../server/index.js';
import { uploadInfo } from '../helpers/upload-info.js';
import { listFiles, makeTempDir, type TempDir } from '../helpers/tmp.js';

const SIZE = 100_000;
const CHUNK = 131_072;

const info = (id: string, name: string) =>
  uploadInfo({ id, name, fileSize: SIZE, chunkSize: CHUNK, client: 'address:127.0.0.1' });

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

  it('copies nothing and answers undefined; nothing lands or is recorded; other content is still found', async () => {
    const hasher = await loadHasher();
    const store = new DiskStore({ dir: tmp.path });
    await store.init();
    // Content delivered the ordinary way, remembered by the content index.
    const bytes = new Uint8Array(SIZE).fill(9);
    const hash = hasher.h64(bytes);
    const digest = hashToHex(wholeFileDigest(hasher, [hash]));
    const delivered = await store.create(info('a'.repeat(32), 'delivered.bin'));
    await delivered.writeAt(bytes, 0);
    await delivered.recordChunks([{ index: 0, hash }], true);
    await delivered.finish(digest);
    await delivered.close();
    const key = { fileSize: SIZE, chunkSize: CHUNK, digest };
    expect(await store.findContent(key)).toHaveLength(1);
    const before = (await readdir(join(tmp.path, 'uploads'))).sort();

    const content = join(elsewhere, 'held.bin');
    await writeFile(content, Buffer.alloc(SIZE, 7));
    const adopted = await store.adoptContent(
      info('b'.repeat(32), 'copy.bin'),
      { id: 'c'.repeat(32), client: 'address:127.0.0.1', location: content },
      '0123456789abcdef',
    );
    expect(adopted).toBeUndefined();
    // Only the delivered file under files/ (the adoption's folder may stay, empty).
    expect(
      (await listFiles(join(tmp.path, 'files'))).filter((name) => !name.endsWith('/')),
    ).toEqual([`${'a'.repeat(32)}/delivered.bin`]);
    expect((await readdir(join(tmp.path, 'uploads'))).sort()).toEqual(before);
    // A file of the server's own links there: this content alone failed, instant upload stays on.
    expect(await store.findContent(key)).toHaveLength(1);
    await store.close();
  });
});
