/**
 * A FileSource over a local file: stat once, open lazily, read positionally into the caller's
 * buffer (behind the DATA header), so memory stays bounded by the window whatever the file size.
 *
 * A file of up to WHOLE_READ_LIMIT bytes is read whole when opened, synchronously: open, fstat,
 * read, close, with no thread-pool handoff. Each handoff (an async fs call) cost the CLI more main-
 * thread time than reading a 16 KiB file, and a small file took five of them (issue 16). The event
 * loop waits for those reads: microseconds from a local disk's cache, longer from a cold disk or a
 * network filesystem, where the upload waits for the bytes anyway.
 */
import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { closeSync, constants, fstatSync, openSync, readSync, statSync } from 'node:fs';
import type { BigIntStats } from 'node:fs';
import { basename, resolve } from 'node:path';
import type { FileSource } from '../core/types.js';

export interface NodeFileSourceOptions {
  /** Name sent in OPEN; defaults to the file's base name. */
  readonly name?: string;
  /** Content type sent in OPEN; default ''. */
  readonly type?: string;
}

/** What identifies a file's content without reading it; ctime moves on every write and cannot be set back. */
function identity(info: BigIntStats): string {
  return `${info.dev}:${info.ino}:${info.size}:${info.mtimeNs}:${info.ctimeNs}`;
}

/** Files up to this many bytes are read whole, synchronously, when opened (see the header). */
export const WHOLE_READ_LIMIT = 64 * 1024;

/** The whole of a small file, read synchronously; throws when it changed while being read. */
function readWhole(path: string, expected: string, size: number): Uint8Array {
  // O_NONBLOCK: a FIFO swapped in since the stat must not block the event loop at open.
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const at = fstatSync(fd, { bigint: true });
    if (!at.isFile() || identity(at) !== expected)
      throw new Error(`${path} changed while it was being opened`);
    const out = new Uint8Array(size);
    let done = 0;
    while (done < size) {
      const bytesRead = readSync(fd, out, done, size - done, done);
      if (bytesRead === 0)
        throw new Error(`${path} ended at ${done} bytes; it was ${size} (file changed?)`);
      done += bytesRead;
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

export async function openFileSource(
  path: string,
  options: NodeFileSourceOptions = {},
): Promise<FileSource> {
  const exact = statSync(path, { bigint: true });
  if (!exact.isFile()) throw new Error(`${path} is not a regular file`);
  const opened = identity(exact);
  const info = { size: Number(exact.size), mtimeMs: Number(exact.mtimeNs / 1_000_000n) };
  let handle: Promise<FileHandle> | undefined;
  const size = info.size;
  const whole = size <= WHOLE_READ_LIMIT ? readWhole(path, opened, size) : undefined;
  return {
    name: options.name ?? basename(path),
    size,
    type: options.type ?? '',
    lastModified: Math.floor(info.mtimeMs),
    source: resolve(path),
    async read(start: number, end: number, target?: Uint8Array): Promise<Uint8Array> {
      if (start < 0 || end > size || end < start)
        throw new RangeError(`read [${start}, ${end}) outside the file`);
      const length = end - start;
      const out = target ? target.subarray(0, length) : new Uint8Array(length);
      if (target && target.byteLength < length) throw new RangeError('target too small');
      if (whole) {
        out.set(whole.subarray(start, end));
        return out;
      }
      handle ??= open(path, 'r');
      const fh = await handle;
      let done = 0;
      while (done < length) {
        const { bytesRead } = await fh.read(out, done, length - done, start + done);
        if (bytesRead === 0)
          throw new Error(`${path} ended at ${start + done} bytes; it was ${size} (file changed?)`);
        done += bytesRead;
      }
      return out;
    },
    async changed(): Promise<boolean> {
      // One stat, synchronous for the reason in the header.
      let now: BigIntStats | undefined;
      try {
        now = statSync(path, { bigint: true, throwIfNoEntry: false });
      } catch {
        now = undefined;
      }
      return now === undefined || identity(now) !== opened;
    },
    async close(): Promise<void> {
      const h = handle;
      handle = undefined;
      if (h) await (await h).close();
    },
  };
}
