/**
 * Power-loss simulation through the store interface (lib/fault-store.ts): at a random instant the
 * store freezes, the server is closed, the files are rewritten as a device that lost its volatile
 * cache would hold them, and the server restarts with a new kernel boot id (the "reboot").
 *
 * What protocol/SPEC.md section 8 "Durability" promises, and what is asserted here:
 * - both modes: after the reboot the server never claims a byte it does not hold (every reported
 *   range matches the source on disk), and the upload can be finished identical;
 * - durable mode: nothing the client saw acked is lost;
 * - default mode: only chunks acked after the start of the last completed background checkpoint
 *   (syncInterval) may be lost; every chunk acked before it survives. The figures record how much
 *   was lost and how old the oldest lost ACK was at the cut.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { bytesToHex } from '../../protocol/index.js';
import { DiskStore } from '../../server/index.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { FaultStore, type LossReport } from './lib/fault-store.js';
import { recordFigures } from './lib/figures.js';
import {
  AckLog,
  chunksIn,
  finishUpload,
  mismatchedRanges,
  missingChunks,
  openOrResume,
  pump,
} from './lib/pump.js';
import { seeded, suiteSeed } from './lib/rng.js';

const MiB = 1024 * 1024;
const FILE = 16 * MiB;
const CHUNK = 64 * 1024;
const CUTS = 6;
const SYNC_INTERVAL = 150;

async function runPowerCuts(durable: boolean, tmp: TempDir, servers: TestServer[]) {
  const rng = seeded(suiteSeed(durable ? 0x706f7731 : 0x706f7730));
  const data = randomBytes(FILE);
  const log = new AckLog(CHUNK, FILE);
  let upload: { id: Uint8Array; secret: Uint8Array } | undefined;
  let cutoff = 0;
  let cutAt = 0;
  let lostChunks = 0;
  let lostBytes = 0;
  let lostBeforeCutoff = 0;
  let oldestLostAckMs = 0;
  let bytesVerified = 0;
  const losses: LossReport[] = [];
  for (let boot = 0; boot <= CUTS; boot++) {
    const store = new FaultStore(
      new DiskStore({ dir: tmp.path, bootId: () => `simulated-boot-${boot}` }),
      tmp.path,
    );
    const server = await startServer({
      store,
      durable,
      syncInterval: SYNC_INTERVAL,
      logLevel: false,
    });
    servers.push(server);
    const bootStart = performance.now();
    const { client, accept, wireStart } = await openOrResume(server.wsUrl, upload, {
      fileSize: FILE,
      chunkSize: CHUNK,
      name: 'power.bin',
    });
    upload ??= { id: accept.uploadId, secret: accept.secret };
    const id = bytesToHex(upload.id);
    // Never a claim of unwritten bytes, in either mode.
    expect(
      await mismatchedRanges(store.partPath(id), data, accept.ranges),
      `boot ${boot}: reported ranges that do not hold the source`,
    ).toEqual([]);
    bytesVerified += accept.ranges.reduce((n, r) => n + r.end - r.start, 0);
    const reported = chunksIn(accept.ranges, CHUNK, FILE);
    const lost = log.chunks.filter((i) => !reported.has(i));
    for (const i of lost) {
      const seen = log.firstSeen.get(i)!;
      if (seen < cutoff) lostBeforeCutoff++;
      oldestLostAckMs = Math.max(oldestLostAckMs, cutAt - seen);
      lostBytes += Math.min(CHUNK, FILE - i * CHUNK);
      // Re-sent below; its next ACK is judged against the next cut.
      log.firstSeen.delete(i);
    }
    lostChunks += lost.length;
    if (durable) expect(lost, `boot ${boot}: acked chunks lost in durable mode`).toEqual([]);
    else
      expect(lostBeforeCutoff, 'chunks acked before the last completed checkpoint were lost').toBe(
        0,
      );

    const missing = missingChunks(accept.ranges, CHUNK, FILE);
    if (boot === CUTS) {
      await finishUpload({ client, accept, wireStart }, data, log);
      break;
    }
    const timer = setTimeout(
      () => {
        store.powerOff();
        cutAt = performance.now();
        client.destroy();
      },
      rng.int(100, 400),
    );
    await pump(client, accept, data, missing, log, {
      rate: 6 * MiB,
      window: 1 * MiB,
      wireStart,
      timeoutMs: 3000,
    });
    clearTimeout(timer);
    if (!store.isDead) {
      store.powerOff();
      cutAt = performance.now();
      client.destroy();
    }
    cutoff = Math.max(store.lastCheckpointStart(id) ?? bootStart, bootStart);
    await server.close();
    // app.close() waits for every upload's final close (also one whose connection went first), so
    // nothing the frozen server does can land after applyPowerLoss rewrites the files.
    expect(store.openHandles, 'upload handles still open after app.close()').toBe(0);
    // Alternate harsh cuts (every unflushed write and journal byte gone) with random ones.
    losses.push(await store.applyPowerLoss(rng, boot % 2 === 0));
  }
  const stored = await readFile(join(tmp.path, 'files', bytesToHex(upload!.id), 'power.bin'));
  expect(stored.equals(data)).toBe(true);
  const sum = (k: keyof LossReport) => losses.reduce((n, l) => n + l[k], 0);
  // The simulation must actually bite, or the test proves nothing.
  // (Default mode always has unflushed state at a cut; durable mode may legitimately have none.)
  if (!durable) expect(sum('dataWritesDropped') + sum('journalBytesDropped')).toBeGreaterThan(0);
  return {
    seed: rng.seed,
    faultsInjected: CUTS,
    uploadsCompleted: 1,
    fileBytes: FILE,
    bytesVerified: bytesVerified + FILE,
    unflushedWritesDropped: sum('dataWritesDropped'),
    unflushedWritesTorn: sum('dataWritesTorn'),
    unflushedWritesKept: sum('dataWritesKept'),
    journalBytesDropped: sum('journalBytesDropped'),
    ackedChunksLost: lostChunks,
    ackedBytesLost: lostBytes,
    oldestLostAckMs: Math.round(oldestLostAckMs),
    syncIntervalMs: SYNC_INTERVAL,
    claimsOfUnwrittenBytes: 0,
    crashes: 0,
  };
}

describe('power loss (simulated through the store)', () => {
  let tmp: TempDir | undefined;
  const servers: TestServer[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.close().catch(() => undefined);
    await tmp?.cleanup();
  });

  it(`default mode: ${CUTS} power cuts lose only chunks acked since the last checkpoint, never claim unwritten bytes`, async () => {
    tmp = await makeTempDir('bigup-rel-power0-');
    const figures = await runPowerCuts(false, tmp, servers);
    recordFigures('power-loss-default', figures);
  }, 90_000);

  it(`durable mode: ${CUTS} power cuts lose nothing acked`, async () => {
    tmp = await makeTempDir('bigup-rel-power1-');
    const figures = await runPowerCuts(true, tmp, servers);
    recordFigures('power-loss-durable', figures);
  }, 90_000);
});
