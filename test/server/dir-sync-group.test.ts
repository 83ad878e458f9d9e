/**
 * Group commit of directory fsyncs (server/store/directory-syncs.ts): callers that
 * arrive while a sync runs share the next one, never the running one (it may have started before
 * their change), and a failure reaches every caller that joined it.
 */
import { mkdir, rm } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DirectorySyncs } from '../../server/store/directory-syncs.js';
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
});
