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
 *   - `worker-send`: the ceiling's send alone, from the Worker;
 * and over HTTP (modes `*fetch*`, 8 MiB slices, 4 PUTs in flight to the peer's `/sink/`, as the
 * fetch ceiling of the browser scenario and the component's HTTP transport do), in the Worker or
 * (`page-*`) on the page's main thread, `<read>+<send>`:
 *   - read: none, `byob` (as above, one reused buffer per PUT in flight), `ab`
 *     (`slice.arrayBuffer()`), or `clone` (a Request built with the Blob slice as its body, its
 *     `clone()` read with `arrayBuffer()` while the original is sent);
 *   - send: `fetch` (the Blob slice: the ceiling when nothing is read, the component's way after a
 *     read), `fetchBytes` (the bytes read as the body: one read of each byte), `fetchBlob`
 *     (`new Blob([bytes read])`), `fetchStream` (a ReadableStream of the bytes read, `duplex:
 *     'half'`: Chromium 156 streams request bodies only over HTTP/2 or QUIC; to the HTTP/1.1 sink
 *     it fails with net::ERR_ALPN_NEGOTIATION_FAILED, "Failed to fetch" in the page), `xhr` (the
 *     Blob slice through XMLHttpRequest, as tus-js-client sends) and `xhrBytes` (the bytes read).
 * Engines: `chromium` and `firefox` are the browser scenario's drivers; `chromium-bare` is
 * Chromium over its DevTools pipe with no Network domain and no Worker attached (as a user's
 * browser runs). Under Playwright (which enables the Network domain in every page and Worker) a
 * PUT with a bytes body cost ~12x the Chromium CPU it costs bare (5 against 52-65 MB/s), most
 * likely the body copied into DevTools' request events; Blob-slice PUTs and WebSocket sends cost
 * the same either way (2026-12-04, 256 MiB).
 * Every sink file is compared with the source byte for byte after its run (untimed), then deleted.
 * A mode that fails prints its error and the run goes on.
 * Timed inside the page or Worker; browser CPU from /proc around each mode. Not part of `npm run
 * bench`: a look at one engine's costs, run by hand:
 *   node --import tsx bench/browser-probe.ts [--mib 256] [--engines chromium,chromium-bare,firefox]
 *     [--rounds 2] [--modes worker-ab2,worker-ab2+send,...] (default: every mode; --help lists them)
 * Prints each round, then per engine and mode the median MB/s and browser CPU per 256 MiB.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { compareFiles } from './files.js';
import { spawnPeer } from './proc.js';
import {
  buildPage,
  findChromium,
  findFirefox,
  launchChromium,
  launchFirefox,
  type BenchBrowser,
} from './scenarios/browser.js';
import { launchChromiumBare } from './scenarios/chromium-bare.js';
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
const FETCH_MODES = [
  'worker-fetch',
  'worker-byob+fetch',
  'worker-byob+fetchBytes',
  'worker-ab+fetchBytes',
  'worker-byob+fetchBlob',
  'worker-clone+fetch',
  'worker-byob+fetchStream',
  'page-fetch',
  'page-byob+fetchBytes',
  'page-ab+fetchBytes',
  'worker-xhr',
  'worker-byob+xhr',
  'worker-byob+xhrBytes',
  'page-xhr',
];
const ALL_MODES: string[] = [...PAGE_MODES, ...WORKER_MODES, ...FETCH_MODES];
const isFetchMode = (mode: string): boolean => /fetch|xhr/i.test(mode);

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
      let ended = false;
      while (filled < length) {
        const { done, value } = await reader.read(
          new Uint8Array(view.buffer, view.byteOffset + filled, length - filled),
        );
        if ((ended = done)) break;
        view = new Uint8Array(value.buffer, value.byteOffset - filled, length);
        filled += value.byteLength;
      }
      // As the component does: a stream left open after its last byte holds the file's reader.
      if (!ended) await reader.cancel();
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

// Untimed check that this way of reading returns the bytes arrayBuffer() does.
async function checkRead(kind, file, sliceSize) {
  const blob = file.slice(0, Math.min(file.size, sliceSize));
  const expected = new Uint8Array(await blob.arrayBuffer());
  const got = await readInto(kind, blob, new Uint8Array(sliceSize));
  if (got.byteLength !== expected.byteLength || got.some((b, i) => b !== expected[i]))
    throw new Error(kind + ' read other bytes than arrayBuffer()');
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
  if (kind && kind !== 'ab') await checkRead(kind, file, SLICE);
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

const FETCH_SLICE = 8 * 1024 * 1024;
const PUTS_IN_FLIGHT = 4;

// (worker|page)-[<read>+]<send>: see the file's comment. sinkUrl: absolute (a Blob-URL Worker
// resolves nothing relative).
async function runFetch(file, mode, sinkUrl) {
  const [, read, send] = /^[a-z]+-(?:([a-z]+)\+)?([a-zA-Z]+)$/.exec(mode);
  if (read === 'byob' || read === 'stream') await checkRead(read, file, FETCH_SLICE);
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: PUTS_IN_FLIGHT }, async () => {
      let buffer = new Uint8Array(FETCH_SLICE);
      while (next < file.size) {
        const at = next;
        next += FETCH_SLICE;
        const end = Math.min(file.size, at + FETCH_SLICE);
        const slice = file.slice(at, end);
        const target = sinkUrl + '?offset=' + at;
        let bytes;
        let response;
        if (read === 'clone') {
          if (send !== 'fetch') throw new Error('clone reads a Request made to send the Blob slice');
          const request = new Request(target, { method: 'PUT', body: slice });
          bytes = new Uint8Array(await request.clone().arrayBuffer());
          if (bytes.byteLength !== end - at) throw new Error('short read at ' + at);
          response = await fetch(request);
        } else {
          if (read === 'ab') bytes = new Uint8Array(await slice.arrayBuffer());
          else if (read) {
            bytes = await readInto(read, slice, buffer);
            buffer = new Uint8Array(bytes.buffer, bytes.byteOffset, FETCH_SLICE);
          }
          if (read && bytes.byteLength !== end - at) throw new Error('short read at ' + at);
          let body;
          const init = { method: 'PUT' };
          if (send === 'xhr' || send === 'xhrBytes') {
            if (send === 'xhrBytes' && !bytes) throw new Error(send + ' sends bytes read: name a read');
            // tus-js-client's way in a browser: XMLHttpRequest, not fetch.
            response = await new Promise((resolve, reject) => {
              const xhr = new XMLHttpRequest();
              xhr.open('PUT', target);
              xhr.onload = () =>
                resolve({ ok: xhr.status >= 200 && xhr.status < 300, status: xhr.status, arrayBuffer: async () => undefined });
              xhr.onerror = () => reject(new Error('XHR PUT at ' + at + ' failed'));
              xhr.send(send === 'xhr' ? slice : bytes);
            });
          } else if (send === 'fetch') body = slice;
          else if (!bytes) throw new Error(send + ' sends bytes read: name a read');
          else if (send === 'fetchBytes') body = bytes;
          else if (send === 'fetchBlob') body = new Blob([bytes]);
          else if (send === 'fetchStream') {
            // A copy: the read buffer is reused while the stream may still be read.
            const copy = bytes.slice();
            body = new ReadableStream({
              start(controller) {
                controller.enqueue(copy);
                controller.close();
              },
            });
            init.duplex = 'half';
          } else throw new Error('unknown send ' + send);
          if (!response) {
            init.body = body;
            response = await fetch(target, init);
          }
        }
        if (!response.ok) throw new Error('PUT at ' + at + ': HTTP ' + response.status);
        await response.arrayBuffer();
      }
    }),
  );
  return (performance.now() - started) / 1000;
}

async function runMode(file, mode, url, sinkUrl) {
  return /fetch|xhr/i.test(mode) ? runFetch(file, mode, sinkUrl) : run(file, mode, url);
}

// In a Worker only: the page evaluates this text for its own fetch modes and calls runFetch.
if (typeof importScripts === 'function')
  onmessage = async (event) => {
    const { file, mode, url, sinkUrl } = event.data;
    try {
      const seconds = await runMode(file, mode, url, sinkUrl);
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

/** Runs in the page: one fetch mode on the page's main thread, with the Worker's code; seconds. */
async function probePageFetch([mode, name, source]: readonly [string, string, string]): Promise<{
  seconds: number;
  how: string;
}> {
  const file = document.querySelector<HTMLInputElement>('#file')!.files![0];
  // eslint-disable-next-line @typescript-eslint/no-implied-eval -- the probe's own Worker code
  const load = new Function(`${source}\nreturn { runFetch, how: () => how };`) as () => {
    runFetch(file: File, mode: string, sinkUrl: string): Promise<number>;
    how(): string;
  };
  const probe = load();
  const seconds = await probe.runFetch(file, mode, `${location.origin}/sink/${name}`);
  return { seconds, how: probe.how() };
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
      worker.postMessage({
        file,
        mode,
        url: `ws://${location.host}/ws-sink/${name}`,
        sinkUrl: `${location.origin}/sink/${name}`,
      });
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
const results = new Map<
  string,
  { mbps: number[]; cpu: number[]; how: Set<string>; errors: string[] }
>();
try {
  const listening = await peer.waitForMessage((m) => m.event === 'listening', 60_000);
  const closeSinks = async (): Promise<void> => {
    await fetch(`http://127.0.0.1:${Number(listening.port)}/close-sinks`, { method: 'POST' });
  };
  const source = await makeTestFile(dir, 'probe.bin', size);
  for (const engine of engines) {
    const executable = engine === 'firefox' ? findFirefox() : findChromium();
    if (!executable) throw new Error(`no ${engine} found`);
    const browser: BenchBrowser =
      engine === 'firefox'
        ? await launchFirefox(executable, 600_000)
        : engine === 'chromium-bare'
          ? await launchChromiumBare(executable)
          : await launchChromium(executable);
    try {
      for (let round = 0; round < rounds; round++) {
        for (const mode of round % 2 === 0 ? modes : [...modes].reverse()) {
          const page = await browser.newPage();
          try {
            await page.goto(`http://127.0.0.1:${Number(listening.port)}/`);
            await page.pickFile(['#file'], source);
            const sink = `${engine}-${mode.replace(/[^a-z0-9-]/gi, '_')}.bin`;
            const sinkPath = join(dir, 'peer', 'sink', sink);
            const key = `${engine}\t${mode}`;
            const row = results.get(key) ?? {
              mbps: [],
              cpu: [],
              how: new Set<string>(),
              errors: [],
            };
            results.set(key, row);
            const cpu0 = browser.cpuSeconds();
            try {
              const { seconds, how } = isFetchMode(mode)
                ? await page.evaluate(mode.startsWith('worker-') ? probeWorker : probePageFetch, [
                    mode,
                    sink,
                    WORKER_SOURCE,
                  ] as const)
                : mode.startsWith('worker-')
                  ? await page.evaluate(probeWorker, [mode, sink, WORKER_SOURCE] as const)
                  : { seconds: await page.evaluate(probePage, [mode, sink] as const), how: '' };
              const cpu = browser.cpuSeconds() - cpu0;
              await closeSinks();
              // Untimed: what the sink stored is the file (modes that send anything).
              if (existsSync(sinkPath)) {
                const check = await compareFiles(source, sinkPath);
                if (!check.identical) throw new Error(`sink file differs: ${check.reason}`);
              }
              const mbps = mbPerSecond(size, seconds);
              row.mbps.push(mbps);
              row.cpu.push((cpu * 256 * MiB) / size);
              if (how) row.how.add(how);
              process.stdout.write(
                `${engine} round ${round + 1} ${mode}: ${mbps.toFixed(0)} MB/s, browser CPU ${cpu.toFixed(1)} s${how ? ` (${how})` : ''}\n`,
              );
            } catch (error) {
              await closeSinks();
              const text = (error instanceof Error ? error.message : String(error)).split('\n')[0];
              row.errors.push(text);
              process.stdout.write(`${engine} round ${round + 1} ${mode}: FAILED ${text}\n`);
            } finally {
              await rm(sinkPath, { force: true });
            }
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
    const failed = row.errors.length > 0 ? ` | failed ${row.errors.length}x: ${row.errors[0]}` : '';
    process.stdout.write(
      row.mbps.length === 0
        ? `| ${engine} | ${mode}${failed} |\n`
        : `| ${engine} | ${mode}${row.how.size ? ` [${[...row.how].join(', ')}]` : ''} | ${range(row.mbps, 0)} | ${range(row.cpu, 1)} |${failed}\n`,
    );
  }
} finally {
  await peer.stop();
  await rm(dir, { recursive: true, force: true });
}
