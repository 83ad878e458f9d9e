/**
 * The batch uploader's small files whole in their OPEN (SPEC.md 16.11) against a real server: a
 * file no larger than the granted size goes in its OPEN (flag WITH_DATA, no DATA, no COMPLETE) and
 * is reported done with its id, progress and digest; a larger one goes the usual way; with
 * `inlineSmallFiles: false`, or a server that grants nothing, every file goes the usual way. Every
 * stored file is compared with its source.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MessageType, OpenFlags } from '../../protocol/index.js';
import { createBatchUploader, fileEntry, WsTransport } from '../../client/node/index.js';
import type { BatchEntry, BatchResult, Transport } from '../../client/core/index.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { storedLocation } from '../helpers/stored.js';

/** A WsTransport that notes the type and flags of every message the client sends. */
function recording(sent: Array<{ type: number; flags: number }>): Transport {
  const inner = new WsTransport();
  return {
    sendsHeaders: inner.sendsHeaders,
    connect(url, protocols, handlers, headers) {
      const connection = inner.connect(url, protocols, handlers, headers);
      const send = connection.send.bind(connection);
      connection.send = (data: Uint8Array) => {
        sent.push({ type: data[0] ?? 0, flags: data[1] ?? 0 });
        send(data);
      };
      return connection;
    },
  };
}

describe('batch uploader: small files whole in their OPEN', () => {
  let tmp: TempDir;
  let server: TestServer;
  let sources: Map<string, Buffer>;
  let entries: BatchEntry[];

  beforeEach(async () => {
    tmp = await makeTempDir('bigup-open-with-data-');
    sources = new Map();
    entries = [];
    // Sizes around the limit: empty, small, exactly 64 KiB (inline), one byte more (DATA).
    for (const [i, size] of [0, 1, 5000, 65_536, 65_537].entries()) {
      const label = `tree/f${i}.bin`;
      const bytes = randomBytes(size);
      await mkdir(join(tmp.path, 'src', 'tree'), { recursive: true });
      await writeFile(join(tmp.path, 'src', label), bytes);
      sources.set(label, bytes);
      entries.push(fileEntry(join(tmp.path, 'src', label), label, { relativePath: label }));
    }
  });
  afterEach(async () => {
    await server.close();
    await tmp.cleanup();
  });

  async function send(dataDir: string, inlineSmallFiles?: boolean) {
    const sent: Array<{ type: number; flags: number }> = [];
    const results: BatchResult[] = [];
    const progress = new Map<number, number>();
    const accepted: number[] = [];
    const batch = createBatchUploader({
      endpoint: server.wsUrl,
      transport: recording(sent),
      ...(inlineSmallFiles === undefined ? {} : { inlineSmallFiles }),
      onResult: (r) => results.push(r),
      onProgress: (index, bytes) => progress.set(index, bytes),
      onAccept: (index) => accepted.push(index),
    });
    const summary = await batch.run(entries);
    expect(summary).toMatchObject({ done: entries.length, failed: 0 });
    for (const r of results) {
      const stored = await readFile(await storedLocation(dataDir, r.uploadId ?? ''));
      expect(stored.equals(sources.get(r.label) ?? Buffer.alloc(1)), r.label).toBe(true);
      if (r.size > 0) expect(progress.get(r.index), r.label).toBe(r.size);
    }
    expect(accepted.sort((a, b) => a - b)).toEqual(entries.map((_, i) => i));
    const opens = sent.filter((m) => m.type === MessageType.OPEN);
    return {
      withData: opens.filter((m) => (m.flags & OpenFlags.WITH_DATA) !== 0).length,
      data: sent.filter((m) => m.type === MessageType.DATA).length,
      completes: sent.filter((m) => m.type === MessageType.COMPLETE).length,
    };
  }

  it('sends files up to 64 KiB in their OPEN, the larger one with DATA, all byte-identical', async () => {
    const dataDir = join(tmp.path, 'data');
    server = await startServer({ dir: dataDir });
    const counts = await send(dataDir);
    // The first OPEN may go before WELCOME (SPEC.md 16.3), without data: the empty file, which
    // then needs no DATA either. Only the 65,537-byte file sends one.
    expect(counts.withData).toBeGreaterThanOrEqual(3);
    expect(counts.withData + counts.completes).toBe(5);
    expect(counts.data).toBe(1);
  });

  it('sends every file the usual way when told not to, or when the server grants nothing', async () => {
    const dataDir = join(tmp.path, 'data');
    server = await startServer({ dir: dataDir });
    expect(await send(dataDir, false)).toEqual({ withData: 0, data: 4, completes: 5 });
    await server.close();
    const grantsNothing = join(tmp.path, 'data-off');
    server = await startServer({ dir: grantsNothing, maxInlineFileSize: 0 });
    expect(await send(grantsNothing)).toEqual({ withData: 0, data: 4, completes: 5 });
  });
});
