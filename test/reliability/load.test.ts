/**
 * Load: 64 concurrent uploads from one process for a bounded time (every file checked), and
 * 2,000 idle WebSocket connections (server RSS per connection; the heartbeat drops the dead ones).
 * Both against a child-process server so its RSS is measured apart from the test process.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { bytesToHex } from '../../protocol/index.js';
import { RawClient } from '../helpers/protocol-client.js';
import { startChildServer, type ChildServer } from '../helpers/server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { recordFigures } from './lib/figures.js';
import { rssBytes, sampleRss } from './lib/proc.js';
import { AckLog, openOrResume, pump } from './lib/pump.js';
import { rawConnect, type RawWs } from './lib/raw-ws.js';
import { seeded, suiteSeed } from './lib/rng.js';

const KiB = 1024;
const MiB = 1024 * KiB;

describe('load', () => {
  let tmp: TempDir | undefined;
  let child: ChildServer | undefined;
  afterEach(async () => {
    child?.kill('SIGKILL');
    await child?.exited;
    await tmp?.cleanup();
  });

  it('64 concurrent uploads for 8 s: every file identical, no error, server RSS bounded', async () => {
    const rng = seeded(suiteSeed(0x6c6f6164));
    tmp = await makeTempDir('bigup-rel-load-');
    child = await startChildServer([
      '--dir',
      tmp.path,
      '--max-uploads',
      '64',
      // One process stands for 64 clients here (the per-address bound has its own test).
      '--max-uploads-per-address',
      '64',
      '--max-connections',
      '128',
      '--no-preallocate',
    ]);
    const pid = child.process.pid!;
    const before = rssBytes(pid);
    const sampler = sampleRss(pid);
    const until = Date.now() + 8000;
    let completed = 0;
    let bytes = 0;
    const errors: string[] = [];
    const server = child;
    await Promise.all(
      [...Array(64)].map(async (_, worker) => {
        while (Date.now() < until) {
          const size = rng.int(64 * KiB, 2 * MiB);
          const data = randomBytes(size);
          const name = `w${worker}.bin`;
          const { client, accept, wireStart } = await openOrResume(server.wsUrl, undefined, {
            fileSize: size,
            chunkSize: 64 * KiB,
            name,
          });
          const result = await pump(
            client,
            accept,
            data,
            [...Array(Math.ceil(size / (64 * KiB))).keys()],
            new AckLog(64 * KiB, size),
            { wireStart, window: 1 * MiB },
          );
          errors.push(...result.errors.map((e) => `0x${e.code.toString(16)} ${e.message}`));
          client.complete();
          await client.expect('result');
          client.close();
          const stored = await readFile(
            join(tmp!.path, 'files', bytesToHex(accept.uploadId), name),
          );
          expect(stored.equals(data)).toBe(true);
          completed++;
          bytes += size;
        }
      }),
    );
    const peak = sampler.stop();
    expect(errors).toEqual([]);
    expect(child.process.exitCode).toBeNull();
    // 64 windows of 1 MiB in flight plus the runtime: far below this unless something leaks.
    expect(peak).toBeLessThan(600 * MiB);
    recordFigures('load-64', {
      seed: rng.seed,
      concurrentUploads: 64,
      seconds: 8,
      uploadsCompleted: completed,
      bytesVerified: bytes,
      errors: 0,
      serverRssBeforeMiB: Math.round(before / MiB),
      serverRssPeakMiB: Math.round(peak / MiB),
      crashes: 0,
    });
  }, 60_000);

  it('2,000 idle connections: RSS per connection reported, the heartbeat drops the 200 dead ones', async () => {
    tmp = await makeTempDir('bigup-rel-idle-');
    child = await startChildServer([
      '--dir',
      tmp.path,
      '--max-connections',
      '2100',
      '--heartbeat',
      '600ms',
      '--idle-timeout',
      '10m',
    ]);
    const pid = child.process.pid!;
    const port = Number(new URL(child.url).port);
    const before = rssBytes(pid);
    const live: RawClient[] = [];
    const dead: RawWs[] = [];
    const LIVE = 1800;
    const DEAD = 200;
    // 50 at a time: the accept backlog stays small.
    for (let i = 0; i < LIVE; i += 50) {
      live.push(
        ...(await Promise.all(
          [...Array(Math.min(50, LIVE - i))].map(() => RawClient.connect(child!.wsUrl)),
        )),
      );
    }
    for (let i = 0; i < DEAD; i += 50) {
      dead.push(
        ...(await Promise.all([...Array(50)].map(() => rawConnect(port, { pong: false })))),
      );
    }
    expect(dead.every((d) => d.status === 101)).toBe(true);
    await new Promise((r) => setTimeout(r, 300));
    const withAll = rssBytes(pid);
    const perConnection = (withAll - before) / (LIVE + DEAD);
    // A dead peer misses one ping and is dropped at the next: within three intervals.
    const deadClosed = await Promise.race([
      Promise.all(dead.map((d) => d.closed)).then(() => true),
      new Promise<boolean>((r) => setTimeout(() => r(false), 5000)),
    ]);
    expect(deadClosed, 'dead connections still open after 5 s with a 600 ms heartbeat').toBe(true);
    const stillOpen = live.filter((c) => c.ws.readyState === c.ws.OPEN).length;
    expect(stillOpen).toBe(LIVE);
    for (const c of live) c.destroy();
    expect(perConnection).toBeLessThan(200 * KiB);
    recordFigures('idle-2000', {
      connections: LIVE + DEAD,
      deadPeers: DEAD,
      deadDroppedByHeartbeat: DEAD,
      liveKept: stillOpen,
      serverRssBeforeMiB: Math.round(before / MiB),
      serverRssWithAllMiB: Math.round(withAll / MiB),
      serverRssPerConnectionKiB: Math.round(perConnection / KiB),
      crashes: 0,
    });
  }, 60_000);
});
