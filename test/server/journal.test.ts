import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DiskStore, type UploadInfo } from '../../server/index.js';
import { RECORD_BYTES } from '../../server/store/journal.js';
import { sanitizeName } from '../../server/store/names.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

const CHUNK = 65_536;

function info(id: string): UploadInfo {
  return { id, secretHash: '0'.repeat(64), fileSize: 10 * CHUNK, chunkSize: CHUNK, name: 'x', contentType: '', metadata: {}, createdAt: Date.now() };
}

describe('disk store journal', () => {
  let tmp: TempDir;
  beforeEach(async () => { tmp = await makeTempDir(); });
  afterEach(async () => { await tmp.cleanup(); });

  async function store(bootId: string): Promise<DiskStore> {
    const s = new DiskStore({ dir: tmp.path, bootId: () => bootId });
    await s.init();
    return s;
  }

  it('trusts every record after a process crash, only checkpointed ones after a reboot', async () => {
    const id = 'a'.repeat(32);
    const handle = await (await store('boot-1')).create(info(id));
    const payload = new Uint8Array(CHUNK).fill(7);
    for (const index of [0, 1, 2]) await handle.writeAt(payload, index * CHUNK);
    await handle.recordChunks([{ index: 0, hash: 10n }, { index: 1, hash: 11n }], false);
    await handle.checkpoint();
    await handle.recordChunks([{ index: 2, hash: 12n }], false);
    // No close: the process "dies" here.
    const sameBoot = await (await store('boot-1')).readState(id);
    expect(sameBoot!.chunks.map((c) => c.index)).toEqual([0, 1, 2]);
    const afterReboot = await (await store('boot-2')).readState(id);
    expect(afterReboot!.chunks).toEqual([{ index: 0, hash: 10n }, { index: 1, hash: 11n }]);
    // Reopening after the reboot cuts the untrusted tail for good.
    const reopened = await (await store('boot-2')).open(id);
    await reopened.close();
    expect((await (await store('boot-2')).readState(id))!.chunks.map((c) => c.index)).toEqual([0, 1]);
  });

  it('keeps durable (synced) records after a reboot', async () => {
    const id = 'd'.repeat(32);
    const handle = await (await store('boot-1')).create(info(id));
    await handle.syncData();
    await handle.recordChunks([{ index: 4, hash: 5n }], true);
    await handle.recordChunks([{ index: 5, hash: 6n }], false);
    expect((await (await store('boot-2')).readState(id))!.chunks).toEqual([{ index: 4, hash: 5n }]);
  });

  it('ignores a torn or zero-filled tail and stops at a corrupted record', async () => {
    const id = 'b'.repeat(32);
    const handle = await (await store('boot-1')).create(info(id));
    await handle.recordChunks([{ index: 0, hash: 1n }, { index: 1, hash: 2n }, { index: 2, hash: 3n }], false);
    const path = join(tmp.path, 'uploads', `${id}.journal`);
    await appendFile(path, Buffer.alloc(13, 0xab));
    expect((await (await store('boot-1')).readState(id))!.chunks).toHaveLength(3);
    await appendFile(path, Buffer.alloc(RECORD_BYTES * 2));
    expect((await (await store('boot-1')).readState(id))!.chunks).toHaveLength(3);
    const bytes = await readFile(path);
    // Records: BOOT, SYNC, CHUNK 0, CHUNK 1, CHUNK 2. Flip a bit in CHUNK 1.
    bytes[3 * RECORD_BYTES + 20]! ^= 1;
    await writeFile(path, bytes);
    expect((await (await store('boot-1')).readState(id))!.chunks).toEqual([{ index: 0, hash: 1n }]);
  });

  it('rolls back to the last checkpoint after a failed flush', async () => {
    const id = 'c'.repeat(32);
    const handle = await (await store('boot-1')).create(info(id));
    await handle.recordChunks([{ index: 0, hash: 1n }], false);
    await handle.checkpoint();
    await handle.recordChunks([{ index: 1, hash: 2n }], false);
    expect(await handle.rollbackToCheckpoint()).toEqual([{ index: 0, hash: 1n }]);
    await handle.recordChunks([{ index: 3, hash: 4n }], false);
    expect((await (await store('boot-1')).readState(id))!.chunks).toEqual([{ index: 0, hash: 1n }, { index: 3, hash: 4n }]);
  });

  it('sanitizes names into one safe component', () => {
    expect(sanitizeName('../../etc/passwd')).toBe('passwd');
    expect(sanitizeName('..')).toBe('file');
    expect(sanitizeName('C:\\x\\evil.dll')).toBe('evil.dll');
    expect(sanitizeName('a\u0000b')).toBe('a_b');
    expect(sanitizeName('.bashrc')).toBe('bashrc');
    expect(new TextEncoder().encode(sanitizeName('é'.repeat(500))).byteLength).toBeLessThanOrEqual(200);
  });
});
