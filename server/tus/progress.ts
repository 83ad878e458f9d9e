/**
 * Where a tus upload stands: its offset is the contiguous prefix of whole chunks the store recorded
 * (acked, SPEC.md 8), plus the verified partial tail that starts exactly there. Nothing else
 * counts, so the offset never covers a byte the store cannot vouch for.
 *
 * Two homes for a tail, chosen by the store:
 * - in place (the disk store): its bytes are written into the data and a record beside the store
 *   describes them (tail.ts). Verified tails are cached per upload so a HEAD or PATCH reads the
 *   bytes back at most once per process; the cache is bounded (dropped whole past `maxEntries`,
 *   then rebuilt on demand).
 * - apart (the object store, UploadHandle.partialChunks): bytes and description live in one
 *   object every node sees, replaced atomically. Not cached: another node may have moved the
 *   upload on since.
 */
import type { Hasher } from '../../protocol/index.js';
import type { OpenUpload } from '../upload.js';
import { TailStore, verifyTail, type TailRecord } from './tail.js';

/** End of the range of acked bytes that starts at 0 (0 when byte 0 is not acked). */
export function ackedPrefix(upload: OpenUpload): number {
  const first = upload.acked.toArray()[0];
  return first && first.start === 0 ? first.end : 0;
}

/** tusPartialWritesPerChunk was reached: the PATCH's partial chunk is not kept (HTTP 400). */
export class PartialWritesExceeded extends Error {}

export class TusProgress {
  /** id -> verified tail; null: checked, none. */
  private readonly tails = new Map<string, TailRecord | null>();

  constructor(
    readonly store: TailStore,
    private readonly hasher: Hasher,
    private readonly maxEntries: number,
    /** tusPartialWritesPerChunk: PATCHes that may end inside one chunk. */
    private readonly writesPerChunk: number,
  ) {}

  /** The upload's verified tail (read and checked once, then cached). */
  async tailOf(upload: OpenUpload): Promise<TailRecord | undefined> {
    if (upload.completed) return undefined;
    if (upload.keepsPartialApart) {
      const kept = await upload.describePartial();
      return kept && kept.length < upload.info.chunkSize ? kept : undefined;
    }
    const cached = this.tails.get(upload.id);
    if (cached !== undefined) return cached ?? undefined;
    const recorded = await this.store.read(upload.id);
    let verified: TailRecord | undefined;
    if (recorded) {
      verified = await verifyTail(
        recorded,
        upload.info.chunkSize,
        this.hasher,
        (length, position) => upload.readAt(length, position),
      ).catch(() => undefined);
    }
    this.remember(upload.id, verified ?? null);
    return verified;
  }

  /** The tus offset of `upload` given its tail (see the module comment). */
  offset(upload: OpenUpload, tail: TailRecord | undefined): number {
    const size = upload.info.fileSize;
    if (upload.completed) return size;
    const prefix = ackedPrefix(upload);
    if (tail && tail.chunk * upload.info.chunkSize === prefix && prefix + tail.length < size)
      return prefix + tail.length;
    return prefix;
  }

  /** Both at once, for HEAD and the start of a PATCH. */
  async offsetOf(upload: OpenUpload): Promise<{ offset: number; tail: TailRecord | undefined }> {
    const tail = await this.tailOf(upload);
    return { offset: this.offset(upload, tail), tail };
  }

  /**
   * The bytes of `tail` (chunk tail.chunk's first tail.length bytes), to continue the chunk, and how
   * many of them are already in the upload's data (all of them in place, none when kept apart).
   * Undefined when bytes kept apart no longer match their description (then they are dropped
   * from the store: the offset falls back to the chunk's start, as a tail in place that fails
   * verifyTail does).
   */
  async tailBytes(
    upload: OpenUpload,
    tail: TailRecord,
  ): Promise<{ bytes: Uint8Array; inData: number } | undefined> {
    if (upload.keepsPartialApart) {
      const bytes = await upload.readPartial(tail);
      if (bytes) return { bytes, inData: 0 };
      await upload.discardPartial();
      return undefined;
    }
    const bytes = await upload.readAt(tail.length, tail.chunk * upload.info.chunkSize);
    return { bytes, inData: bytes.byteLength };
  }

  /**
   * The count of PATCHes that will have ended inside `chunk` once one more does, after `previous`;
   * past `writesPerChunk`, PartialWritesExceeded. Each such PATCH reads the chunk's kept bytes
   * back to hash them with its own (both homes), and kept apart rewrites them too.
   */
  partialWrites(chunk: number, previous: TailRecord | undefined): number {
    const writes = previous?.chunk === chunk ? (previous.writes ?? 1) + 1 : 1;
    if (writes > this.writesPerChunk)
      throw new PartialWritesExceeded(
        `more than ${this.writesPerChunk} PATCHes ended inside chunk ${chunk} (tusPartialWritesPerChunk); send larger PATCHes`,
      );
    return writes;
  }

  /**
   * Make `bytes` (chunk tail.chunk's first tail.length bytes, the first `inData` of which are
   * already in the data) the upload's tail, replacing `previous`: bytes first, then the record
   * that describes them (flushed first when `sync`). Past `writesPerChunk` PATCHes inside one
   * chunk, nothing is kept and PartialWritesExceeded is thrown (`partialWrites`).
   */
  async keep(
    upload: OpenUpload,
    tail: TailRecord,
    previous: TailRecord | undefined,
    bytes: Uint8Array,
    inData: number,
    sync: boolean,
  ): Promise<void> {
    const writes = this.partialWrites(tail.chunk, previous);
    if (upload.keepsPartialApart) {
      await upload.writePartial({ ...tail, writes }, bytes);
      return;
    }
    if (bytes.byteLength > inData)
      await upload.writeUnrecorded(
        bytes.subarray(inData),
        tail.chunk * upload.info.chunkSize + inData,
        sync,
      );
    await this.store.write(upload.id, { ...tail, writes }, sync);
    this.remember(upload.id, { ...tail, writes });
  }

  /** The upload completed or is gone: drop its tail, cached and recorded. */
  async forget(id: string): Promise<void> {
    this.tails.delete(id);
    await this.store.remove(id).catch(() => undefined);
  }

  private remember(id: string, tail: TailRecord | null): void {
    if (this.tails.size >= this.maxEntries && !this.tails.has(id)) this.tails.clear();
    this.tails.set(id, tail);
  }
}
