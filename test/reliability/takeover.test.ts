/**
 * Takeover races (SPEC.md section 7.3 "Ownership", "TERMINATE", TTL): a second connection resumes while
 * the first is in the middle of a DATA frame; an HTTP DELETE lands while chunks are in flight; the
 * TTL expires while the client is away.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Errors, bytesToHex } from '../../protocol/index.js';
import { RawClient } from '../helpers/protocol-client.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { listFiles, makeTempDir, type TempDir } from '../helpers/tmp.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { recordFigures } from './lib/figures.js';
import { AckLog, chunksIn, finishUpload, openOrResume, pump } from './lib/pump.js';

const KiB = 1024;
const CHUNK = 64 * KiB;
const FILE = 2 * 1024 * KiB;
const all = [...Array(FILE / CHUNK).keys()];
const figures = {
  races: 0,
  uploadsCompleted: 0,
  bytesVerified: 0,
  halfFramesNeverAcked: 0,
  bytesLost: 0,
  crashes: 0,
};

describe('takeover races', () => {
  let tmp: TempDir | undefined;
  let server: TestServer | undefined;
  let proxy: FaultProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    await server?.close();
    await tmp?.cleanup();
    proxy = undefined;
  });
  afterAll(() => recordFigures('takeover', figures));

  it('a second connection resumes while the first is mid-frame: TAKEN_OVER, the half frame is never acked, file identical', async () => {
    tmp = await makeTempDir('bigup-rel-take-');
    server = await startServer({ dir: tmp.path, logLevel: false });
    proxy = await startFaultProxy(Number(new URL(server.url).port));
    const data = randomBytes(FILE);
    const log = new AckLog(CHUNK, FILE);
    const first = await openOrResume(`ws://127.0.0.1:${proxy.port}/upload`, undefined, {
      fileSize: FILE,
      chunkSize: CHUNK,
      name: 'take.bin',
    });
    // Hold the first connection 40 KiB into its 7th DATA frame.
    const holdAt = first.wireStart + 6 * (CHUNK + 32) + 40 * KiB;
    proxy.holdLastAt(holdAt);
    const running = pump(first.client, first.accept, data, all, log, {
      wireStart: first.wireStart,
      window: 512 * KiB,
      timeoutMs: 5000,
    });
    while (proxy.forwardedOnLast() < holdAt) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 50));
    const second = await openOrResume(
      server.wsUrl,
      { id: first.accept.uploadId, secret: first.accept.secret },
      { fileSize: FILE, chunkSize: CHUNK },
    );
    const result = await running;
    expect(result.errors.map((e) => e.code)).toEqual([Errors.TAKEN_OVER.code]);
    // The held bytes (and our close reply) now reach the server after the takeover: they must
    // change nothing.
    proxy.resume();
    expect((await first.client.closed).code).toBe(4001);
    const half = result.frames.filter((f) => f.wireEnd > holdAt).map((f) => f.index);
    const claimed = chunksIn(second.accept.ranges, CHUNK, FILE);
    expect(
      half.filter((i) => claimed.has(i) || result.ackedHere.includes(i)),
      'half frame acked',
    ).toEqual([]);
    // Every chunk the first connection saw acked is in the new owner's ACCEPT.
    expect(log.chunks.filter((i) => !claimed.has(i))).toEqual([]);
    figures.halfFramesNeverAcked += half.length;
    await finishUpload(second, data, log);
    const stored = await readFile(
      join(tmp.path, 'files', bytesToHex(first.accept.uploadId), 'take.bin'),
    );
    expect(stored.equals(data)).toBe(true);
    figures.races++;
    figures.uploadsCompleted++;
    figures.bytesVerified += FILE;
  });

  it('DELETE while chunks are in flight: UPLOAD_GONE (4004), nothing left on disk, RESUME is NOT_FOUND', async () => {
    tmp = await makeTempDir('bigup-rel-del-');
    server = await startServer({ dir: tmp.path, logLevel: false });
    const data = randomBytes(FILE);
    const first = await openOrResume(server.wsUrl, undefined, {
      fileSize: FILE,
      chunkSize: CHUNK,
      name: 'del.bin',
    });
    const id = bytesToHex(first.accept.uploadId);
    let deleted: Promise<Response> | undefined;
    const result = await pump(first.client, first.accept, data, all, new AckLog(CHUNK, FILE), {
      wireStart: first.wireStart,
      window: 512 * KiB,
      rate: 4 * 1024 * KiB,
      onAck: (i) => {
        if (i === 4 && !deleted) {
          deleted = fetch(`${server!.url}/uploads/${id}`, {
            method: 'DELETE',
            headers: { 'Bigup-Secret': bytesToHex(first.accept.secret) },
          });
        }
      },
    });
    expect((await deleted!).status).toBe(204);
    expect(result.errors.map((e) => e.code)).toEqual([Errors.UPLOAD_GONE.code]);
    expect((await first.client.closed).code).toBe(4004);
    // Writes still in flight at the DELETE must not resurrect any file.
    await new Promise((r) => setTimeout(r, 200));
    expect((await listFiles(tmp.path)).filter((f) => f.includes(id))).toEqual([]);
    const again = await RawClient.connect(server.wsUrl);
    again.resume(first.accept.uploadId, first.accept.secret);
    await again.expectError(Errors.NOT_FOUND.code);
    again.destroy();
    figures.races++;
  });

  it('TTL expiry while the client is away: the upload is removed, RESUME is NOT_FOUND', async () => {
    tmp = await makeTempDir('bigup-rel-ttl-');
    server = await startServer({ dir: tmp.path, ttl: 400, sweepInterval: 50, logLevel: false });
    const data = randomBytes(FILE);
    const first = await openOrResume(server.wsUrl, undefined, {
      fileSize: FILE,
      chunkSize: CHUNK,
      name: 'ttl.bin',
    });
    const id = bytesToHex(first.accept.uploadId);
    await pump(first.client, first.accept, data, all.slice(0, 8), new AckLog(CHUNK, FILE), {
      wireStart: first.wireStart,
    });
    first.client.close();
    await first.client.closed;
    // Shortly after the pause it is still there...
    const early = await openOrResume(
      server.wsUrl,
      { id: first.accept.uploadId, secret: first.accept.secret },
      { fileSize: FILE, chunkSize: CHUNK },
    );
    expect(chunksIn(early.accept.ranges, CHUNK, FILE).size).toBe(8);
    early.client.close();
    await early.client.closed;
    // ...then the TTL passes with nobody connected.
    await new Promise((r) => setTimeout(r, 1000));
    expect((await listFiles(tmp.path)).filter((f) => f.includes(id))).toEqual([]);
    const late = await RawClient.connect(server.wsUrl);
    late.resume(first.accept.uploadId, first.accept.secret);
    await late.expectError(Errors.NOT_FOUND.code);
    late.destroy();
    figures.races++;
  });
});
