/**
 * The disk store's uploads that complete in the step that created them (an OPEN with data,
 * SPEC.md 16.11; `CreateIntent.completesAtOnce`): no journal file is ever made, the completion is
 * as durable and as placed as any, its completed record is a line of a shared ledger
 * (completion-ledger.ts), and one a crash cut before its completion stored nothing: the next
 * start removes its data file.
 */
import { randomBytes } from 'node:crypto';
import { access, readdir, readFile, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadHasher, wholeFileDigest, hashToHex } from '../../protocol/index.js';
import { DiskStore } from '../../server/index.js';
import { LEDGER_MAX_RECORDS } from '../../server/store/completion-ledger.js';
import { failDirectorySyncs } from '../helpers/fail-syncs.js';
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
    // Its only record is a line of the open ledger (completion-ledger.ts): <id>.json is a link to
    // it, and closing the store removes the ledger's own name.
    const names = await readdir(join(tmp.path, 'uploads'));
    expect(names.filter((n) => !n.endsWith('.ledger'))).toEqual([`${ID}.json`]);
    expect(names.filter((n) => n.endsWith('.ledger'))).toHaveLength(1);
    const ledgerName = names.find((n) => n.endsWith('.ledger')) ?? '';
    expect((await stat(join(tmp.path, 'uploads', `${ID}.json`))).ino).toBe(
      (await stat(join(tmp.path, 'uploads', ledgerName))).ino,
    );
    await store.close();
    expect(await readdir(join(tmp.path, 'uploads'))).toEqual([`${ID}.json`]);
    expect((await store.readState(ID))?.completion).toEqual(completion);

    // The same create without the intent makes its journal at once.
    const other = 'b'.repeat(32);
    const journaled = await store.create(uploadInfo({ id: other, fileSize: 10 }));
    await access(join(tmp.path, 'uploads', `${other}.journal`));
    await journaled.close();
  });

  it('cut by a crash before its completion: nothing stored, and the next start removes its data file', async () => {
    const store = new DiskStore({ dir: tmp.path });
    await store.init();
    const handle = await store.create(uploadInfo({ id: ID, fileSize: 100 }), {
      completesAtOnce: true,
    });
    await handle.writeAt(new Uint8Array(100).fill(7), 0);
    await handle.recordChunks([{ index: 0, hash: 1n }], false);
    // No metadata before the completion: nothing of it is ever acked.
    expect(await readdir(join(tmp.path, 'uploads'))).toEqual([`${ID}.part`]);
    // No finish, no close: the process died here. A new one reads the store.
    const restarted = new DiskStore({ dir: tmp.path });
    await restarted.init();
    expect(await restarted.readState(ID)).toBeUndefined();
    expect(await restarted.list()).toEqual([]);
    expect(await restarted.list({ unfinished: true })).toEqual([]);
    // Unknown to readState and so never listed for the sweeper: start-up removed it.
    expect(await readdir(join(tmp.path, 'uploads'))).toEqual([]);
  });

  it('a crash after the commit: the next start finishes the move, and drops the left ledger name', async () => {
    const hasher = await loadHasher();
    const store = new DiskStore({ dir: tmp.path });
    await store.init();
    const bytes = new Uint8Array(randomBytes(3000));
    const digest = hashToHex(wholeFileDigest(hasher, [hasher.h64(bytes)]));
    const handle = await store.create(uploadInfo({ id: ID, fileSize: bytes.byteLength }), {
      completesAtOnce: true,
    });
    await handle.writeAt(bytes, 0);
    const completion = await handle.finish(digest);
    // What a crash between the commit (the link) and the move leaves: the data file back in
    // uploads/, the ledger's name still there (no close).
    await rename(completion.location, join(tmp.path, 'uploads', `${ID}.part`));
    const restarted = new DiskStore({ dir: tmp.path });
    await restarted.init();
    expect((await restarted.readState(ID))?.completion).toEqual(completion);
    expect(Buffer.from(await readFile(completion.location)).equals(Buffer.from(bytes))).toBe(true);
    expect(await readdir(join(tmp.path, 'uploads'))).toEqual([`${ID}.json`]);
  });

  it('many at once share one ledger and a few flushes; a full ledger is replaced, and removing one upload keeps the others', async () => {
    const hasher = await loadHasher();
    const store = new DiskStore({ dir: tmp.path });
    await store.init();
    const count = LEDGER_MAX_RECORDS + 10;
    const ids = Array.from({ length: count }, (_, i) => i.toString(16).padStart(32, '0'));
    const contents = ids.map(() => new Uint8Array(randomBytes(64)));
    const completions = await Promise.all(
      ids.map(async (id, i) => {
        const handle = await store.create(uploadInfo({ id, fileSize: 64 }), {
          completesAtOnce: true,
        });
        await handle.writeAt(contents[i], 0);
        return handle.finish(hashToHex(wholeFileDigest(hasher, [hasher.h64(contents[i])])));
      }),
    );
    const uploads = join(tmp.path, 'uploads');
    const inodes = new Map<number, number>();
    for (const id of ids) {
      const { ino } = await stat(join(uploads, `${id}.json`));
      inodes.set(ino, (inodes.get(ino) ?? 0) + 1);
    }
    // Two ledgers: the first took its maximum, the second the rest.
    expect([...inodes.values()].sort((a, b) => a - b)).toEqual([10, LEDGER_MAX_RECORDS]);
    // Only the open ledger keeps a name of its own.
    expect((await readdir(uploads)).filter((n) => n.endsWith('.ledger'))).toHaveLength(1);
    expect(store.ledgerFlushes).toBeLessThan(count / 4);
    await store.remove(ids[0]);
    expect(await store.readState(ids[0])).toBeUndefined();
    for (const [i, id] of ids.entries()) {
      if (i === 0) continue;
      const state = await store.readState(id);
      expect(state?.completion).toEqual(completions[i]);
      expect(Buffer.from(await readFile(completions[i].location))).toEqual(
        Buffer.from(contents[i]),
      );
    }
    await store.close();
  });

  it('after a failed fsync of uploads/ no later completion is reported done: they fail, and none reads as completed', async () => {
    const hasher = await loadHasher();
    const store = new DiskStore({ dir: tmp.path });
    await store.init();
    const uploads = join(tmp.path, 'uploads');
    const complete = async (id: string): Promise<unknown> => {
      const bytes = new Uint8Array(randomBytes(3000));
      const hash = hasher.h64(bytes);
      const handle = await store.create(uploadInfo({ id, fileSize: bytes.byteLength }), {
        completesAtOnce: true,
      });
      await handle.writeAt(bytes, 0);
      await handle.recordChunks([{ index: 0, hash }], true);
      return handle.finish(hashToHex(wholeFileDigest(hasher, [hash]))).then(
        () => 'done',
        (error: NodeJS.ErrnoException) => error.code,
      );
    };
    expect((await store.health()).store.ok).toBe(true);
    const restore = await failDirectorySyncs(tmp.path, (path) => path === uploads, 1, 0);
    try {
      expect(await complete('c'.repeat(32))).toBe('EIO');
      // The disk would now answer the fsync with success: the store must not believe it.
      expect(await complete('d'.repeat(32))).toBe('EIO');
      for (const id of ['c'.repeat(32), 'd'.repeat(32)])
        expect((await store.readState(id))?.completion).toBeUndefined();
      // /healthz's view: not ok, so the server gets restarted; no path (it may be public).
      const health = await store.health();
      expect(health.store.ok).toBe(false);
      expect(health.store.detail).toContain('EIO');
      expect(health.store.detail).not.toContain(tmp.path);
    } finally {
      restore();
      await store.close();
    }
  });

  it('a failed fsync of the folder a completed file landed in: that completion is not read back as done until restart', async () => {
    const hasher = await loadHasher();
    const store = new DiskStore({ dir: tmp.path });
    await store.init();
    const id = 'e'.repeat(32);
    const bytes = new Uint8Array(randomBytes(2000));
    const hash = hasher.h64(bytes);
    const handle = await store.create(uploadInfo({ id, fileSize: bytes.byteLength }), {
      completesAtOnce: true,
    });
    await handle.writeAt(bytes, 0);
    await handle.recordChunks([{ index: 0, hash }], true);
    // The landing folder is files/<id>: its fsync, after the commit, fails.
    const landing = join(tmp.path, 'files', id);
    const restore = await failDirectorySyncs(tmp.path, (path) => path === landing, 1, 0);
    try {
      await expect(handle.finish(hashToHex(wholeFileDigest(hasher, [hash])))).rejects.toMatchObject(
        { code: 'EIO' },
      );
      // A RESUME reads the upload back: the record says completed, the folder's entry is unknown.
      await expect(store.readState(id)).rejects.toMatchObject({ code: 'EIO' });
    } finally {
      restore();
      await store.close();
    }
    // After a restart (a new store on the same directory) it reads as completed again.
    const again = new DiskStore({ dir: tmp.path });
    await again.init();
    expect((await again.readState(id))?.completion).toBeDefined();
    await again.close();
  });
});
