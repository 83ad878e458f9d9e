/**
 * Group commit of directory fsyncs (server/store/directory-syncs.ts): callers that
 * arrive while a sync runs share the next one, never the running one (it may have started before
 * their change), and a failure reaches every caller that joined it. A failed fsync is final for
 * its directory (the kernel reports a writeback error once): callers waiting behind it and
 * callers that come later fail too, within a bounded memory of failed directories.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DirectorySyncs, MAX_FAILED_DIRECTORIES } from '../../server/store/directory-syncs.js';
import { failDirectorySyncs } from '../helpers/fail-syncs.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

let tmp: TempDir;
beforeEach(async () => {
  tmp = await makeTempDir();
});
afterEach(async () => {
  await tmp.cleanup();
});

describe('DirectorySyncs', () => {
  it('20 concurrent callers cost 2 fsyncs: the running one and one they all join', async () => {
    const syncs = new DirectorySyncs();
    const first = syncs.sync(tmp.path);
    expect(syncs.issued).toBe(1);
    const later = Array.from({ length: 19 }, () => syncs.sync(tmp.path));
    // None of the later callers may be answered by the sync already running.
    expect(syncs.issued).toBe(1);
    await Promise.all([first, ...later]);
    expect(syncs.issued).toBe(2);
    await syncs.sync(tmp.path);
    expect(syncs.issued).toBe(3);
  });

  it('a failed sync rejects every caller that joined it', async () => {
    const syncs = new DirectorySyncs();
    const dir = `${tmp.path}/soon-gone`;
    await mkdir(dir);
    const first = syncs.sync(dir);
    // Joined while the first runs: they share the next sync, which finds the directory gone.
    const joined = [syncs.sync(dir), syncs.sync(dir)].map((p) =>
      p.then(
        () => 'synced',
        (error: NodeJS.ErrnoException) => error.code,
      ),
    );
    await rm(dir, { recursive: true });
    await first.catch(() => undefined);
    expect(await Promise.all(joined)).toEqual(['ENOENT', 'ENOENT']);
    expect(syncs.issued).toBe(2);
  });

  it('holds nothing for a directory once its syncs are done (one folder per batch must not pile up)', async () => {
    const syncs = new DirectorySyncs();
    const dirs = await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const dir = `${tmp.path}/d${i}`;
        await mkdir(dir);
        return dir;
      }),
    );
    await Promise.all(dirs.flatMap((dir) => [syncs.sync(dir), syncs.sync(dir), syncs.sync(dir)]));
    expect(syncs.issued).toBe(100);
    expect(syncs.tracked).toBe(0);
  });

  it('a failed fsync (EIO) fails the callers waiting behind it and every later one for that directory; others still sync', async () => {
    const failing = join(tmp.path, 'failing');
    const other = join(tmp.path, 'other');
    await mkdir(failing);
    await mkdir(other);
    const restore = await failDirectorySyncs(tmp.path, (path) => path === failing, 1, 30);
    try {
      const syncs = new DirectorySyncs();
      const first = syncs.sync(failing);
      await delay(5);
      // Their entries changed before the failed fsync ended: it may have been writing them.
      const behind = [syncs.sync(failing), syncs.sync(failing)];
      const outcomes = await Promise.allSettled([first, ...behind]);
      expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected', 'rejected']);
      for (const o of outcomes)
        expect((o as PromiseRejectedResult).reason).toMatchObject({ code: 'EIO' });
      // The next fsync would succeed (the error is reported once), and must not be believed.
      await expect(syncs.sync(failing)).rejects.toMatchObject({
        code: 'EIO',
        message: expect.stringContaining('earlier fsync') as unknown,
      });
      await syncs.sync(other);
      // One fsync issued for the failing directory: nothing after it was asked of the disk.
      expect(syncs.issued).toBe(2);
    } finally {
      restore();
    }
  });

  it('a directory that could not be opened is not remembered as failed: once back, it syncs', async () => {
    const syncs = new DirectorySyncs();
    const dir = join(tmp.path, 'back-again');
    await expect(syncs.sync(dir)).rejects.toMatchObject({ code: 'ENOENT' });
    await mkdir(dir);
    await syncs.sync(dir);
  });

  it(`remembers at most ${MAX_FAILED_DIRECTORIES} failed directories; past that every directory fails`, async () => {
    const dirs = await Promise.all(
      Array.from({ length: MAX_FAILED_DIRECTORIES + 1 }, async (_, i) => {
        const dir = join(tmp.path, `f${i}`);
        await mkdir(dir);
        return dir;
      }),
    );
    const healthy = join(tmp.path, 'healthy');
    await mkdir(healthy);
    const restore = await failDirectorySyncs(tmp.path, (path) => path !== healthy, Infinity, 0);
    try {
      const syncs = new DirectorySyncs();
      await syncs.sync(healthy);
      for (const dir of dirs.slice(0, MAX_FAILED_DIRECTORIES))
        await expect(syncs.sync(dir)).rejects.toMatchObject({ code: 'EIO' });
      // Still only the failed ones fail.
      await syncs.sync(healthy);
      await expect(syncs.sync(dirs[MAX_FAILED_DIRECTORIES])).rejects.toMatchObject({
        code: 'EIO',
      });
      await expect(syncs.sync(healthy)).rejects.toMatchObject({
        code: 'EIO',
        message: expect.stringContaining('a directory of this store') as unknown,
      });
    } finally {
      restore();
    }
  });
});
