/**
 * The per-upload journal: an append-only file of fixed 32-byte records that says which chunks
 * were written, so acked ranges survive `kill -9` and, with SYNC marks, an OS crash.
 *
 * Record layout (big-endian):
 *
 *   0      1            8                16               24               32
 *   | type | 7 x 0x00   | a (u64)        | b (u64)        | check (u64)    |
 *
 *   CHUNK (1): a = chunk index, b = the chunk's xxHash64.
 *   SYNC  (2): a = number of records (counted from the start of the file) whose data was flushed
 *              to the device before this mark was written.
 *   BOOT  (3): b = xxHash64 of the kernel boot id of the process that appended after it.
 *   check = xxHash64 of bytes 0..23. A torn or zero-filled tail fails the check; reading stops at
 *   the first bad record and the file is truncated there.
 *
 * Trust rule (protocol/SEMANTICS.md, "Durability"): if the last BOOT record carries the current
 * boot id, only the process died, the page cache survived, and every valid record is trusted.
 * Otherwise the OS restarted and only records covered by the last SYNC mark are trusted. Every
 * open flushes data and journal and appends BOOT + SYNC, so the rule holds across several opens.
 */
import { open, type FileHandle } from 'node:fs/promises';
import type { Hasher } from '../../protocol/index.js';
import type { ChunkRecord } from './types.js';

export const RECORD_BYTES = 32;
const enum RecordType {
  CHUNK = 1,
  SYNC = 2,
  BOOT = 3,
}

/** What reading a journal file found. */
export interface JournalContents {
  /** Trusted chunk records, in file order (a chunk may appear twice after a rollback: last wins). */
  readonly chunks: ChunkRecord[];
  /** Number of records (of any type) that are trusted: the file is cut to this length. */
  readonly trustedRecords: number;
  /** True when the tail was torn, or untrusted records were dropped after a reboot. */
  readonly truncated: boolean;
}

function encodeRecord(hasher: Hasher, target: Uint8Array, at: number, type: RecordType, a: number, b: bigint): void {
  const view = new DataView(target.buffer, target.byteOffset + at, RECORD_BYTES);
  view.setUint8(0, type);
  for (let i = 1; i < 8; i++) view.setUint8(i, 0);
  view.setUint32(8, Math.floor(a / 0x1_0000_0000));
  view.setUint32(12, a >>> 0);
  view.setBigUint64(16, b);
  view.setBigUint64(24, hasher.h64(target.subarray(at, at + 24)));
}

/** Parse journal bytes and apply the trust rule. Pure, so it can be tested on hand-made bytes. */
export function parseJournal(hasher: Hasher, bytes: Uint8Array, bootHash: bigint): JournalContents {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const whole = Math.floor(bytes.byteLength / RECORD_BYTES);
  let valid = 0;
  let lastBoot: bigint | undefined;
  let syncedRecords = 0;
  for (; valid < whole; valid++) {
    const at = valid * RECORD_BYTES;
    const check = view.getBigUint64(at + 24);
    if (hasher.h64(bytes.subarray(at, at + 24)) !== check) break;
    const type = view.getUint8(at);
    if (type === RecordType.BOOT) lastBoot = view.getBigUint64(at + 16);
    else if (type === RecordType.SYNC) syncedRecords = Math.min(view.getUint32(at + 8) * 0x1_0000_0000 + view.getUint32(at + 12), valid);
    else if (type !== RecordType.CHUNK) break;
  }
  const sameBoot = lastBoot === bootHash;
  const trusted = sameBoot ? valid : syncedRecords;
  const chunks: ChunkRecord[] = [];
  for (let i = 0; i < trusted; i++) {
    const at = i * RECORD_BYTES;
    if (view.getUint8(at) !== RecordType.CHUNK) continue;
    const index = view.getUint32(at + 8) * 0x1_0000_0000 + view.getUint32(at + 12);
    chunks.push({ index, hash: view.getBigUint64(at + 16) });
  }
  return { chunks, trustedRecords: trusted, truncated: trusted * RECORD_BYTES !== bytes.byteLength };
}

/** An open journal. Appends are serialized, so record positions follow call order. */
export class Journal {
  private records: number;
  /** Records covered by the last successful SYNC mark. */
  private syncedRecords: number;
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly file: FileHandle,
    private readonly hasher: Hasher,
    private readonly bootHash: bigint,
    records: number,
  ) {
    this.records = records;
    this.syncedRecords = records;
  }

  /**
   * Open (creating if needed) for appending: cut untrusted bytes, then mark the start of this
   * process's appends with BOOT + SYNC. `flushData` must fdatasync the data file first, because
   * the SYNC mark claims every trusted record's bytes are on the device.
   */
  static async open(
    path: string,
    hasher: Hasher,
    bootHash: bigint,
    flushData: () => Promise<void>,
  ): Promise<{ journal: Journal; contents: JournalContents }> {
    const file = await open(path, 'a+');
    try {
      const bytes = await file.readFile();
      const contents = parseJournal(hasher, bytes, bootHash);
      if (contents.truncated) await file.truncate(contents.trustedRecords * RECORD_BYTES);
      await flushData();
      const journal = new Journal(file, hasher, bootHash, contents.trustedRecords);
      const marks = new Uint8Array(RECORD_BYTES * 2);
      encodeRecord(hasher, marks, 0, RecordType.BOOT, 0, bootHash);
      encodeRecord(hasher, marks, RECORD_BYTES, RecordType.SYNC, contents.trustedRecords, 0n);
      await journal.append(marks, 2, true);
      journal.syncedRecords = contents.trustedRecords;
      return { journal, contents };
    } catch (error) {
      await file.close().catch(() => undefined);
      throw error;
    }
  }

  /** Records queued so far (every one of them was written after its chunk's data). */
  get count(): number {
    return this.records;
  }

  private append(bytes: Uint8Array, count: number, sync: boolean): Promise<void> {
    this.records += count;
    const run = this.queue.then(async () => {
      await this.file.write(bytes, 0, bytes.byteLength);
      if (sync) await this.file.datasync();
    });
    // A failed append must not poison the queue for later ones; the caller sees its own error.
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Append CHUNK records in one write (group append). With `sync` (durable mode, the caller
   * flushed the data first) a SYNC mark covering them goes in the same write and the journal is
   * flushed before resolving, so they stay trusted even after a reboot or a later rollback.
   */
  async appendChunks(chunks: readonly ChunkRecord[], sync: boolean): Promise<void> {
    const count = chunks.length + (sync ? 1 : 0);
    const bytes = new Uint8Array(count * RECORD_BYTES);
    chunks.forEach((c, i) => encodeRecord(this.hasher, bytes, i * RECORD_BYTES, RecordType.CHUNK, c.index, c.hash));
    const covered = this.records + chunks.length;
    if (sync) encodeRecord(this.hasher, bytes, chunks.length * RECORD_BYTES, RecordType.SYNC, covered, 0n);
    await this.append(bytes, count, sync);
    if (sync) this.syncedRecords = Math.max(this.syncedRecords, covered);
  }

  /**
   * Append a SYNC mark covering the first `covered` records and flush the journal. The caller
   * flushed the data file after those records were queued and before calling this.
   */
  async appendSync(covered: number): Promise<void> {
    const bytes = new Uint8Array(RECORD_BYTES);
    encodeRecord(this.hasher, bytes, 0, RecordType.SYNC, covered, 0n);
    await this.append(bytes, 1, true);
    this.syncedRecords = Math.max(this.syncedRecords, covered);
  }

  /**
   * Drop every record not covered by the last SYNC mark (after a failed flush) and return the
   * chunk records that remain. A new SYNC mark keeps the cut valid across a later reboot.
   */
  async rollback(): Promise<ChunkRecord[]> {
    const covered = this.syncedRecords;
    const run = this.queue.then(async () => {
      await this.file.truncate(covered * RECORD_BYTES);
      // Explicit position: appends moved the file offset, so a plain readFile would read nothing.
      const bytes = new Uint8Array(covered * RECORD_BYTES);
      await this.file.read(bytes, 0, bytes.byteLength, 0);
      return parseJournal(this.hasher, bytes, this.bootHash).chunks;
    });
    this.queue = run.catch(() => undefined);
    const chunks = await run;
    this.records = covered;
    await this.appendSync(covered);
    return chunks;
  }

  async close(): Promise<void> {
    await this.queue;
    await this.file.close();
  }
}
