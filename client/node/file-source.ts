/**
 * A FileSource over a local file: stat once, open lazily, read positionally into the caller's
 * buffer (behind the DATA header), so memory stays bounded by the window whatever the file size.
 */
import { open, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
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

export async function openFileSource(
  path: string,
  options: NodeFileSourceOptions = {},
): Promise<FileSource> {
  const exact = await stat(path, { bigint: true });
  if (!exact.isFile()) throw new Error(`${path} is not a regular file`);
  const opened = identity(exact);
  const info = { size: Number(exact.size), mtimeMs: Number(exact.mtimeNs / 1_000_000n) };
  let handle: Promise<FileHandle> | undefined;
  const size = info.size;
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
      const now = await stat(path, { bigint: true }).catch(() => undefined);
      return now === undefined || identity(now) !== opened;
    },
    async close(): Promise<void> {
      const h = handle;
      handle = undefined;
      if (h) await (await h).close();
    },
  };
}
