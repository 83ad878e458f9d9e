/**
 * The batch uploader as a long-lived queue (what `<big-uploader>`'s upload worker drives) against a
 * real server: entries added while it runs share the connection it keeps open for `idleCloseMs`,
 * `drop()` takes a queued or an opened file out (the server deletes what it had), progress and
 * accept callbacks, and `instantUpload`: files the server already holds complete without DATA.
 */
import type { IncomingMessage } from 'node:http';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createBatchUploader, fileEntry } from '../../client/node/index.js';
import type { BatchEntry, BatchResult } from '../../client/core/index.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { storedLocation } from '../helpers/stored.js';

let tmp: TempDir;
let server: TestServer;
let dataDir: string;
let upgrades = 0;
/** OPENs whose label is in `hold` wait for `release()`. */
const gate = { hold: new Set<string>(), waiting: [] as Array<() => void> };
function release(): void {
  gate.hold.clear();
  for (const go of gate.waiting.splice(0)) go();
}

async function files(count: number, prefix: string): Promise<BatchEntry[]> {
  const dir = join(tmp.path, 'src', prefix);
  await mkdir(dir, { recursive: true });
  const entries: BatchEntry[] = [];
  for (let i = 0; i < count; i++) {
    const relativePath = `${prefix}/f${i}.bin`;
    const bytes = Buffer.alloc(1000 + i * 37, (i * 7 + prefix.length) & 0xff);
    await writeFile(join(tmp.path, 'src', relativePath), bytes);
    entries.push(fileEntry(join(tmp.path, 'src', relativePath), relativePath, { relativePath }));
  }
  return entries;
}

async function storedPaths(): Promise<string[]> {
  const root = join(dataDir, 'files');
  const out: string[] = [];
  for (const e of await readdir(root, { recursive: true, withFileTypes: true }).catch(() => []))
    if (e.isFile()) out.push(join(e.parentPath, e.name).slice(root.length + 1));
  return out.map((p) => p.split('/').slice(1).join('/')).sort();
}

beforeEach(async () => {
  tmp = await makeTempDir('bigup-batch-queue-');
  dataDir = join(tmp.path, 'data');
  server = await startServer({
    dir: dataDir,
    // The instant-upload test's files are small: every non-empty file is remembered.
    instantUploadMinSize: 1,
    // The client has no subject: it shares its address's content (not the default).
    instantUpload: 'address',
    authorizeUpload: async ({ name }) => {
      if (gate.hold.has(name ?? '')) await new Promise<void>((go) => gate.waiting.push(go));
      return true;
    },
  });
  upgrades = 0;
  server.app.server.on('upgrade', (request: IncomingMessage) => {
    if (request.url?.startsWith('/upload')) upgrades++;
  });
});
afterEach(async () => {
  release();
  await server.close();
  await tmp.cleanup();
});

describe('batch uploader as a long-lived queue', () => {
  it('takes entries added while it runs on the connection it keeps open while idle', async () => {
    const first = await files(5, 'one');
    const later = await files(5, 'two');
    const results: BatchResult[] = [];
    const accepted: number[] = [];
    const progress = new Map<number, number>();
    const batch = createBatchUploader({
      endpoint: server.wsUrl,
      idleCloseMs: 5_000,
      onResult: (r) => results.push(r),
      onAccept: (index) => accepted.push(index),
      onProgress: (index, bytes) => progress.set(index, bytes),
    });
    const run = batch.run(first);
    await expect.poll(() => results.length, { timeout: 20_000 }).toBe(5);
    // Idle now, connection kept: later entries reuse it.
    const indexes = later.map((entry) => batch.add(entry));
    expect(indexes).toEqual([5, 6, 7, 8, 9]);
    const summary = await run;
    expect(summary).toMatchObject({ done: 10, failed: 0, cancelled: 0 });
    expect(upgrades).toBe(1);
    expect(accepted.sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    for (const r of results) expect(progress.get(r.index)).toBe(r.size);
    expect(await storedPaths()).toEqual(
      [...first, ...later].map((e) => e.label).sort((a, b) => a.localeCompare(b)),
    );
    expect(() => batch.add(first[0])).toThrow(/finished/);
  });

  it('drop() of a file whose OPEN carries its data: the server completes it without a word in between, so it is reported done', async () => {
    const entries = await files(3, 'inline');
    // Until WELCOME one file is in flight, so f1 starts after it: its OPEN carries its data.
    gate.hold.add('f1.bin');
    const results: BatchResult[] = [];
    const batch = createBatchUploader({
      endpoint: server.wsUrl,
      maxFilesInFlight: 2,
      onResult: (r) => results.push(r),
    });
    const run = batch.run(entries);
    await expect.poll(() => gate.waiting.length, { timeout: 20_000 }).toBe(1);
    batch.drop(1);
    release();
    expect(await run).toMatchObject({ done: 3, failed: 0, cancelled: 0 });
    expect(results.find((r) => r.index === 1)?.state).toBe('done');
    expect(await storedPaths()).toEqual(['inline/f0.bin', 'inline/f1.bin', 'inline/f2.bin']);
  });

  it('drop(): a queued file is removed, an opened one terminated; the rest uploads', async () => {
    const entries = await files(6, 'drop');
    // Both slots' OPENs wait: f0 is in flight when dropped, and f5 surely still queued (with one
    // slot free the other files could all finish before the drop, f5 included).
    gate.hold.add('f0.bin');
    gate.hold.add('f1.bin');
    const results: BatchResult[] = [];
    const batch = createBatchUploader({
      endpoint: server.wsUrl,
      maxFilesInFlight: 2,
      // An upload that can be terminated needs an ACCEPT: whether f0's OPEN would carry its data
      // (SPEC.md 16.11) depends on whether WELCOME came first. That case is the next test's.
      inlineSmallFiles: false,
      onResult: (r) => results.push(r),
    });
    const run = batch.run(entries);
    await expect.poll(() => gate.waiting.length, { timeout: 20_000 }).toBe(2);
    batch.drop(0); // OPEN sent, no ACCEPT yet
    batch.drop(5); // still queued
    release();
    const summary = await run;
    expect(summary).toMatchObject({ done: 4, failed: 0, cancelled: 2 });
    expect(
      results
        .filter((r) => r.state === 'cancelled')
        .map((r) => r.index)
        .sort(),
    ).toEqual([0, 5]);
    expect(await storedPaths()).toEqual([
      'drop/f1.bin',
      'drop/f2.bin',
      'drop/f3.bin',
      'drop/f4.bin',
    ]);
    // The terminated upload left nothing behind.
    const left = (await readdir(join(dataDir, 'uploads'))).filter((n) => !n.endsWith('.json'));
    expect(left).toEqual([]);
  });

  it('instantUpload: files the server holds complete without their bytes', async () => {
    const entries = await files(8, 'same');
    const first = await createBatchUploader({ endpoint: server.wsUrl }).run(entries);
    expect(first).toMatchObject({ done: 8 });
    const results: BatchResult[] = [];
    const progress: number[] = [];
    const again = await createBatchUploader({
      endpoint: server.wsUrl,
      instantUpload: true,
      onResult: (r) => results.push(r),
      onProgress: (_, bytes) => progress.push(bytes),
    }).run(entries);
    expect(again).toMatchObject({ done: 8, failed: 0 });
    expect(results.every((r) => r.instant === true)).toBe(true);
    expect(progress).toEqual([]); // no DATA was acked: none was sent
    // Each is stored as a new upload, byte-identical, in the second connection's batch folder.
    for (const r of results) {
      const path = await storedLocation(dataDir, r.uploadId ?? '');
      expect(path.endsWith(`/${r.label}`), path).toBe(true);
      const source = join(tmp.path, 'src', r.label);
      expect((await readFile(path)).equals(await readFile(source))).toBe(true);
    }
  });
});
