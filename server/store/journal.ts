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
 *   RETRACT (4): a = chunk index: the CHUNK records before it for that chunk no longer hold (the
 *              client found the chunk changed and will send it again, SPEC.md 16.9). It is always
 *              written with a SYNC mark that covers it, before the chunk's bytes are overwritten.
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
 * Reserved space. Records are written at their position (never in append mode) into zero-filled
 * space reserved ahead: an all-zero 32-byte slot is free, and zeros after the last record are not
 * a torn tail. A chunk's slot is reserved before its data is written (`claimSlots`, from the data
 * write) and held until its record takes it, so a CHUNK record never needs a new block: on a full
 * disk the journal still takes the record of every chunk whose data went in, and nothing acked is
 * lost to a journal that cannot grow (issue 14, item 3); a chunk whose slot the disk cannot take is
 * refused before its data is written (ENOSPC: STORAGE_FULL, nothing acked). The reserve grows with
 * the chunks that arrive (at least doubling, never past a slot for every chunk not recorded yet
 * plus the marks' margin), from FIRST_CHUNK_SLOTS at create: reserving every chunk's slot at OPEN
 * made one OPEN of a 60 GiB upload at 64 KiB chunks write a 36 MB journal of zeros, which a
 * hostile client could repeat (OPEN + TERMINATE) a hundred times a second; now the zeros written
 * track the bytes received (32 per chunk of at least 64 KiB). SYNC marks come out of a small extra
 * margin; when it is spent and the disk is full, a checkpoint's mark is skipped (the data was flushed, only the
 * proof for a reboot is missing, so a power loss may cost more than one interval), never failed.
 * In durable mode every batch carries its mark and cannot be acked without it: on a full disk its
 * acks stop with STORAGE_FULL once the margin is spent (measured: 94 of 160 one-chunk batches on
 * a full 16 MiB tmpfs), and nothing acked is lost.
 * The zeros are real writes, so the filesystem allocated the blocks; on copy-on-write filesystems
 * (btrfs, ZFS) an overwrite still needs space, and there the reserve is best effort.
 *
 * Trust rule (protocol/SPEC.md section 8, "Durability"): if the last BOOT record carries the current
 * boot id, only the process died, the page cache survived, and every valid record is trusted.
 * Otherwise the OS restarted and only records covered by the last SYNC mark are trusted. Every
 * open flushes data and journal and appends BOOT + SYNC, so the rule holds across several opens;
 * the first open of a new journal writes BOOT + SYNC(0) unflushed, since they cover no record (a
 * SYNC(0) is therefore no proof of a flush in the damage rule above).
 */
import { constants as fsConstants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { Errors, ProtocolError, type Hasher } from '../../protocol/index.js';
import type { ChunkRecord } from './types.js';

export const RECORD_BYTES = 32;
/** Slots kept free beyond the claimed chunks' (and, at create, the first chunks'), for SYNC and BOOT marks. */
const MARK_MARGIN = 64;
/**
 * Chunk slots a new journal reserves at create (with the marks' margin: 130 slots, 4,160 bytes);
 * more are reserved as chunks arrive (see "Reserved space").
 */
export const FIRST_CHUNK_SLOTS = 64;
/** recorded[i]: no record of chunk i, and no slot held for it. */
const UNRECORDED = 0;
/** recorded[i]: a record in the file names chunk i. */
const RECORDED = 1;
/** recorded[i]: a slot is held for chunk i, whose data may be written (`claimSlots`). */
const CLAIMED = 2;
/**
 * recorded[i]: a claim of chunk i waits for the reserve to grow. Not counted in `owed` until
 * granted: a record queued ahead of the growth, whose own slot is held, must not find its room
 * taken by a claim that may yet be refused (found by a review: on a full disk that record failed,
 * and the failure's rollback dropped acked chunks).
 */
const PENDING = 3;
/**
 * A journal takes chunk withdrawals (RETRACT, SPEC.md 16.9) up to this many times the records its
 * upload reserves (`journalSlotsFor`): a file edited and re-sent a few times fits many times over;
 * a client looping VERIFY and DATA on one chunk does not grow it without end. Marks (BOOT, SYNC)
 * are not counted: a long upload over a flaky link has many.
 */
export const RETRACT_GROWTH_FACTOR = 4;
/** The reserve grows by at least this many slots at a time (2 KiB). */
const GROW_SLOTS = 64;
/** Largest zero buffer written at once when reserving. */
const ZERO_WRITE_BYTES = 1 << 20;
const enum RecordType {
  CHUNK = 1,
  SYNC = 2,
  BOOT = 3,
  RETRACT = 4,
}

/** What reading a journal file found. */
export interface JournalContents {
  /** Trusted chunk records, one per chunk: the last CHUNK record of each chunk not retracted since. */
  readonly chunks: ChunkRecord[];
  /** Number of records (of any type) that are trusted: the file is cut to this length. */
  readonly trustedRecords: number;
  /**
   * True when bytes other than free (zero) slots follow the trusted records: a torn tail, or
   * untrusted records dropped after a reboot. Opening the journal zeroes them.
   */
  readonly truncated: boolean;
  /**
   * Why the journal is damaged (see the rule above), or undefined. When set, `chunks` is empty,
   * `trustedRecords` is 0 and `truncated` false: nothing may be claimed and nothing cut.
   */
  readonly damage?: string;
  /** The journal ends with the BOOT + SYNC marks of an open in this boot, nothing after them. */
  readonly tailMarked?: boolean;
  /** A trusted RETRACT record withdrew a chunk (REPLACE_CHUNK, SPEC.md 16.9). */
  readonly withdrew?: boolean;
  /** Trusted RETRACT records (withdrawals are bounded per upload: RETRACT_GROWTH_FACTOR). */
  readonly retractions?: number;
}

function isZeroSlot(bytes: Uint8Array, at: number): boolean {
  for (let i = at; i < at + RECORD_BYTES; i++) if (bytes[i] !== 0) return false;
  return true;
}

const ZERO_BLOCK = Buffer.alloc(64 * 1024);

/**
 * Offset just past the last non-zero byte of `bytes` (0 when all are zero). The reserve can be
 * tens of MiB (64 KiB chunks of a 100 GiB file): whole blocks are compared natively first.
 */
function usedLength(bytes: Uint8Array): number {
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let end = view.byteLength;
  while (
    end >= ZERO_BLOCK.byteLength &&
    view.subarray(end - ZERO_BLOCK.byteLength, end).equals(ZERO_BLOCK)
  )
    end -= ZERO_BLOCK.byteLength;
  while (end > 0 && view[end - 1] === 0) end--;
  return end;
}

function encodeRecord(
  hasher: Hasher,
  target: Uint8Array,
  at: number,
  type: RecordType,
  a: number,
  b: bigint,
): void {
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
  if (
    type !== RecordType.CHUNK &&
    type !== RecordType.SYNC &&
    type !== RecordType.BOOT &&
    type !== RecordType.RETRACT
  )
    return `unknown record type ${type}`;
  for (let i = 1; i < 8; i++) if (view.getUint8(at + i) !== 0) return 'non-zero padding';
  return undefined;
}

/** Parse journal bytes and apply the trust rule. Pure, so it can be tested on hand-made bytes. */
export function parseJournal(hasher: Hasher, bytes: Uint8Array, bootHash: bigint): JournalContents {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // Past the last non-zero byte there are only free slots: nothing to read there.
  const used = usedLength(bytes);
  const whole = Math.min(
    Math.floor(bytes.byteLength / RECORD_BYTES),
    Math.ceil(used / RECORD_BYTES),
  );
  const damaged = (damage: string): JournalContents => ({
    chunks: [],
    trustedRecords: 0,
    truncated: false,
    damage,
  });
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
    else if (type === RecordType.SYNC)
      syncedRecords = Math.min(
        view.getUint32(at + 8) * 0x1_0000_0000 + view.getUint32(at + 12),
        valid,
      );
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
      // Free (reserved) slots are the common case after the last record: skip them unhashed.
      if (isZeroSlot(bytes, at)) continue;
      if (hasher.h64(bytes.subarray(at, at + 24)) !== view.getBigUint64(at + 24)) continue;
      const foreign = foreignRecord(view, at);
      if (foreign) return damaged(`record ${i}: ${foreign}`);
      validAfter = true;
      if (syncAfter) provenSync = true;
      const type = view.getUint8(at);
      // A mark covering no record proves no flush: a new journal's first marks go unflushed.
      if (type === RecordType.SYNC && view.getUint32(at + 8) + view.getUint32(at + 12) > 0)
        syncAfter = true;
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
  // Replayed in file order: the last CHUNK record of a chunk wins, a RETRACT removes it.
  const byIndex = new Map<number, bigint>();
  let withdrew = false;
  let retractions = 0;
  for (let i = 0; i < trusted; i++) {
    const at = i * RECORD_BYTES;
    const type = view.getUint8(at);
    if (type !== RecordType.CHUNK && type !== RecordType.RETRACT) continue;
    const index = view.getUint32(at + 8) * 0x1_0000_0000 + view.getUint32(at + 12);
    if (type === RecordType.CHUNK) byIndex.set(index, view.getBigUint64(at + 16));
    else {
      retractions++;
      withdrew = byIndex.delete(index) || withdrew;
    }
  }
  const chunks: ChunkRecord[] = [];
  for (const [index, hash] of byIndex) chunks.push({ index, hash });
  // An open in this boot that nothing followed: BOOT(this boot) + SYNC(every record before them).
  const markedAt = (i: number, type: RecordType): boolean =>
    i >= 0 && view.getUint8(i * RECORD_BYTES) === type;
  const tailMarked =
    sameBoot &&
    trusted === valid &&
    valid >= 2 &&
    markedAt(valid - 2, RecordType.BOOT) &&
    view.getBigUint64((valid - 2) * RECORD_BYTES + 16) === bootHash &&
    markedAt(valid - 1, RecordType.SYNC) &&
    view.getUint32((valid - 1) * RECORD_BYTES + 8) * 0x1_0000_0000 +
      view.getUint32((valid - 1) * RECORD_BYTES + 12) ===
      valid - 2;
  return {
    chunks,
    trustedRecords: trusted,
    truncated: used > trusted * RECORD_BYTES,
    ...(tailMarked ? { tailMarked } : {}),
    ...(withdrew ? { withdrew } : {}),
    ...(retractions > 0 ? { retractions } : {}),
  };
}

/** Slots a new journal reserves for an upload of `chunks` chunks (see "Reserved space" above). */
export function journalSlotsFor(chunks: number): number {
  return chunks + 2 + MARK_MARGIN;
}

/** How to open a journal file. */
export interface JournalOpenOptions {
  /** Chunks in the upload (the reserve holds slots for those claimed, see claimSlots). */
  readonly chunks: number;
  /** A new upload: create the file and fail if anything exists at the path (O_EXCL). */
  readonly create: boolean;
  /** Permission bits of a file this creates. */
  readonly mode: number;
  /**
   * fdatasync the data file. Called before the SYNC mark of the open, which claims every trusted
   * record's bytes are on the device.
   */
  readonly flushData: () => Promise<void>;
}

/** An open journal. Writes are serialized, so record positions follow call order. */
/**
 * What an open upload's handle needs of its chunk records: the journal file below, or
 * `UnjournaledChunks` for an upload that completes in the step that created it.
 */
export interface ChunkLog {
  /** Whether the records outlive the process (a SYNC mark makes them outlive a power loss). */
  readonly persistent: boolean;
  readonly count: number;
  readonly unmarked: boolean;
  /** Hold a record slot for chunks [first, last] before their data is written (Journal.claimSlots). */
  claimSlots(first: number, last: number): Promise<void>;
  appendChunks(chunks: readonly ChunkRecord[], sync: boolean): Promise<void>;
  appendSync(covered: number): Promise<boolean>;
  noteFlushed(covered: number): void;
  rollback(): Promise<ChunkRecord[]>;
  retractChunks(indexes: readonly number[], flushData: () => Promise<void>): Promise<void>;
  close(): Promise<void>;
}

export class Journal implements ChunkLog {
  readonly persistent = true;
  /** Records queued so far, written or not (a checkpoint's SYNC mark covers this many). */
  private queued: number;
  /** Records in the file: the next one goes at `written * RECORD_BYTES`. */
  private written: number;
  /** Whole slots the file has (records plus reserved zeros). */
  private slots: number;
  /** Records covered by the last successful SYNC mark. */
  private syncedRecords: number;
  /** `queued` right after the last SYNC mark went in: equal to it, there is nothing to mark. */
  private markedAt = -1;
  /** Per chunk: UNRECORDED, RECORDED or CLAIMED. */
  private readonly recorded: Uint8Array;
  /** Chunks CLAIMED: the reserve keeps a free slot for each, which no mark takes. */
  private owed = 0;
  /** Chunks RECORDED. */
  private recordedCount = 0;
  /** RETRACT records in the file (bounded: RETRACT_GROWTH_FACTOR). */
  private retractions = 0;
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly file: FileHandle,
    private readonly hasher: Hasher,
    private readonly bootHash: bigint,
    records: number,
    slots: number,
    chunks: number,
  ) {
    this.queued = records;
    this.written = records;
    this.slots = slots;
    this.syncedRecords = records;
    this.recorded = new Uint8Array(chunks);
  }

  /**
   * Open (creating if needed, never through a symlink) for writing: zero untrusted bytes, reserve
   * room for the marks (chunk slots are held as chunks arrive, claimSlots), then mark the start of
   * this process's records with BOOT + SYNC. A damaged journal is refused with UPLOAD_DAMAGED,
   * untouched. A reserve the disk cannot hold fails with the filesystem's error (ENOSPC).
   */
  static async open(
    path: string,
    hasher: Hasher,
    bootHash: bigint,
    options: JournalOpenOptions,
  ): Promise<{ journal: Journal; contents: JournalContents }> {
    const { O_RDWR, O_CREAT, O_EXCL, O_NOFOLLOW } = fsConstants;
    const file = await open(
      path,
      O_RDWR | O_CREAT | O_NOFOLLOW | (options.create ? O_EXCL : 0),
      options.mode,
    );
    try {
      if (options.create) {
        const journal = new Journal(file, hasher, bootHash, 0, 0, options.chunks);
        await journal.startNew();
        return { journal, contents: { chunks: [], trustedRecords: 0, truncated: false } };
      }
      const bytes = await file.readFile();
      const contents = parseJournal(hasher, bytes, bootHash);
      // Checked before any cut or write: a damaged journal stays byte for byte as found.
      if (contents.damage)
        throw new ProtocolError(
          Errors.UPLOAD_DAMAGED,
          `the upload's journal is damaged: ${contents.damage}`,
        );
      const journal = new Journal(
        file,
        hasher,
        bootHash,
        contents.trustedRecords,
        Math.floor(bytes.byteLength / RECORD_BYTES),
        options.chunks,
      );
      journal.markRecorded(contents.chunks.map((c) => c.index));
      journal.retractions = contents.retractions ?? 0;
      // Zeroed, not cut: the space stays reserved, and the next record overwrites it.
      if (contents.truncated)
        await journal.zero(contents.trustedRecords * RECORD_BYTES, usedLength(bytes));
      // Room for the marks; chunk slots are reserved as chunks arrive (claimSlots).
      await journal.reserve(journalSlotsFor(0));
      if (contents.tailMarked && !contents.truncated) {
        // The last open of this boot already flushed and marked everything, and no record came
        // after it (a RESUME that sent nothing): marking again would only grow the journal.
        journal.markedAt = journal.queued;
        return { journal, contents };
      }
      // A new journal's marks cover no record: there is nothing to flush for them, and the first
      // checkpoint's flush takes them along (two fdatasyncs per OPEN saved, issue 16).
      const fresh = bytes.byteLength === 0;
      if (!fresh) await options.flushData();
      const marks = new Uint8Array(RECORD_BYTES * 2);
      encodeRecord(hasher, marks, 0, RecordType.BOOT, 0, bootHash);
      encodeRecord(hasher, marks, RECORD_BYTES, RecordType.SYNC, contents.trustedRecords, 0n);
      await journal.append(marks, 2, [], 'required', !fresh);
      journal.syncedRecords = contents.trustedRecords;
      journal.markedAt = journal.queued;
      return { journal, contents };
    } catch (error) {
      await file.close().catch(() => undefined);
      throw error;
    }
  }

  /**
   * A file just created (O_EXCL, so empty and ours): BOOT + SYNC(0) and the reserve's zeros go in
   * one write, where reading the empty file back, reserving and marking cost three more system
   * calls per upload (issue 16: one small file is one upload). The marks are not flushed, as for
   * any new journal (see `open`); a write the disk refuses fails the create, which removes the file.
   */
  private async startNew(): Promise<void> {
    const total = journalSlotsFor(Math.min(this.recorded.length, FIRST_CHUNK_SLOTS)) * RECORD_BYTES;
    const first = new Uint8Array(Math.min(total, Math.max(ZERO_WRITE_BYTES, 2 * RECORD_BYTES)));
    encodeRecord(this.hasher, first, 0, RecordType.BOOT, 0, this.bootHash);
    encodeRecord(this.hasher, first, RECORD_BYTES, RecordType.SYNC, 0, 0n);
    for (let at = 0; at < first.byteLength;) {
      const { bytesWritten } = await this.file.write(first, at, first.byteLength - at, at);
      if (bytesWritten <= 0) throw new Error('journal write made no progress');
      at += bytesWritten;
    }
    this.slots = first.byteLength / RECORD_BYTES;
    this.queued = this.written = 2;
    this.markedAt = this.queued;
    // The rest of a large upload's reserve, in ZERO_WRITE_BYTES pieces.
    await this.reserve(total / RECORD_BYTES - this.written);
  }

  /** Whether records were queued since the last SYNC mark (a checkpoint has something to mark). */
  get unmarked(): boolean {
    return this.markedAt !== this.queued;
  }

  /** Records queued so far (every one of them was queued after its chunk's data was written). */
  get count(): number {
    return this.queued;
  }

  /** Free slots: reserved zeros after the last record. */
  get freeSlots(): number {
    return this.slots - this.written;
  }

  /** Claims waiting for growth, by chunk: a second writer of the chunk waits for the same one. */
  private readonly pendingClaims = new Map<number, Promise<void>>();

  private markRecorded(indexes: readonly number[]): void {
    for (const index of indexes) {
      if (index >= this.recorded.length) continue;
      if (this.recorded[index] === CLAIMED) this.owed--;
      if (this.recorded[index] !== RECORDED) this.recordedCount++;
      this.recorded[index] = RECORDED;
    }
  }

  /**
   * Hold a free slot for each chunk in [first, last] that has neither a record nor a slot, before
   * its data is written (see "Reserved space"): then its record never needs a new block. Grows the
   * reserve when the held slots and the records queued would not fit (at least doubling the file,
   * never past the records so far plus a slot for every chunk not recorded and the marks'
   * margin); if the disk refuses, the chunks are let go and the error (ENOSPC) is thrown: the
   * caller writes nothing.
   */
  claimSlots(first: number, last: number): Promise<void> {
    const fresh: number[] = [];
    const waits: Promise<void>[] = [];
    for (let index = first; index <= last && index < this.recorded.length; index++) {
      const state = this.recorded[index];
      if (state === UNRECORDED) fresh.push(index);
      else if (state === PENDING) waits.push(this.pendingClaims.get(index) ?? Promise.resolve());
    }
    if (fresh.length === 0)
      return waits.length > 0 ? Promise.all(waits).then(() => undefined) : Promise.resolve();
    // Records queued but not written yet take slots first (`queued` counts them): conservative.
    if (this.slots - this.queued >= this.owed + fresh.length) {
      for (const index of fresh) this.recorded[index] = CLAIMED;
      this.owed += fresh.length;
      return waits.length > 0 ? Promise.all(waits).then(() => undefined) : Promise.resolve();
    }
    for (const index of fresh) this.recorded[index] = PENDING;
    const run = this.queue.then(async () => {
      // Still waiting (a record of one of them may have come meanwhile, or a rollback reset it).
      const waiting = fresh.filter((index) => this.recorded[index] === PENDING);
      const need = this.queued + this.owed + waiting.length;
      if (this.slots < need) {
        // The most a journal needs from here: a slot for every chunk not recorded, and the marks.
        const whole = this.queued + journalSlotsFor(this.recorded.length - this.recordedCount);
        const target = Math.max(need + GROW_SLOTS, Math.min(2 * this.slots, whole));
        try {
          await this.reserve(target - this.written);
        } catch (error) {
          if (this.slots < need) {
            for (const index of waiting) this.recorded[index] = UNRECORDED;
            throw error;
          }
        }
      }
      for (const index of waiting) this.recorded[index] = CLAIMED;
      this.owed += waiting.length;
    });
    this.queue = run.catch(() => undefined);
    const settled = run.finally(() => {
      for (const index of fresh)
        if (this.pendingClaims.get(index) === settled) this.pendingClaims.delete(index);
    });
    for (const index of fresh) this.pendingClaims.set(index, settled);
    return waits.length > 0 ? Promise.all([settled, ...waits]).then(() => undefined) : settled;
  }

  /** Write zeros over [from, to) at their positions (no new blocks: the range is in the file). */
  private async zero(from: number, to: number): Promise<void> {
    const zeros = new Uint8Array(Math.min(ZERO_WRITE_BYTES, Math.max(0, to - from)));
    for (let at = from; at < to;) {
      const { bytesWritten } = await this.file.write(
        zeros,
        0,
        Math.min(zeros.byteLength, to - at),
        at,
      );
      if (bytesWritten <= 0) throw new Error('journal write made no progress');
      at += bytesWritten;
    }
  }

  /**
   * Make sure `free` slots follow the last record, writing zeros past the end of the file. On
   * failure (ENOSPC) the zeros that went in stay reserved and the error is thrown.
   */
  private async reserve(free: number): Promise<void> {
    const end = (this.written + free) * RECORD_BYTES;
    let at = this.slots * RECORD_BYTES;
    if (at >= end) return;
    const zeros = new Uint8Array(Math.min(ZERO_WRITE_BYTES, end - at));
    while (at < end) {
      const { bytesWritten } = await this.file.write(
        zeros,
        0,
        Math.min(zeros.byteLength, end - at),
        at,
      );
      if (bytesWritten <= 0) throw new Error('journal reserve write made no progress');
      at += bytesWritten;
      this.slots = Math.floor(at / RECORD_BYTES);
    }
  }

  /**
   * Write `count` records at the end of the records, after the ones queued before. `chunkIndexes`
   * are the chunks named by the first records of `bytes`. A write needs the slots it fills while
   * the reserve still holds one for every other claimed chunk; when it does not (a mark that
   * has used up the margin), the reserve grows, and if the disk refuses, an 'optional' write (a
   * checkpoint's mark) is skipped (resolves false) and a 'required' one fails with nothing
   * written. A short write is continued; if the device fails midway, the records that went in
   * whole stay (their data was written before them) and the torn one is zeroed.
   */
  private append(
    bytes: Uint8Array,
    count: number,
    chunkIndexes: readonly number[],
    kind: 'required' | 'optional',
    sync: boolean,
  ): Promise<boolean> {
    this.queued += count;
    const run = this.queue.then(async () => {
      const fresh = new Set(
        chunkIndexes.filter((i) => i < this.recorded.length && this.recorded[i] === CLAIMED),
      ).size;
      const owedAfter = this.owed - fresh;
      if (this.freeSlots - count < owedAfter) {
        try {
          await this.reserve(owedAfter + count + GROW_SLOTS);
        } catch (error) {
          if (this.freeSlots - count < owedAfter) {
            this.queued -= count;
            if (kind === 'optional') return false;
            throw error;
          }
        }
      }
      const position = this.written * RECORD_BYTES;
      let done = 0;
      try {
        while (done < bytes.byteLength) {
          const { bytesWritten } = await this.file.write(
            bytes,
            done,
            bytes.byteLength - done,
            position + done,
          );
          if (bytesWritten <= 0) throw new Error('journal write made no progress');
          done += bytesWritten;
        }
      } catch (error) {
        const whole = Math.floor(done / RECORD_BYTES);
        this.commit(whole, chunkIndexes);
        this.queued -= count - whole;
        if (done % RECORD_BYTES !== 0)
          await this.zero(position + whole * RECORD_BYTES, position + done).catch(() => undefined);
        throw error;
      }
      this.commit(count, chunkIndexes);
      if (sync) await this.file.datasync();
      return true;
    });
    // A failed write must not poison the queue for later ones; the caller sees its own error.
    this.queue = run.catch(() => undefined);
    return run;
  }

  private commit(records: number, chunkIndexes: readonly number[]): void {
    this.written += records;
    this.slots = Math.max(this.slots, this.written);
    this.markRecorded(chunkIndexes.slice(0, records));
  }

  /**
   * Write CHUNK records in one write (group commit). With `sync` (durable mode, the caller
   * flushed the data first) a SYNC mark covering them goes in the same write and the journal is
   * flushed before resolving, so they stay trusted even after a reboot or a later rollback.
   */
  async appendChunks(chunks: readonly ChunkRecord[], sync: boolean): Promise<void> {
    const count = chunks.length + (sync ? 1 : 0);
    const bytes = new Uint8Array(count * RECORD_BYTES);
    chunks.forEach((c, i) =>
      encodeRecord(this.hasher, bytes, i * RECORD_BYTES, RecordType.CHUNK, c.index, c.hash),
    );
    const covered = this.queued + chunks.length;
    if (sync)
      encodeRecord(this.hasher, bytes, chunks.length * RECORD_BYTES, RecordType.SYNC, covered, 0n);
    // Durable mode cannot ack without the mark, so there it is required like the records.
    await this.append(
      bytes,
      count,
      chunks.map((c) => c.index),
      'required',
      sync,
    );
    if (sync) {
      this.syncedRecords = Math.max(this.syncedRecords, covered);
      this.markedAt = this.queued;
    }
  }

  /**
   * Write a SYNC mark covering the first `covered` records and flush the journal. The caller
   * flushed the data file after those records were queued and before calling this. Resolves
   * false, with nothing written, when the mark did not fit and the disk could not take one more
   * block: the records stay (trusted unless the OS restarts), only the proof for a reboot is
   * missing; failing here would make the caller withdraw acked chunks for a full disk.
   */
  async appendSync(covered: number): Promise<boolean> {
    if (this.markedAt === this.queued) return true; // no record since the last mark
    const bytes = new Uint8Array(RECORD_BYTES);
    encodeRecord(this.hasher, bytes, 0, RecordType.SYNC, covered, 0n);
    const marked = await this.append(bytes, 1, [], 'optional', true);
    if (marked) {
      this.syncedRecords = Math.max(this.syncedRecords, covered);
      this.markedAt = this.queued;
    }
    return marked;
  }

  /**
   * The caller flushed the data file after the first `covered` records were queued: trust them in
   * a rollback, without writing a mark. For a completion (DiskStore.complete), whose journal is
   * deleted when it succeeds: the mark's write and flush were pure cost there, and if the
   * completion fails, `rollback` writes a flushed mark before anything else is appended. After a
   * power loss the records since the last written mark are untrusted, as SPEC.md 8 allows.
   */
  noteFlushed(covered: number): void {
    this.syncedRecords = Math.max(this.syncedRecords, covered);
  }

  /**
   * Drop every record not covered by the last SYNC mark (after a failed flush) and return the
   * chunk records that remain. The dropped slots are zeroed (still reserved); a new SYNC mark
   * keeps the cut valid across a later reboot.
   */
  async rollback(): Promise<ChunkRecord[]> {
    const covered = this.syncedRecords;
    const run = this.queue.then(async () => {
      await this.zero(covered * RECORD_BYTES, this.written * RECORD_BYTES);
      this.queued -= this.written - covered;
      this.written = covered;
      const bytes = new Uint8Array(covered * RECORD_BYTES);
      await this.file.read(bytes, 0, bytes.byteLength, 0);
      const chunks = parseJournal(this.hasher, bytes, this.bootHash).chunks;
      // Chunks whose records were dropped hold no slot now: a write of them claims one again.
      // Claims stay (held or pending): their data may be written, and their slots still exist.
      for (let index = 0; index < this.recorded.length; index++)
        if (this.recorded[index] === RECORDED) this.recorded[index] = UNRECORDED;
      this.recordedCount = 0;
      this.markRecorded(chunks.map((c) => c.index));
      return chunks;
    });
    this.queue = run.catch(() => undefined);
    const chunks = await run;
    await this.appendSync(covered);
    return chunks;
  }

  /**
   * Withdraw the records of `indexes` (chunks the client will send again with other bytes):
   * RETRACT records and a SYNC mark covering them, flushed, before this resolves, so no restart
   * (not even a reboot) can bring the old records back over bytes about to be overwritten. The
   * caller has no record append in flight (the mark covers every record queued) and flushes the
   * data in `flushData` first, as every SYNC mark requires. The retracted chunks hold no slot:
   * their new bytes claim one when they are written (claimSlots).
   */
  async retractChunks(indexes: readonly number[], flushData: () => Promise<void>): Promise<void> {
    const retracted = indexes.filter(
      (i) => i < this.recorded.length && this.recorded[i] === RECORDED,
    );
    if (retracted.length === 0) return;
    // Each withdrawal grows the file for good (records are never rewritten), and a client can
    // send a chunk, withdraw it with a VERIFY and send it again without end: bounded. CONFLICT,
    // as for bytes that differ from what is stored: the client starts the upload afresh.
    const most = RETRACT_GROWTH_FACTOR * journalSlotsFor(this.recorded.length);
    if (this.retractions + retracted.length > most)
      throw new ProtocolError(
        Errors.CONFLICT,
        `this upload's chunks were withdrawn ${this.retractions} times, the most it takes is ${most}: upload the file again as a new upload`,
      );
    await this.queue;
    await flushData();
    // Their new bytes claim slots when they are written.
    for (const index of retracted) this.recorded[index] = UNRECORDED;
    this.recordedCount -= retracted.length;
    const count = retracted.length + 1;
    const bytes = new Uint8Array(count * RECORD_BYTES);
    retracted.forEach((index, i) =>
      encodeRecord(this.hasher, bytes, i * RECORD_BYTES, RecordType.RETRACT, index, 0n),
    );
    const covered = this.queued + retracted.length;
    encodeRecord(this.hasher, bytes, (count - 1) * RECORD_BYTES, RecordType.SYNC, covered, 0n);
    await this.append(bytes, count, [], 'required', true);
    this.retractions += retracted.length;
    this.syncedRecords = Math.max(this.syncedRecords, covered);
    this.markedAt = this.queued;
  }

  async close(): Promise<void> {
    await this.queue;
    await this.file.close();
  }
}
