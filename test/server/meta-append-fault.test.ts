/**
 * A completion whose record was appended but whose flush failed is not a completion: the record is
 * cut off again, so neither a retry nor a restart reads it as completed (SPEC.md 8: a failed sync
 * acks nothing it covered). node:fs/promises is wrapped so the first fdatasync of a metadata file
 * fails with EIO.
 */
import { constants } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DiskStore } from '../../server/index.js';
import { uploadInfo } from '../helpers/upload-info.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

const fault = vi.hoisted(() => ({ armed: false }));

vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const open: typeof real.open = async (...args: Parameters<typeof real.open>) => {
    const handle = await real.open(...args);
    const appending = typeof args[1] === 'number' && (args[1] & constants.O_APPEND) !== 0;
    if (!appending || !String(args[0]).endsWith('.json')) return handle;
    const { overrideHandle } = await import('../helpers/file-handles.js');
    return overrideHandle(handle, (prop) =>
      prop === 'datasync' && fault.armed
        ? async () => {
            fault.armed = false;
            throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
          }
        : undefined,
    );
  };
  return { ...real, open, default: { ...real, open } };
});

const CHUNK = 65_536;
const ID = 'cd'.repeat(16);
const info = uploadInfo({ id: ID, fileSize: CHUNK, chunkSize: CHUNK });

describe('completion record whose flush fails', () => {
  let tmp: TempDir;
  beforeEach(async () => {
    tmp = await makeTempDir();
  });
  afterEach(async () => {
    await tmp.cleanup();
  });

  it('is cut off again: the upload reads as not completed, keeps its chunk, and a retry completes it', async () => {
    const store = new DiskStore({ dir: tmp.path });
    await store.init();
    const handle = await store.create(info);
    await handle.writeAt(new Uint8Array(CHUNK).fill(9), 0);
    await handle.recordChunks([{ index: 0, hash: 1n }], false);
    fault.armed = true;
    await expect(handle.finish('4'.repeat(16))).rejects.toMatchObject({ code: 'EIO' });
    const state = await store.readState(ID);
    expect(state?.completion).toBeUndefined();
    expect(state?.chunks.map((c) => c.index)).toEqual([0]);
    const completion = await handle.finish('4'.repeat(16));
    expect(completion.location).toBe(join(tmp.path, 'files', ID, 'f.bin'));
    expect((await store.readState(ID))?.completion).toEqual(completion);
  });
});
