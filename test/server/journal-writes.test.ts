/**
 * The journal's writes under a failing device (issue 14, item 3), with the journal's file handle
 * wrapped (vi.mock of node:fs/promises, journal files only): short writes are continued, a write
 * that fails midway keeps every whole record and leaves no torn bytes that would later read as
 * damage, and a full disk neither fails a CHUNK record (its slot is reserved) nor a checkpoint
 * (its SYNC mark is skipped when the margin is spent).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DiskStore, type ChunkRecord, type UploadInfo } from '../../server/index.js';
import { RECORD_BYTES } from '../../server/store/journal.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

/** How the wrapped journal handles write. */
const plan = vi.hoisted(() => ({
  /** Largest write the device takes at once (short writes). */
  maxWrite: Infinity,
  /** After this many more bytes, writes fail with ENOSPC (only writes that extend the file). */
  bytesUntilFull: Infinity,
  /** Writes that extend the file fail with ENOSPC (a full disk). */
  full: false,
  /** After this many more bytes (any write), one write fails with EIO; then the budget is off. */
  budget: Infinity,
  /** The file size as the wrapper tracks it. */
  sizes: new Map<number, number>(),
  writes: 0,
}));

vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const enospc = () => Object.assign(new Error('ENOSPC: injected'), { code: 'ENOSPC' });
  const open: typeof real.open = async (...args: Parameters<typeof real.open>) => {
    const handle = await real.open(...args);
    if (!String(args[0]).endsWith('.journal')) return handle;
    let size = (await handle.stat()).size;
    return new Proxy(handle, {
      get(target, prop) {
        if (prop === 'write') {
          return async (
            buffer: Uint8Array,
            offset: number,
            length: number,
            position?: number | null,
          ) => {
            // No position: an append (O_APPEND), at the end.
            const at = typeof position === 'number' ? position : size;
            plan.writes++;
            if (plan.budget <= 0) {
              plan.budget = Infinity;
              throw Object.assign(new Error('EIO: injected'), { code: 'EIO' });
            }
            let take = Math.min(length, plan.maxWrite, plan.budget);
            if (plan.budget !== Infinity) plan.budget -= take;
            const extends_ = at + take > size;
            if (extends_ && plan.full) throw enospc();
            if (extends_ && plan.bytesUntilFull !== Infinity) {
              if (plan.bytesUntilFull <= 0) throw enospc();
              take = Math.min(take, plan.bytesUntilFull);
              plan.bytesUntilFull -= take;
            }
            const result = await target.write(buffer, offset, take, position);
            size = Math.max(size, at + result.bytesWritten);
            return result;
          };
        }
        const value = Reflect.get(target, prop, target) as unknown;
        return typeof value === 'function'
          ? (value as (...a: unknown[]) => unknown).bind(target)
          : value;
      },
    });
  };
  return { ...real, open, default: { ...real, open } };
});

const CHUNK = 65_536;
const CHUNKS = 200;
const info = (id: string): UploadInfo => ({
  id,
  secretHash: '0'.repeat(64),
  fileSize: CHUNKS * CHUNK,
  chunkSize: CHUNK,
  name: 'x',
  contentType: '',
  metadata: {},
  createdAt: Date.now(),
});
const records = (from: number, to: number): ChunkRecord[] =>
  Array.from({ length: to - from }, (_, i) => ({ index: from + i, hash: BigInt(from + i + 1000) }));

describe('journal writes on a failing device', () => {
  let tmp: TempDir;
  beforeEach(async () => {
    tmp = await makeTempDir();
    Object.assign(plan, {
      maxWrite: Infinity,
      bytesUntilFull: Infinity,
      full: false,
      budget: Infinity,
      writes: 0,
    });
  });
  afterEach(async () => {
    await tmp.cleanup();
  });

  async function store(): Promise<DiskStore> {
    const s = new DiskStore({ dir: tmp.path, bootId: () => 'boot-1', preallocate: false });
    await s.init();
    return s;
  }

  it('continues short writes: every record lands whole, in order', async () => {
    const s = await store();
    const id = 'a'.repeat(32);
    const handle = await s.create(info(id));
    plan.maxWrite = 13; // not a multiple of a record: every record is split across writes
    plan.writes = 0;
    await handle.recordChunks(records(0, 10), false);
    await handle.recordChunks(records(10, 12), false);
    expect(plan.writes, 'the records went in over many short writes').toBeGreaterThan(20);
    plan.maxWrite = Infinity;
    const state = await (await store()).readState(id);
    expect(state?.damaged).toBeUndefined();
    expect(state?.chunks).toEqual(records(0, 12));
    await handle.close();
  });

  it('a write that fails midway keeps the whole records, zeroes the torn one, and the next write continues cleanly', async () => {
    const s = await store();
    const id = 'b'.repeat(32);
    const handle = await s.create(info(id));
    // The device takes 2.5 records of this write (16 bytes at a time), then fails with EIO.
    plan.maxWrite = 16;
    plan.budget = 2.5 * RECORD_BYTES;
    await expect(handle.recordChunks(records(0, 5), false)).rejects.toMatchObject({ code: 'EIO' });
    plan.maxWrite = Infinity;
    // Records 0 and 1 went in whole and stay; the half of record 2 is gone (zeroed).
    const journal = await readFile(join(tmp.path, 'uploads', `${id}.journal`));
    const tornAt = 4 * RECORD_BYTES; // BOOT, SYNC, CHUNK 0, CHUNK 1, then the torn CHUNK 2
    expect(journal.subarray(tornAt, tornAt + RECORD_BYTES).every((b) => b === 0)).toBe(true);
    expect((await (await store()).readState(id))?.chunks).toEqual(records(0, 2));
    // The next write goes right after the whole records: nothing reads as damage.
    await handle.recordChunks(records(2, 4), false);
    const state = await (await store()).readState(id);
    expect(state?.damaged).toBeUndefined();
    expect(state?.chunks).toEqual(records(0, 4));
    await handle.close();
  });

  it('on a full disk every chunk whose data went in still gets its record, and checkpoints skip the mark instead of failing', async () => {
    const s = await store();
    const id = 'c'.repeat(32);
    const handle = await s.create(info(id));
    // Each chunk's data written (its record slot held first), then the disk is full.
    const bytes = new Uint8Array(CHUNK);
    for (let i = 0; i < CHUNKS; i++) await handle.writeAt(bytes, i * CHUNK);
    plan.full = true; // no byte past the end of any journal from here on
    for (let i = 0; i < CHUNKS; i += 10) {
      await handle.recordChunks(records(i, i + 10), false);
      // A checkpoint after every batch: 20 marks, more than fit next to 200 chunks on some margins.
      await handle.checkpoint();
    }
    for (let k = 0; k < 100; k++) await handle.checkpoint();
    const state = await (await store()).readState(id);
    expect(state?.chunks).toEqual(records(0, CHUNKS));
    await handle.close();
    plan.full = false;
  });
  it('on a full disk a chunk whose record slot cannot be reserved is refused before its data is written; the held ones are recorded', async () => {
    const s = await store();
    const id = 'd'.repeat(32);
    const handle = await s.create(info(id));
    const ones = new Uint8Array(CHUNK).fill(1);
    // The first chunks fit in the slots reserved at create.
    for (let i = 0; i < 10; i++) await handle.writeAt(ones, i * CHUNK);
    plan.full = true;
    let refusedAt = -1;
    for (let i = 10; i < CHUNKS; i++) {
      try {
        await handle.writeAt(ones, i * CHUNK);
      } catch (error) {
        expect(error).toMatchObject({ code: 'ENOSPC' });
        refusedAt = i;
        break;
      }
    }
    expect(refusedAt, 'some chunk needs a slot past the reserve').toBeGreaterThan(10);
    const data = await readFile(join(tmp.path, 'uploads', `${id}.part`));
    expect(data.subarray(refusedAt * CHUNK, (refusedAt + 1) * CHUNK).every((b) => b === 0)).toBe(
      true,
    );
    await handle.recordChunks(records(0, refusedAt), false);
    await handle.checkpoint();
    plan.full = false;
    expect((await (await store()).readState(id))?.chunks).toEqual(records(0, refusedAt));
    // With space again the refused chunk goes in.
    await handle.writeAt(ones, refusedAt * CHUNK);
    await handle.recordChunks(records(refusedAt, refusedAt + 1), false);
    await handle.close();
    expect((await (await store()).readState(id))?.chunks).toEqual(records(0, refusedAt + 1));
  });
  it('on a full disk a claim waiting for growth takes nothing from a record queued ahead of it (whose slot is held)', async () => {
    const s = await store();
    const id = 'e'.repeat(32);
    const handle = await s.create(info(id));
    const ones = new Uint8Array(CHUNK).fill(1);
    // On the full disk, the chunks whose slots fit the reserve made at create go in.
    plan.full = true;
    let held = 0;
    while (held < CHUNKS) {
      try {
        await handle.writeAt(ones, held * CHUNK);
      } catch {
        break;
      }
      held++;
    }
    expect(held).toBeGreaterThan(10);
    // The records of the held chunks, and meanwhile the next chunk's write that needs growth.
    const records_ = handle.recordChunks(records(0, held), false);
    const next = handle.writeAt(ones, held * CHUNK);
    const [recorded, refused] = await Promise.allSettled([records_, next]);
    // Before the fix the records failed (the pending claim counted as held), and the rollback that
    // follows a failed record drops acked chunks.
    expect(recorded.status).toBe('fulfilled');
    expect(refused).toMatchObject({ status: 'rejected', reason: { code: 'ENOSPC' } });
    plan.full = false;
    await handle.close();
    expect((await (await store()).readState(id))?.chunks).toEqual(records(0, held));
  });
});
