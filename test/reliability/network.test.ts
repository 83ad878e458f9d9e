/**
 * Network faults through test/helpers/fault-proxy.ts: FIN and RST in the middle of a DATA frame, a stall,
 * a stall past the idle timeout, a 1 byte/s trickle, and a connection cut every few hundred KiB
 * under the real client (client/node). Every upload must finish identical, and no chunk whose
 * frame did not fully reach the server may ever be acked.
 */
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Errors, bytesToHex } from '../../protocol/index.js';
import { openUploader } from '../../client/node/index.js';
import { RawClient } from '../helpers/protocol-client.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { recordFigures } from './lib/figures.js';
import {
  AckLog,
  finishUpload,
  missingChunks,
  openOrResume,
  pump,
  type PumpResult,
} from './lib/pump.js';
import { seeded, suiteSeed } from './lib/rng.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const CHUNK = 64 * KiB;
const figures = {
  faultsInjected: 0,
  uploadsCompleted: 0,
  bytesVerified: 0,
  halfFramesNeverAcked: 0,
  tricklerClosedWithin_ms: 0,
  tricklerCloseCode: '',
  bytesLost: 0,
  crashes: 0,
};

describe('network faults', () => {
  let tmp: TempDir;
  let server: TestServer;
  let proxy: FaultProxy;
  beforeEach(async () => {
    tmp = await makeTempDir('bigup-rel-net-');
    // Short idle and throughput limits so the trickle and the long stall are judged in seconds.
    server = await startServer({
      dir: tmp.path,
      idleTimeout: 1500,
      minThroughput: 64 * KiB,
      throughputWindow: 1000,
      logLevel: false,
    });
    proxy = await startFaultProxy(Number(new URL(server.url).port));
  });
  afterEach(async () => {
    await proxy.close();
    await server.close();
    await tmp.cleanup();
  });
  afterAll(() => recordFigures('network', figures));

  const proxied = () => `ws://127.0.0.1:${proxy.port}/upload`;

  /** No chunk acked on a cut connection had its frame end beyond what the proxy forwarded. */
  function checkHalfFrames(result: PumpResult, forwarded: number): number {
    const acked = new Set(result.ackedHere);
    const half = result.frames.filter((f) => f.wireEnd > forwarded);
    expect(
      half.filter((f) => acked.has(f.index)),
      'a chunk whose frame was cut was acked',
    ).toEqual([]);
    return half.length;
  }

  async function delivered(id: Uint8Array, name: string): Promise<Buffer> {
    return readFile(join(tmp.path, 'files', bytesToHex(id), name));
  }

  it('FIN and RST in the middle of DATA frames (12 cuts): half frames never acked, file identical', async () => {
    const rng = seeded(suiteSeed(0x6e657431));
    const FILE = 6 * MiB;
    const data = randomBytes(FILE);
    const log = new AckLog(CHUNK, FILE);
    let upload: { id: Uint8Array; secret: Uint8Array } | undefined;
    for (let cut = 0; ; cut++) {
      const { client, accept, wireStart } = await openOrResume(proxied(), upload, {
        fileSize: FILE,
        chunkSize: CHUNK,
        name: 'cut.bin',
      });
      upload ??= { id: accept.uploadId, secret: accept.secret };
      const missing = missingChunks(accept.ranges, CHUNK, FILE);
      if (cut < 12) {
        // Somewhere inside the next ~8 frames: almost never on a frame boundary.
        const at = wireStart + rng.int(1, 8 * (CHUNK + 32));
        proxy.cutLastAfter(at, cut % 2 === 0 ? 'fin' : 'rst');
        const result = await pump(client, accept, data, missing, log, {
          wireStart,
          window: 512 * KiB,
          timeoutMs: 3000,
        });
        client.destroy();
        figures.halfFramesNeverAcked += checkHalfFrames(result, at);
        figures.faultsInjected++;
      } else {
        await finishUpload({ client, accept, wireStart }, data, log);
        break;
      }
    }
    expect((await delivered(upload.id, 'cut.bin')).equals(data)).toBe(true);
    figures.uploadsCompleted++;
    figures.bytesVerified += FILE;
  }, 60_000);

  it('a short stall mid-frame: the upload carries on over the same connection', async () => {
    const FILE = 2 * MiB;
    const data = randomBytes(FILE);
    const { client, accept, wireStart } = await openOrResume(proxied(), undefined, {
      fileSize: FILE,
      chunkSize: CHUNK,
      name: 'stall.bin',
    });
    let stalled = false;
    const result = await pump(
      client,
      accept,
      data,
      [...Array(FILE / CHUNK).keys()],
      new AckLog(CHUNK, FILE),
      {
        wireStart,
        window: 256 * KiB,
        onAck: (i) => {
          if (i === 8 && !stalled) {
            stalled = true;
            proxy.stall();
            setTimeout(() => proxy.resume(), 700);
          }
        },
      },
    );
    expect(stalled).toBe(true);
    expect(result.errors).toEqual([]);
    expect(result.interrupted).toBe(false);
    client.complete();
    await client.expect('result');
    expect((await delivered(accept.uploadId, 'stall.bin')).equals(data)).toBe(true);
    figures.faultsInjected++;
    figures.uploadsCompleted++;
    figures.bytesVerified += FILE;
  });

  it('a stall past the idle timeout: IDLE_TIMEOUT, then resume finishes identical; the stalled half frame is never acked', async () => {
    const FILE = 2 * MiB;
    const data = randomBytes(FILE);
    const log = new AckLog(CHUNK, FILE);
    const first = await openOrResume(proxied(), undefined, {
      fileSize: FILE,
      chunkSize: CHUNK,
      name: 'idle.bin',
    });
    let forwardedAtStall = -1;
    const result = await pump(
      first.client,
      first.accept,
      data,
      [...Array(FILE / CHUNK).keys()],
      log,
      {
        wireStart: first.wireStart,
        window: 256 * KiB,
        timeoutMs: 5000,
        onAck: (i) => {
          if (i === 5 && forwardedAtStall < 0) {
            proxy.stall();
            forwardedAtStall = proxy.forwardedOnLast();
          }
        },
      },
    );
    expect(result.errors.map((e) => e.code)).toEqual([Errors.IDLE_TIMEOUT.code]);
    figures.halfFramesNeverAcked += checkHalfFrames(result, forwardedAtStall);
    // Our close reply sits in the stalled proxy; let it through so the close handshake ends.
    proxy.resume();
    expect((await first.client.closed).code).toBe(4002);
    const again = await openOrResume(
      server.wsUrl,
      { id: first.accept.uploadId, secret: first.accept.secret },
      { fileSize: FILE, chunkSize: CHUNK },
    );
    await finishUpload(again, data, log);
    expect((await delivered(first.accept.uploadId, 'idle.bin')).equals(data)).toBe(true);
    figures.faultsInjected++;
    figures.uploadsCompleted++;
    figures.bytesVerified += FILE;
  });

  it('a 1 byte/s trickler is closed by the idle / minimum-throughput rule', async () => {
    proxy.trickle(1);
    // The upgrade request itself is forwarded whole; the trickle starts with the first frame.
    const client = await RawClient.connect(proxied());
    const started = Date.now();
    client.open({ fileSize: MiB, chunkSize: CHUNK });
    const error = await client.expect('error', 10_000);
    const elapsed = Date.now() - started;
    expect([Errors.IDLE_TIMEOUT.code, Errors.TOO_SLOW.code]).toContain(error.code);
    expect(error.retryable).toBe(true);
    expect(elapsed).toBeLessThan(5000);
    figures.tricklerClosedWithin_ms = elapsed;
    figures.tricklerCloseCode =
      error.code === Errors.IDLE_TIMEOUT.code ? 'IDLE_TIMEOUT' : 'TOO_SLOW';
    figures.faultsInjected++;
    client.destroy();
  });

  it('a trickle during an active upload is closed with TOO_SLOW or IDLE_TIMEOUT and resumes identical', async () => {
    const FILE = 2 * MiB;
    const data = randomBytes(FILE);
    const log = new AckLog(CHUNK, FILE);
    const first = await openOrResume(proxied(), undefined, {
      fileSize: FILE,
      chunkSize: CHUNK,
      name: 'slow.bin',
    });
    const result = await pump(
      first.client,
      first.accept,
      data,
      [...Array(FILE / CHUNK).keys()],
      log,
      {
        wireStart: first.wireStart,
        window: 256 * KiB,
        timeoutMs: 8000,
        onAck: (i) => {
          if (i === 3) proxy.trickle(1);
        },
      },
    );
    expect(result.errors.length).toBe(1);
    expect([Errors.IDLE_TIMEOUT.code, Errors.TOO_SLOW.code]).toContain(result.errors[0].code);
    proxy.trickle(0);
    const again = await openOrResume(
      server.wsUrl,
      { id: first.accept.uploadId, secret: first.accept.secret },
      { fileSize: FILE, chunkSize: CHUNK },
    );
    await finishUpload(again, data, log);
    expect((await delivered(first.accept.uploadId, 'slow.bin')).equals(data)).toBe(true);
    figures.faultsInjected++;
    figures.uploadsCompleted++;
    figures.bytesVerified += FILE;
  }, 30_000);

  it('the real client through a cut every 200-500 KiB (FIN and RST) finishes identical', async () => {
    const rng = seeded(suiteSeed(0x6e657432));
    const FILE = 8 * MiB;
    const data = randomBytes(FILE);
    const path = join(tmp.path, 'source.bin');
    await writeFile(path, data);
    proxy.autoCut(() => ({
      bytes: rng.int(200, 500) * KiB,
      kind: rng.chance(0.5) ? 'fin' : 'rst',
    }));
    const uploader = await openUploader({
      endpoint: proxied(),
      file: path,
      resumeStore: false,
      chunkSize: CHUNK,
      backoff: { initial: 5, max: 50, maxAttempts: 1000 },
    });
    const outcome = await uploader.start();
    proxy.autoCut(undefined);
    expect(outcome.state).toBe('done');
    const id = uploader.uploadId!;
    const stored = await readFile(join(tmp.path, 'files', id, 'source.bin'));
    expect(stored.equals(data)).toBe(true);
    expect(proxy.cuts).toBeGreaterThanOrEqual(15);
    figures.faultsInjected += proxy.cuts;
    figures.uploadsCompleted++;
    figures.bytesVerified += FILE;
  }, 60_000);
});
