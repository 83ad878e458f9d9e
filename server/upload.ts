/**
 * One upload open on this server: which chunks are acked (with their hashes), which are being
 * written, and the write pipeline data -> journal -> "ackable". Sessions decide what to write;
 * this class makes sure the order of effects is the one protocol/SPEC.md section 8 "Durability" needs:
 *
 *   default: positional write returned, then journal record written (batched), then resolve;
 *   durable: positional write returned, then fdatasync(data), then journal record + fdatasync,
 *            then resolve. Chunks that finish writing while a flush runs share the next flush
 *            (group commit), so a flush costs per batch, not per chunk.
 *
 * Per chunk the work is O(1): a state byte, a hash slot, a RangeSet insert (O(1) in order).
 */
import {
  Errors,
  ProtocolError,
  RangeSet,
  chunkCount,
  hashToHex,
  parseUploadId,
  wholeFileDigest,
  type ByteRange,
  type Hasher,
} from '../protocol/index.js';
import type { ServerMetrics } from './metrics.js';
import { storageErrorFor } from './storage-errors.js';
import type {
  ChunkRecord,
  CompletionInfo,
  PartialChunk,
  PartialChunkKeeper,
  UploadHandle,
  UploadInfo,
} from './store/types.js';

const enum ChunkState {
  MISSING = 0,
  WRITING = 1,
  ACKED = 2,
}

/** The part of a session an upload needs to know: to tell its owner it lost the upload. */
export interface UploadOwner {
  /** The upload is gone (DELETE, TTL) or taken over; the owner sends `error` and closes. */
  evict(error: ProtocolError): void;
  /** It only reads (a tus HEAD loading the upload): a writer's claim takes the upload over. */
  readonly readOnly?: boolean;
  /** The client address it serves: its slot counts against `maxUploadsPerAddress`. */
  readonly address: string;
}

interface PendingRecord {
  readonly record: ChunkRecord;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

export class OpenUpload {
  readonly id: string;
  readonly idBytes: Uint8Array;
  readonly chunks: number;
  readonly acked = new RangeSet();
  owner: UploadOwner | undefined;
  lastActivity = Date.now();
  completion: CompletionInfo | undefined;
  /** Set after a storage failure: the upload takes no more writes until it is reloaded. */
  failure: ProtocolError | undefined;

  private readonly state: Uint8Array;
  private readonly hashes: BigUint64Array;
  /** The OPEN's digest while it binds the upload (7.8); withdrawn chunks end that (16.9). */
  private announcedDigest: bigint | undefined;
  private readonly writing = new Map<number, { hash: bigint; done: Promise<void> }>();
  private inflight = 0;
  private settleWaiters: Array<() => void> = [];
  private batch: PendingRecord[] = [];
  private flushing = false;
  /** Records appended since the last checkpoint: the background sync skips clean uploads. */
  private dirty = false;
  /** A rollback to the last checkpoint was queued (once is enough: the upload takes no more writes). */
  private rollbackRequested = false;
  /** Serializes checkpoint / finish / close on the handle. */
  private lifecycle: Promise<unknown> = Promise.resolve();
  /**
   * finish() or close() is queued on `lifecycle`: checkpoints queued after it must not touch the
   * handle (it is closed by then; a flush on it would fail with EBADF and fail the upload).
   */
  private handleReleased = false;
  /** The store's finish of a COMPLETE, while it runs. */
  private finishing: Promise<CompletionInfo> | undefined;
  /**
   * Data writes of one upload run one at a time: concurrent pwrites to one file only spin on the
   * inode lock in the kernel (measured: 9-21% of server CPU), stealing the cores the socket needs.
   */
  private writeTail: Promise<unknown> = Promise.resolve();
  /** Payload bytes recorded since the last background flush was started (default mode). */
  private unflushedBytes = 0;
  /** A flush by volume is running; another one asked for meanwhile waits in `volumeFlushPending`. */
  private volumeFlushRunning = false;
  private volumeFlushPending = false;

  constructor(
    readonly info: UploadInfo,
    private readonly handle: UploadHandle | undefined,
    records: readonly ChunkRecord[],
    private readonly hasher: Hasher,
    private readonly durable: boolean,
    private readonly metrics: ServerMetrics,
    completion?: CompletionInfo,
    /** Default mode: start a background flush after this many bytes are recorded (0 = by time only). */
    private readonly syncBytes = 0,
    /** Remember the content at completion, for instant uploads (UploadRegistry.remembersContent). */
    private readonly remembersContent = true,
  ) {
    this.id = info.id;
    const idBytes = parseUploadId(info.id);
    if (!idBytes) throw new ProtocolError(Errors.INTERNAL_ERROR, `not an upload id: ${info.id}`);
    this.idBytes = idBytes;
    this.chunks = chunkCount(info.fileSize, info.chunkSize);
    this.completion = completion;
    this.announcedDigest = info.digest === undefined ? undefined : BigInt(`0x${info.digest}`);
    // A completed upload keeps no per-chunk state: its whole range is acked.
    const slots = completion ? 0 : this.chunks;
    this.state = new Uint8Array(slots);
    this.hashes = new BigUint64Array(slots);
    if (completion) {
      if (info.fileSize > 0) this.acked.add(0, info.fileSize);
    } else {
      this.applyRecords(records);
    }
  }

  private applyRecords(records: readonly ChunkRecord[]): void {
    for (const { index, hash } of records) {
      if (index >= this.chunks) continue;
      this.state[index] = ChunkState.ACKED;
      this.hashes[index] = hash;
      this.acked.add(
        index * this.info.chunkSize,
        Math.min((index + 1) * this.info.chunkSize, this.info.fileSize),
      );
    }
  }

  get completed(): boolean {
    return this.completion !== undefined;
  }

  /** Acked ranges, as ACCEPT and GET /uploads/:id report them. */
  ranges(): ByteRange[] {
    return this.acked.toArray();
  }

  /** 'acked' or 'writing' with the hash it has or will have, or undefined when missing. */
  chunkStatus(
    index: number,
  ):
    | { status: 'acked'; hash: bigint }
    | { status: 'writing'; hash: bigint; done: Promise<void> }
    | undefined {
    const state = this.state[index];
    if (state === ChunkState.ACKED) return { status: 'acked', hash: this.hashes[index] };
    if (state === ChunkState.WRITING) {
      const entry = this.writing.get(index);
      if (entry) return { status: 'writing', hash: entry.hash, done: entry.done };
    }
    return undefined;
  }

  /**
   * Write chunk `index` (already hash-checked) and resolve once it may be acked. `payload` is the
   * view the socket handed over; it is written as is, never copied.
   */
  write(index: number, hash: bigint, payload: Uint8Array): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (!this.handle)
      return Promise.reject(new ProtocolError(Errors.INTERNAL_ERROR, 'upload is not writable'));
    const wrote = this.queueWrite(this.handle, payload, index * this.info.chunkSize);
    return this.track(index, hash, payload.byteLength, wrote);
  }

  /**
   * tus (server/tus/): record chunk `index`, whose `length` bytes `writeUnrecorded` already wrote,
   * and ack it once the record is written (durable mode: the data is flushed first, as for write()).
   */
  recordWritten(index: number, hash: bigint, length: number): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (!this.handle)
      return Promise.reject(new ProtocolError(Errors.INTERNAL_ERROR, 'upload is not writable'));
    return this.track(index, hash, length, Promise.resolve());
  }

  /**
   * tus (server/tus/): write bytes no chunk record covers (a partial chunk, or whole chunks held
   * back until a PATCH's checksum is verified), in order with every other write of the upload.
   * With `sync`, the data is flushed to the device before this resolves.
   */
  writeUnrecorded(bytes: Uint8Array, position: number, sync: boolean): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (!this.handle)
      return Promise.reject(new ProtocolError(Errors.INTERNAL_ERROR, 'upload is not writable'));
    const handle = this.handle;
    this.inflight++;
    this.lastActivity = Date.now();
    const wrote = this.queueWrite(handle, bytes, position).then(() =>
      sync ? handle.syncData() : undefined,
    );
    this.writeTail = wrote.catch(() => undefined);
    return wrote
      .catch((error: unknown) => {
        throw this.storageFailure(error, true);
      })
      .finally(() => this.writeSettled());
  }

  /** tus (server/tus/): read back bytes this upload wrote (the start of a chunk an earlier PATCH began). */
  async readAt(length: number, position: number): Promise<Uint8Array> {
    const handle = this.handle;
    if (!handle?.readAt)
      throw new ProtocolError(Errors.INTERNAL_ERROR, 'the store cannot read an upload back');
    await this.writeTail;
    return handle.readAt(length, position);
  }

  /**
   * tus (server/tus/): whether the store keeps a partial chunk apart from the data (and takes
   * whole chunks only), rather than in place (UploadHandle.partialChunks).
   */
  get keepsPartialApart(): boolean {
    return this.handle?.partialChunks !== undefined;
  }

  /** tus: what the store keeps apart (keepsPartialApart), or undefined. */
  async describePartial(): Promise<PartialChunk | undefined> {
    return this.partialKeeper().describe();
  }

  /**
   * tus: the bytes the store keeps apart, when they match `expected` (what describePartial said);
   * undefined when they do not (damaged or replaced in the store: see discardPartial).
   */
  async readPartial(
    expected: Pick<PartialChunk, 'length' | 'hash'>,
  ): Promise<Uint8Array | undefined> {
    const bytes = await this.partialKeeper().read();
    if (bytes.byteLength !== expected.length || this.hasher.h64(bytes) !== expected.hash)
      return undefined;
    return bytes;
  }

  /** tus: drop what the store keeps apart (it failed its check): the offset falls back to the chunk's start. */
  discardPartial(): Promise<void> {
    return this.partialKeeper()
      .discard()
      .catch((error: unknown) => {
        throw error instanceof ProtocolError ? error : storageErrorFor(error, 'write');
      });
  }

  /** tus: keep chunk `partial.chunk`'s first bytes apart (keepsPartialApart). */
  writePartial(partial: PartialChunk, bytes: Uint8Array): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    this.lastActivity = Date.now();
    return this.partialKeeper()
      .write(partial, bytes)
      .catch((error: unknown) => {
        // Nothing recorded depends on it: the upload stays writable, the PATCH fails alone.
        throw error instanceof ProtocolError ? error : storageErrorFor(error, 'write');
      });
  }

  private partialKeeper(): PartialChunkKeeper {
    const keeper = this.handle?.partialChunks;
    if (!keeper)
      throw new ProtocolError(Errors.INTERNAL_ERROR, 'the store keeps no partial chunk apart');
    return keeper;
  }

  private writeSettled(): void {
    this.lastActivity = Date.now();
    if (--this.inflight === 0) {
      const waiters = this.settleWaiters;
      this.settleWaiters = [];
      for (const wake of waiters) wake();
    }
  }

  /** Mark chunk `index` as being written by `wrote`, then record it and ack it. */
  private track(index: number, hash: bigint, length: number, wrote: Promise<void>): Promise<void> {
    this.state[index] = ChunkState.WRITING;
    this.inflight++;
    this.lastActivity = Date.now();
    const started = process.hrtime.bigint();
    let written = false;
    const done = (async () => {
      await wrote;
      written = true;
      await this.enqueueRecord({ index, hash });
    })()
      .then(
        () => {
          this.state[index] = ChunkState.ACKED;
          this.hashes[index] = hash;
          this.acked.add(index * this.info.chunkSize, index * this.info.chunkSize + length);
          this.metrics.bytesReceived.inc(length);
          this.metrics.writeSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
        },
        (error: unknown) => {
          if (this.state[index] === ChunkState.WRITING) this.state[index] = ChunkState.MISSING;
          throw this.storageFailure(error, !written);
        },
      )
      .finally(() => {
        this.writing.delete(index);
        this.writeSettled();
      });
    this.writing.set(index, { hash, done });
    return done;
  }

  /**
   * Queue the positional write behind the previous one. Only this function's closure holds the
   * payload, and only until its write returns: a closure in write() would keep the 1 MiB buffer
   * alive until the journal record and the ACK, long enough to be promoted to V8's old space, where
   * only a full mark-compact frees it (measured: ~65 full GCs per GiB instead of ~4).
   */
  private queueWrite(handle: UploadHandle, payload: Uint8Array, position: number): Promise<void> {
    const wrote = this.writeTail.then(() => handle.writeAt(payload, position));
    this.writeTail = wrote.catch(() => undefined);
    return wrote;
  }

  private enqueueRecord(record: ChunkRecord): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.batch.push({ record, resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  /** Append queued records; chunks that finish meanwhile form the next batch (group commit). */
  private async flush(): Promise<void> {
    this.flushing = true;
    while (this.batch.length > 0) {
      const batch = this.batch;
      this.batch = [];
      try {
        if (this.failure) throw this.failure;
        const handle = this.writableHandle();
        if (this.durable) await handle.syncData();
        await handle.recordChunks(
          batch.map((p) => p.record),
          this.durable,
        );
        this.dirty = true;
        for (const p of batch) p.resolve();
        this.flushByVolume(batch.length);
      } catch (error) {
        for (const p of batch) p.reject(error);
      }
    }
    this.flushing = false;
  }

  /**
   * Default mode: start a background flush every `syncBytes` of recorded data, besides the timer.
   * The kernel then writes back while the upload goes on, so the flush at completion has little
   * left, and a power loss can cost at most about `syncBytes` plus one interval of acked data.
   * Acks never wait for it. At most one such flush runs and one waits: when data arrives faster
   * than the device takes it, flushes run back to back instead of queueing one per batch.
   */
  private flushByVolume(records: number): void {
    if (this.durable || this.syncBytes <= 0) return;
    this.unflushedBytes += records * this.info.chunkSize;
    if (this.unflushedBytes < this.syncBytes) return;
    if (this.volumeFlushRunning) {
      this.volumeFlushPending = true;
      return;
    }
    this.unflushedBytes = 0;
    this.volumeFlushRunning = true;
    void this.checkpoint().finally(() => {
      this.volumeFlushRunning = false;
      if (this.volumeFlushPending) {
        this.volumeFlushPending = false;
        this.flushByVolume(0);
      }
    });
  }

  /**
   * Turn a store error into the protocol error the client sees; remember it for the upload.
   * `dataWrite`: the positional write of a chunk's bytes failed (not a journal append or a flush).
   */
  private storageFailure(error: unknown, dataWrite = false): ProtocolError {
    if (error instanceof ProtocolError) return error;
    const code = (error as NodeJS.ErrnoException | undefined)?.code;
    const failure = storageErrorFor(error, 'write');
    if (!this.failure) {
      this.failure = failure;
      this.metrics.uploadsFailed.inc();
    }
    // A failed flush (fdatasync, checkpoint, completion) or journal append, whatever the errno,
    // leaves the page cache in an unknown state: keep only checkpointed records (SPEC.md 8). Only a
    // positional data write that ran out of space may skip it in default mode: nothing was acked
    // for that chunk and what was acked before is intact in the page cache. Decided per failure,
    // not just for the first one, so a flush already running when a write hit ENOSPC still rolls back.
    const skip = dataWrite && !this.durable && code === 'ENOSPC';
    if (!skip && !this.rollbackRequested) {
      this.rollbackRequested = true;
      void this.rollback();
    }
    return failure;
  }

  private rollback(): Promise<void> {
    const run = this.lifecycle
      .then(async () => {
        const kept = await this.writableHandle().rollbackToCheckpoint();
        this.state.fill(ChunkState.MISSING);
        this.acked.remove(0, Math.max(this.info.fileSize, 1));
        this.applyRecords(kept);
      })
      .catch(() => undefined);
    this.lifecycle = run;
    return run;
  }

  /**
   * Chunks were withdrawn (now or before a restart): the content changed since the OPEN, whose
   * digest stops binding; the COMPLETE digest is still checked (SPEC.md 16.9).
   */
  discardAnnouncedDigest(): void {
    this.announcedDigest = undefined;
  }

  /** Whether the store can withdraw chunk records (the REPLACE_CHUNK capability, SPEC.md 16.9). */
  get canRetract(): boolean {
    return this.handle?.retractChunks !== undefined && !this.completion;
  }

  /**
   * The client's hashes for chunks it believes acked (after a resume): every acked chunk whose
   * stored hash differs is withdrawn (durably, before it can be overwritten) and becomes missing,
   * so the client can send it again. Returns the withdrawn indexes, ascending. Chunks not acked
   * are left alone. Waits for the writes in flight, so no record append races the retraction.
   */
  async retract(claims: ReadonlyArray<{ index: number; hash: bigint }>): Promise<number[]> {
    if (this.failure) throw this.failure;
    const handle = this.writableHandle();
    if (!handle.retractChunks)
      throw new ProtocolError(Errors.INTERNAL_ERROR, 'store cannot retract');
    await this.settle();
    // Completing or completed (a COMPLETE of the stream this one took over): the file is final;
    // nothing is withdrawn, and a client whose bytes differ gets DIGEST_MISMATCH at its COMPLETE.
    if (this.finishing || this.completion) return [];
    const changed = [
      ...new Set(
        claims
          .filter(
            ({ index, hash }) =>
              index < this.chunks &&
              this.state[index] === ChunkState.ACKED &&
              this.hashes[index] !== hash,
          )
          .map(({ index }) => index),
      ),
    ].sort((a, b) => a - b);
    if (changed.length === 0) return [];
    const retractChunks = handle.retractChunks.bind(handle);
    const run = this.lifecycle.then(() => retractChunks(changed));
    this.lifecycle = run.catch(() => undefined);
    try {
      await run;
    } catch (error) {
      throw this.storageFailure(error);
    }
    this.announcedDigest = undefined;
    for (const index of changed) {
      this.state[index] = ChunkState.MISSING;
      this.hashes[index] = 0n;
      this.acked.remove(
        index * this.info.chunkSize,
        Math.min((index + 1) * this.info.chunkSize, this.info.fileSize),
      );
    }
    return changed;
  }

  /** The store handle; only a completed upload (replayed RESULT) has none, and it never writes. */
  private writableHandle(): UploadHandle {
    if (!this.handle) throw new ProtocolError(Errors.INTERNAL_ERROR, 'upload is not writable');
    return this.handle;
  }

  /**
   * Whether this copy is still the upload's one writer (UploadHandle.stillOwned): false when
   * another server process took the upload over since it was loaded, so its acked ranges may be
   * out of date. A completed copy never changes again and stays valid.
   */
  stillOwned(): Promise<boolean> {
    if (this.completion || !this.handle?.stillOwned) return Promise.resolve(true);
    return this.handle.stillOwned();
  }

  /** Resolves when no write of this upload is in flight (all journaled or failed). */
  settle(): Promise<void> {
    if (this.inflight === 0) return Promise.resolve();
    return new Promise((resolve) => this.settleWaiters.push(resolve));
  }

  /** Background sync (default mode): flush data, mark the journal. Skips clean uploads. */
  checkpoint(): Promise<void> {
    if (!this.dirty || !this.handle || this.completion || this.failure) return Promise.resolve();
    this.dirty = false;
    const run = this.lifecycle
      .then(() => (this.handleReleased ? undefined : this.writableHandle().checkpoint()))
      .catch((error: unknown) => {
        const failure = this.storageFailure(error);
        if (this.owner) this.owner.evict(this.failure ?? failure);
      });
    this.lifecycle = run;
    return run;
  }

  /** The whole-file digest from the verified chunk hashes (no file read). */
  digest(): bigint {
    if (this.completion) return BigInt(`0x${this.completion.digest}`);
    return wholeFileDigest(this.hasher, this.hashes);
  }

  /**
   * COMPLETE: every byte acked, digests agree, then the store makes the file durable and moves it.
   * Idempotent: a completed upload returns its recorded digest again.
   */
  async complete(clientDigest: bigint | undefined): Promise<{ digest: bigint; fresh: boolean }> {
    await this.settle();
    if (this.failure) throw this.failure;
    if (this.acked.total !== this.info.fileSize) {
      throw new ProtocolError(
        Errors.INCOMPLETE,
        `${this.info.fileSize - this.acked.total} bytes are not acked yet`,
      );
    }
    const digest = this.digest();
    for (const expected of [this.announcedDigest, clientDigest]) {
      if (expected !== undefined && expected !== digest) {
        throw new ProtocolError(
          Errors.DIGEST_MISMATCH,
          `digest of the acked chunks is ${hashToHex(digest)}, expected ${hashToHex(expected)}`,
        );
      }
    }
    if (this.completion) return { digest, fresh: false };
    if (this.finishing) {
      // Another COMPLETE's finish runs (its stream was taken over meanwhile): the handle is
      // finished once; this one answers with its outcome, never as a fresh completion.
      await this.finishing.catch(() => undefined);
      if (!this.completion)
        throw this.failure ?? new ProtocolError(Errors.INTERNAL_ERROR, 'the completion failed');
      return { digest, fresh: false };
    }
    this.handleReleased = true;
    const run = this.lifecycle.then(() =>
      this.writableHandle().finish(hashToHex(digest), this.remembersContent),
    );
    this.finishing = run;
    this.lifecycle = run.catch(() => undefined);
    try {
      this.completion = await run;
    } catch (error) {
      throw this.storageFailure(error);
    } finally {
      this.finishing = undefined;
    }
    this.metrics.uploadsCompleted.inc();
    return { digest, fresh: true };
  }

  /** Release the handle after a final checkpoint; the upload stays stored. */
  close(): Promise<void> {
    this.handleReleased = true;
    const run = this.lifecycle.then(async () => {
      if (this.handle && !this.completion) await this.handle.close();
    });
    this.lifecycle = run.catch(() => undefined);
    return run;
  }
}
