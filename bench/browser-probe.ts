/**
 * Where a browser spends an upload's time, engine by engine: in one headless Chromium and one
 * headless Firefox ESR (the drivers of the browser scenario), on the browser scenario's peer page
 * and sinks, a file picked through its input is, on the page's main thread (modes `page-*`):
 *   - read: `slice().arrayBuffer()` of 4 MiB slices, 2 at a time (what the component does to hash),
 *   - sent as the WebSocket ceiling does (Blob([header, slice]) frames, 8 unacked, no read),
 *   - read, then sent as the component does (the slice read for the hash, then sent as a Blob slice),
 *   - read, then sent as the bytes read (one ArrayBuffer frame, no second read);
 * and in a dedicated Worker (modes `worker-*`, where the component reads and sends), each way of
 * getting a slice's bytes into JS, alone and followed by the Blob-slice send of the ceiling:
 *   - `await slice.arrayBuffer()` with 1, 2 or 4 reads in flight (`ab1`, `ab2`, `ab4`),
 *   - `new FileReaderSync().readAsArrayBuffer(slice)` (`frs`, workers only, synchronous),
 *   - `slice.stream()` read into one preallocated buffer per read in flight, with a BYOB reader
 *     (`byob`; falls back to the default reader where the stream is not a byte stream, and says so)
 *     or the default reader copying its chunks in (`stream`),
 *   - `worker-send`: the ceiling's send alone, from the Worker.
 * Timed inside the page or Worker; browser CPU from /proc around each mode. Not part of `npm run
 * bench`: a look at one engine's costs, run by hand:
 *   node --import tsx bench/browser-probe.ts [--mib 256] [--engines chromium,firefox] [--rounds 2]
 *     [--modes worker-ab2,worker-ab2+send,...] (default: every mode; --help lists them)
 * Prints each round, then per engine and mode the median MB/s and browser CPU per 256 MiB.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { spawnPeer } from './proc.js';
import {
  buildPage,
  findChromium,
  findFirefox,
  launchChromium,
  launchFirefox,
  type BenchBrowser,
} from './scenarios/browser.js';
import { mbPerSecond, median } from './stats.js';
import { makeFile as makeTestFile } from '../test/browser/harness.js';

const MiB = 2 ** 20;
const PAGE_MODES = ['page-read', 'page-wsBlob', 'page-readThenBlob', 'page-readThenBytes'] as const;
const WORKER_READS = ['ab1', 'ab2', 'ab4', 'frs', 'byob', 'stream'] as const;
const WORKER_MODES = [
  ...WORKER_READS.map((r) => `worker-${r}`),
  'worker-send',
  ...WORKER_READS.map((r) => `worker-${r}+send`),
];
const ALL_MODES: string[] = [...PAGE_MODES, ...WORKER_MODES];

const { values } = parseArgs({
  options: {
    mib: { type: 'string' },
    engines: { type: 'string' },
    rounds: { type: 'string' },
    modes: { type: 'string' },
    help: { type: 'boolean' },
  },
});
if (values.help) {
  process.stdout.write(
    'node --import tsx bench/browser-probe.ts [--mib 256] [--engines chromium,firefox] [--rounds 2] [--modes a,b,...]\n' +
      `modes: ${ALL_MODES.join(' ')}\n`,
  );
  process.exit(0);
}
const size = Number(values.mib ?? 256) * MiB;
const rounds = Number(values.rounds ?? 2);
const engines = (values.engines ?? 'chromium,firefox').split(',');
const modes = values.modes ? values.modes.split(',') : ALL_MODES;
const unknown = modes.filter((m) => !ALL_MODES.includes(m));
if (unknown.length > 0) throw new Error(`unknown modes ${unknown.join(', ')}; --help lists them`);
const repoRoot = fileURLToPath(new URL('..', import.meta.url));

/**
 * The Worker's code, as plain JavaScript text (started from a Blob URL in the page): kept out of
 * TypeScript so tsx cannot wrap its functions in helpers the Worker lacks. Message in: { file,
 * mode, url }; out: { seconds, how } or { error }. `how` names the reader a stream mode used.
 */
const WORKER_SOURCE = String.raw`
const SLICE = 4 * 1024 * 1024;
const WINDOW = 8;
let how = '';
const frs = typeof FileReaderSync === 'function' ? new FileReaderSync() : undefined;

async function readInto(kind, blob, target) {
  const length = blob.size;
  if (kind === 'ab') return new Uint8Array(await blob.arrayBuffer());
  if (kind === 'frs') return new Uint8Array(frs.readAsArrayBuffer(blob));
  const stream = blob.stream();
  if (kind === 'byob') {
    let reader;
    try {
      reader = stream.getReader({ mode: 'byob' });
    } catch (error) {
      reader = undefined;
    }
    if (reader) {
      how = 'byob';
      let view = target.subarray(0, length);
      let filled = 0;
      while (filled < length) {
        const { done, value } = await reader.read(
          new Uint8Array(view.buffer, view.byteOffset + filled, length - filled),
        );
        if (done) break;
        view = new Uint8Array(value.buffer, value.byteOffset - filled, length);
        filled += value.byteLength;
      }
      reader.releaseLock();
      return view.subarray(0, filled);
    }
    how = 'default (no byob)';
  } else how = 'default';
  const reader = stream.getReader();
  let filled = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    target.set(value, filled);
    filled += value.byteLength;
  }
  return target.subarray(0, filled);
}

async function run(file, mode, url) {
  // worker-<read><reads in flight>[+send], or worker-send (no read)
  const [, read, count, send] = /^worker-([a-z]+)(\d?)(?:\+(send))?$/.exec(mode);
  const kind = read === 'send' ? undefined : read;
  // FileReaderSync blocks the Worker: one read at a time. Streams: two, as the component reads.
  const readsInFlight = count ? Number(count) : kind === 'frs' ? 1 : 2;
  const buffers = Array.from({ length: readsInFlight }, () => new Uint8Array(SLICE));
  let ws;
  let inFlight = 0;
  let acked = 0;
  let waiters = [];
  const wakeAll = () => {
    const list = waiters;
    waiters = [];
    for (const w of list) w();
  };
  const wait = () => new Promise((resolve) => waiters.push(resolve));
  if (send || !kind) {
    ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = reject;
    });
    ws.onmessage = () => {
      acked++;
      inFlight--;
      wakeAll();
    };
  }
  if (kind && kind !== 'ab') {
    // Untimed check that this way of reading returns the bytes arrayBuffer() does.
    const blob = file.slice(0, Math.min(file.size, SLICE));
    const expected = new Uint8Array(await blob.arrayBuffer());
    const got = await readInto(kind, blob, new Uint8Array(SLICE));
    if (got.byteLength !== expected.byteLength || got.some((b, i) => b !== expected[i]))
      throw new Error(kind + ' read other bytes than arrayBuffer()');
  }
  const started = performance.now();
  const total = Math.ceil(file.size / SLICE);
  let next = 0;
  await Promise.all(
    buffers.map(async (buffer) => {
      while (next < file.size) {
        const at = next;
        next += SLICE;
        const end = Math.min(file.size, at + SLICE);
        if (kind) {
          const bytes = await readInto(kind, file.slice(at, end), buffer);
          if (bytes.byteLength !== end - at) throw new Error('short read at ' + at);
          if (kind === 'byob') buffer = new Uint8Array(bytes.buffer, bytes.byteOffset, SLICE);
        }
        if (!ws) continue;
        while (inFlight >= WINDOW) await wait();
        const header = new DataView(new ArrayBuffer(8));
        header.setBigUint64(0, BigInt(at));
        ws.send(new Blob([header, file.slice(at, end)]));
        inFlight++;
      }
    }),
  );
  if (ws) {
    while (acked < total) await wait();
    ws.close();
  }
  return (performance.now() - started) / 1000;
}

onmessage = async (event) => {
  const { file, mode, url } = event.data;
  try {
    const seconds = await run(file, mode, url);
    postMessage({ seconds, how });
  } catch (error) {
    postMessage({ error: String((error && error.stack) || error) });
  }
};
`;

/** Runs in the page: one page mode over the picked file; seconds. */
async function probePage([mode, name]: readonly [string, string]): Promise<number> {
  const file = document.querySelector<HTMLInputElement>('#file')!.files![0];
  const slice = 4 * 2 ** 20;
  const started = performance.now();
  if (mode === 'page-read') {
    let next = 0;
    // Two readers; no named local functions: tsx would wrap them in a helper the page lacks.
    await Promise.all(
      [0, 1].map(async () => {
        while (next < file.size) {
          const at = next;
          next += slice;
          await file.slice(at, Math.min(file.size, at + slice)).arrayBuffer();
        }
      }),
    );
    return (performance.now() - started) / 1000;
  }
  const ws = new WebSocket(`ws://${location.host}/ws-sink/${name}`);
  ws.binaryType = 'arraybuffer';
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  const total = Math.ceil(file.size / slice);
  let acked = 0;
  let inFlight = 0;
  let wake: (() => void) | undefined;
  ws.onmessage = () => {
    acked++;
    inFlight--;
    wake?.();
  };
  for (let at = 0; at < file.size; at += slice) {
    while (inFlight >= 8) await new Promise<void>((resolve) => (wake = resolve));
    const end = Math.min(file.size, at + slice);
    const header = new DataView(new ArrayBuffer(8));
    header.setBigUint64(0, BigInt(at));
    if (mode === 'page-wsBlob') ws.send(new Blob([header, file.slice(at, end)]));
    else {
      const bytes = new Uint8Array(await file.slice(at, end).arrayBuffer());
      if (mode === 'page-readThenBlob') ws.send(new Blob([header, file.slice(at, end)]));
      else {
        const frame = new Uint8Array(8 + bytes.byteLength);
        frame.set(new Uint8Array(header.buffer), 0);
        frame.set(bytes, 8);
        ws.send(frame);
      }
    }
    inFlight++;
  }
  while (acked < total) await new Promise<void>((resolve) => (wake = resolve));
  ws.close();
  return (performance.now() - started) / 1000;
}

/** Runs in the page: hands the picked file to a Worker running one worker mode; seconds and how. */
async function probeWorker([mode, name, source]: readonly [string, string, string]): Promise<{
  seconds: number;
  how: string;
}> {
  const file = document.querySelector<HTMLInputElement>('#file')!.files![0];
  const url = URL.createObjectURL(new Blob([source], { type: 'text/javascript' }));
  const worker = new Worker(url);
  try {
    return await new Promise((resolve, reject) => {
      worker.onmessage = (event: MessageEvent<{ seconds: number; how: string; error?: string }>) =>
        event.data.error ? reject(new Error(event.data.error)) : resolve(event.data);
      worker.onerror = (event) => reject(new Error(event.message));
      worker.postMessage({ file, mode, url: `ws://${location.host}/ws-sink/${name}` });
    });
  } finally {
    worker.terminate();
    URL.revokeObjectURL(url);
  }
}

const dir = await mkdtemp(join(os.tmpdir(), 'bench-probe-'));
const peerPage = join(dir, 'page');
await buildPage(repoRoot, peerPage, join(repoRoot, 'bench', 'browser'));
const peer = spawnPeer(repoRoot, join(repoRoot, 'bench', 'peers', 'browser-peer.ts'), [
  '--dir',
  join(dir, 'peer'),
  '--page',
  peerPage,
]);
const results = new Map<string, { mbps: number[]; cpu: number[]; how: Set<string> }>();
try {
  const listening = await peer.waitForMessage((m) => m.event === 'listening', 60_000);
  const source = await makeTestFile(dir, 'probe.bin', size);
  for (const engine of engines) {
    const executable = engine === 'firefox' ? findFirefox() : findChromium();
    if (!executable) throw new Error(`no ${engine} found`);
    const browser: BenchBrowser =
      engine === 'firefox'
        ? await launchFirefox(executable, 600_000)
        : await launchChromium(executable);
    try {
      for (let round = 0; round < rounds; round++) {
        for (const mode of round % 2 === 0 ? modes : [...modes].reverse()) {
          const page = await browser.newPage();
          try {
            await page.goto(`http://127.0.0.1:${Number(listening.port)}/`);
            await page.pickFile(['#file'], source);
            const sink = `${engine}-${mode.replace(/[^a-z0-9-]/gi, '_')}.bin`;
            const cpu0 = browser.cpuSeconds();
            const { seconds, how } = mode.startsWith('worker-')
              ? await page.evaluate(probeWorker, [mode, sink, WORKER_SOURCE] as const)
              : { seconds: await page.evaluate(probePage, [mode, sink] as const), how: '' };
            const cpu = browser.cpuSeconds() - cpu0;
            await fetch(`http://127.0.0.1:${Number(listening.port)}/close-sinks`, {
              method: 'POST',
            });
            const mbps = mbPerSecond(size, seconds);
            const key = `${engine}\t${mode}`;
            const row = results.get(key) ?? { mbps: [], cpu: [], how: new Set<string>() };
            row.mbps.push(mbps);
            row.cpu.push((cpu * 256 * MiB) / size);
            if (how) row.how.add(how);
            results.set(key, row);
            process.stdout.write(
              `${engine} round ${round + 1} ${mode}: ${mbps.toFixed(0)} MB/s, browser CPU ${cpu.toFixed(1)} s${how ? ` (${how})` : ''}\n`,
            );
          } finally {
            await page.close();
          }
        }
      }
    } finally {
      await browser.close();
    }
  }
  process.stdout.write(
    `\nmedians of ${rounds} rounds, ${size / MiB} MiB: engine | mode | MB/s (min-max) | browser CPU s per 256 MiB (min-max)\n`,
  );
  for (const [key, row] of results) {
    const [engine, mode] = key.split('\t');
    const range = (xs: number[], digits: number) =>
      `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}-${Math.max(...xs).toFixed(digits)})`;
    process.stdout.write(
      `| ${engine} | ${mode}${row.how.size ? ` [${[...row.how].join(', ')}]` : ''} | ${range(row.mbps, 0)} | ${range(row.cpu, 1)} |\n`,
    );
  }
} finally {
  await peer.stop();
  await rm(dir, { recursive: true, force: true });
}
