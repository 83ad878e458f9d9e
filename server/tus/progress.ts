/**
 * Where a tus upload stands: its offset is the contiguous prefix of whole chunks the store recorded
 * (acked, SPEC.md 8), plus the verified partial tail that starts exactly there (tail.ts). Nothing
 * else counts, so the offset never covers a byte the store cannot vouch for.
 *
 * Verified tails are cached per upload so a HEAD or PATCH reads the tail's bytes back at most once
 * per process; the cache is bounded (dropped whole past `maxEntries`, then rebuilt on demand).
 */
import type { Hasher } from '../../protocol/index.js';
import type { OpenUpload } from '../upload.js';
import { TailStore, verifyTail, type TailRecord } from './tail.js';

/** End of the range of acked bytes that starts at 0 (0 when byte 0 is not acked). */
export function ackedPrefix(upload: OpenUpload): number {
  const first = upload.acked.toArray()[0];
  return first && first.start === 0 ? first.end : 0;
}

export class TusProgress {
  /** id -> verified tail; null: checked, none. */
  private readonly tails = new Map<string, TailRecord | null>();

  constructor(
    readonly store: TailStore,
    private readonly hasher: Hasher,
    private readonly maxEntries: number,
  ) {}

  /** The upload's verified tail (read and checked once, then cached). */
  async tailOf(upload: OpenUpload): Promise<TailRecord | undefined> {
    if (upload.completed) return undefined;
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

  /** Record a tail whose bytes are written (and flushed, when `sync`). */
  async record(id: string, tail: TailRecord, sync: boolean): Promise<void> {
    await this.store.write(id, tail, sync);
    this.remember(id, tail);
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
