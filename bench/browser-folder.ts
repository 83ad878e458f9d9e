/**
 * Issue 16, browser half: a folder of N small files (default 2000 x 16 KiB) picked in ONE headless
 * Chromium and uploaded by
 *   - <big-uploader> on the demo page, to our server (`serve --page-dir`): small files share one
 *     bigup.2 connection (files-in-flight, default 16),
 *   - tus-js-client with its defaults, one file after another and 8 files at a time, to
 *     @tus/server with @tus/file-store (bench/peers/browser-peer.ts, page bench/browser/).
 * Each run gets a fresh folder of random bytes (so no run finds the previous one's content on the
 * server) and a fresh browser context; rounds alternate the order; every stored file is compared
 * byte for byte with its source (ours: files/<id>/<relative path>; tus: the upload whose
 * `relativePath` metadata names it), then the stored copies are deleted. Prints one JSON line per
 * run and a summary table of files/s and MB/s medians with the ratios to tus-js-client.
 *
 *   npx tsx bench/browser-folder.ts --files 2000 --size 16384 --rounds 3 [--per-file]
 *
 * Needs `npm run build` (the server runs from dist/, as `big-uploader serve`).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import {
  buildPage,
  chromiumCpuSeconds,
  findChromium,
  type BenchBrowser,
} from './scenarios/browser.js';
import { launchChromiumBare } from './scenarios/chromium-bare.js';
import type { PageBench } from './browser/page.js';
import { readProc, spawnPeer, type BenchChild } from './proc.js';
import { startServer } from './product.js';
import { median } from './stats.js';

const { values } = parseArgs({
  options: {
    files: { type: 'string', default: '2000' },
    size: { type: 'string', default: '16384' },
    rounds: { type: 'string', default: '3' },
    'files-in-flight': { type: 'string' },
    /** Also run the component with every file on its own connection. */
    'per-file': { type: 'boolean', default: false },
    dir: { type: 'string', default: join(tmpdir(), `bigup-browser-folder-${process.pid}`) },
    timeout: { type: 'string', default: '900000' },
  },
});
const FILES = Number(values.files);
const SIZE = Number(values.size);
const ROUNDS = Number(values.rounds);
const TIMEOUT_MS = Number(values.timeout);
const repoRoot = new URL('..', import.meta.url).pathname;
const root = values.dir;

interface Run {
  contender: string;
  round: number;
  seconds: number;
  filesPerSecond: number;
  mbPerSecond: number;
  chromiumCpu: number;
  serverCpu: number;
}

interface Contender {
  id: string;
  label: string;
  /** Upload the folder at `folder`; seconds from the pick (or call) to the last file stored. */
  upload(browser: BenchBrowser, folder: string): Promise<number>;
  /** Compare every stored file with its source under `sourceParent`, then delete the copies. */
  verifyAndClean(sourceParent: string): Promise<void>;
  cpu(): number;
}

const cpuOf = (child: BenchChild): number => {
  const s = readProc(child.pid);
  return s ? s.userSeconds + s.sysSeconds : NaN;
};

/** FILES files of SIZE random bytes under <parent>/album/part-NN/, 100 per folder. */
async function makeFolder(parent: string): Promise<string> {
  const folder = join(parent, 'album');
  for (let start = 0; start < FILES; start += 100) {
    const part = join(folder, `part-${String(start / 100).padStart(2, '0')}`);
    await mkdir(part, { recursive: true });
    const writes: Array<Promise<void>> = [];
    for (let i = start; i < Math.min(FILES, start + 100); i++)
      writes.push(writeFile(join(part, `f-${String(i).padStart(5, '0')}.bin`), randomBytes(SIZE)));
    await Promise.all(writes);
  }
  return folder;
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true }))
    if (e.isFile()) out.push(join(e.parentPath, e.name));
  return out;
}

async function expectSame(source: string, stored: string): Promise<void> {
  const [a, b] = await Promise.all([readFile(source), readFile(stored)]);
  if (!a.equals(b)) throw new Error(`stored ${stored} differs from ${source}`);
}

/**
 * The component with `attrs` set on the element: by default small files share one connection;
 * `batch-max-file-size="0"` gives each file its own uploader and connection (the per-file route,
 * `concurrency` at a time), which is how the route rule was decided.
 */
function componentContender(
  id: string,
  label: string,
  attrs: Record<string, string>,
  port: number,
  serverDir: string,
  child: BenchChild,
): Contender {
  const filesDir = join(serverDir, 'files');
  return {
    id,
    label,
    cpu: () => cpuOf(child),
    async upload(browser, folder) {
      const page = await browser.newPage();
      try {
        await page.addInitScript(() => {
          const b = { complete: 0, errors: [] as string[], last: 0 };
          (window as unknown as { __bench: typeof b }).__bench = b;
          document.addEventListener('upload-complete', () => {
            b.complete++;
            b.last = performance.now();
          });
          document.addEventListener('upload-error', (e) =>
            b.errors.push(JSON.stringify((e as CustomEvent).detail)),
          );
        });
        await page.goto(`http://127.0.0.1:${port}/`);
        await page.waitFor(
          () => !!document.querySelector('big-uploader')?.shadowRoot?.querySelector('#file-input'),
          30_000,
        );
        await page.evaluate(
          ([a, n]) => {
            const el = document.querySelector('big-uploader')!;
            for (const [name, value] of Object.entries(a)) el.setAttribute(name, value);
            (window as unknown as { __expected: number }).__expected = n;
          },
          [attrs, FILES] as const,
        );
        const picked = await page.evaluate(() => performance.now());
        await page.pickFile(['big-uploader', '#folder-input'], folder);
        await page.waitFor(() => {
          const w = window as unknown as {
            __bench: { complete: number; errors: string[] };
            __expected: number;
          };
          return w.__bench.complete + w.__bench.errors.length >= w.__expected;
        }, TIMEOUT_MS);
        const b = await page.evaluate(
          () =>
            (window as unknown as { __bench: { complete: number; errors: string[]; last: number } })
              .__bench,
        );
        if (b.errors.length > 0) throw new Error(`upload-error: ${b.errors[0]}`);
        return (b.last - picked) / 1000;
      } finally {
        await page.close();
      }
    },
    async verifyAndClean(sourceParent) {
      // files/<id>/album/part-NN/f-NNNNN.bin
      const stored = await listFiles(filesDir);
      if (stored.length !== FILES) throw new Error(`ours: ${stored.length} files stored`);
      for (const path of stored) {
        const inside = relative(filesDir, path).split('/').slice(1).join('/');
        await expectSame(join(sourceParent, inside), path);
      }
      await rm(filesDir, { recursive: true, force: true });
      await mkdir(filesDir, { recursive: true });
    },
  };
}

function tusContender(
  id: 'tusFolderSequential' | 'tusFolderParallel8',
  label: string,
  port: number,
  peerDir: string,
  child: BenchChild,
): Contender {
  const tusDir = join(peerDir, 'tus');
  return {
    id,
    label,
    cpu: () => cpuOf(child),
    async upload(browser, folder) {
      const page = await browser.newPage();
      try {
        await page.goto(`http://127.0.0.1:${port}/`);
        await page.waitFor(() => '__peers' in window, 30_000);
        await page.pickFile(['#folder'], folder);
        return await page.evaluate(
          (fn) => (window as unknown as { __peers: PageBench }).__peers[fn](),
          id,
        );
      } finally {
        await page.close();
      }
    },
    async verifyAndClean(sourceParent) {
      const infos = (await readdir(tusDir)).filter((n) => n.endsWith('.json'));
      if (infos.length !== FILES) throw new Error(`tus: ${infos.length} uploads stored`);
      for (const info of infos) {
        const meta = JSON.parse(await readFile(join(tusDir, info), 'utf8')) as {
          metadata?: { relativePath?: string };
        };
        const path = meta.metadata?.relativePath;
        if (!path) throw new Error(`tus: ${info} has no relativePath`);
        await expectSame(join(sourceParent, path), join(tusDir, info.slice(0, -'.json'.length)));
      }
      await rm(tusDir, { recursive: true, force: true });
      await mkdir(tusDir, { recursive: true });
    },
  };
}

async function main(): Promise<void> {
  const executable = findChromium();
  if (!executable) throw new Error('no Chromium found (set CHROMIUM_PATH)');
  await rm(root, { recursive: true, force: true });
  await mkdir(root, { recursive: true });
  const demoDir = join(root, 'demo');
  const peerPageDir = join(root, 'peer-page');
  await buildPage(repoRoot, demoDir);
  await buildPage(repoRoot, peerPageDir, join(repoRoot, 'bench', 'browser'));
  const serverDir = join(root, 'server');
  const ours = await startServer(repoRoot, serverDir, ['--page-dir', demoDir]);
  const peerDir = join(root, 'peer');
  const peer = spawnPeer(repoRoot, join(repoRoot, 'bench', 'peers', 'browser-peer.ts'), [
    '--dir',
    peerDir,
    '--page',
    peerPageDir,
  ]);
  let browser: BenchBrowser | undefined;
  try {
    const listening = await peer.waitForMessage((m) => m.event === 'listening', 60_000);
    const peerPort = Number(listening.port);
    const inFlight = values['files-in-flight'];
    const contenders: Contender[] = [
      componentContender(
        'component',
        `<big-uploader> (one bigup.2 connection, files-in-flight ${inFlight ?? 'default'})`,
        inFlight ? { 'files-in-flight': inFlight } : {},
        ours.port,
        serverDir,
        ours.child,
      ),
      ...(values['per-file']
        ? [
            componentContender(
              'componentPerFile',
              '<big-uploader> per-file route (batch-max-file-size=0, concurrency 2)',
              { 'batch-max-file-size': '0' },
              ours.port,
              serverDir,
              ours.child,
            ),
          ]
        : []),
      tusContender(
        'tusFolderSequential',
        'tus-js-client, one file at a time',
        peerPort,
        peerDir,
        peer,
      ),
      tusContender(
        'tusFolderParallel8',
        'tus-js-client, 8 files at a time',
        peerPort,
        peerDir,
        peer,
      ),
    ];
    // Chromium as a user's runs it, without DevTools' network instrumentation, which copies every
    // WebSocket payload of bytes to the driver (bench/scenarios/chromium-bare.ts).
    browser = await launchChromiumBare(executable);
    const runs: Run[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? contenders : [...contenders].reverse();
      for (const c of order) {
        const parent = join(root, `src-${round}-${c.id}`);
        const folder = await makeFolder(parent);
        const chromium0 = chromiumCpuSeconds();
        const server0 = c.cpu();
        const seconds = await c.upload(browser, folder);
        const run: Run = {
          contender: c.id,
          round,
          seconds,
          filesPerSecond: FILES / seconds,
          mbPerSecond: (FILES * SIZE) / 1e6 / seconds,
          chromiumCpu: chromiumCpuSeconds() - chromium0,
          serverCpu: c.cpu() - server0,
        };
        await c.verifyAndClean(parent);
        await rm(parent, { recursive: true, force: true });
        runs.push(run);
        process.stdout.write(`${JSON.stringify(run)}\n`);
      }
    }
    const medianOf = (id: string, key: 'filesPerSecond' | 'mbPerSecond'): number =>
      median(runs.filter((r) => r.contender === id).map((r) => r[key]));
    const ours0 = medianOf('component', 'filesPerSecond');
    process.stdout.write(
      `\n${FILES} files x ${SIZE} B, ${ROUNDS} rounds alternated, one Chromium; medians:\n`,
    );
    for (const c of contenders) {
      const fps = medianOf(c.id, 'filesPerSecond');
      const range = runs.filter((r) => r.contender === c.id).map((r) => r.filesPerSecond);
      process.stdout.write(
        `  ${c.label.padEnd(62)} ${fps.toFixed(0).padStart(6)} files/s (${Math.min(...range).toFixed(0)}-${Math.max(...range).toFixed(0)})  ${medianOf(c.id, 'mbPerSecond').toFixed(1).padStart(6)} MB/s  component x${(ours0 / fps).toFixed(2)}\n`,
      );
    }
  } finally {
    await browser?.close();
    await peer.stop();
    await ours.child.stop();
    await rm(root, { recursive: true, force: true });
  }
}

await main();
