/** What machine a run was on: figures mean nothing without it. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

export interface MachineInfo {
  date: string;
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  os: string;
  /** Filesystem and device under the temp dir where contenders write. */
  disk: string;
  /** Load average at the start: other work on the machine makes absolute figures noisy. */
  loadAverage: string;
}

function diskOf(dir: string): string {
  try {
    // df prints a header line, then: source fstype size used avail use% target
    const out = execFileSync('df', ['-PTh', dir], { encoding: 'utf8' }).trim().split('\n')[1] ?? '';
    const [source, fstype, size, , avail] = out.split(/\s+/);
    let rotational = '';
    const dev = source?.startsWith('/dev/') ? source.slice(5).replace(/\d+$/, '') : '';
    if (dev) {
      try {
        rotational =
          readFileSync(`/sys/block/${dev}/queue/rotational`, 'utf8').trim() === '1'
            ? ', rotational'
            : ', non-rotational';
      } catch {
        // Virtual or partitioned devices may not expose it; leave it out rather than guess.
      }
    }
    return `${source} ${fstype} ${size} (${avail} free${rotational})`;
  } catch {
    return 'unknown';
  }
}

export function describeMachine(tmpDir = os.tmpdir()): MachineInfo {
  const cpus = os.cpus();
  return {
    date: new Date().toISOString(),
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? 'unknown',
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    disk: diskOf(tmpDir),
    loadAverage: os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' '),
  };
}

/** Machine-wide CPU time so far, from /proc/stat (undefined where there is none). */
export interface MachineCpu {
  busySeconds: number;
  atMs: number;
}

export function machineCpu(): MachineCpu | undefined {
  try {
    const first = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
    const ticks = first.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal ...: busy is everything but idle and iowait.
    const busy = ticks.reduce((a, b) => a + b, 0) - (ticks[3] ?? 0) - (ticks[4] ?? 0);
    return { busySeconds: busy / 100, atMs: performance.now() };
  } catch {
    return undefined;
  }
}

/**
 * Cores kept busy between two readings, all processes together (kernel threads included): near
 * the core count means the machine, not the protocol, set the pace of that run.
 */
export function busyCores(
  from: MachineCpu | undefined,
  to: MachineCpu | undefined,
): number | undefined {
  if (!from || !to || to.atMs <= from.atMs) return undefined;
  return (to.busySeconds - from.busySeconds) / ((to.atMs - from.atMs) / 1000);
}
