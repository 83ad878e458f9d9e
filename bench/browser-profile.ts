/**
 * Where <big-uploader>'s time goes in Chromium: one upload through the demo page with Chromium's
 * tracing on (every process and thread, plus V8's sampling profiler), summarised as busy time per
 * thread and the hottest JavaScript functions per thread. Run after `npm run build`:
 *
 *   node --import tsx bench/browser-profile.ts [--mib 256] [--transport websocket|http]
 *   node --import tsx bench/browser-profile.ts --folder DIR   (a folder picked whole: issue 16)
 *
 * Prints a Markdown summary; the raw trace stays in the temp dir it names (open it in
 * chrome://tracing or Perfetto).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { startServer } from './product.js';

const MiB = 2 ** 20;
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
];

interface TraceEvent {
  ph: string;
  name: string;
  cat?: string;
  pid: number;
  tid: number;
  ts: number;
  dur?: number;
  tdur?: number;
  args?: Record<string, unknown>;
  id?: string;
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url?: string };
  parent?: number;
}

const { values } = parseArgs({
  options: {
    mib: { type: 'string' },
    transport: { type: 'string' },
    dir: { type: 'string' },
    folder: { type: 'string' },
  },
});
const size = Number(values.mib ?? 256) * MiB;
const transport = values.transport ?? 'websocket';
const repoRoot = new URL('..', import.meta.url).pathname;
const work = values.dir ?? (await mkdtemp(join(tmpdir(), 'bigup-profile-')));
const folder = values.folder;
const file = join(work, 'source.bin');
const folderFiles = folder
  ? (
      await import('node:fs/promises').then(({ readdir }) =>
        readdir(folder, { recursive: true, withFileTypes: true }),
      )
    ).filter((entry) => entry.isFile()).length
  : 1;
if (!folder) {
  const { open } = await import('node:fs/promises');
  const { randomBytes } = await import('node:crypto');
  const handle = await open(file, 'w');
  const block = randomBytes(8 * MiB);
  for (let at = 0; at < size; at += block.length)
    await handle.write(block, 0, Math.min(block.length, size - at), at);
  await handle.close();
}
const server = await startServer(repoRoot, join(work, 'server'), [
  '--page-dir',
  join(repoRoot, 'dist', 'demo'),
]);
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
const tracePath = join(work, `trace-${transport}.json`);
try {
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${server.port}/`);
  await page.waitForFunction(
    () => !!document.querySelector('big-uploader')?.shadowRoot?.querySelector('#file-input'),
  );
  await page.evaluate(
    ({ t, expected }) => {
      (document.querySelector('big-uploader') as unknown as { transport: string }).transport = t;
      const w = window as unknown as { __done?: number; __start: number };
      let completed = 0;
      document.addEventListener('upload-complete', () => {
        if (++completed === expected) w.__done = performance.now();
      });
      w.__start = performance.now();
    },
    { t: transport, expected: folderFiles },
  );
  await browser.startTracing(undefined, {
    path: tracePath,
    categories: [
      'devtools.timeline',
      'disabled-by-default-devtools.timeline',
      'v8',
      'disabled-by-default-v8.cpu_profiler',
      'toplevel',
      'blink',
      'net',
      'netlog',
    ],
  });
  if (folder) await page.locator('big-uploader #folder-input').setInputFiles(folder);
  else await page.locator('big-uploader #file-input').setInputFiles(file);
  await page.waitForFunction(
    () => (window as unknown as { __done?: number }).__done !== undefined,
    undefined,
    {
      timeout: 600_000,
      polling: 200,
    },
  );
  const seconds = await page.evaluate(() => {
    const w = window as unknown as { __done: number; __start: number };
    return (w.__done - w.__start) / 1000;
  });
  await browser.stopTracing();
  const trace = JSON.parse(await readFile(tracePath, 'utf8')) as
    { traceEvents: TraceEvent[] } | TraceEvent[];
  const events = Array.isArray(trace) ? trace : trace.traceEvents;
  summarise(events, seconds);
  process.stdout.write(`\nraw trace: ${tracePath}\n`);
} finally {
  await browser.close();
  await server.child.stop();
  await rm(file, { force: true });
  await rm(join(work, 'server'), { recursive: true, force: true });
}

function summarise(events: TraceEvent[], seconds: number): void {
  const threadNames = new Map<string, string>();
  const processNames = new Map<number, string>();
  for (const e of events) {
    if (e.ph === 'M' && e.name === 'thread_name')
      threadNames.set(`${e.pid}:${e.tid}`, String(e.args?.name));
    if (e.ph === 'M' && e.name === 'process_name') processNames.set(e.pid, String(e.args?.name));
  }
  const label = (pid: number, tid: number): string =>
    `${processNames.get(pid) ?? pid} / ${threadNames.get(`${pid}:${tid}`) ?? tid}`;
  // Busy time: top-level tasks (ThreadControllerImpl::RunTask and friends), wall and thread CPU.
  const busy = new Map<string, { wall: number; cpu: number }>();
  const names = new Map<string, Map<string, number>>();
  for (const e of events) {
    if (e.ph !== 'X' || e.dur === undefined) continue;
    const key = label(e.pid, e.tid);
    if (
      e.name === 'ThreadControllerImpl::RunTask' ||
      e.name === 'RunTask' ||
      e.name === 'ThreadPool_RunTask'
    ) {
      const b = busy.get(key) ?? { wall: 0, cpu: 0 };
      b.wall += e.dur / 1e6;
      b.cpu += (e.tdur ?? 0) / 1e6;
      busy.set(key, b);
    }
    const perThread = names.get(key) ?? new Map<string, number>();
    perThread.set(e.name, (perThread.get(e.name) ?? 0) + e.dur / 1e6);
    names.set(key, perThread);
  }
  process.stdout.write(
    folder
      ? `## ${transport}, a folder of ${folderFiles} files in ${seconds.toFixed(2)} s (${(folderFiles / seconds).toFixed(0)} files/s)\n\n`
      : `## ${transport}, ${size / MiB} MiB in ${seconds.toFixed(2)} s (${(size / seconds / 1e6).toFixed(0)} MB/s)\n\n`,
  );
  process.stdout.write('| Thread | task wall s | task CPU s |\n|---|---|---|\n');
  for (const [key, b] of [...busy.entries()].sort((a, b) => b[1].cpu - a[1].cpu).slice(0, 14))
    process.stdout.write(`| ${key} | ${b.wall.toFixed(2)} | ${b.cpu.toFixed(2)} |\n`);
  // V8 samples per function, per thread (ProfileChunk events carry the sampled tree incrementally).
  const nodes = new Map<string, Map<number, ProfileNode>>();
  const samples = new Map<string, Map<number, number>>();
  const profileThread = new Map<string, string>();
  for (const e of events) {
    if (e.name === 'Profile' && e.id) profileThread.set(`${e.pid}:${e.id}`, label(e.pid, e.tid));
  }
  for (const e of events) {
    if (e.name !== 'ProfileChunk' || !e.id) continue;
    const key = profileThread.get(`${e.pid}:${e.id}`) ?? label(e.pid, e.tid);
    const data = (e.args?.data ?? {}) as {
      cpuProfile?: { nodes?: ProfileNode[]; samples?: number[] };
      timeDeltas?: number[];
    };
    const ns = nodes.get(key) ?? new Map<number, ProfileNode>();
    for (const n of data.cpuProfile?.nodes ?? []) ns.set(n.id, n);
    nodes.set(key, ns);
    const counts = samples.get(key) ?? new Map<number, number>();
    const deltas = data.timeDeltas ?? [];
    (data.cpuProfile?.samples ?? []).forEach((id, i) =>
      counts.set(id, (counts.get(id) ?? 0) + (deltas[i] ?? 0)),
    );
    samples.set(key, counts);
  }
  for (const [key, counts] of samples) {
    const ns = nodes.get(key)!;
    const perFunction = new Map<string, number>();
    let total = 0;
    for (const [id, us] of counts) {
      const frame = ns.get(id)?.callFrame;
      const name = frame
        ? `${frame.functionName || '(anonymous)'} ${(frame.url ?? '').split('/').pop() ?? ''}`.trim()
        : `node ${id}`;
      perFunction.set(name, (perFunction.get(name) ?? 0) + us);
      total += us;
    }
    if (total < 0.05e6) continue;
    process.stdout.write(
      `\n### V8 samples, ${key}: ${(total / 1e6).toFixed(2)} s sampled\n\n| self s | function |\n|---|---|\n`,
    );
    for (const [name, us] of [...perFunction.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12))
      process.stdout.write(`| ${(us / 1e6).toFixed(2)} | ${name} |\n`);
  }
}
