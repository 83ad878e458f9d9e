/** Scenario `completion`: the time from the last ack to the final result, which must not grow with the size. */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { runSend } from '../product.js';
import type { ScenarioResult } from '../types.js';
import { MiB, makeFile, mb, recordFor, withServer, type ScenarioContext } from './common.js';

/** Completion cost: time from last ack to the final result at 1x and 4x the size (must not grow). */
export async function completionScenario(ctx: ScenarioContext): Promise<ScenarioResult> {
  const title = 'Completion cost (last ack to final result), 1x and 4x the size';
  return withServer(ctx, 'completion', title, async (server) => {
    const rows: string[][] = [];
    // 4x, capped so the default run stays bounded in time and disk.
    const sizes = [ctx.size, Math.min(4 * ctx.size, 4 * 2 ** 30)];
    for (const [i, bytes] of sizes.entries()) {
      const file = i === 0 ? ctx.source : await makeFile(ctx, 'completion-4x.bin', bytes);
      try {
        const sent = await runSend(
          ctx.repoRoot,
          [file],
          server.url,
          join(ctx.dir, `client-${i}`),
          [],
          ctx.timeoutMs,
        );
        if (sent.code !== 0)
          return {
            id: 'completion',
            title,
            status: 'failed',
            reason: `send exited ${sent.code}: ${sent.child.stderr.slice(-300)}`,
          };
        const r = recordFor(sent.records, bytes);
        if (typeof r?.completionSeconds !== 'number')
          return {
            id: 'completion',
            title,
            status: 'failed',
            reason: `send --json reported no completionSeconds: ${JSON.stringify(r)}`,
          };
        const seconds = typeof r.seconds === 'number' ? r.seconds : sent.wallSeconds;
        rows.push([
          `${(bytes / MiB).toFixed(0)} MiB`,
          r.completionSeconds.toFixed(3),
          seconds.toFixed(2),
          mb(bytes, seconds),
        ]);
      } finally {
        if (i > 0) await rm(file, { force: true });
        // Free the stored copy right away: disk is limited.
        await rm(join(server.dir, 'files'), { recursive: true, force: true }).catch(
          () => undefined,
        );
      }
    }
    return {
      id: 'completion',
      title,
      status: 'ok',
      headers: ['File', 'Completion s', 'Upload s', 'MB/s'],
      rows,
    };
  });
}
