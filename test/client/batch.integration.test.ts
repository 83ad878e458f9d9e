/**
 * The batch uploader (issue 16, point 4) against a real server: many files over one connection,
 * bigup.2 with several in flight, the same queue against a bigup.1-only server, and bad input
 * (unreadable, vanished, replaced by a folder, too large, changed mid-send) failing per file
 * while the rest of the batch uploads.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createBatchUploader, fileEntry, openFileSource } from '../../client/node/index.js';
import type { BatchEntry, BatchResult } from '../../client/core/index.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

let tmp: TempDir;
let server: TestServer;
let dataDir: string;

function content(n: number, seed: number): Buffer {
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = (i * 13 + seed * 101) & 0xff;
  return out;
}

/** Stored files by relativePath (files/<id>/<relativePath>). */
async function stored(): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const root = join(dataDir, 'files');
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const full = join(entry.parentPath, entry.name);
    const relative = full
      .slice(root.length + 1)
      .split('/')
      .slice(1)
      .join('/');
    out.set(relative, await readFile(full));
  }
  return out;
}

/**
 * A proxy that strips `bigup.2` from the client's offer: the server then answers as a bigup.1-only
 * server would, and the client sees exactly that (101 with bigup.1).
 */
async function bigup1OnlyProxy(target: string): Promise<{ url: string; close(): Promise<void> }> {
  const { port, hostname } = new URL(target);
  const sockets = new Set<Socket>();
  const proxy: Server = createServer((client) => {
    sockets.add(client);
    const upstream = connect(Number(port), hostname);
    sockets.add(upstream);
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      client.off('data', onData);
      const text = head
        .subarray(0, end)
        .toString('latin1')
        .replace(/^(Sec-WebSocket-Protocol:).*$/im, '$1 bigup.1');
      upstream.write(Buffer.concat([Buffer.from(text, 'latin1'), head.subarray(end)]));
      client.pipe(upstream);
    };
    client.on('data', onData);
    upstream.pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const address = proxy.address();
  const proxyPort = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `ws://127.0.0.1:${proxyPort}/upload`,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    },
  };
}

async function makeTree(
  count: number,
): Promise<{ entries: BatchEntry[]; files: Map<string, Buffer> }> {
  const files = new Map<string, Buffer>();
  const entries: BatchEntry[] = [];
  const sizes = [0, 1, 16 * 1024, 70 * 1024, 3000];
  for (let i = 0; i < count; i++) {
    const relativePath = `tree/d${i % 7}/f${i}.bin`;
    const path = join(tmp.path, 'src', relativePath);
    await mkdir(join(path, '..'), { recursive: true });
    const bytes = content(sizes[i % sizes.length] ?? 1, i);
    await writeFile(path, bytes);
    files.set(relativePath, bytes);
    entries.push(fileEntry(path, relativePath, { relativePath }));
  }
  return { entries, files };
}

beforeEach(async () => {
  tmp = await makeTempDir('bigup-batch-');
  dataDir = join(tmp.path, 'data');
  server = await startServer({ dir: dataDir, maxUploadSize: 1024 * 1024 });
});
afterEach(async () => {
  await server.close();
  await tmp.cleanup();
});

describe('batch uploader', () => {
  it('uploads 120 files of 0 B to 70 KiB over one bigup.2 connection, several in flight', async () => {
    const { entries, files } = await makeTree(120);
    const results: BatchResult[] = [];
    const batch = createBatchUploader({
      endpoint: server.wsUrl,
      chunkSize: 64 * 1024,
      maxFilesInFlight: 8,
      onResult: (r) => results.push(r),
    });
    const summary = await batch.run(entries);
    expect(results.filter((r) => r.state === 'failed').map((r) => r.error)).toEqual([]);
    expect(summary).toMatchObject({ done: 120, failed: 0, notStarted: 0, protocol: 'bigup.2' });
    expect(results.every((r) => r.state === 'done' && /^[0-9a-f]{16}$/.test(r.digest ?? ''))).toBe(
      true,
    );
    expect(await stored()).toEqual(files);
  });

  it('runs the same queue one file at a time against a bigup.1-only server', async () => {
    const proxy = await bigup1OnlyProxy(server.wsUrl);
    try {
      const { entries, files } = await makeTree(25);
      const batch = createBatchUploader({ endpoint: proxy.url, chunkSize: 64 * 1024 });
      const summary = await batch.run(entries);
      expect(summary).toMatchObject({ done: 25, failed: 0, protocol: 'bigup.1' });
      expect(await stored()).toEqual(files);
    } finally {
      await proxy.close();
    }
  });

  for (const version of ['bigup.2', 'bigup.1'] as const) {
    it(`${version}: bad files fail one by one and the rest uploads`, async () => {
      const proxy = version === 'bigup.1' ? await bigup1OnlyProxy(server.wsUrl) : undefined;
      try {
        const { entries, files } = await makeTree(12);
        const src = join(tmp.path, 'src');
        // Unreadable: the open fails with EACCES (we run as root here, so chmod 000 would not do).
        const unreadable: BatchEntry = {
          label: 'bad/unreadable.bin',
          open: () =>
            Promise.reject(
              Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' }),
            ),
        };
        // Vanished between the walk and its turn.
        await writeFile(join(src, 'vanished.bin'), 'x');
        const vanished = fileEntry(join(src, 'vanished.bin'), 'bad/vanished.bin');
        await rm(join(src, 'vanished.bin'));
        // Replaced by a folder after the walk.
        await mkdir(join(src, 'now-a-folder.bin'));
        const folder = fileEntry(join(src, 'now-a-folder.bin'), 'bad/now-a-folder.bin');
        // Too large for this server (1 MiB limit): refused at OPEN.
        await writeFile(join(src, 'large.bin'), content(2 * 1024 * 1024, 9));
        const large = fileEntry(join(src, 'large.bin'), 'bad/large.bin');
        // Shrinks while it is being sent: its read fails or its change is seen before COMPLETE.
        await writeFile(join(src, 'shrinks.bin'), content(200 * 1024, 3));
        const shrinksSource = await openFileSource(join(src, 'shrinks.bin'));
        const shrinks: BatchEntry = {
          label: 'bad/shrinks.bin',
          open: async () => {
            await writeFile(join(src, 'shrinks.bin'), 'short now');
            return shrinksSource;
          },
        };
        const all = [
          unreadable,
          ...entries.slice(0, 6),
          vanished,
          folder,
          large,
          shrinks,
          ...entries.slice(6),
        ];
        const results: BatchResult[] = [];
        const batch = createBatchUploader({
          endpoint: proxy?.url ?? server.wsUrl,
          chunkSize: 64 * 1024,
          onResult: (r) => results.push(r),
          backoff: { initial: 10, max: 50 },
        });
        const summary = await batch.run(all);
        expect(summary).toMatchObject({ done: 12, failed: 5, protocol: version });
        const failures = Object.fromEntries(
          results.filter((r) => r.state === 'failed').map((r) => [r.label, r.error?.name]),
        );
        expect(failures).toEqual({
          'bad/unreadable.bin': 'SOURCE_ERROR',
          'bad/vanished.bin': 'SOURCE_ERROR',
          'bad/now-a-folder.bin': 'SOURCE_ERROR',
          'bad/large.bin': 'FILE_TOO_LARGE',
          'bad/shrinks.bin': 'SOURCE_ERROR',
        });
        expect(await stored()).toEqual(files);
      } finally {
        await proxy?.close();
      }
    });
  }

  it('names that collide after sanitizing are both kept (each upload has its own folder)', async () => {
    const src = join(tmp.path, 'src');
    await mkdir(src, { recursive: true });
    await writeFile(join(src, 'a'), 'first');
    await writeFile(join(src, 'b'), 'second');
    // Empty and '.' components are dropped by the sanitizer: both name x/report.txt on the server.
    const batch = createBatchUploader({ endpoint: server.wsUrl });
    const summary = await batch.run([
      fileEntry(join(src, 'a'), 'x/report.txt', { relativePath: 'x/report.txt' }),
      fileEntry(join(src, 'b'), './x//report.txt', { relativePath: './x//report.txt' }),
    ]);
    expect(summary).toMatchObject({ done: 2, failed: 0 });
    const ids = await readdir(join(dataDir, 'files'));
    expect(ids).toHaveLength(2);
    const contents = await Promise.all(
      ids.map((id) => readFile(join(dataDir, 'files', id, 'x', 'report.txt'), 'utf8')),
    );
    expect(contents.sort()).toEqual(['first', 'second']);
  });
});
