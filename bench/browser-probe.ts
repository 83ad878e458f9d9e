/**
 * Where a browser spends an upload's time, engine by engine: in one headless Chromium and one
 * headless Firefox ESR (the drivers of the browser scenario), on the browser scenario's peer page
 * and sinks, a file picked through its input is
 *   - read: `slice().arrayBuffer()` of 4 MiB slices, 2 at a time (what the component does to hash),
 *   - sent as the WebSocket ceiling does (Blob([header, slice]) frames, 8 unacked, no read),
 *   - read, then sent as the component does (the slice read for the hash, then sent as a Blob slice),
 *   - read, then sent as the bytes read (one ArrayBuffer frame, no second read),
 * each on the page's main thread, timed in the page. Not part of `npm run bench`: a look at one
 * engine's costs, run by hand:
 *   node --import tsx bench/browser-probe.ts [--mib 256] [--engines chromium,firefox] [--rounds 2]
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
import { mbPerSecond } from './stats.js';
import { makeFile as makeTestFile } from '../test/browser/harness.js';

const MiB = 2 ** 20;
const { values } = parseArgs({
  options: {
    mib: { type: 'string' },
    engines: { type: 'string' },
    rounds: { type: 'string' },
  },
});
const size = Number(values.mib ?? 256) * MiB;
const rounds = Number(values.rounds ?? 2);
const engines = (values.engines ?? 'chromium,firefox').split(',');
const repoRoot = fileURLToPath(new URL('..', import.meta.url));

type Mode = 'read' | 'wsBlob' | 'readThenBlob' | 'readThenBytes';
const MODES: Mode[] = ['read', 'wsBlob', 'readThenBlob', 'readThenBytes'];

/** Runs in the page: one mode over the picked file; seconds. */
async function probe([mode, name]: readonly [Mode, string]): Promise<number> {
  const file = document.querySelector<HTMLInputElement>('#file')!.files![0];
  const slice = 4 * 2 ** 20;
  const started = performance.now();
  if (mode === 'read') {
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
    if (mode === 'wsBlob') ws.send(new Blob([header, file.slice(at, end)]));
    else {
      const bytes = new Uint8Array(await file.slice(at, end).arrayBuffer());
      if (mode === 'readThenBlob') ws.send(new Blob([header, file.slice(at, end)]));
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

const dir = await mkdtemp(join(os.tmpdir(), 'bench-probe-'));
const peerPage = join(dir, 'page');
await buildPage(repoRoot, peerPage, join(repoRoot, 'bench', 'browser'));
const peer = spawnPeer(repoRoot, join(repoRoot, 'bench', 'peers', 'browser-peer.ts'), [
  '--dir',
  join(dir, 'peer'),
  '--page',
  peerPage,
]);
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
        for (const mode of round % 2 === 0 ? MODES : [...MODES].reverse()) {
          const page = await browser.newPage();
          try {
            await page.goto(`http://127.0.0.1:${Number(listening.port)}/`);
            await page.pickFile(['#file'], source);
            const cpu0 = browser.cpuSeconds();
            const seconds = await page.evaluate(probe, [mode, `${engine}-${mode}.bin`] as const);
            const cpu = browser.cpuSeconds() - cpu0;
            await fetch(`http://127.0.0.1:${Number(listening.port)}/close-sinks`, {
              method: 'POST',
            });
            process.stdout.write(
              `${engine} round ${round + 1} ${mode}: ${mbPerSecond(size, seconds).toFixed(0)} MB/s, browser CPU ${cpu.toFixed(1)} s\n`,
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
} finally {
  await peer.stop();
  await rm(dir, { recursive: true, force: true });
}
