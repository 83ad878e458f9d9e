/**
 * FileSource over a Blob or File: slices are read only when the core needs them.
 *
 * Where the engine's `Blob.stream()` is a byte stream, a slice is read with a BYOB reader into a
 * reused buffer and copied into the core's `target`, instead of `slice.arrayBuffer()`, which
 * allocates a fresh ArrayBuffer per chunk: in a Worker, 4x the read rate in Firefox and 1.7x in
 * Chromium, for less CPU (docs/measurements.md, "Reading a slice for its hash").
 */
import type { FileSource } from '../core/types.js';

export interface BlobSourceOptions {
  /** How long one BYOB read may deliver nothing before the read falls back (BYOB_STALL_MS). */
  readonly byobStallMs?: number;
  /** How long one `arrayBuffer()` read may take before it fails the read (READ_TIMEOUT_MS). */
  readonly readTimeoutMs?: number;
}

/**
 * How long one `arrayBuffer()` read of a slice may take before the read fails (the upload stops
 * with SOURCE_ERROR, naming the bytes): a read that never settles (a file on a network share that
 * went away, an engine fault like the BYOB stall below) would otherwise hold the upload forever
 * with no error to show. A local disk reads a 16 MiB chunk in well under a second; a drive spinning
 * up or a slow share, in seconds: a minute is far past both.
 */
export const READ_TIMEOUT_MS = 60_000;

export function blobSource(blob: Blob, name?: string, options: BlobSourceOptions = {}): FileSource {
  const byobStallMs = options.byobStallMs ?? BYOB_STALL_MS;
  const readTimeoutMs = options.readTimeoutMs ?? READ_TIMEOUT_MS;
  const file = blob as Partial<File>;
  const size = blob.size;
  return {
    name: name ?? file.name ?? 'blob',
    size,
    type: blob.type,
    lastModified: file.lastModified ?? 0,
    async read(start: number, end: number, target?: Uint8Array): Promise<Uint8Array> {
      // A whole file (a folder's small file, read once for its OPEN) is read without a slice: in
      // Chromium each slice() of a File is a synchronous call to the browser process, about
      // 140 us, which was a third of the core's time per small file there (issue 16).
      const slice = start === 0 && end === size ? blob : blob.slice(start, end);
      const readAll = (): Promise<ArrayBuffer> =>
        withinTime(
          slice.arrayBuffer(),
          readTimeoutMs,
          () =>
            new Error(
              `reading bytes ${start}-${end} of the file took more than ${readTimeoutMs} ms (readTimeoutMs)`,
            ),
        );
      const bytes = target
        ? ((await readByob(slice, target, byobStallMs)) ?? copyInto(await readAll(), target))
        : new Uint8Array(await readAll());
      if (bytes.byteLength !== end - start)
        throw new Error(
          `read ${bytes.byteLength} bytes at ${start}, expected ${end - start} (file changed?)`,
        );
      return bytes;
    },
  };
}

/**
 * `work`, or the error `late()` makes if it has not settled within `ms`. What `work` delivers
 * after that goes nowhere: the caller's buffers are filled only from what this returns.
 */
async function withinTime<T>(work: Promise<T>, ms: number, late: () => Error): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(late()), ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

function copyInto(buffer: ArrayBuffer, target: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(buffer);
  target.set(bytes);
  return target.subarray(0, bytes.byteLength);
}

/**
 * Buffers that BYOB reads fill, kept for the next read: a BYOB read transfers (detaches) the
 * buffer it fills, so it cannot fill `target` (the core's pooled chunk buffer, still in use after
 * the read) directly. One per read in flight in this Worker or page, at most this many kept.
 */
const SPARE_BYOB_BUFFERS_KEPT = 4;
const spareByobBuffers: ArrayBuffer[] = [];
/**
 * Smaller reads (the small files of a folder) keep `arrayBuffer()`: the gain was measured on 4 MiB
 * chunks, and with BYOB for every small file, folder-batch.test.ts's last test (30 files over the
 * HTTP binding, after 2000+ files in the same Chromium) stalled; the cause was not found.
 */
const BYOB_MIN_READ_BYTES = 2 ** 20;
/** Whether this engine's Blob streams take a BYOB reader; learnt at the first read. */
let byobReadable: boolean | undefined;
/**
 * How long one BYOB read may deliver nothing before it is given up: that slice is read with
 * `arrayBuffer()` instead, and BYOB is not used again in this Worker or page. In Chromium a BYOB
 * read of a File slice, while a PUT of bytes was being sent, never settled (no bytes, no error) in
 * about half of the runs (docs/measurements.md); without this the upload would wait for it forever.
 * A local disk delivers a part of a slice in milliseconds; a drive spinning up, in a few seconds.
 */
export const BYOB_STALL_MS = 10_000;
const STALLED = Symbol('stalled');

/**
 * Reads all of `slice` with a BYOB reader and copies it into `target`; a view of `target` of the
 * bytes read. Undefined, having read nothing, where Blob streams are not byte streams, for reads
 * under BYOB_MIN_READ_BYTES, and after a stall (this one or an earlier one).
 */
async function readByob(
  slice: Blob,
  target: Uint8Array,
  stallMs: number,
): Promise<Uint8Array | undefined> {
  if (
    byobReadable === false ||
    slice.size < BYOB_MIN_READ_BYTES ||
    typeof slice.stream !== 'function'
  )
    return undefined;
  let reader: ReadableStreamBYOBReader;
  const stream = slice.stream();
  try {
    reader = stream.getReader({ mode: 'byob' });
    byobReadable = true;
  } catch {
    // TypeError: not a byte stream (or no BYOB readers at all).
    byobReadable = false;
    void stream.cancel().catch(() => undefined);
    return undefined;
  }
  const length = Math.min(slice.size, target.byteLength);
  const spareAt = spareByobBuffers.findIndex((b) => b.byteLength >= length);
  let buffer =
    spareAt >= 0 ? spareByobBuffers.splice(spareAt, 1)[0] : new ArrayBuffer(Math.max(length, 1));
  let filled = 0;
  let ended = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stalled = false;
  try {
    while (filled < length) {
      const step = await Promise.race([
        reader.read(new Uint8Array(buffer, filled, length - filled)),
        new Promise<typeof STALLED>((resolve) => (timer = setTimeout(resolve, stallMs, STALLED))),
      ]);
      clearTimeout(timer);
      if (step === STALLED) {
        // The read holds the buffer (detached): it is not kept. The cancel may never settle either,
        // and the lock stays with the read.
        stalled = true;
        byobReadable = false;
        void reader.cancel().catch(() => undefined);
        return undefined;
      }
      const { done, value } = step;
      if (!value) break; // the stream errored and was cancelled
      buffer = value.buffer;
      filled += value.byteLength;
      if ((ended = done)) break;
    }
  } finally {
    clearTimeout(timer);
    if (!stalled) {
      // Not left open after its last byte: it would hold the browser's reader of the file. Not
      // awaited: like a stalled read's, the cancel may never settle, and the bytes are all here.
      if (!ended) void reader.cancel().catch(() => undefined);
      reader.releaseLock();
    }
  }
  target.set(new Uint8Array(buffer, 0, filled));
  if (spareByobBuffers.length < SPARE_BYOB_BUFFERS_KEPT) spareByobBuffers.push(buffer);
  return target.subarray(0, filled);
}
