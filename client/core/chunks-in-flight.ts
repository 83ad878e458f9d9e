/**
 * DATA chunks between the file and the server's answer: the window accounting the Uploader and
 * the test senders share. A chunk is first *being read* (its bytes already count against the
 * window), then *sent* until an ACK covers it or an ERROR refuses it. Sent chunks are keyed by
 * offset and carry a payload of the owner's choosing (the Uploader keeps the pooled buffer there).
 */
import type { ByteRange } from '../../protocol/index.js';

export interface ChunkInFlight<T> {
  readonly offset: number;
  readonly length: number;
  readonly payload: T;
}

export class ChunksInFlight<T = void> {
  private readonly sentChunks = new Map<number, ChunkInFlight<T>>();
  private sentBytes = 0;
  private readBytes = 0;
  private reads = 0;

  /** Payload bytes sent and not answered yet. */
  get outstanding(): number {
    return this.sentBytes;
  }

  /** Chunks sent and not answered yet. */
  get count(): number {
    return this.sentChunks.size;
  }

  /** Chunks being read from the source. */
  get reading(): number {
    return this.reads;
  }

  /** Nothing sent unanswered and nothing being read. */
  get settled(): boolean {
    return this.sentChunks.size === 0 && this.reads === 0;
  }

  has(offset: number): boolean {
    return this.sentChunks.has(offset);
  }

  /**
   * Whether a chunk of `length` may start under `window`: bytes being read count too, and one
   * chunk always may when nothing is in flight.
   */
  fits(length: number, window: number): boolean {
    const inFlight = this.sentBytes + this.readBytes;
    return inFlight === 0 || inFlight + length <= window;
  }

  /** A chunk of `length` starts being read. */
  readStarted(length: number): void {
    this.reads++;
    this.readBytes += length;
  }

  /** The read of a chunk of `length` ended (sent next, or dropped). */
  readEnded(length: number): void {
    this.reads--;
    this.readBytes -= length;
  }

  sent(offset: number, length: number, payload: T): void {
    this.sentChunks.set(offset, { offset, length, payload });
    this.sentBytes += length;
  }

  /**
   * Settle the sent chunks that `range` covers whole and return them. Chunks start on the grid of
   * `chunkSize`; in-grid bytes never sent here are skipped (the server may re-ack what it had).
   */
  acked(range: ByteRange, chunkSize: number): Array<ChunkInFlight<T>> {
    const done: Array<ChunkInFlight<T>> = [];
    let at = Math.ceil(range.start / chunkSize) * chunkSize;
    while (at < range.end) {
      const chunk = this.sentChunks.get(at);
      if (chunk && at + chunk.length <= range.end) {
        this.forget(chunk);
        done.push(chunk);
      }
      at += chunk ? Math.max(chunk.length, 1) : chunkSize;
    }
    return done;
  }

  /** An ERROR answered the chunk at `offset`: it is no longer in flight. Returns it, if it was. */
  refused(offset: number): ChunkInFlight<T> | undefined {
    const chunk = this.sentChunks.get(offset);
    if (chunk) this.forget(chunk);
    return chunk;
  }

  private forget(chunk: ChunkInFlight<T>): void {
    this.sentChunks.delete(chunk.offset);
    this.sentBytes -= chunk.length;
  }
}
