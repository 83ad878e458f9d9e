/** Scenario `concurrency`: many uploads at once, then many idle connections. */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import WebSocket from 'ws';
import { compareFiles, findFilesOfSize } from '../files.js';
import { runSend } from '../product.js';
import type { ScenarioResult } from '../types.js';
import { MiB, makeFile, mb, recordFor, withServer, type ScenarioContext } from './common.js';

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
