/**
 * Browser scenarios: in ONE headless browser, the same file picked through a file input is
 * uploaded by
 *   - <big-uploader> on the demo page, to our server (`serve --page-dir`),
 *   - tus-js-client with its defaults (one PATCH) and with 8 MiB chunks, to @tus/server FileStore,
 *   - the page's ceilings: fetch PUT of 8 MiB Blob slices 4 at a time, and a bare WebSocket
 *     sending Blob([offset, 4 MiB slice]) frames 8 unacked,
 * the peers and ceilings served by bench/peers/browser-peer.ts (bench/browser/ is their page).
 * Rounds alternate the order; each run gets a fresh browser context (no resume records, no warm
 * renderer); every stored file is compared byte for byte, then deleted. CPU per GiB is the
 * browser's (every process of it, read from /proc around the run) plus the server's.
 * Two engines run the same comparison, so the component is not tuned to one browser: `browser` is
 * Debian's Chromium over its DevTools pipe with no Network domain (chromium-bare.ts: as a user's
 * browser runs; Playwright's network instrumentation costs bytes sent from JavaScript about 10x),
 * `firefox` Debian's Firefox ESR through puppeteer-core over WebDriver BiDi (playwright drives
 * only its own patched Firefox, a download). The pages and everything run in them are the same;
 * only the driver (BenchBrowser) differs.
 * BENCH_BROWSER_MIB (default 512) and BENCH_BROWSER_ROUNDS (default 3) shrink it for a quick look.
 * BENCH_BROWSER_BASELINE=<another checkout> adds that checkout's component (its demo page built
 * from its client code, served by a second server of this checkout) to the same run, for a
 * before/after of a client change measured alternately in one browser.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { ElementHandle } from 'puppeteer-core';
import { compareFiles, findFilesOfSize } from '../files.js';
import { readProc, spawnPeer, type BenchChild } from '../proc.js';
import { startServer, type ProductServer } from '../product.js';
import { median, mbPerSecond, cpuPerGiB } from '../stats.js';
import type { ScenarioResult } from '../types.js';
import { makeFile, type ScenarioContext } from './common.js';
import { launchChromiumBare } from './chromium-bare.js';
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

/**
 * CPU seconds (user + system) of every process under `root` (and `root` itself) whose name
 * matches `name` (any name when absent).
 */
function processTreeCpuSeconds(root: number, name?: RegExp): number {
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
  const isUnderRoot = (pid: number): boolean => {
    for (let p: number | undefined = pid, hops = 0; p !== undefined && hops < 32; hops++) {
      if (p === root) return true;
      p = parents.get(p);
    }
    return false;
  };
  let total = 0;
  for (const [pid, processName] of names) {
    if ((name && !name.test(processName)) || !isUnderRoot(pid)) continue;
    const s = readProc(pid);
    if (s) total += s.userSeconds + s.sysSeconds;
  }
  return total;
}

/** CPU seconds (user + system) of every chromium process descended from this one. */
export function chromiumCpuSeconds(): number {
  return processTreeCpuSeconds(process.pid, /chrom/i);
}

/**
 * What the scenario needs from a browser page, whichever library drives it. Functions given to
 * `evaluate`, `waitFor` and `addInitScript` run in the page (no closures over bench code).
 */
export interface BenchPage {
  /** Run `script` in every document this page loads, before the document's own scripts. */
  addInitScript(script: () => void): Promise<void>;
  goto(url: string): Promise<void>;
  evaluate<R, A = undefined>(fn: (arg: A) => R, arg?: A): Promise<Awaited<R>>;
  /** Poll `predicate` in the page every `pollMs` until it returns true (or `timeoutMs` passes). */
  waitFor(predicate: () => boolean, timeoutMs: number, pollMs?: number): Promise<void>;
  /** Pick `file` in the file input reached by `path`: CSS selectors, each in the previous one's shadow root. */
  pickFile(path: readonly string[], file: string): Promise<void>;
  /** Close the page and its context. */
  close(): Promise<void>;
}

/** A launched browser: the one thing that differs between engines. */
export interface BenchBrowser {
  /** A fresh context (no resume records, no cache) with one page. */
  newPage(): Promise<BenchPage>;
  /** CPU seconds (user + system) of every process of this browser so far. */
  cpuSeconds(): number;
  close(): Promise<void>;
}

export async function launchChromium(executable: string): Promise<BenchBrowser> {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: executable, args: CHROMIUM_ARGS });
  return {
    cpuSeconds: chromiumCpuSeconds,
    close: () => browser.close(),
    async newPage() {
      const context = await browser.newContext();
      const page = await context.newPage();
      return {
        addInitScript: async (script) => {
          await page.addInitScript(script);
        },
        goto: async (url) => {
          await page.goto(url);
        },
        evaluate: <R, A>(fn: (arg: A) => R, arg?: A) =>
          page.evaluate(fn as (arg: unknown) => R, arg) as Promise<Awaited<R>>,
        waitFor: async (predicate, timeoutMs, pollMs = 100) => {
          await page.waitForFunction(predicate, undefined, { timeout: timeoutMs, polling: pollMs });
        },
        // Playwright's CSS selectors pierce open shadow roots.
        pickFile: (path, file) => page.locator(path.join(' ')).setInputFiles(file),
        close: () => context.close(),
      };
    },
  };
}

/**
 * Debian's Firefox ESR through puppeteer-core (WebDriver BiDi). `protocolTimeout` bounds each
 * command, and one `evaluate` lasts a whole upload: it gets the run's cap.
 */
export async function launchFirefox(executable: string, timeoutMs: number): Promise<BenchBrowser> {
  const { default: puppeteer } = await import('puppeteer-core');
  const browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: executable,
    headless: true,
    protocolTimeout: timeoutMs,
  });
  const root = browser.process()?.pid;
  return {
    cpuSeconds: () => (root === undefined ? NaN : processTreeCpuSeconds(root)),
    close: () => browser.close(),
    async newPage() {
      const context = await browser.createBrowserContext();
      const page = await context.newPage();
      return {
        addInitScript: async (script) => {
          await page.evaluateOnNewDocument(script);
        },
        goto: async (url) => {
          await page.goto(url);
        },
        evaluate: <R, A>(fn: (arg: A) => R, arg?: A) =>
          page.evaluate(fn as (arg: unknown) => R, arg),
        waitFor: async (predicate, timeoutMs, pollMs = 100) => {
          await page.waitForFunction(predicate, { timeout: timeoutMs, polling: pollMs });
        },
        // Puppeteer's `>>>` steps into a shadow root.
        pickFile: async (path, file) => {
          const input = (await page.waitForSelector(
            path.join(' >>> '),
          )) as ElementHandle<HTMLInputElement>;
          await input.uploadFile(file);
        },
        close: () => context.close(),
      };
    },
  };
}

function cpuOf(child: BenchChild): number {
  const s = readProc(child.pid);
  return s ? s.userSeconds + s.sysSeconds : NaN;
}

interface Run {
  seconds: number;
  browserCpu: number;
  serverCpu: number;
  /** Extra facts (e.g. progress events the component emitted). */
  note?: string;
}

interface Contender {
  id: string;
  label: string;
  run(browser: BenchBrowser, size: number, round: number): Promise<Run>;
}

async function measured(
  browser: BenchBrowser,
  server: BenchChild,
  body: () => Promise<{ seconds: number; note?: string }>,
): Promise<Run> {
  const browser0 = browser.cpuSeconds();
  const server0 = cpuOf(server);
  const { seconds, note } = await body();
  return {
    seconds,
    browserCpu: browser.cpuSeconds() - browser0,
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
  baseline?: string,
): Contender {
  return {
    id: `component-${transport}${chunkMiB ? `-${chunkMiB}MiB` : ''}${baseline ? '-baseline' : ''}`,
    label: `<big-uploader> transport=${transport}${chunkMiB ? ` chunk-size=${chunkMiB} MiB` : ''} (${baseline ? `baseline ${baseline}` : 'demo page'}, our server)`,
    async run(browser, size) {
      const page = await browser.newPage();
      try {
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
        await page.waitFor(
          () => !!document.querySelector('big-uploader')?.shadowRoot?.querySelector('#file-input'),
          30_000,
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
        const result = await measured(browser, ours.child, async () => {
          const picked = await page.evaluate(() => performance.now());
          await page.pickFile(['big-uploader', '#file-input'], file);
          await page.waitFor(() => {
            const b = (window as unknown as { __bench: { complete?: number; error?: string } })
              .__bench;
            return b.complete !== undefined || b.error !== undefined;
          }, timeoutMs);
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
        await page.close();
      }
    },
  };
}

function peerContender(
  id: keyof PageBench,
  label: string,
  peer: { child: BenchChild; port: number; dir: string },
  file: string,
): Contender {
  return {
    id,
    label,
    async run(browser, size, round) {
      const page = await browser.newPage();
      try {
        await page.goto(`http://127.0.0.1:${peer.port}/`);
        await page.waitFor(() => '__peers' in window, 30_000);
        await page.pickFile(['#file'], file);
        const sinkName = `${id}-${round}.bin`;
        const result = await measured(browser, peer.child, async () => ({
          seconds: await page.evaluate(
            ([fn, name]) => (window as unknown as { __peers: PageBench }).__peers[fn](name),
            [id, sinkName] as const,
          ),
        }));
        await fetch(`http://127.0.0.1:${peer.port}/close-sinks`, { method: 'POST' });
        await verifyAndDelete(file, peer.dir, size);
        return result;
      } finally {
        await page.close();
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

export function findFirefox(): string | undefined {
  return [process.env.FIREFOX_PATH, '/usr/bin/firefox-esr', '/usr/bin/firefox'].find(
    (p): p is string => !!p && existsSync(p),
  );
}

/** One engine the comparison runs in: the scenario's id, its name and how to start it. */
interface Engine {
  id: 'browser' | 'firefox';
  name: string;
  find(): string | undefined;
  /** What to install when `find` finds nothing. */
  install: string;
  launch(executable: string, timeoutMs: number): Promise<BenchBrowser>;
}

const CHROMIUM_ENGINE: Engine = {
  id: 'browser',
  name: 'Chromium',
  find: findChromium,
  install: 'apt-get install chromium, or set CHROMIUM_PATH',
  launch: (executable) => launchChromiumBare(executable),
};

const FIREFOX_ENGINE: Engine = {
  id: 'firefox',
  name: 'Firefox ESR',
  find: findFirefox,
  install: 'apt-get install firefox-esr, or set FIREFOX_PATH',
  launch: launchFirefox,
};

export const browserScenario = (ctx: ScenarioContext): Promise<ScenarioResult> =>
  compareInBrowser(ctx, CHROMIUM_ENGINE);

export const firefoxScenario = (ctx: ScenarioContext): Promise<ScenarioResult> =>
  compareInBrowser(ctx, FIREFOX_ENGINE);

async function compareInBrowser(ctx: ScenarioContext, engine: Engine): Promise<ScenarioResult> {
  const id = engine.id;
  const size = Number(process.env.BENCH_BROWSER_MIB ?? 512) * MiB;
  const rounds = Number(process.env.BENCH_BROWSER_ROUNDS ?? 3);
  const title = `Browser: one headless ${engine.name}, <big-uploader> vs tus-js-client vs the page's ceilings, ${size / MiB} MiB`;
  const executable = engine.find();
  if (!executable)
    return {
      id,
      title,
      status: 'skipped',
      reason: `no ${engine.name} found (${engine.install})`,
    };
  const demoDir = join(ctx.dir, 'demo');
  const peerPageDir = join(ctx.dir, 'peer-page');
  const baselineRoot = process.env.BENCH_BROWSER_BASELINE;
  const baselineDemoDir = join(ctx.dir, 'demo-baseline');
  try {
    await buildPage(ctx.repoRoot, demoDir);
    if (baselineRoot) await buildPage(baselineRoot, baselineDemoDir);
    await buildPage(ctx.repoRoot, peerPageDir, join(ctx.repoRoot, 'bench', 'browser'));
  } catch (error) {
    return {
      id,
      title,
      status: 'skipped',
      reason: `a page did not build: ${errorText(error).slice(0, 300)}`,
    };
  }
  let ours: ProductServer | undefined;
  let oursBaseline: ProductServer | undefined;
  let peerChild: BenchChild | undefined;
  let browser: BenchBrowser | undefined;
  let file: string | undefined;
  try {
    ours = await startServer(ctx.repoRoot, join(ctx.dir, 'server'), ['--page-dir', demoDir]);
    if (baselineRoot)
      oursBaseline = await startServer(ctx.repoRoot, join(ctx.dir, 'server-baseline'), [
        '--page-dir',
        baselineDemoDir,
      ]);
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
    // `auto` is what the component does by default (in Chromium: WebSocket to open, HTTP for the
    // bytes); the two bindings alone show what each does.
    const transports = (process.env.BENCH_BROWSER_TRANSPORTS ?? 'auto,websocket,http').split(',');
    const contenders: Contender[] = [
      ...[ours, oursBaseline].flatMap((server) =>
        !server
          ? []
          : transports.map((t) => {
              // "http" or "http:8" (chunk size in MiB)
              const [kind, chunk] = t.split(':');
              return componentContender(
                server,
                source,
                timeoutMs,
                kind as 'websocket' | 'http' | 'auto',
                chunk ? Number(chunk) : undefined,
                server === oursBaseline ? basename(baselineRoot!) : undefined,
              );
            }),
      ),
      peerContender('tusDefault', 'tus-js-client, defaults (one PATCH)', peer, source),
      peerContender('tus8MiB', 'tus-js-client, 8 MiB chunks', peer, source),
      peerContender('fetchPut', 'ceiling: fetch PUT 8 MiB slices x4', peer, source),
      peerContender('webSocketBlob', 'ceiling: WebSocket Blob 4 MiB x8 unacked', peer, source),
    ];
    browser = await engine.launch(executable, timeoutMs);
    const runs = new Map<string, Run[]>(contenders.map((c) => [c.id, []]));
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? contenders : [...contenders].reverse();
      for (const c of order) {
        const r = await c.run(browser, size, round);
        ctx.log(
          `  ${id} round ${round + 1} ${c.id}: ${mbPerSecond(size, r.seconds).toFixed(0)} MB/s, ${engine.name} ${r.browserCpu.toFixed(1)} s, server ${r.serverCpu.toFixed(1)} s${r.note ? `, ${r.note}` : ''}`,
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
        cpuPerGiB(median(rs.map((r) => r.browserCpu)), size).toFixed(2),
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
      id,
      title,
      status: 'ok',
      headers: [
        'Client',
        'MB/s median',
        'range',
        'x tus default',
        'x best ceiling',
        `${engine.name} CPU s/GiB`,
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
        title: `Browser (one ${engine.name} run): MB/s medians`,
        unit: 'MB/s',
        points: contenders.map((c) => ({ label: c.id, value: median(mbps(c.id)) })),
      },
    };
  } catch (error) {
    return { id, title, status: 'failed', reason: errorText(error) };
  } finally {
    await browser?.close();
    await peerChild?.stop();
    await ours?.child.stop();
    await oursBaseline?.child.stop();
    if (file !== undefined) await rm(file, { force: true });
  }
}
