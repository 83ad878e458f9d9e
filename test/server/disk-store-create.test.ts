/**
 * DiskStore.create and the space accounting that replaced the `fallocate` process (issue 14,
 * item 6): no process is spawned, the data file is sized sparse, every unfinished upload's size
 * counts against `freeSpace()`, and `create` refuses (INSUFFICIENT_STORAGE, nothing left behind)
 * what the free space net of those commitments cannot hold, also when creates race. Sizes are
 * taken from the real free space of the temp filesystem with wide margins (other processes write
 * to it meanwhile); nothing big is ever written, the files are sparse.
 */
import { chmod, mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Errors, isProtocolError } from '../../protocol/index.js';
import { DiskStore, type UploadInfo } from '../../server/index.js';
import { listFiles, makeTempDir, type TempDir } from '../helpers/tmp.js';

const GiB = 1024 ** 3;
/** The largest chunk, so even a huge upload has a small journal. */
const CHUNK = 64 * 1024 * 1024;

const info = (id: string, fileSize: number): UploadInfo => ({
  id,
  secretHash: '0'.repeat(64),
  fileSize,
  chunkSize: CHUNK,
  name: 'f.bin',
  contentType: '',
  metadata: {},
  createdAt: Date.now(),
});

function codeOf(error: unknown): number | undefined {
  return isProtocolError(error) ? error.code : undefined;
}

describe('DiskStore.create: space accounting without fallocate', () => {
  let tmp: TempDir;
  let savedPath: string | undefined;
  beforeEach(async () => {
    tmp = await makeTempDir();
    savedPath = process.env.PATH;
  });
  afterEach(async () => {
    process.env.PATH = savedPath;
    await tmp.cleanup();
  });

  async function store(logs: string[] = []): Promise<DiskStore> {
    const s = new DiskStore({
      dir: join(tmp.path, 'data'),
      logger: { info: (m) => logs.push(`info ${m}`), warn: (m) => logs.push(`warn ${m}`) },
    });
    await s.init();
    return s;
  }

  it('spawns no process, sizes the file sparse, and says once at init that blocks are not reserved', async () => {
    // A `fallocate` first on PATH that leaves a mark if anyone runs it (the old code did, per upload).
    const bin = join(tmp.path, 'bin');
    await mkdir(bin);
    await writeFile(join(bin, 'fallocate'), `#!/bin/sh\ntouch "${join(tmp.path, 'ran')}"\n`);
    await chmod(join(bin, 'fallocate'), 0o755);
    process.env.PATH = `${bin}:${savedPath ?? ''}`;
    const logs: string[] = [];
    const s = await store(logs);
    const handles = [];
    for (const id of ['a', 'b', 'c'])
      handles.push(await s.create(info(id.repeat(32), 256 * 1024 * 1024)));
    for (const h of handles) await h.close();
    expect(await readdir(tmp.path)).not.toContain('ran');
    const part = await stat(join(tmp.path, 'data', 'uploads', `${'a'.repeat(32)}.part`));
    expect(part.size).toBe(256 * 1024 * 1024);
    expect(part.blocks * 512).toBeLessThan(1024 * 1024);
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatch(/^info .*not reserved/);
  });

  it("counts an unfinished upload's size against the free space until it is removed", async () => {
    const s = await store();
    const before = await s.freeSpace();
    const size = Math.floor(before / 2);
    const handle = await s.create(info('d'.repeat(32), size));
    const during = await s.freeSpace();
    // Others write to this filesystem too: wide margins, still far below the size.
    expect(before - during).toBeGreaterThan(size - GiB);
    expect(before - during).toBeLessThan(size + GiB);
    await handle.close();
    // A restarted store finds the unfinished upload and counts it again.
    expect(before - (await (await store()).freeSpace())).toBeGreaterThan(size - GiB);
    await s.remove('d'.repeat(32));
    expect(Math.abs(before - (await s.freeSpace()))).toBeLessThan(GiB);
  });

  it('refuses what the uncommitted space cannot hold with INSUFFICIENT_STORAGE and leaves no file', async () => {
    const s = await store();
    const free = await s.freeSpace();
    const first = await s.create(info('e'.repeat(32), free - 4 * GiB));
    const error = await s.create(info('f'.repeat(32), 8 * GiB)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(codeOf(error)).toBe(Errors.INSUFFICIENT_STORAGE.code);
    expect(
      (await listFiles(join(tmp.path, 'data'))).filter((f) => f.includes('f'.repeat(32))),
    ).toEqual([]);
    await first.close();
  });

  it('does not overcommit when creates race: of two uploads that each fit alone but not together, one is refused', async () => {
    const s = await store();
    const free = await s.freeSpace();
    const size = Math.floor(free / 2) + 4 * GiB;
    const results = await Promise.allSettled([
      s.create(info('1'.repeat(32), size)),
      s.create(info('2'.repeat(32), size)),
    ]);
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(codeOf(refused.reason)).toBe(Errors.INSUFFICIENT_STORAGE.code);
    for (const r of results) if (r.status === 'fulfilled') await r.value.close();
  });

  it('with preallocate false counts nothing (OPEN compares with the free space at that moment only)', async () => {
    const s = new DiskStore({ dir: join(tmp.path, 'data'), preallocate: false });
    await s.init();
    const before = await s.freeSpace();
    const handle = await s.create(info('9'.repeat(32), Math.floor(before / 2)));
    expect(Math.abs(before - (await s.freeSpace()))).toBeLessThan(GiB);
    await handle.close();
  });
});
