/**
 * Child processes for the bench: spawn, read their one-JSON-object-per-line stdout, and sample
 * their CPU and memory from /proc. Sampling from outside is what lets us measure processes whose
 * code we do not control (our own CLI is measured exactly like a peer), and reading /proc right
 * before and after the timed section keeps start-up (tsx compiling TypeScript) out of CPU figures.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

/** One reading of a live process. CPU is cumulative since the process started. */
export interface ProcSample {
  userSeconds: number;
  sysSeconds: number;
  /** VmRSS: resident now. */
  rssBytes: number;
  /** VmHWM: the kernel's own peak-resident mark, so short spikes between samples are not missed. */
  peakRssBytes: number;
}

let clockTicks: number | undefined;
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100; // the Linux default on every architecture we run on
    }
  }
  return clockTicks;
}

/** Read /proc/<pid>/stat and status. Undefined once the process is gone (or not on Linux). */
export function readProc(pid: number): ProcSample | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // A process that is exiting has no memory map left and no Vm* lines: keep the previous sample.
    if (!/^VmHWM:/m.test(status)) return undefined;
    const hz = ticksPerSecond();
    const kib = (key: string): number => {
      const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status);
      return m ? Number(m[1]) * 1024 : 0;
    };
    return {
      // fields[0] is field 3 (state); utime and stime are fields 14 and 15, summed over all threads.
      userSeconds: Number(fields[11]) / hz,
      sysSeconds: Number(fields[12]) / hz,
      rssBytes: kib('VmRSS'),
      peakRssBytes: kib('VmHWM'),
    };
  } catch {
    return undefined;
  }
}

/** A JSON line a bench child printed on stdout. */
export type ChildMessage = Record<string, unknown>;

export interface SpawnOptions {
  cwd: string;
  env?: NodeJS.ProcessEnv;
  /** How often to sample /proc while the child runs (ms). */
  sampleMs?: number;
}

/** A running child with its messages, its last /proc sample and its exit. */
export class BenchChild {
  readonly messages: ChildMessage[] = [];
  readonly stdoutLines: string[] = [];
  stderr = '';
  /** Last successful sample; kept after exit so a child that ends by itself still has figures. */
  lastSample: ProcSample | undefined;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly child: ChildProcess;
  private readonly timer: NodeJS.Timeout;
  private waiters: Array<() => void> = [];
  private done = false;

  constructor(command: string, args: string[], options: SpawnOptions) {
    this.child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    // Only gated peers read stdin; an unread pipe costs nothing, and EPIPE after exit is harmless.
    this.child.stdin!.on('error', () => undefined);
    const lines = createInterface({ input: this.child.stdout! });
    lines.on('line', (line) => {
      // Bounded: a chatty child cannot grow the harness without limit.
      if (this.stdoutLines.length < 10_000) this.stdoutLines.push(line);
      const trimmed = line.trim();
      if (trimmed.startsWith('{')) {
        try {
          this.messages.push(JSON.parse(trimmed) as ChildMessage);
        } catch {
          // Not every line starting with "{" is ours (pretty-printed JSON spans lines): keep the text only.
        }
      }
      this.notify();
    });
    this.child.stderr!.on('data', (chunk: Buffer) => {
      if (this.stderr.length < 64 * 1024) this.stderr += chunk.toString('utf8');
      this.notify();
    });
    this.timer = setInterval(() => this.sample(), options.sampleMs ?? 100);
    this.timer.unref();
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.done = true;
        clearInterval(this.timer);
        resolve({ code, signal });
        this.notify();
      });
      this.child.on('error', (error) => {
        this.stderr += `\nspawn error: ${error.message}`;
        this.done = true;
        clearInterval(this.timer);
        resolve({ code: null, signal: null });
        this.notify();
      });
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get hasExited(): boolean {
    return this.done;
  }

  /** Take a sample now (and remember it). */
  sample(): ProcSample | undefined {
    const s = this.child.pid === undefined ? undefined : readProc(this.child.pid);
    if (s) this.lastSample = s;
    return s;
  }

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** Wait for the first message matching `match`; rejects on exit or timeout with the child's stderr. */
  async waitForMessage(
    match: (m: ChildMessage) => boolean,
    timeoutMs: number,
  ): Promise<ChildMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.find(match);
      if (found) return found;
      if (this.done)
        throw new Error(
          `child exited before the expected message; stderr: ${this.stderr.trim().slice(-800)}`,
        );
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(
          `timed out after ${timeoutMs} ms waiting for the child; stderr: ${this.stderr.trim().slice(-800)}`,
        );
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 1000));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Wait for exit, killing the child if it outlives `timeoutMs`. */
  async waitForExit(
    timeoutMs: number,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null; timedOut: boolean }> {
    let timedOut = false;
    const t = setTimeout(() => {
      timedOut = true;
      this.child.kill('SIGKILL');
    }, timeoutMs);
    const result = await this.exited;
    clearTimeout(t);
    return { ...result, timedOut };
  }

  /** SIGTERM, then SIGKILL if the child does not leave within `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    if (this.done) return;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(t);
  }

  /** Send one line to the child's stdin (the start gate's "go"). */
  writeLine(line: string): void {
    if (!this.done) this.child.stdin!.write(`${line}\n`);
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (!this.done) this.child.kill(signal);
  }
}

/** Run one of the bench's own TypeScript peers (bench/peers/*.ts) under tsx in its own Node process. */
export function spawnPeer(
  repoRoot: string,
  script: string,
  args: string[],
  env?: NodeJS.ProcessEnv,
): BenchChild {
  return new BenchChild(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
  });
}

/**
 * Start a gated client peer: wait until it has loaded, warm the page cache, then let it go. Every
 * contender's transfer thus starts the same few milliseconds after the same warm-up.
 */
export async function spawnGatedClient(
  repoRoot: string,
  script: string,
  args: string[],
  warm: () => Promise<void>,
  env?: NodeJS.ProcessEnv,
): Promise<BenchChild> {
  const client = spawnPeer(repoRoot, script, args, { ...env, BENCH_GATE: '1' });
  const first = await client.waitForMessage(
    (m) => m.event === 'ready' || m.event === 'error' || m.event === 'result',
    60_000,
  );
  if (first.event === 'ready') {
    await warm();
    client.writeLine('go');
  }
  return client;
}
