/**
 * kill -9 loop: a child-process server is SIGKILLed at random moments during one upload and
 * restarted on the same data directory each time. Default mode promises every acked range survives
 * a process crash (protocol/SPEC.md section 8 "Durability"), so after each restart the server's ranges
 * must be a superset of every ACK the client ever saw, and must hold the source's bytes.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { bytesToHex, type ByteRange } from '../../protocol/index.js';
import { startChildServer, type ChildServer } from '../helpers/server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
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
const FILE = 32 * MiB;
const CHUNK = 256 * 1024;
const KILLS = 22;

describe('kill -9 loop', () => {
  let tmp: TempDir | undefined;
  let child: ChildServer | undefined;
  afterEach(async () => {
    child?.kill('SIGKILL');
    await child?.exited;
    await tmp?.cleanup();
  });

  it(`survives ${KILLS} SIGKILLs at random moments with no acked range lost`, async () => {
    const rng = seeded(suiteSeed(0x6b696c6c));
    tmp = await makeTempDir('bigup-rel-kill-');
    const data = randomBytes(FILE);
    const log = new AckLog(CHUNK, FILE);
    let upload: { id: Uint8Array; secret: Uint8Array } | undefined;
    let kills = 0;
    let killedMidFlight = 0;
    let rangesChecked = 0;
    let bytesVerified = 0;
    const started = Date.now();
    for (let round = 0; ; round++) {
      child = await startChildServer(['--dir', tmp.path]);
      const { client, accept, wireStart } = await openOrResume(child.wsUrl, upload, {
        fileSize: FILE,
        chunkSize: CHUNK,
        name: 'kill.bin',
      });
      upload ??= { id: accept.uploadId, secret: accept.secret };
      const partPath = join(tmp.path, 'uploads', `${bytesToHex(upload.id)}.part`);
      // The core promise: every chunk the client ever saw acked is still acked after the crash...
      const reported = chunksIn(accept.ranges, CHUNK, FILE);
      const lost = log.chunks.filter((i) => !reported.has(i));
      expect(lost, `chunks acked before kill ${kills} but missing after restart`).toEqual([]);
      // ...and every range the server claims holds exactly the source's bytes.
      expect(await mismatchedRanges(partPath, data, accept.ranges)).toEqual([]);
      rangesChecked += accept.ranges.length;
      bytesVerified += accept.ranges.reduce((n, r: ByteRange) => n + r.end - r.start, 0);

      const missing = missingChunks(accept.ranges, CHUNK, FILE);
      if (kills < KILLS) {
        // Paced to ~6 MiB/s so the kill lands while chunks are on the wire or being written.
        const delay = rng.int(40, 350);
        const victim = child;
        let timerFired = 0;
        const timer = setTimeout(() => {
          timerFired = 1;
          victim.kill('SIGKILL');
        }, delay);
        const result = await pump(client, accept, data, missing, log, {
          rate: 6 * MiB,
          window: 2 * MiB,
          wireStart,
          timeoutMs: 5000,
        });
        clearTimeout(timer);
        client.destroy();
        if (timerFired === 0) victim.kill('SIGKILL');
        await victim.exited;
        kills++;
        if (result.interrupted) killedMidFlight++;
        expect(round).toBeLessThan(KILLS + 5);
      } else {
        await finishUpload({ client, accept, wireStart }, data, log);
        break;
      }
    }
    const stored = await readFile(join(tmp.path, 'files', bytesToHex(upload.id), 'kill.bin'));
    expect(stored.equals(data)).toBe(true);
    // The test must exercise mid-upload kills, not kills of an idle server.
    expect(killedMidFlight).toBeGreaterThanOrEqual(KILLS - 2);
    recordFigures('kill9', {
      seed: rng.seed,
      faultsInjected: kills,
      killsMidUpload: killedMidFlight,
      uploadsCompleted: 1,
      fileBytes: FILE,
      ackedRangesChecked: rangesChecked,
      bytesVerifiedAfterRestarts: bytesVerified + FILE,
      bytesLost: 0,
      crashes: 0,
      seconds: Math.round((Date.now() - started) / 100) / 10,
    });
  }, 120_000);
});
