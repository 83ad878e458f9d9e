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
 *   check = xxHash64 of bytes 0..23.
 *
 * Torn tail or damage. A record is bad when its check fails. A crash can only leave bad bytes where
 * a write was interrupted, and appends are serialized (each write, and its fdatasync if any, ends
 * before the next starts), so the rule is:
 * - a bad record (or a partial one) with no valid record after it is a torn tail: the interrupted
 *   append was never acked, it is dropped and the file is cut there;
 * - a bad record followed by a valid record is damage (bit rot, a lost block, a foreign write)
 *   when a crash cannot explain it: in the boot that wrote the journal (same boot id as the last
 *   BOOT record) a killed process leaves a prefix of its last append, never a hole; after a
 *   reboot, holes are possible only in bytes no fdatasync covered, and a valid SYNC mark followed
 *   by any valid record proves its fdatasync finished, so a bad record before such a mark is
 *   damage. A hole after the last proven mark is treated as a torn tail (and dropped with what
 *   follows it, which is never trusted after a reboot anyway);
 * - a record whose check passes but that this writer never produces (unknown type, non-zero
 *   padding) is damage wherever it is: a torn write cannot forge a 64-bit check.
 * A damaged journal makes the upload UPLOAD_DAMAGED (SPEC.md 7.2): nothing in it is trusted, and
 * the file is never cut or appended to, so the operator finds it as it was.
 *
 * Trust rule (protocol/SPEC.md section 8, "Durability"): if the last BOOT record carries the current
 * boot id, only the process died, the page cache survived, and every valid record is trusted.
 * Otherwise the OS restarted and only records covered by the last SYNC mark are trusted. Every
 * open flushes data and journal and appends BOOT + SYNC, so the rule holds across several opens.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { Errors, ProtocolError, type Hasher } from '../../protocol/index.js';
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
  /**
   * Why the journal is damaged (see the rule above), or undefined. When set, `chunks` is empty,
   * `trustedRecords` is 0 and `truncated` false: nothing may be claimed and nothing cut.
   */
  readonly damage?: string;
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

/** Why a record whose check passed cannot come from this writer, or undefined if it can. */
function foreignRecord(view: DataView, at: number): string | undefined {
  const type = view.getUint8(at);
  if (type !== RecordType.CHUNK && type !== RecordType.SYNC && type !== RecordType.BOOT) return `unknown record type ${type}`;
  for (let i = 1; i < 8; i++) if (view.getUint8(at + i) !== 0) return 'non-zero padding';
  return undefined;
}

/** Parse journal bytes and apply the trust rule. Pure, so it can be tested on hand-made bytes. */
export function parseJournal(hasher: Hasher, bytes: Uint8Array, bootHash: bigint): JournalContents {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const whole = Math.floor(bytes.byteLength / RECORD_BYTES);
  const damaged = (damage: string): JournalContents => ({ chunks: [], trustedRecords: 0, truncated: false, damage });
  let valid = 0;
  let lastBoot: bigint | undefined;
  let syncedRecords = 0;
  for (; valid < whole; valid++) {
    const at = valid * RECORD_BYTES;
    const check = view.getBigUint64(at + 24);
    if (hasher.h64(bytes.subarray(at, at + 24)) !== check) break;
    const foreign = foreignRecord(view, at);
    if (foreign) return damaged(`record ${valid}: ${foreign}`);
    const type = view.getUint8(at);
    if (type === RecordType.BOOT) lastBoot = view.getBigUint64(at + 16);
    else if (type === RecordType.SYNC) syncedRecords = Math.min(view.getUint32(at + 8) * 0x1_0000_0000 + view.getUint32(at + 12), valid);
  }
  if (valid < whole) {
    // A bad record: torn tail or damage? Look at what follows it (see the rule at the top).
    let validAfter = false;
    let syncAfter = false;
    /** A valid SYNC mark after the bad record, itself followed by a valid record. */
    let provenSync = false;
    let bootAfter: bigint | undefined;
    for (let i = valid + 1; i < whole; i++) {
      const at = i * RECORD_BYTES;
      if (hasher.h64(bytes.subarray(at, at + 24)) !== view.getBigUint64(at + 24)) continue;
      const foreign = foreignRecord(view, at);
      if (foreign) return damaged(`record ${i}: ${foreign}`);
      validAfter = true;
      if (syncAfter) provenSync = true;
      const type = view.getUint8(at);
      if (type === RecordType.SYNC) syncAfter = true;
      else if (type === RecordType.BOOT) bootAfter = view.getBigUint64(at + 16);
    }
    // The boot of the process that appended around the bad record.
    const writerBoot = bootAfter ?? lastBoot;
    if (validAfter && (writerBoot === bootHash || provenSync)) {
      return damaged(`record ${valid} of ${whole} fails its check and valid records follow it`);
    }
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
   * process's appends with BOOT + SYNC. A damaged journal is refused with UPLOAD_DAMAGED, untouched. `flushData` must fdatasync the data file first, because
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
      // Checked before any cut or append: a damaged journal stays byte for byte as found.
      if (contents.damage) throw new ProtocolError(Errors.UPLOAD_DAMAGED, `the upload's journal is damaged: ${contents.damage}`);
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
