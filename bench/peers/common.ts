/**
 * What every bench peer shares: how it talks to the harness (one JSON object per stdout line) and
 * what it reports about itself. Peers are tiny programs run in their own Node process, so the
 * harness can measure each side separately, as a real deployment would run them.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

/** Print one message for the harness. */
export function emit(message: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

/** Snapshot of this process's CPU, to report the CPU of a timed section only. */
export function cpuNow(): NodeJS.CpuUsage {
  return process.cpuUsage();
}

/** CPU seconds (user + system) since `start`, and the process's peak RSS in bytes. */
export function selfUsage(start: NodeJS.CpuUsage): { cpuSeconds: number; peakRssBytes: number } {
  const d = process.cpuUsage(start);
  // resourceUsage().maxRSS is in KiB on Linux.
  return {
    cpuSeconds: (d.user + d.system) / 1e6,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
  };
}

/** Report a failure the harness will show, then exit non-zero. */
export function fail(error: unknown): never {
  const message = error instanceof Error ? error.message : String(error);
  emit({ event: 'error', message });
  process.exit(1);
}

/** Parse a required positive integer option. */
export function intOption(value: string | undefined, name: string, fallback?: number): number {
  if (value === undefined) {
    if (fallback === undefined) fail(`missing --${name}`);
    return fallback;
  }
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) fail(`--${name}: not a non-negative integer: ${value}`);
  return n;
}

/** Parse a required string option. */
export function stringOption(value: string | undefined, name: string): string {
  if (value === undefined || value === '') fail(`missing --${name}`);
  return value;
}

/**
 * When the harness asks for it (BENCH_GATE=1), say "ready" once loaded and wait for a line on
 * stdin before starting the timed transfer. The harness warms the page cache in that pause: this
 * VM hands out memory pages slowly once they sat idle for a second or two, so a client that spends
 * longer starting up would otherwise meet colder pages and measure the VM, not the contender.
 */
export async function startGate(): Promise<void> {
  if (process.env.BENCH_GATE !== '1') return;
  emit({ event: 'ready' });
  await new Promise<void>((resolve) => {
    process.stdin.once('data', () => {
      process.stdin.pause();
      resolve();
    });
  });
}

/** Serve a @tus/server (or any request handler) on a free 127.0.0.1 port and report the port. */
export function serveAndReport(
  handle: (req: IncomingMessage, res: ServerResponse) => Promise<void>,
): void {
  const http = createServer((req, res) => {
    handle(req, res).catch(fail);
  });
  http.listen(0, '127.0.0.1', () => {
    const address = http.address();
    if (address === null || typeof address === 'string') fail('no TCP address');
    emit({ event: 'listening', port: address.port });
  });
}
