/**
 * The ledger of completed records of uploads stored from their OPEN
 * (server/store/completion-ledger.ts): what it links, what it refuses to link after a failure,
 * one ledger per client, the bound on open ledgers, close, and the fallback where no hard link can
 * be made; and a content lookup through a ledger whose newest record of a digest is not (yet) a
 * delivered file.
 */
import { randomBytes } from 'node:crypto';
import { access, mkdir, open, readdir, readFile, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hashToHex, loadHasher, wholeFileDigest } from '../../protocol/index.js';
import { DiskStore } from '../../server/index.js';
import { CompletionLedger, LEDGERS_OPEN } from '../../server/store/completion-ledger.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { uploadInfo } from '../helpers/upload-info.js';

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('CompletionLedger', () => {
  let tmp: TempDir;
  let dir: string;
  beforeEach(async () => {
    tmp = await makeTempDir();
    dir = join(tmp.path, 'uploads');
    await mkdir(dir);
  });
  afterEach(async () => {
    await tmp.cleanup();
  });

  const ledgerNames = async (): Promise<string[]> =>
    (await readdir(dir)).filter((name) => name.endsWith('.ledger'));

  it('links each record once it and what it claims are flushed; nothing when the claim failed', async () => {
    const ledger = new CompletionLedger(dir, 0o600);
    expect(await ledger.commit(undefined, '{"n":1}', join(dir, 'a.json'), Promise.resolve())).toBe(
      true,
    );
    const failed = ledger.commit(
      undefined,
      '{"n":2}',
      join(dir, 'b.json'),
      delay(5).then(() => {
        throw new Error('data flush failed');
      }),
    );
    await expect(failed).rejects.toThrow('data flush failed');
    await expect(access(join(dir, 'b.json'))).rejects.toThrow();
    // The record stays an unlinked line; a.json (the ledger) holds both.
    expect(await readFile(join(dir, 'a.json'), 'utf8')).toContain('{"n":2}');
    await ledger.close();
    expect(await ledgerNames()).toEqual([]);
  });

  it('no ledger to be had while what the record claims fails too: one error, no unhandled rejection', async () => {
    const unhandled: unknown[] = [];
    const listener = (reason: unknown): void => {
      unhandled.push(reason);
    };
    process.on('unhandledRejection', listener);
    try {
      const ledger = new CompletionLedger(join(tmp.path, 'missing'), 0o600);
      const ready = delay(5).then(() => {
        throw new Error('folders not made');
      });
      await expect(ledger.commit(undefined, '{}', join(tmp.path, 'x.json'), ready)).rejects.toThrow(
        /ENOENT/,
      );
      await delay(50);
    } finally {
      process.off('unhandledRejection', listener);
    }
    expect(unhandled).toEqual([]);
  });

  it('after a failed flush no record still waiting on that ledger is linked, and the next one goes to a new ledger', async () => {
    const probe = await open(join(dir, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as { datasync: () => Promise<void> };
    await probe.close();
    await unlink(join(dir, 'probe'));
    const original = proto.datasync;
    let calls = 0;
    proto.datasync = async function (this: unknown): Promise<void> {
      calls++;
      if (calls === 1) {
        await delay(30);
        throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
      }
      return original.call(this);
    };
    try {
      const ledger = new CompletionLedger(dir, 0o600);
      const first = ledger.commit(undefined, '{"n":1}', join(dir, 'a.json'), Promise.resolve());
      await delay(5);
      // Written while the first flush runs: it waits for the next flush, which succeeds.
      const second = ledger.commit(undefined, '{"n":2}', join(dir, 'b.json'), Promise.resolve());
      const [a, b] = await Promise.allSettled([first, second]);
      expect(a.status).toBe('rejected');
      expect(b.status).toBe('rejected');
      expect(calls).toBeGreaterThanOrEqual(2);
      await expect(access(join(dir, 'a.json'))).rejects.toThrow();
      await expect(access(join(dir, 'b.json'))).rejects.toThrow();
      expect(
        await ledger.commit(undefined, '{"n":3}', join(dir, 'c.json'), Promise.resolve()),
      ).toBe(true);
      expect(await readFile(join(dir, 'c.json'), 'utf8')).not.toContain('{"n":1}');
      await ledger.close();
    } finally {
      proto.datasync = original;
    }
  });

  it('commits arriving together share one write and one flush: every record is linked, whole', async () => {
    const probe = await open(join(dir, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as { write: (...args: unknown[]) => unknown };
    await probe.close();
    await unlink(join(dir, 'probe'));
    const original = proto.write;
    let writes = 0;
    proto.write = function (this: unknown, ...args: unknown[]): unknown {
      writes++;
      return original.apply(this, args);
    };
    try {
      const ledger = new CompletionLedger(dir, 0o600);
      const names = Array.from({ length: 20 }, (_, i) => `r${i}.json`);
      const linked = await Promise.all(
        names.map((name, i) =>
          ledger.commit('client', `{"n":${i}}`, join(dir, name), Promise.resolve()),
        ),
      );
      expect(linked.every(Boolean)).toBe(true);
      // The first flush takes the first line alone; the next, every line queued meanwhile.
      expect(writes).toBe(2);
      expect(ledger.flushesIssued).toBe(2);
      const lines = (await readFile(join(dir, names[0]), 'utf8')).split('\n').filter(Boolean);
      expect(lines).toEqual(names.map((_, i) => `{"n":${i}}`));
      await ledger.close();
    } finally {
      proto.write = original;
    }
  });

  it('a ledger whose name is gone is replaced at the first failed link', async () => {
    const ledger = new CompletionLedger(dir, 0o600);
    await ledger.commit(undefined, '{"n":1}', join(dir, 'a.json'), Promise.resolve());
    // What another process's start (or an operator) does to an open ledger's name.
    for (const name of await ledgerNames()) await unlink(join(dir, name));
    await expect(
      ledger.commit(undefined, '{"n":2}', join(dir, 'b.json'), Promise.resolve()),
    ).rejects.toThrow(/ENOENT/);
    expect(await ledger.commit(undefined, '{"n":3}', join(dir, 'c.json'), Promise.resolve())).toBe(
      true,
    );
    expect(await readFile(join(dir, 'c.json'), 'utf8')).toContain('{"n":3}');
    await ledger.close();
  });

  it('one ledger per client, at most LEDGERS_OPEN open: the least recently used is retired', async () => {
    const ledger = new CompletionLedger(dir, 0o600);
    await ledger.commit('alice', '{"c":"alice"}', join(dir, 'a1.json'), Promise.resolve());
    await ledger.commit('bob', '{"c":"bob"}', join(dir, 'b1.json'), Promise.resolve());
    await ledger.commit('alice', '{"c":"alice2"}', join(dir, 'a2.json'), Promise.resolve());
    const [a1, a2, b1] = await Promise.all(
      ['a1.json', 'a2.json', 'b1.json'].map(async (name) => (await stat(join(dir, name))).ino),
    );
    expect(a1).toBe(a2);
    expect(a1).not.toBe(b1);
    expect(await readFile(join(dir, 'a1.json'), 'utf8')).not.toContain('bob');
    for (let i = 0; i < LEDGERS_OPEN + 5; i++)
      await ledger.commit(`client-${i}`, '{}', join(dir, `c${i}.json`), Promise.resolve());
    expect(ledger.openCount).toBe(LEDGERS_OPEN);
    await delay(20);
    expect(await ledgerNames()).toHaveLength(LEDGERS_OPEN);
    await ledger.close();
    expect(await ledgerNames()).toEqual([]);
  });

  it('close waits for the commits in flight; a commit after close is refused', async () => {
    const ledger = new CompletionLedger(dir, 0o600);
    const order: string[] = [];
    const pending = ledger
      .commit(undefined, '{"n":1}', join(dir, 'a.json'), delay(100))
      .then(() => order.push('commit'));
    await delay(10);
    await ledger.close().then(() => order.push('close'));
    await pending;
    expect(order).toEqual(['commit', 'close']);
    expect(await ledgerNames()).toEqual([]);
    await expect(
      ledger.commit(undefined, '{"n":2}', join(dir, 'b.json'), Promise.resolve()),
    ).rejects.toThrow(/closed/);
    expect(await ledgerNames()).toEqual([]);
  });

  it('where no hard link can be made (another filesystem: EXDEV) it says so and links nothing', async () => {
    let elsewhere: string;
    try {
      elsewhere = await import('node:fs/promises').then((fs) =>
        fs.mkdtemp('/dev/shm/bigup-ledger-'),
      );
    } catch {
      // /dev/shm is a tmpfs on every Linux this runs on; without it the case cannot be made.
      throw new Error('/dev/shm is needed for this test');
    }
    try {
      const ledger = new CompletionLedger(dir, 0o600);
      expect(
        await ledger.commit(undefined, '{}', join(elsewhere, 'a.json'), Promise.resolve()),
      ).toBe(false);
      await expect(access(join(elsewhere, 'a.json'))).rejects.toThrow();
      await ledger.close();
    } finally {
      await rm(elsewhere, { recursive: true, force: true });
    }
  });
});

describe('DiskStore with the ledger', () => {
  let tmp: TempDir;
  beforeEach(async () => {
    tmp = await makeTempDir();
  });
  afterEach(async () => {
    await tmp.cleanup();
  });

  it('a content lookup passes over a newer record of the digest whose file is not there, and keeps the entry', async () => {
    const hasher = await loadHasher();
    const store = new DiskStore({ dir: tmp.path });
    await store.init();
    const bytes = new Uint8Array(randomBytes(4000));
    const digest = hashToHex(wholeFileDigest(hasher, [hasher.h64(bytes)]));
    const first = await store.create(
      uploadInfo({ id: 'a'.repeat(32), fileSize: bytes.byteLength }),
      { completesAtOnce: true },
    );
    await first.writeAt(bytes, 0);
    const delivered = await first.finish(digest);
    const key = { fileSize: bytes.byteLength, chunkSize: 65_536, digest };
    expect((await store.findContent(key)).map((ref) => ref.id)).toEqual(['a'.repeat(32)]);
    // A second upload of the same content whose completion then failed after its record went in:
    // the data flush fails (its data file closed under it), so nothing of it is linked or moved.
    const second = await store.create(
      uploadInfo({ id: 'b'.repeat(32), fileSize: bytes.byteLength }),
      { completesAtOnce: true },
    );
    await second.writeAt(bytes, 0);
    const data = (second as unknown as { data: { close(): Promise<void> } }).data;
    await data.close();
    await expect(second.finish(digest)).rejects.toThrow();
    const ledgerText = await readFile(join(tmp.path, 'uploads', `${'a'.repeat(32)}.json`), 'utf8');
    expect(ledgerText).toContain('b'.repeat(32));
    // The newest record of the digest names no file: the older one is found, the entry kept.
    for (let i = 0; i < 2; i++)
      expect((await store.findContent(key)).map((ref) => ref.location)).toEqual([
        delivered.location,
      ]);
    await store.close();
  });
});
