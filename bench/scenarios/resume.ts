/** Scenario `resume`: what a client killed mid-upload costs when the same command runs again. */
import { join } from 'node:path';
import { compareFiles } from '../files.js';
import { locateStored, runSend } from '../product.js';
import type { ScenarioResult } from '../types.js';
import { MiB, recordFor, withServer, type ScenarioContext } from './common.js';

/** Parse the highest "NN%" progress line `send` printed on stderr (it prints one per 10% when not on a terminal). */
function ackedPercent(stderr: string): number | undefined {
  let best: number | undefined;
  for (const m of stderr.matchAll(/: (\d{1,3})% /g)) best = Math.max(best ?? 0, Number(m[1]));
  return best;
}

/** Resume cost: kill the client once half the file is acked, resume, count what was sent again. */
export async function resumeScenario(ctx: ScenarioContext): Promise<ScenarioResult> {
  const title =
    'Resume cost (client killed with SIGKILL once 50% is acked, then the same command again)';
  return withServer(ctx, 'resume', title, async (server) => {
    const state = join(ctx.dir, 'client');
    let cutAtPercent: number | undefined;
    let cutAfterSeconds = 0;
    const t0 = performance.now();
    // The first send is slowed to ~4 s so the cut lands near 50%: at full speed the whole file
    // takes less than the client's 100 ms progress interval times a few, and the first progress
    // line past 50% came at ~90%. What is measured, the resume, runs at full speed.
    const slow = ['--limit-rate', String(Math.max(1, Math.ceil(ctx.size / 4)))];
    const cut = await runSend(
      ctx.repoRoot,
      [ctx.source],
      server.url,
      state,
      slow,
      ctx.timeoutMs,
      (child) => {
        // Poll the progress lines; the cut lands right after the client saw 50% acknowledged.
        const timer = setInterval(() => {
          const p = ackedPercent(child.stderr);
          if (p !== undefined && p >= 50) {
            clearInterval(timer);
            cutAtPercent = p;
            cutAfterSeconds = (performance.now() - t0) / 1000;
            child.kill('SIGKILL');
          } else if (child.hasExited) clearInterval(timer);
        }, 5);
      },
    );
    if (cutAtPercent === undefined) {
      return {
        id: 'resume',
        title,
        status: 'failed',
        reason: `the first send ended (code ${cut.code}) before reporting 50% acked; stderr: ${cut.child.stderr.slice(-300)}`,
      };
    }
    const t1 = performance.now();
    const resumed = await runSend(ctx.repoRoot, [ctx.source], server.url, state, [], ctx.timeoutMs);
    const resumeWall = (performance.now() - t1) / 1000;
    if (resumed.code !== 0)
      return {
        id: 'resume',
        title,
        status: 'failed',
        reason: `resumed send exited ${resumed.code}: ${resumed.child.stderr.slice(-300)}`,
      };
    const r = recordFor(resumed.records, ctx.size);
    const skipped = typeof r?.bytesSkipped === 'number' ? r.bytesSkipped : undefined;
    const sent = typeof r?.bytesSent === 'number' ? r.bytesSent : undefined;
    const stored = await locateStored(server.dir, r, ctx.source, ctx.size);
    const same = stored
      ? await compareFiles(ctx.source, stored)
      : { identical: false as const, reason: 'no stored file' };
    const notes = [
      `Killed ${cutAfterSeconds.toFixed(2)} s after start, when the client reported ${cutAtPercent}% acked (the first send was capped at a quarter of the file per second so the cut lands near the middle).`,
      'Re-sent beyond missing = bytes sent on resume - (size - bytes the server already had); lost in flight = ' +
        "what the server had beyond the client's last 10% progress line is not visible from outside.",
      'Reconnect to first new ack = `firstAckSeconds` of send --json: from the start of the resumed connection ' +
        '(handshake, RESUME, ACCEPT with the acked ranges, first chunk) to the first ACK of new bytes. The resume wall ' +
        'time includes the process start-up.',
    ];
    return {
      id: 'resume',
      title,
      status: same.identical ? 'ok' : 'failed',
      reason: same.identical ? undefined : `resumed file differs: ${same.reason}`,
      headers: [
        'Acked at cut (client view)',
        'Skipped on resume (MiB)',
        'Sent on resume (MiB)',
        'Re-sent beyond missing (MiB)',
        'Reconnect to first new ack s',
        'Resume s (send --json)',
        'Resume wall s',
      ],
      rows: [
        [
          `${cutAtPercent}%`,
          skipped === undefined ? 'n/a' : (skipped / MiB).toFixed(1),
          sent === undefined ? 'n/a' : (sent / MiB).toFixed(1),
          skipped === undefined || sent === undefined
            ? 'n/a'
            : ((sent - (ctx.size - skipped)) / MiB).toFixed(1),
          typeof r?.firstAckSeconds === 'number' ? r.firstAckSeconds.toFixed(3) : 'n/a',
          typeof r?.seconds === 'number' ? r.seconds.toFixed(2) : 'n/a',
          resumeWall.toFixed(2),
        ],
      ],
      notes,
    };
  });
}
