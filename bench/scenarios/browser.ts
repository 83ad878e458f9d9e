/**
 * Browser scenario: in ONE headless Chromium (Debian's, through playwright-core), the same file
 * picked through a file input is uploaded by
 *   - <big-uploader> on the demo page, to our server (`serve --page-dir`),
 *   - tus-js-client with its defaults (one PATCH) and with 8 MiB chunks, to @tus/server FileStore,
 *   - the page's ceilings: fetch PUT of 8 MiB Blob slices 4 at a time, and a bare WebSocket
 *     sending Blob([offset, 4 MiB slice]) frames 8 unacked,
 * the peers and ceilings served by bench/peers/browser-peer.ts (bench/browser/ is their page).
 * Rounds alternate the order; each run gets a fresh browser context (no resume records, no warm
 * renderer); every stored file is compared byte for byte, then deleted. CPU per GiB is Chromium's
 * (every chromium process under this one, read from /proc around the run) plus the server's.
 * BENCH_BROWSER_MIB (default 512) and BENCH_BROWSER_ROUNDS (default 3) shrink it for a quick look.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { compareFiles, findFilesOfSize } from '../files.js';
import { readProc, spawnPeer, type BenchChild } from '../proc.js';
import { startServer, type ProductServer } from '../product.js';
import { median, mbPerSecond, cpuPerGiB } from '../stats.js';
import type { ScenarioResult } from '../types.js';
import { makeFile, type ScenarioContext } from './common.js';
import type { PageBench } from '../browser/page.js';

const MiB = 2 ** 20;
/** Chromium flags for a headless VM without GPU or sandbox support (as test/browser/harness.ts). */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
];

const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** CPU seconds (user + system) of every chromium process descended from this one. */
export function chromiumCpuSeconds(): number {
  const parents = new Map<number, number>();
  const names = new Map<number, string>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      names.set(Number(entry), stat.slice(stat.indexOf('(') + 1, close));
      parents.set(Number(entry), Number(stat.slice(close + 2).split(' ')[1]));
    } catch {
      // gone between readdir and read
    }
  }
  const isOurs = (pid: number): boolean => {
    for (let p = parents.get(pid), hops = 0; p !== undefined && hops < 32; hops++) {
      if (p === process.pid) return true;
      p = parents.get(p);
    }
    return false;
  };
  let total = 0;
  for (const [pid, name] of names) {
    if (!/chrom/i.test(name) || !isOurs(pid)) continue;
    const s = readProc(pid);
    if (s) total += s.userSeconds + s.sysSeconds;
  }
  return total;
}

function cpuOf(child: BenchChild): number {
  const s = readProc(child.pid);
  return s ? s.userSeconds + s.sysSeconds : NaN;
}

interface Run {
  seconds: number;
  chromiumCpu: number;
  serverCpu: number;
  /** Extra facts (e.g. progress events the component emitted). */
  note?: string;
}

interface Contender {
  id: string;
  label: string;
  run(browser: Browser, size: number, round: number): Promise<Run>;
}

async function measured(
  server: BenchChild,
  body: () => Promise<{ seconds: number; note?: string }>,
): Promise<Run> {
  const chromium0 = chromiumCpuSeconds();
  const server0 = cpuOf(server);
  const { seconds, note } = await body();
  return {
    seconds,
    chromiumCpu: chromiumCpuSeconds() - chromium0,
    serverCpu: cpuOf(server) - server0,
    note,
  };
}

async function verifyAndDelete(source: string, dir: string, size: number): Promise<void> {
  const stored = await findFilesOfSize(dir, size);
  if (stored.length !== 1)
    throw new Error(`expected one stored file in ${dir}, found ${stored.length}`);
  const check = await compareFiles(source, stored[0]);
  if (!check.identical) throw new Error(`stored file differs: ${check.reason}`);
  await rm(stored[0], { force: true });
}

function componentContender(
  ours: ProductServer,
  file: string,
  timeoutMs: number,
  transport: 'websocket' | 'http' | 'auto',
  chunkMiB?: number,
): Contender {
  return {
    id: `component-${transport}${chunkMiB ? `-${chunkMiB}MiB` : ''}`,
    label: `<big-uploader> transport=${transport}${chunkMiB ? ` chunk-size=${chunkMiB} MiB` : ''} (demo page, our server)`,
    async run(browser, size) {
      const context = await browser.newContext();
      try {
        const page = await context.newPage();
        await page.addInitScript(() => {
          const w = window as unknown as { __bench: Record<string, unknown> };
          const b: { complete?: number; error?: string; progress: number } = { progress: 0 };
          w.__bench = b;
          document.addEventListener('upload-progress', () => b.progress++);
          document.addEventListener('upload-complete', () => (b.complete ??= performance.now()));
          document.addEventListener(
            'upload-error',
            (e) => (b.error ??= JSON.stringify((e as CustomEvent).detail)),
          );
        });
        await page.goto(`http://127.0.0.1:${ours.port}/`);
        await page.waitForFunction(
          () => !!document.querySelector('big-uploader')?.shadowRoot?.querySelector('#file-input'),
          undefined,
          { timeout: 30_000 },
        );
        await page.evaluate(
          ([t, chunk]) => {
            const el = document.querySelector('big-uploader') as unknown as {
              transport: string;
              chunkSize: number;
            };
            el.transport = t;
            if (chunk) el.chunkSize = chunk * 2 ** 20;
          },
          [transport, chunkMiB ?? 0] as const,
        );
        const result = await measured(ours.child, async () => {
          const picked = await page.evaluate(() => performance.now());
          await page.locator('big-uploader #file-input').setInputFiles(file);
          await page.waitForFunction(
            () => {
              const b = (window as unknown as { __bench: { complete?: number; error?: string } })
                .__bench;
              return b.complete !== undefined || b.error !== undefined;
            },
            undefined,
            { timeout: timeoutMs, polling: 100 },
          );
          const b = await page.evaluate(
            () =>
              (
                window as unknown as {
                  __bench: { complete?: number; error?: string; progress: number };
                }
              ).__bench,
          );
          if (b.error !== undefined || b.complete === undefined)
            throw new Error(`upload-error: ${b.error ?? 'no complete event'}`);
          return { seconds: (b.complete - picked) / 1000, note: `${b.progress} progress events` };
        });
        await verifyAndDelete(file, ours.dir, size);
        return result;
      } finally {
        await context.close();
      }
    },
  };
}

function peerContender(
  id: keyof PageBench,
  label: string,
  peer: { child: BenchChild; port: number; dir: string },
  file: string,
  timeoutMs: number,
): Contender {
  return {
    id,
    label,
    async run(browser, size, round) {
      const context = await browser.newContext();
      try {
        const page: Page = await context.newPage();
        await page.goto(`http://127.0.0.1:${peer.port}/`);
        await page.waitForFunction(() => '__peers' in window, undefined, { timeout: 30_000 });
        await page.locator('#file').setInputFiles(file);
        const sinkName = `${id}-${round}.bin`;
        page.setDefaultTimeout(timeoutMs);
        const result = await measured(peer.child, async () => ({
          seconds: await page.evaluate(
            ([fn, name]) => (window as unknown as { __peers: PageBench }).__peers[fn](name),
            [id, sinkName] as const,
          ),
        }));
        await fetch(`http://127.0.0.1:${peer.port}/close-sinks`, { method: 'POST' });
        await verifyAndDelete(file, peer.dir, size);
        return result;
      } finally {
        await context.close();
      }
    },
  };
}

export function findChromium(): string | undefined {
  return [
    process.env.CHROMIUM_PATH,
    '/usr/bin/chromium',
    '/usr/bin/chromium-browser',
    '/usr/bin/google-chrome',
  ].find((p): p is string => !!p && existsSync(p));
}

/** Build a Vite page (`root` holds its index.html) into `outDir`. */
export async function buildPage(repoRoot: string, outDir: string, root?: string): Promise<void> {
  const { build } = await import('vite');
  await build(
    root === undefined
      ? {
          configFile: join(repoRoot, 'vite.config.ts'),
          mode: 'production',
          logLevel: 'warn',
          build: { outDir, emptyOutDir: true, sourcemap: false },
        }
      : {
          configFile: false,
          root,
          base: './',
          logLevel: 'warn',
          build: { outDir, emptyOutDir: true, sourcemap: false, target: 'es2022' },
        },
  );
}

export async function browserScenario(ctx: ScenarioContext): Promise<ScenarioResult> {
  const size = Number(process.env.BENCH_BROWSER_MIB ?? 512) * MiB;
  const rounds = Number(process.env.BENCH_BROWSER_ROUNDS ?? 3);
  const title = `Browser: one headless Chromium, <big-uploader> vs tus-js-client vs the page's ceilings, ${size / MiB} MiB`;
  const executable = findChromium();
  if (!executable)
    return {
      id: 'browser',
      title,
      status: 'skipped',
      reason: 'no Chromium found (apt-get install chromium, or set CHROMIUM_PATH)',
    };
  const demoDir = join(ctx.dir, 'demo');
  const peerPageDir = join(ctx.dir, 'peer-page');
  try {
    await buildPage(ctx.repoRoot, demoDir);
    await buildPage(ctx.repoRoot, peerPageDir, join(ctx.repoRoot, 'bench', 'browser'));
  } catch (error) {
    return {
      id: 'browser',
      title,
      status: 'skipped',
      reason: `a page did not build: ${errorText(error).slice(0, 300)}`,
    };
  }
  let ours: ProductServer | undefined;
  let peerChild: BenchChild | undefined;
  let browser: Browser | undefined;
  let file: string | undefined;
  try {
    ours = await startServer(ctx.repoRoot, join(ctx.dir, 'server'), ['--page-dir', demoDir]);
    const peerDir = join(ctx.dir, 'peer');
    peerChild = spawnPeer(ctx.repoRoot, join(ctx.repoRoot, 'bench', 'peers', 'browser-peer.ts'), [
      '--dir',
      peerDir,
      '--page',
      peerPageDir,
    ]);
    const listening = await peerChild.waitForMessage((m) => m.event === 'listening', 60_000);
    const peer = { child: peerChild, port: Number(listening.port), dir: peerDir };
    const source = await makeFile(ctx, `browser-${size / MiB}MiB.bin`, size);
    file = source;
    const timeoutMs = Math.min(ctx.timeoutMs, 600_000);
    const contenders: Contender[] = [
      ...(process.env.BENCH_BROWSER_TRANSPORTS ?? 'websocket,http').split(',').map((t) => {
        // "http" or "http:8" (chunk size in MiB)
        const [kind, chunk] = t.split(':');
        return componentContender(
          ours!,
          source,
          timeoutMs,
          kind as 'websocket' | 'http' | 'auto',
          chunk ? Number(chunk) : undefined,
        );
      }),
      peerContender('tusDefault', 'tus-js-client, defaults (one PATCH)', peer, source, timeoutMs),
      peerContender('tus8MiB', 'tus-js-client, 8 MiB chunks', peer, source, timeoutMs),
      peerContender('fetchPut', 'ceiling: fetch PUT 8 MiB slices x4', peer, source, timeoutMs),
      peerContender(
        'webSocketBlob',
        'ceiling: WebSocket Blob 4 MiB x8 unacked',
        peer,
        source,
        timeoutMs,
      ),
    ];
    browser = await (
      await import('playwright-core')
    ).chromium.launch({ executablePath: executable, args: CHROMIUM_ARGS });
    const runs = new Map<string, Run[]>(contenders.map((c) => [c.id, []]));
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? contenders : [...contenders].reverse();
      for (const c of order) {
        const r = await c.run(browser, size, round);
        ctx.log(
          `  browser round ${round + 1} ${c.id}: ${mbPerSecond(size, r.seconds).toFixed(0)} MB/s, chromium ${r.chromiumCpu.toFixed(1)} s, server ${r.serverCpu.toFixed(1)} s${r.note ? `, ${r.note}` : ''}`,
        );
        runs.get(c.id)!.push(r);
      }
    }
    const mbps = (id: string): number[] => runs.get(id)!.map((r) => mbPerSecond(size, r.seconds));
    const tusMedian = median(mbps('tusDefault'));
    const ceiling = Math.max(median(mbps('fetchPut')), median(mbps('webSocketBlob')));
    const rows = contenders.map((c) => {
      const m = mbps(c.id);
      const rs = runs.get(c.id)!;
      const med = median(m);
      return [
        c.label,
        med.toFixed(0),
        `${Math.min(...m).toFixed(0)}-${Math.max(...m).toFixed(0)}`,
        (med / tusMedian).toFixed(2),
        (med / ceiling).toFixed(2),
        cpuPerGiB(median(rs.map((r) => r.chromiumCpu)), size).toFixed(2),
        cpuPerGiB(median(rs.map((r) => r.serverCpu)), size).toFixed(2),
      ];
    });
    const progress = contenders
      .filter((c) => c.id.startsWith('component'))
      .map(
        (c) =>
          `${c.id}: ${runs
            .get(c.id)!
            .map((r) => r.note)
            .join(', ')}`,
      )
      .join('; ');
    return {
      id: 'browser',
      title,
      status: 'ok',
      headers: [
        'Client',
        'MB/s median',
        'range',
        'x tus default',
        'x best ceiling',
        'Chromium CPU s/GiB',
        'Server CPU s/GiB',
      ],
      rows,
      notes: [
        `${rounds} rounds, order alternated, a fresh browser context per run; every stored file compared byte for byte.`,
        'Seconds: <big-uploader> from the file picked to upload-complete; the others from the call to the last response/ack, in the page.',
        `Best ceiling = the faster of the two ceilings' medians (${ceiling.toFixed(0)} MB/s).`,
        `Component progress events per run: ${progress}.`,
      ],
      plot: {
        title: 'Browser (one Chromium run): MB/s medians',
        unit: 'MB/s',
        points: contenders.map((c) => ({ label: c.id, value: median(mbps(c.id)) })),
      },
    };
  } catch (error) {
    return { id: 'browser', title, status: 'failed', reason: errorText(error) };
  } finally {
    await browser?.close();
    await peerChild?.stop();
    await ours?.child.stop();
    if (file !== undefined) await rm(file, { force: true });
  }
}
