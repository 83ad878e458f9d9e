/** Scenario `sweep`: chunk size x window of our client, the table behind the defaults. */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { helpText, runSend } from '../product.js';
import { mbPerSecond } from '../stats.js';
import type { ScenarioResult } from '../types.js';
import { MiB, recordFor, withServer, type ScenarioContext } from './common.js';

const SWEEP_CHUNKS = [256 * 1024, MiB, 4 * MiB, 16 * MiB];
const SWEEP_WINDOWS = [MiB, 4 * MiB, 16 * MiB, 64 * MiB];

/** Chunk size and window sweep of our client: the table that justifies the defaults. */
export async function sweepScenario(ctx: ScenarioContext): Promise<ScenarioResult> {
  const title = 'Chunk size x window sweep (our client, 1 run per point)';
  return withServer(
    ctx,
    'sweep',
    title,
    async (server) => {
      const help = await helpText(ctx.repoRoot, 'send');
      const chunkFlag = ['--chunk-size', '--chunk'].find((f) => help.includes(f));
      const windowFlag = ['--window'].find((f) => help.includes(f));
      if (!chunkFlag || !windowFlag) {
        return {
          id: 'sweep',
          title,
          status: 'skipped',
          reason: `send --help lists no ${chunkFlag ? '' : '--chunk-size '}${windowFlag ? '' : '--window '}flag to sweep`,
        };
      }
      const rows: string[][] = [];
      const points: Array<{ label: string; value: number }> = [];
      for (const chunk of SWEEP_CHUNKS) {
        for (const window of SWEEP_WINDOWS) {
          if (window < chunk) continue;
          const label = `${chunk >= MiB ? `${chunk / MiB} MiB` : `${chunk / 1024} KiB`} x ${window / MiB} MiB`;
          const sent = await runSend(
            ctx.repoRoot,
            [ctx.source],
            server.url,
            join(ctx.dir, `client-${chunk}-${window}`),
            [chunkFlag, String(chunk), windowFlag, String(window)],
            ctx.timeoutMs,
          );
          await rm(join(server.dir, 'files'), { recursive: true, force: true }).catch(
            () => undefined,
          );
          if (sent.code !== 0) {
            rows.push([label, 'FAILED', sent.child.stderr.trim().split('\n').pop() ?? '']);
            continue;
          }
          const r = recordFor(sent.records, ctx.size);
          const seconds = typeof r?.seconds === 'number' ? r.seconds : sent.wallSeconds;
          const value = mbPerSecond(ctx.size, seconds);
          rows.push([
            label,
            value.toFixed(0),
            sent.child.lastSample ? (sent.child.lastSample.peakRssBytes / MiB).toFixed(0) : '',
          ]);
          points.push({ label, value });
        }
      }
      return {
        id: 'sweep',
        title,
        status: 'ok',
        headers: ['Chunk x window', 'MB/s', 'Client peak RSS MiB'],
        rows,
        plot: { title: 'Sweep: MB/s per chunk size x window (our client)', unit: 'MB/s', points },
        notes: [
          'Stored files are not compared here (the main table does that); each point is one run.',
          `Server started with --window ${SWEEP_WINDOWS[SWEEP_WINDOWS.length - 1] / MiB}MiB so the client's --window is the one that limits.`,
        ],
      };
    },
    ['--window', `${SWEEP_WINDOWS[SWEEP_WINDOWS.length - 1] / MiB}MiB`],
  );
}
