/**
 * Loopback sweep of `big-uploader send` against `big-uploader serve` (separate processes), to pick
 * the client defaults. Run: npx tsx test/client/measure/sweep.ts [sizeMiB] [runs]
 * Method as in docs/measurements.md: random file, page cache warmed and 2 GiB written+deleted
 * before each run (this VM is slow to hand out idle pages), server window set large so the
 * client's --window is what varies; MB/s from send --json (open to RESULT); median of runs.
 * Prints a markdown table. Not a test: speed is never asserted.
 */
import { spawnSync } from 'node:child_process';
import { WsTransport, createUploader } from '../../../client/node/index.js';
import { randomFillSync } from 'node:crypto';
import {
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeSync,
  closeSync,
  unlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startChildServer } from '../../helpers/server.js';

const MiB = 1024 * 1024;
const sizeMiB = Number(process.argv[2] ?? 1024);
const runs = Number(process.argv[3] ?? 3);
const work = mkdtempSync(join(tmpdir(), 'bigup-sweep-'));
const file = join(work, 'src.bin');

function writeRandom(path: string, bytes: number): void {
  const fd = openSync(path, 'w');
  const block = new Uint8Array(16 * MiB);
  for (let done = 0; done < bytes; done += block.byteLength) {
    randomFillSync(block);
    writeSync(fd, block, 0, Math.min(block.byteLength, bytes - done));
  }
  closeSync(fd);
}

function prepare(): void {
  readFileSync(file); // page cache
  const scratch = join(work, 'scratch.bin');
  const fd = openSync(scratch, 'w');
  const zeros = new Uint8Array(64 * MiB);
  for (let i = 0; i < 32; i++) writeSync(fd, zeros);
  closeSync(fd);
  unlinkSync(scratch);
}

interface Sample {
  MBps: number;
  cpu: number;
}

async function once(
  url: string,
  chunkMiB: number,
  windowMiB: number,
  bufferedMiB: number | undefined,
  zeroMask: boolean,
): Promise<Sample> {
  const uploader = await createUploader({
    endpoint: url,
    file,
    resumeStore: false,
    transport: new WsTransport({ zeroMask }),
    chunkSize: chunkMiB * MiB,
    maxInFlightBytes: windowMiB * MiB,
    ...(bufferedMiB ? { maxBufferedBytes: bufferedMiB * MiB } : {}),
  });
  const cpu0 = process.cpuUsage();
  const outcome = await uploader.start();
  const cpu = process.cpuUsage(cpu0);
  if (outcome.state !== 'done') throw new Error(`upload ${outcome.state}`);
  const r = outcome.result;
  return {
    MBps: r.size / (r.durationMs / 1000) / 1e6,
    cpu: (cpu.user + cpu.system) / 1e6 / (sizeMiB / 1024),
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

writeRandom(file, sizeMiB * MiB);
const dataDir = join(work, 'data');
const server = await startChildServer([
  '--dir',
  dataDir,
  '--window',
  '64MiB',
  '--max-chunk-size',
  '16MiB',
  '--min-throughput',
  '0',
]);
const target = process.argv[4]; // optional ws URL of another server (e.g. measure/sink.ts)
const configs: Array<{
  label: string;
  chunk: number;
  window: number;
  buffered?: number;
  zeroMask: boolean;
}> = [];
for (const chunk of [1, 4]) {
  for (const window of [16, 32, 64]) {
    configs.push({
      label: `${chunk} MiB chunks, ${window} MiB window, bufferedAmount cap 8 MiB`,
      chunk,
      window,
      buffered: 8,
      zeroMask: true,
    });
    configs.push({
      label: `${chunk} MiB chunks, ${window} MiB window, bufferedAmount cap = window`,
      chunk,
      window,
      buffered: window,
      zeroMask: true,
    });
  }
}
configs.push({
  label: '4 MiB chunks, 16 MiB window, default cap, browser-style random mask',
  chunk: 4,
  window: 16,
  zeroMask: false,
});
console.log(
  `| ${sizeMiB} MiB file, ${runs} runs, ${target ?? 'big-uploader serve'} | MB/s median (min-max) | client CPU s/GiB |`,
);
console.log('|---|---|---|');
try {
  for (const c of configs) {
    const samples: Sample[] = [];
    for (let i = 0; i < runs; i++) {
      prepare();
      samples.push(await once(target ?? server.wsUrl, c.chunk, c.window, c.buffered, c.zeroMask));
      rmSync(join(dataDir, 'files'), { recursive: true, force: true });
      spawnSync('sync');
    }
    const mbps = samples.map((s) => s.MBps);
    console.log(
      `| ${c.label} | ${median(mbps).toFixed(0)} (${Math.min(...mbps).toFixed(0)}-${Math.max(...mbps).toFixed(0)}) | ${median(samples.map((s) => s.cpu)).toFixed(2)} |`,
    );
  }
} finally {
  server.kill('SIGTERM');
  await server.exited;
  rmSync(work, { recursive: true, force: true });
}
