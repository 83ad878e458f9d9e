/**
 * Soak (not in CI): BIG_UPLOADER_SOAK=30m npx vitest run test/reliability/soak.test.ts
 * Mixed uploads through the real client, with random storage faults (EIO on writes) and random
 * connection cuts (FIN/RST) for the given duration; reports totals, and bytes lost must be 0.
 * Without the variable the test is reported as skipped, never as passed.
 */
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openUploader } from '../../client/node/index.js';
import { DiskStore } from '../../server/index.js';
import { startServer } from '../helpers/server.js';
import { makeTempDir } from '../helpers/tmp.js';
import { startFaultProxy } from '../helpers/fault-proxy.js';
import { FaultStore } from './lib/fault-store.js';
import { recordFigures } from './lib/figures.js';
import { seeded, suiteSeed } from './lib/rng.js';

const SOAK = process.env.BIG_UPLOADER_SOAK;

function parseDurationMs(text: string): number {
  const m = /^(\d+)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new Error(`BIG_UPLOADER_SOAK: "${text}" is not a duration like 30m`);
  return (
    Number(m[1]) *
    { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h']
  );
}

describe.skipIf(!SOAK)('soak (BIG_UPLOADER_SOAK=<duration>)', () => {
  it(
    'mixed uploads with random faults: every upload identical, bytes lost 0',
    async () => {
      const duration = parseDurationMs(SOAK ?? '0');
      const rng = seeded(suiteSeed(0x736f616b));
      const tmp = await makeTempDir('bigup-rel-soak-');
      const store = new FaultStore(new DiskStore({ dir: tmp.path }), tmp.path);
      const server = await startServer({ store, syncInterval: 200, logLevel: false });
      const proxy = await startFaultProxy(Number(new URL(server.url).port));
      proxy.autoCut(() =>
        rng.chance(0.3)
          ? { bytes: rng.int(64, 4096) * 1024, kind: rng.chance(0.5) ? 'fin' : 'rst' }
          : { bytes: 0, kind: 'fin' },
      );
      const totals = {
        uploads: 0,
        bytes: 0,
        storageFaults: 0,
        cuts: 0,
        failedUploads: 0,
        bytesLost: 0,
      };
      const until = Date.now() + duration;
      try {
        await Promise.all(
          [...Array(8)].map(async (_, worker) => {
            while (Date.now() < until) {
              const size = rng.int(1, 24 * 1024 * 1024);
              const data = randomBytes(size);
              const path = join(tmp.path, `src-${worker}.bin`);
              await writeFile(path, data);
              if (rng.chance(0.2))
                store.inject({ op: 'write', code: 'EIO', after: rng.int(0, 50) });
              const uploader = await openUploader({
                endpoint: `ws://127.0.0.1:${proxy.port}/upload`,
                file: path,
                resumeStore: false,
                backoff: { initial: 10, max: 500, maxAttempts: 1000 },
              });
              const outcome = await uploader.start();
              if (outcome.state !== 'done') {
                totals.failedUploads++;
                continue;
              }
              const stored = await readFile(
                join(tmp.path, 'files', uploader.uploadId!, `src-${worker}.bin`),
              );
              if (!stored.equals(data)) totals.bytesLost += size;
              totals.uploads++;
              totals.bytes += size;
            }
          }),
        );
      } finally {
        totals.storageFaults = store.injectedTotal;
        totals.cuts = proxy.cuts;
        await proxy.close();
        await server.close();
        await tmp.cleanup();
        recordFigures('soak', { seed: rng.seed, durationMs: duration, ...totals });
      }
      expect(totals.bytesLost).toBe(0);
      expect(totals.failedUploads).toBe(0);
    },
    24 * 3_600_000,
  );
});
