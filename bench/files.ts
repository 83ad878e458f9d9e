/**
 * The bench's files: one generated source (cached, reused across invocations), the warm-up that
 * every run gets, and the byte comparison of what a contender stored.
 */
import { randomFillSync } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';

const SOURCE_PREFIX = 'source-';
const BLOCK = 8 * 2 ** 20;

/**
 * Return the path of a random file of exactly `size` bytes in `workDir`, generating it if needed.
 * Only one source is kept: a source of another size is deleted first, so the disk holds at most
 * one copy however many sizes are tried.
 */
export async function ensureSource(
  workDir: string,
  size: number,
  log: (line: string) => void,
): Promise<string> {
  await mkdir(workDir, { recursive: true });
  const path = join(workDir, `${SOURCE_PREFIX}${size}.bin`);
  const existing = await stat(path).catch(() => undefined);
  if (existing?.isFile() && existing.size === size) return path;
  for (const name of await readdir(workDir)) {
    if (name.startsWith(SOURCE_PREFIX)) await rm(join(workDir, name), { force: true });
  }
  log(`generating ${size} random bytes in ${path}`);
  // Random, so nothing on the path (compression, dedup, sparse detection) can flatter a contender.
  const tmp = `${path}.partial`;
  const handle = await open(tmp, 'w');
  try {
    const buf = Buffer.allocUnsafe(BLOCK);
    for (let offset = 0; offset < size; offset += BLOCK) {
      const n = Math.min(BLOCK, size - offset);
      randomFillSync(buf, 0, n);
      await handle.write(buf, 0, n, offset);
    }
  } finally {
    await handle.close();
  }
  const { rename } = await import('node:fs/promises');
  await rename(tmp, path);
  return path;
}

/** Read a whole file and throw the bytes away: puts it in the page cache for every contender alike. */
export async function readThrough(path: string): Promise<void> {
  for await (const _chunk of createReadStream(path, { highWaterMark: BLOCK })) {
    // Only the kernel's cache matters here.
  }
}

/**
 * Write and delete `bytes` of scratch data. This VM is slow to hand out memory pages that sat idle
 * for a few seconds (measured: the fastest pipe drops from ~750 to ~480 MB/s cold, tus barely
 * moves); touching 2 GiB first makes every contender start from the same warm state. The file is
 * deleted before writeback, so it costs no device I/O during the next run.
 */
export async function warmPages(dir: string, bytes: number): Promise<void> {
  const path = join(dir, `warm-${process.pid}-${Date.now()}.tmp`);
  const handle = await open(path, 'w');
  try {
    const buf = Buffer.alloc(BLOCK, 0x5a);
    for (let offset = 0; offset < bytes; offset += BLOCK)
      await handle.write(buf, 0, Math.min(BLOCK, bytes - offset), offset);
  } finally {
    await handle.close();
    await unlink(path).catch(() => undefined);
  }
}

/** The warm-up every run gets before it starts. */
export async function warmUp(source: string, scratchDir: string, warmBytes: number): Promise<void> {
  await readThrough(source);
  if (warmBytes > 0) await warmPages(scratchDir, warmBytes);
}

/** Result of comparing a received file with the source. */
export type Comparison = { identical: true } | { identical: false; reason: string };

/** Byte-for-byte comparison, outside any timing. Reports the first differing offset. */
export async function compareFiles(expected: string, actual: string): Promise<Comparison> {
  const [a, b] = await Promise.all([stat(expected), stat(actual).catch(() => undefined)]);
  if (!b) return { identical: false, reason: `received file missing: ${actual}` };
  if (a.size !== b.size) return { identical: false, reason: `size ${b.size} != ${a.size}` };
  const ha = await open(expected, 'r');
  const hb = await open(actual, 'r');
  try {
    const ba = Buffer.allocUnsafe(BLOCK);
    const bb = Buffer.allocUnsafe(BLOCK);
    for (let offset = 0; offset < a.size; offset += BLOCK) {
      const n = Math.min(BLOCK, a.size - offset);
      const [ra, rb] = await Promise.all([ha.read(ba, 0, n, offset), hb.read(bb, 0, n, offset)]);
      if (ra.bytesRead !== n || rb.bytesRead !== n)
        return { identical: false, reason: `short read at ${offset}` };
      if (ba.compare(bb, 0, n, 0, n) !== 0) {
        let i = 0;
        while (i < n && ba[i] === bb[i]) i++;
        return { identical: false, reason: `bytes differ at offset ${offset + i}` };
      }
    }
  } finally {
    await ha.close();
    await hb.close();
  }
  return { identical: true };
}

/** Find files under `dir` (bounded depth and count) whose size is `size`; used when a layout is not known for sure. */
export async function findFilesOfSize(dir: string, size: number, maxDepth = 6): Promise<string[]> {
  const found: string[] = [];
  let visited = 0;
  async function walk(d: string, depth: number): Promise<void> {
    if (depth > maxDepth || visited > 10_000) return;
    const entries = await readdir(d, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      visited++;
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p, depth + 1);
      else if (e.isFile()) {
        const s = await stat(p).catch(() => undefined);
        if (s && s.size === size) found.push(p);
      }
    }
  }
  await walk(dir, 0);
  return found;
}
