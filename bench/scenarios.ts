/**
 * The issue's further scenarios, each driven through the product's CLI only. Each one either
 * produces its table or says exactly why it could not run (a stub CLI, a flag the CLI lacks, a
 * figure the CLI does not expose), so a reader never mistakes a gap for a result.
 * Every loop and connection count here is capped.
 */
import { copyFile, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import WebSocket from 'ws';
import { compareFiles, findFilesOfSize } from './files.js';
import { mbPerSecond } from './stats.js';
import {
  NotAvailable,
  helpText,
  locateStored,
  runSend,
  startServer,
  type ProductServer,
  type SendRecord,
} from './product.js';
import type { ScenarioResult } from './types.js';
import { browserScenario } from './browser-scenario.js';

export const SCENARIO_IDS = ['resume', 'completion', 'concurrency', 'sweep', 'browser'] as const;
export type ScenarioId = (typeof SCENARIO_IDS)[number];

export interface ScenarioContext {
  repoRoot: string;
  source: string;
  size: number;
  /** A fresh temp dir for the scenario, deleted by the caller. */
  dir: string;
  timeoutMs: number;
  /** Our contender's median MB/s in this invocation, when it ran (for side-by-side figures). */
  oursMBps?: number;
  log(line: string): void;
}

const MiB = 2 ** 20;
const mb = (bytes: number, seconds: number): string => mbPerSecond(bytes, seconds).toFixed(0);
const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** Run `fn` with a fresh product server; turns a stub CLI into a "skipped" scenario. */
async function withServer(
  ctx: ScenarioContext,
  id: ScenarioId,
  title: string,
  fn: (server: ProductServer) => Promise<ScenarioResult>,
  serverArgs: string[] = [],
): Promise<ScenarioResult> {
  let server: ProductServer | undefined;
  try {
    server = await startServer(ctx.repoRoot, join(ctx.dir, 'server'), serverArgs);
    return await fn(server);
  } catch (error) {
    if (error instanceof NotAvailable)
      return {
        id,
        title,
        status: 'skipped',
        reason: `big-uploader is not available yet (${error.message})`,
      };
    return { id, title, status: 'failed', reason: errorText(error) };
  } finally {
    await server?.child.stop();
  }
}

/** A file of `bytes` made of the source's bytes (repeated if needed), in `dir`. Caller deletes it. */
export async function makeFile(ctx: ScenarioContext, name: string, bytes: number): Promise<string> {
  const path = join(ctx.dir, name);
  if (bytes === ctx.size) {
    await copyFile(ctx.source, path);
    return path;
  }
  const src = await open(ctx.source, 'r');
  const dst = await open(path, 'w');
  try {
    const buf = Buffer.allocUnsafe(8 * MiB);
    for (let offset = 0; offset < bytes;) {
      const n = Math.min(buf.length, bytes - offset, ctx.size - (offset % ctx.size));
      const { bytesRead } = await src.read(buf, 0, n, offset % ctx.size);
      await dst.write(buf, 0, bytesRead, offset);
      offset += bytesRead;
    }
  } finally {
    await src.close();
    await dst.close();
  }
  return path;
}

function recordFor(records: SendRecord[], size: number): SendRecord | undefined {
  return records.find((r) => r.size === size) ?? records[0];
}

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

const CONCURRENT_UPLOADS = 16;
const CONCURRENT_SIZE = 64 * MiB;
const IDLE_CONNECTIONS = 500;

/** Concurrency: 16 simultaneous 64 MiB uploads, then 500 idle connections. */
export async function concurrencyScenario(ctx: ScenarioContext): Promise<ScenarioResult> {
  const title = `Concurrency (${CONCURRENT_UPLOADS} x 64 MiB at once; ${IDLE_CONNECTIONS} idle connections)`;
  return withServer(
    ctx,
    'concurrency',
    title,
    async (server) => {
      const file = await makeFile(ctx, 'concurrent-64MiB.bin', CONCURRENT_SIZE);
      try {
        const t0 = performance.now();
        // One client process per upload, each with its own state, as 16 users would be.
        const all = await Promise.all(
          Array.from({ length: CONCURRENT_UPLOADS }, (_, i) =>
            runSend(
              ctx.repoRoot,
              [file],
              server.url,
              join(ctx.dir, `client-${i}`),
              [],
              ctx.timeoutMs,
            ),
          ),
        );
        const wall = (performance.now() - t0) / 1000;
        const bad = all.find((s) => s.code !== 0);
        if (bad)
          return {
            id: 'concurrency',
            title,
            status: 'failed',
            reason: `a send exited ${bad.code}: ${bad.child.stderr.slice(-300)}`,
          };
        const peakAfterUploads = server.child.sample()?.peakRssBytes;
        const stored = await findFilesOfSize(join(server.dir), CONCURRENT_SIZE);
        let identical = 0;
        for (const p of stored.slice(0, CONCURRENT_UPLOADS * 2))
          if ((await compareFiles(file, p)).identical) identical++;
        // Each upload ran from (its exit - its reported seconds) to its exit; the span from the first
        // start to the last end leaves out the 16 process start-ups (tsx compiling on 2 cores).
        const spans = all.map((s) => {
          const r = recordFor(s.records, CONCURRENT_SIZE);
          const seconds = typeof r?.seconds === 'number' ? r.seconds : s.wallSeconds;
          return { start: s.endedAtMs - seconds * 1000, end: s.endedAtMs };
        });
        const uploadSpan =
          (Math.max(...spans.map((x) => x.end)) - Math.min(...spans.map((x) => x.start))) / 1000;
        const overlapping = spans.filter((a) =>
          spans.every((b) => a.start < b.end && b.start < a.end),
        ).length;
        await rm(join(server.dir, 'files'), { recursive: true, force: true }).catch(
          () => undefined,
        );

        // Idle connections: open them, let the server settle, read its resident memory.
        const rssBefore = server.child.sample()?.rssBytes ?? 0;
        const sockets: WebSocket[] = [];
        let opened = 0;
        await Promise.all(
          Array.from(
            { length: IDLE_CONNECTIONS },
            () =>
              new Promise<void>((resolve) => {
                const ws = new WebSocket(server.url, 'bigup.1');
                sockets.push(ws);
                ws.once('open', () => {
                  opened++;
                  resolve();
                });
                ws.once('error', () => resolve());
                ws.once('close', () => resolve());
              }),
          ),
        );
        await new Promise((r) => setTimeout(r, 1000));
        const rssIdle = server.child.sample()?.rssBytes ?? 0;
        for (const ws of sockets) ws.terminate();
        const total = CONCURRENT_UPLOADS * CONCURRENT_SIZE;
        return {
          id: 'concurrency',
          title,
          status: identical === CONCURRENT_UPLOADS ? 'ok' : 'failed',
          reason:
            identical === CONCURRENT_UPLOADS
              ? undefined
              : `${identical} of ${CONCURRENT_UPLOADS} stored files identical`,
          headers: [
            'Aggregate MB/s (first upload start to last end)',
            'Aggregate MB/s (wall incl. 16 process start-ups)',
            'Server peak RSS MiB',
            'Idle connections open',
            'Server RSS per idle connection KiB',
          ],
          rows: [
            [
              mb(total, Math.max(0.001, uploadSpan)),
              mb(total, wall),
              peakAfterUploads === undefined ? 'n/a' : (peakAfterUploads / MiB).toFixed(0),
              String(opened),
              opened > 0 ? ((rssIdle - rssBefore) / opened / 1024).toFixed(1) : 'n/a',
            ],
          ],
          notes: [
            `16 client processes share 2 cores with the server, and their start-ups overlap the first uploads; ` +
              `${overlapping} of ${CONCURRENT_UPLOADS} uploads overlapped all the others.`,
          ],
        };
      } finally {
        await rm(file, { force: true });
      }
    },
    ['--max-connections', String(IDLE_CONNECTIONS + 2 * CONCURRENT_UPLOADS)],
  );
}

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

export const SCENARIOS: Record<ScenarioId, (ctx: ScenarioContext) => Promise<ScenarioResult>> = {
  resume: resumeScenario,
  completion: completionScenario,
  concurrency: concurrencyScenario,
  sweep: sweepScenario,
  browser: browserScenario,
};
