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
        rotational = readFileSync(`/sys/block/${dev}/queue/rotational`, 'utf8').trim() === '1' ? ', rotational' : ', non-rotational';
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
    loadAverage: os.loadavg().map((l) => l.toFixed(2)).join(' '),
  };
}
