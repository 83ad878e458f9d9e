/**
 * The disk store's uploads that complete in the step that created them (an OPEN with data,
 * SPEC.md 16.11; `CreateIntent.completesAtOnce`): no journal file is ever made, the completion is
 * as durable and as placed as any, and one a crash cut before its completion is an upload that
 * stored nothing (not damage), listed as empty so the sweeper removes it.
 */
import { randomBytes } from 'node:crypto';
import { access, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadHasher, wholeFileDigest, hashToHex } from '../../protocol/index.js';
import { DiskStore } from '../../server/index.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { uploadInfo } from '../helpers/upload-info.js';

const ID = 'a'.repeat(32);

describe('DiskStore: uploads created to complete at once', () => {
  let tmp: TempDir;
  beforeEach(async () => {
    tmp = await makeTempDir();
  });
  afterEach(async () => {
    await tmp.cleanup();
  });

  it('make no journal, and complete like any upload', async () => {
    const hasher = await loadHasher();
    const bytes = new Uint8Array(randomBytes(5000));
    const hash = hasher.h64(bytes);
    const store = new DiskStore({ dir: tmp.path });
    await store.init();
    const handle = await store.create(uploadInfo({ id: ID, fileSize: bytes.byteLength }), {
      completesAtOnce: true,
    });
    expect(await readdir(join(tmp.path, 'uploads'))).not.toContain(`${ID}.journal`);
    await handle.writeAt(bytes, 0);
    await handle.recordChunks([{ index: 0, hash }], true);
    await handle.checkpoint();
    expect(await readdir(join(tmp.path, 'uploads'))).not.toContain(`${ID}.journal`);
    const completion = await handle.finish(hashToHex(wholeFileDigest(hasher, [hash])));
    expect(Buffer.from(await readFile(completion.location)).equals(Buffer.from(bytes))).toBe(true);
    expect((await readdir(join(tmp.path, 'uploads'))).sort()).toEqual([`${ID}.json`]);

    // The same create without the intent makes its journal at once.
    const other = 'b'.repeat(32);
    const journaled = await store.create(uploadInfo({ id: other, fileSize: 10 }));
    await access(join(tmp.path, 'uploads', `${other}.journal`));
    await journaled.close();
  });

  it('cut by a crash before its completion: an upload that stored nothing, not damage, swept as empty', async () => {
    const store = new DiskStore({ dir: tmp.path });
    await store.init();
    const handle = await store.create(uploadInfo({ id: ID, fileSize: 100 }), {
      completesAtOnce: true,
    });
    await handle.writeAt(new Uint8Array(100).fill(7), 0);
    await handle.recordChunks([{ index: 0, hash: 1n }], false);
    // No finish, no close: the process died here. A new one reads the store.
    const restarted = new DiskStore({ dir: tmp.path });
    await restarted.init();
    const state = await restarted.readState(ID);
    expect(state?.damaged).toBeUndefined();
    expect(state?.chunks).toEqual([]);
    expect(state?.completion).toBeUndefined();
    const listed = await restarted.list();
    expect(listed).toEqual([expect.objectContaining({ id: ID, completed: false, empty: true })]);
    // Also among the unfinished ones, which start-up reads to restore quotas and space.
    expect((await restarted.list({ unfinished: true })).map((s) => s.id)).toEqual([ID]);
  });
});
