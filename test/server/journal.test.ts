import { appendFile, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DiskStore, type UploadInfo } from '../../server/index.js';
import { Errors, loadHasher, type Hasher } from '../../protocol/index.js';
import {
  Journal,
  RECORD_BYTES,
  RETRACT_GROWTH_FACTOR,
  journalSlotsFor,
  FIRST_CHUNK_SLOTS,
  parseJournal,
} from '../../server/store/journal.js';
import { sanitizeName } from '../../server/store/names.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

const CHUNK = 65_536;

function info(id: string): UploadInfo {
  return {
    id,
    secretHash: '0'.repeat(64),
    fileSize: 10 * CHUNK,
    chunkSize: CHUNK,
    name: 'x',
    contentType: '',
    metadata: {},
    createdAt: Date.now(),
  };
}

describe('disk store journal', () => {
  let tmp: TempDir;
  beforeEach(async () => {
    tmp = await makeTempDir();
  });
  afterEach(async () => {
    await tmp.cleanup();
  });

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
    await handle.recordChunks(
      [
        { index: 0, hash: 10n },
        { index: 1, hash: 11n },
      ],
      false,
    );
    await handle.checkpoint();
    await handle.recordChunks([{ index: 2, hash: 12n }], false);
    // No close: the process "dies" here.
    const sameBoot = await (await store('boot-1')).readState(id);
    expect(sameBoot!.chunks.map((c) => c.index)).toEqual([0, 1, 2]);
    const afterReboot = await (await store('boot-2')).readState(id);
    expect(afterReboot!.chunks).toEqual([
      { index: 0, hash: 10n },
      { index: 1, hash: 11n },
    ]);
    // Reopening after the reboot cuts the untrusted tail for good.
    const reopened = await (await store('boot-2')).open(id);
    await reopened.close();
    expect((await (await store('boot-2')).readState(id))!.chunks.map((c) => c.index)).toEqual([
      0, 1,
    ]);
  });

  it('keeps durable (synced) records after a reboot', async () => {
    const id = 'd'.repeat(32);
    const handle = await (await store('boot-1')).create(info(id));
    await handle.syncData();
    await handle.recordChunks([{ index: 4, hash: 5n }], true);
    await handle.recordChunks([{ index: 5, hash: 6n }], false);
    expect((await (await store('boot-2')).readState(id))!.chunks).toEqual([{ index: 4, hash: 5n }]);
  });

  it('ignores a torn or zero-filled tail; a corrupted record with valid ones after it is damage, left untouched', async () => {
    const id = 'b'.repeat(32);
    const handle = await (await store('boot-1')).create(info(id));
    await handle.recordChunks(
      [
        { index: 0, hash: 1n },
        { index: 1, hash: 2n },
        { index: 2, hash: 3n },
      ],
      false,
    );
    const path = join(tmp.path, 'uploads', `${id}.journal`);
    await appendFile(path, Buffer.alloc(13, 0xab));
    expect((await (await store('boot-1')).readState(id))!.chunks).toHaveLength(3);
    await appendFile(path, Buffer.alloc(RECORD_BYTES * 2));
    expect((await (await store('boot-1')).readState(id))!.chunks).toHaveLength(3);
    const bytes = await readFile(path);
    // Records: BOOT, SYNC, CHUNK 0, CHUNK 1, CHUNK 2. Flip a bit in CHUNK 1.
    bytes[3 * RECORD_BYTES + 20] ^= 1;
    await writeFile(path, bytes);
    const state = (await (await store('boot-1')).readState(id))!;
    expect(state.chunks).toEqual([]);
    expect(state.damaged).toMatch(/record 3 .*fails its check/);
    await expect((await store('boot-1')).open(id)).rejects.toMatchObject({
      code: Errors.UPLOAD_DAMAGED.code,
    });
    expect((await readFile(path)).equals(bytes)).toBe(true);
  });

  describe('torn tail or damage (parseJournal)', () => {
    const BOOT1 = 0xb1n;
    const BOOT2 = 0xb2n;
    /** Hand-made journal: [type, a, b] per record; `bad` indexes get a failing check. */
    function journal(
      hasher: Hasher,
      records: Array<[number, number, bigint]>,
      bad: number[] = [],
    ): Uint8Array {
      const bytes = new Uint8Array(records.length * RECORD_BYTES);
      const view = new DataView(bytes.buffer);
      records.forEach(([type, a, b], i) => {
        const at = i * RECORD_BYTES;
        view.setUint8(at, type);
        view.setBigUint64(at + 8, BigInt(a));
        view.setBigUint64(at + 16, b);
        view.setBigUint64(
          at + 24,
          hasher.h64(bytes.subarray(at, at + 24)) ^ (bad.includes(i) ? 1n : 0n),
        );
      });
      return bytes;
    }
    const C = (index: number): [number, number, bigint] => [1, index, BigInt(index + 100)];
    const S = (covered: number): [number, number, bigint] => [2, covered, 0n];
    const B = (boot: bigint): [number, number, bigint] => [3, 0, boot];

    it('same boot: a bad record followed by a valid one is damage (a killed process leaves no hole)', async () => {
      const h = await loadHasher();
      const bytes = journal(h, [B(BOOT1), S(0), C(0), C(1), C(2)], [3]);
      expect(parseJournal(h, bytes, BOOT1).damage).toBeDefined();
      // Only trailing bad records: a torn tail.
      const tail = parseJournal(h, journal(h, [B(BOOT1), S(0), C(0), C(1), C(2)], [3, 4]), BOOT1);
      expect(tail.damage).toBeUndefined();
      expect(tail).toMatchObject({ trustedRecords: 3, truncated: true });
    });

    it('after a reboot: a hole past the last proven SYNC mark is a torn tail, one before it is damage', async () => {
      const h = await loadHasher();
      // Unflushed region (no SYNC after the hole): pages written back out of order, then power loss.
      const torn = parseJournal(
        h,
        journal(h, [B(BOOT1), S(0), C(0), S(3), C(1), C(2), C(3)], [5]),
        BOOT2,
      );
      expect(torn.damage).toBeUndefined();
      expect(torn).toMatchObject({ trustedRecords: 3, chunks: [{ index: 0, hash: 100n }] });
      // A SYNC mark after the hole with nothing after it: its fdatasync may not have finished.
      expect(
        parseJournal(h, journal(h, [B(BOOT1), S(0), C(0), C(1), S(4)], [2]), BOOT2).damage,
      ).toBeUndefined();
      // A SYNC mark after the hole followed by a valid record: the hole was flushed, so it is damage.
      expect(
        parseJournal(h, journal(h, [B(BOOT1), S(0), C(0), C(1), S(4), C(2)], [2]), BOOT2).damage,
      ).toBeDefined();
    });

    it("after a reboot: a new journal's SYNC(0) proves no flush (its marks are written unflushed)", async () => {
      const h = await loadHasher();
      // BOOT lost, SYNC(0) and later records written back: a torn region, not damage.
      const torn = parseJournal(h, journal(h, [B(BOOT1), S(0), C(0), C(1)], [0]), BOOT2);
      expect(torn.damage).toBeUndefined();
      expect(torn.chunks).toEqual([]);
    });

    it('a valid check on a record this writer never produces is damage, even at the end', async () => {
      const h = await loadHasher();
      expect(parseJournal(h, journal(h, [B(BOOT1), S(0), C(0), [9, 0, 0n]]), BOOT1).damage).toMatch(
        /unknown record type 9/,
      );
      const padded = journal(h, [B(BOOT1), S(0), C(0)]);
      padded[2 * RECORD_BYTES + 3] = 1;
      new DataView(padded.buffer).setBigUint64(
        2 * RECORD_BYTES + 24,
        h.h64(padded.subarray(2 * RECORD_BYTES, 2 * RECORD_BYTES + 24)),
      );
      expect(parseJournal(h, padded, BOOT1).damage).toMatch(/padding/);
    });
  });

  it('reports unreadable metadata as UPLOAD_DAMAGED; a lone .part (OPEN never answered) is unknown', async () => {
    const s = await store('boot-1');
    const id = 'f'.repeat(32);
    const handle = await s.create(info(id));
    await handle.recordChunks([{ index: 0, hash: 1n }], false);
    await handle.close();
    const meta = join(tmp.path, 'uploads', `${id}.json`);
    const text = await readFile(meta, 'utf8');
    await writeFile(meta, text.slice(0, 40));
    await expect(s.readState(id)).rejects.toMatchObject({ code: Errors.UPLOAD_DAMAGED.code });
    await writeFile(meta, JSON.stringify({ version: 1, info: { id: '0'.repeat(32) } }));
    await expect(s.readState(id)).rejects.toMatchObject({ code: Errors.UPLOAD_DAMAGED.code });
    await rm(meta);
    await expect(s.readState(id)).rejects.toMatchObject({ code: Errors.UPLOAD_DAMAGED.code });
    await rm(join(tmp.path, 'uploads', `${id}.journal`));
    expect(await s.readState(id)).toBeUndefined();
  });

  it('metadata written unflushed at create: lost to a power loss before the first SYNC mark, the upload is unknown; after a mark, damage', async () => {
    const id = '9'.repeat(32);
    const meta = join(tmp.path, 'uploads', `${id}.json`);
    const handle = await (await store('boot-1')).create(info(id));
    await handle.recordChunks([{ index: 0, hash: 1n }], false);
    // Power loss before any checkpoint: the unflushed metadata came back empty.
    await writeFile(meta, '');
    expect(await (await store('boot-2')).readState(id)).toBeUndefined();
    // The same boot keeps the page cache, so an empty file there is damage, not a lost create.
    await expect((await store('boot-1')).readState(id)).rejects.toMatchObject({
      code: Errors.UPLOAD_DAMAGED.code,
    });
    await handle.close();
    const id2 = '8'.repeat(32);
    const handle2 = await (await store('boot-1')).create(info(id2));
    await handle2.recordChunks([{ index: 0, hash: 1n }], false);
    await handle2.checkpoint();
    await handle2.close();
    // After a SYNC mark the metadata was flushed first: losing it now is damage, never "unknown".
    await writeFile(join(tmp.path, 'uploads', `${id2}.json`), '');
    await expect((await store('boot-2')).readState(id2)).rejects.toMatchObject({
      code: Errors.UPLOAD_DAMAGED.code,
    });
  });

  it('metadata a crash cut short at create, before the journal was made (same boot): unknown', async () => {
    // create() writes the metadata at its name, unflushed, and only then makes the journal.
    const s = await store('boot-1');
    const id = 'c'.repeat(32);
    await (await s.create(info(id))).close();
    const meta = join(tmp.path, 'uploads', `${id}.json`);
    await rm(join(tmp.path, 'uploads', `${id}.journal`));
    for (const cut of ['', (await readFile(meta, 'utf8')).slice(0, 30)]) {
      await writeFile(meta, cut);
      expect(await (await store('boot-1')).readState(id)).toBeUndefined();
      expect((await s.list()).map((u) => u.id)).not.toContain(id);
    }
  });

  it("a power loss before the first SYNC mark that kept the metadata and lost the .part's entry: unknown", async () => {
    // create() flushes no directory entry; the first SYNC mark flushes them (issue 16).
    const id = '7'.repeat(32);
    const handle = await (await store('boot-1')).create(info(id));
    await handle.writeAt(new Uint8Array(CHUNK).fill(1), 0);
    await handle.recordChunks([{ index: 0, hash: 1n }], false);
    await rm(join(tmp.path, 'uploads', `${id}.part`));
    // After a reboot the record is untrusted (no mark): nothing is known of the upload.
    expect(await (await store('boot-2')).readState(id)).toBeUndefined();
    await handle.close();
    // Once a mark covers a record, the .part's entry was flushed first: its loss is not this case.
    const id2 = '6'.repeat(32);
    const handle2 = await (await store('boot-1')).create(info(id2));
    await handle2.writeAt(new Uint8Array(CHUNK).fill(1), 0);
    await handle2.recordChunks([{ index: 0, hash: 1n }], false);
    await handle2.checkpoint();
    await handle2.close();
    const state = await (await store('boot-2')).readState(id2);
    expect(state?.chunks).toEqual([{ index: 0, hash: 1n }]);
  });

  it('a completion whose folder cannot be made completes nothing and keeps every chunk; the next one finishes', async () => {
    // The data's flush, the folders and the uploads/ flush run at once (issue 16): one failing
    // must leave the upload as it was, with no completed record and no file moved.
    const s = await store('boot-1');
    const id = '5'.repeat(32);
    const handle = await s.create({ ...info(id), fileSize: 2 * CHUNK });
    await handle.writeAt(new Uint8Array(2 * CHUNK).fill(3), 0);
    await handle.recordChunks(
      [
        { index: 0, hash: 1n },
        { index: 1, hash: 2n },
      ],
      false,
    );
    // files/ itself a file: files/<id> cannot be made (ENOTDIR).
    const files = join(tmp.path, 'files');
    await rm(files, { recursive: true });
    await writeFile(files, 'in the way');
    await expect(handle.finish('0'.repeat(16))).rejects.toThrow();
    const state = await s.readState(id);
    expect(state?.completion).toBeUndefined();
    expect(state?.chunks.map((c) => c.index).sort()).toEqual([0, 1]);
    // The flush that ran beside the failed step counts: a rollback keeps both chunks.
    expect((await handle.rollbackToCheckpoint()).map((c) => c.index).sort()).toEqual([0, 1]);
    await rm(files);
    await mkdir(files);
    const completion = await handle.finish('0'.repeat(16));
    expect((await readFile(completion.location)).every((b) => b === 3)).toBe(true);
    expect((await s.readState(id))?.completion?.location).toBe(completion.location);
  });

  it('a journal that names no chunk, found without metadata, is an OPEN a power loss interrupted: unknown', async () => {
    // create() flushes no directory entry (the first SYNC mark does), so a power loss before that
    // mark can keep the journal (its marks only) and lose the metadata.
    const s = await store('boot-1');
    const id = 'd'.repeat(32);
    await (await s.create(info(id))).close();
    await rm(join(tmp.path, 'uploads', `${id}.json`));
    expect(await s.readState(id)).toBeUndefined();
  });

  it('rolls back to the last checkpoint after a failed flush', async () => {
    const id = 'c'.repeat(32);
    const handle = await (await store('boot-1')).create(info(id));
    await handle.recordChunks([{ index: 0, hash: 1n }], false);
    await handle.checkpoint();
    await handle.recordChunks([{ index: 1, hash: 2n }], false);
    expect(await handle.rollbackToCheckpoint()).toEqual([{ index: 0, hash: 1n }]);
    await handle.recordChunks([{ index: 3, hash: 4n }], false);
    expect((await (await store('boot-1')).readState(id))!.chunks).toEqual([
      { index: 0, hash: 1n },
      { index: 3, hash: 4n },
    ]);
  });

  it('a chunk sent and withdrawn without end: withdrawals past the bound are refused (CONFLICT), also after a reopen', async () => {
    const id = 'c'.repeat(32);
    const disk = await store('boot-1');
    const handle = await disk.create(info(id));
    const journal = join(tmp.path, 'uploads', `${id}.journal`);
    // 10 chunks reserve journalSlotsFor(10) records; withdrawals may number 4 times that. Each
    // round writes a CHUNK, a RETRACT and a SYNC record, and the file keeps its free reserve.
    const bound = RETRACT_GROWTH_FACTOR * journalSlotsFor(10);
    const most = (3 * bound + journalSlotsFor(10)) * RECORD_BYTES;
    let refused: unknown;
    let rounds = 0;
    for (; rounds < 10_000 && refused === undefined; rounds++) {
      await handle.recordChunks([{ index: 0, hash: BigInt(rounds + 1) }], false);
      await handle.retractChunks!([0]).catch((error: unknown) => {
        refused = error;
      });
    }
    expect(refused).toMatchObject({ codeName: 'CONFLICT' });
    expect(rounds).toBe(bound + 1);
    expect((await stat(journal)).size).toBeLessThanOrEqual(most);
    await handle.close();
    // The count is read back from the file: a reopen does not start it over.
    const reopened = await disk.open(id);
    await reopened.recordChunks([{ index: 0, hash: 1n }], false);
    await expect(reopened.retractChunks!([0])).rejects.toMatchObject({ codeName: 'CONFLICT' });
    await reopened.close();
  });

  it('retracts chunk records durably: gone after a crash and after a reboot, recorded again when re-sent', async () => {
    const id = 'e'.repeat(32);
    const handle = await (await store('boot-1')).create(info(id));
    await handle.recordChunks(
      [
        { index: 0, hash: 1n },
        { index: 1, hash: 2n },
        { index: 2, hash: 3n },
      ],
      false,
    );
    // Not checkpointed: the retraction's own mark must still cover it after a reboot.
    await handle.retractChunks!([1, 7]);
    const chunksAfter = async (boot: string) =>
      (await (await store(boot)).readState(id))!.chunks.map((c) => [c.index, c.hash]);
    expect(await chunksAfter('boot-1')).toEqual([
      [0, 1n],
      [2, 3n],
    ]);
    expect(await chunksAfter('boot-2')).toEqual([
      [0, 1n],
      [2, 3n],
    ]);
    await handle.recordChunks([{ index: 1, hash: 9n }], false);
    expect(await chunksAfter('boot-1')).toEqual([
      [0, 1n],
      [2, 3n],
      [1, 9n],
    ]);
    // The re-sent record was never marked: after a reboot the chunk is missing, never the old hash.
    expect(await chunksAfter('boot-3')).toEqual([
      [0, 1n],
      [2, 3n],
    ]);
    await handle.close();
    // Reopening keeps the retraction (the open's own marks follow it).
    const reopened = await (await store('boot-1')).open(id);
    await reopened.close();
    expect((await chunksAfter('boot-1')).map(([index]) => index)).toEqual([0, 2, 1]);
  });

  it('parses a RETRACT record as valid, not as damage', async () => {
    const hasher = await loadHasher();
    const id = 'f'.repeat(32);
    const handle = await (await store('boot-1')).create(info(id));
    await handle.recordChunks([{ index: 4, hash: 5n }], false);
    await handle.retractChunks!([4]);
    await handle.close();
    const bytes = await readFile(join(tmp.path, 'uploads', `${id}.journal`));
    const parsed = parseJournal(hasher, bytes, 0n);
    expect(parsed.damage).toBeUndefined();
    expect(parsed.chunks).toEqual([]);
  });

  it('a new journal is BOOT + SYNC(0) and the reserve of its first FIRST_CHUNK_SLOTS chunks, not the whole upload', async () => {
    const hasher = await loadHasher();
    for (const chunks of [1, 10, 40_000]) {
      const path = join(tmp.path, `new-${chunks}.journal`);
      const { journal } = await Journal.open(path, hasher, 7n, {
        chunks,
        create: true,
        mode: 0o600,
        flushData: () => Promise.reject(new Error('a new journal flushes nothing')),
      });
      await journal.appendChunks([{ index: 0, hash: 5n }], false);
      await journal.close();
      const bytes = await readFile(path);
      expect(bytes.byteLength).toBe(
        journalSlotsFor(Math.min(chunks, FIRST_CHUNK_SLOTS)) * RECORD_BYTES,
      );
      const parsed = parseJournal(hasher, bytes, 7n);
      expect(parsed).toMatchObject({ trustedRecords: 3, truncated: false });
      expect(parsed.chunks).toEqual([{ index: 0, hash: 5n }]);
      expect(bytes.subarray(3 * RECORD_BYTES).every((b) => b === 0)).toBe(true);
      // After a reboot only the SYNC(0) mark's coverage counts: no chunk.
      expect(parseJournal(hasher, bytes, 8n).chunks).toEqual([]);
      // O_EXCL: a second create of the same path fails and leaves the file as it was.
      await expect(
        Journal.open(path, hasher, 7n, {
          chunks,
          create: true,
          mode: 0o600,
          flushData: () => Promise.resolve(),
        }),
      ).rejects.toMatchObject({ code: 'EEXIST' });
      expect((await readFile(path)).equals(bytes)).toBe(true);
    }
  });

  it('sanitizes names into one safe component', () => {
    expect(sanitizeName('../../etc/passwd')).toBe('passwd');
    expect(sanitizeName('..')).toBe('file');
    expect(sanitizeName('C:\\x\\evil.dll')).toBe('evil.dll');
    expect(sanitizeName('a\u0000b')).toBe('a_b');
    expect(sanitizeName('.bashrc')).toBe('bashrc');
    expect(new TextEncoder().encode(sanitizeName('é'.repeat(500))).byteLength).toBeLessThanOrEqual(
      200,
    );
  });
  it('chunk slots are reserved as chunks arrive: zeros written track the chunks claimed, doubling, never past the whole upload', async () => {
    const hasher = await loadHasher();
    const chunks = 1_000_000;
    const path = join(tmp.path, 'grow.journal');
    const { journal } = await Journal.open(path, hasher, 7n, {
      chunks,
      create: true,
      mode: 0o600,
      flushData: () => Promise.resolve(),
    });
    const size = async () => (await stat(path)).size;
    // An OPEN of 1M chunks (60 GiB at 64 KiB) used to write 32 MB of zeros here.
    expect(await size()).toBe(journalSlotsFor(FIRST_CHUNK_SLOTS) * RECORD_BYTES);
    let claimed = 0;
    for (const upTo of [100, 1_000, 10_000]) {
      await journal.claimSlots(claimed, upTo - 1);
      claimed = upTo;
      const slots = (await size()) / RECORD_BYTES;
      expect(slots).toBeGreaterThanOrEqual(2 + claimed);
      expect(slots).toBeLessThanOrEqual(2 * (2 + claimed) + 64 + 64);
    }
    // Claiming a chunk again, or one recorded, holds nothing more.
    const before = await size();
    await journal.claimSlots(0, 9_999);
    await journal.appendChunks(
      Array.from({ length: 10_000 }, (_, index) => ({ index, hash: BigInt(index + 1) })),
      false,
    );
    await journal.claimSlots(0, 9_999);
    expect(await size()).toBe(before);
    // Claimed and recorded one at a time (a sequential upload), the file ends near one slot per
    // chunk, not at twice that (the cap counts the chunks not yet recorded).
    const sequential = join(tmp.path, 'sequential.journal');
    const { journal: oneByOne } = await Journal.open(sequential, hasher, 7n, {
      chunks: 1_100,
      create: true,
      mode: 0o600,
      flushData: () => Promise.resolve(),
    });
    for (let index = 0; index < 1_100; index++) {
      await oneByOne.claimSlots(index, index);
      await oneByOne.appendChunks([{ index, hash: BigInt(index + 1) }], false);
    }
    await oneByOne.close();
    expect((await stat(sequential)).size / RECORD_BYTES).toBeLessThanOrEqual(
      2 + 1_100 + journalSlotsFor(0),
    );
    // A small upload's journal never grows past its whole reserve (plus the growth step).
    const small = join(tmp.path, 'small.journal');
    const { journal: smallJournal } = await Journal.open(small, hasher, 7n, {
      chunks: 3,
      create: true,
      mode: 0o600,
      flushData: () => Promise.resolve(),
    });
    await smallJournal.claimSlots(0, 2);
    expect((await stat(small)).size).toBe(journalSlotsFor(3) * RECORD_BYTES);
    await smallJournal.close();
    await journal.close();
  });
});
