/**
 * Driving our own product as a user would: the server through its CLI, started with the node
 * flags `npm start` and the bin use (server/node-flags.ts); the client either through `send`
 * (scenarios) or as the client core in a gated peer (the main table, bench/peers/bigup-client.ts):
 *   server: `big-uploader serve --port P --dir D [--durable]`
 *   client: `big-uploader send FILE... --url ws://127.0.0.1:P/upload --json [flags]`
 *           exits when the server's final reply arrived; --json prints, per file,
 *           {id, name, size, bytesSent, bytesSkipped, seconds, MBps, digest}
 *   stored: <dir>/files/<id>/<name> (found by size under <dir> if the layout differs).
 */
import { mkdir } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { basename, join } from 'node:path';
import { BenchChild } from './proc.js';
import { findFilesOfSize } from './files.js';
import { SERVER_NODE_ENV, SERVER_NODE_FLAGS } from '../server/node-flags.js';

/** Raised when a subcommand is still a stub, so the bench can say "not available yet" instead of "failed". */
export class NotAvailable extends Error {
  override readonly name = 'NotAvailable';
}

const NOT_IMPLEMENTED = /not implemented/i;

/** One per-file record of `send --json`. Fields are optional: the bench copes with a partial record. */
export interface SendRecord {
  id?: string;
  name?: string;
  size?: number;
  bytesSent?: number;
  bytesSkipped?: number;
  seconds?: number;
  MBps?: number;
  digest?: string;
  firstAckSeconds?: number;
  /** Last ack to the server's RESULT (cli/send.ts FileReport). */
  completionSeconds?: number;
  [key: string]: unknown;
}

/** A free TCP port on 127.0.0.1 (the server CLI takes a port, not 0; the race window is tiny). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const address = s.address();
      const port = address !== null && typeof address === 'object' ? address.port : 0;
      s.close(() => resolve(port));
    });
  });
}

async function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function cliArgs(repoRoot: string, args: string[]): string[] {
  // As `npm start` and the bin's shebang run it (server/node-flags.ts).
  const flags = args[0] === 'serve' ? SERVER_NODE_FLAGS : [];
  return [...flags, join(repoRoot, 'bin', 'big-uploader.js'), ...args];
}

/** A started product server. */
export interface ProductServer {
  child: BenchChild;
  port: number;
  dir: string;
  url: string;
}

/** Start `serve` and wait until it accepts TCP connections. Throws NotAvailable for a stub. */
export async function startServer(
  repoRoot: string,
  dir: string,
  extraArgs: string[] = [],
  timeoutMs = 30_000,
  /** Added to the environment (e.g. the AWS credentials of --store s3://). */
  env: NodeJS.ProcessEnv = {},
): Promise<ProductServer> {
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const child = new BenchChild(
    process.execPath,
    cliArgs(repoRoot, ['serve', '--port', String(port), '--dir', dir, ...extraArgs]),
    {
      cwd: dir,
      // As the bin's shebang and npm start set them (server/node-flags.ts).
      env: { ...process.env, ...SERVER_NODE_ENV, ...env },
    },
  );
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.hasExited) {
      const text = `${child.stderr}\n${child.stdoutLines.join('\n')}`.trim();
      if (NOT_IMPLEMENTED.test(text)) throw new NotAvailable(text.split('\n')[0]);
      throw new Error(`serve exited before listening: ${text.slice(-600)}`);
    }
    if (await canConnect(port)) return { child, port, dir, url: `ws://127.0.0.1:${port}/upload` };
    await new Promise((r) => setTimeout(r, 100));
  }
  await child.stop();
  throw new Error(
    `serve did not listen on ${port} within ${timeoutMs} ms: ${child.stderr.slice(-600)}`,
  );
}

/** Pull the per-file records out of `send --json` output: one JSON document, an array, or JSON lines. */
export function parseSendOutput(stdout: string): SendRecord[] {
  const isRecord = (v: unknown): v is SendRecord =>
    typeof v === 'object' && v !== null && !Array.isArray(v);
  const collect = (v: unknown): SendRecord[] => {
    if (Array.isArray(v)) return v.filter(isRecord);
    if (isRecord(v)) {
      // Accept a wrapper such as {files:[...]} as well as a bare record.
      for (const key of ['files', 'results', 'uploads'])
        if (Array.isArray(v[key])) return (v[key] as unknown[]).filter(isRecord);
      return [v];
    }
    return [];
  };
  const text = stdout.trim();
  if (!text) return [];
  try {
    return collect(JSON.parse(text));
  } catch {
    const records: SendRecord[] = [];
    for (const line of text.split('\n')) {
      const t = line.trim();
      if (!t.startsWith('{') && !t.startsWith('[')) continue;
      try {
        records.push(...collect(JSON.parse(t)));
      } catch {
        // progress or log lines are not ours to parse
      }
    }
    return records;
  }
}

export interface SendResult {
  child: BenchChild;
  records: SendRecord[];
  wallSeconds: number;
  /** performance.now() when the process ended: with the reported seconds, places the upload in time. */
  endedAtMs: number;
  code: number | null;
}

/**
 * Run `send` to completion. The client gets its own HOME and cwd so a resume store left by an
 * earlier run (same file, another server) can never turn a run into a no-op.
 */
export async function runSend(
  repoRoot: string,
  files: string[],
  url: string,
  stateDir: string,
  extraArgs: string[] = [],
  timeoutMs = 600_000,
  onStart?: (child: BenchChild) => void,
): Promise<SendResult> {
  await mkdir(stateDir, { recursive: true });
  const env = {
    ...process.env,
    HOME: stateDir,
    XDG_STATE_HOME: stateDir,
    XDG_CONFIG_HOME: stateDir,
    XDG_CACHE_HOME: stateDir,
  };
  const t0 = performance.now();
  const child = new BenchChild(
    process.execPath,
    cliArgs(repoRoot, ['send', ...files, '--url', url, '--json', ...extraArgs]),
    { cwd: stateDir, env },
  );
  onStart?.(child);
  const exit = await child.waitForExit(timeoutMs);
  const endedAtMs = performance.now();
  const wallSeconds = (endedAtMs - t0) / 1000;
  const text = `${child.stderr}\n${child.stdoutLines.join('\n')}`;
  if (exit.code !== 0 && NOT_IMPLEMENTED.test(text))
    throw new NotAvailable(text.trim().split('\n')[0]);
  if (exit.timedOut) throw new Error(`send did not finish within ${timeoutMs} ms`);
  return {
    child,
    records: parseSendOutput(child.stdoutLines.join('\n')),
    wallSeconds,
    endedAtMs,
    code: exit.code,
  };
}

/** Where the server stored a completed upload: the documented layout first, else a file of that size. */
export async function locateStored(
  dir: string,
  record: SendRecord | undefined,
  source: string,
  size: number,
): Promise<string | undefined> {
  const name = record?.name ?? basename(source);
  if (record?.id) {
    const documented = join(dir, 'files', record.id, name);
    if ((await findFilesOfSize(join(dir, 'files', record.id), size, 0)).includes(documented))
      return documented;
  }
  const candidates = await findFilesOfSize(dir, size);
  return candidates.find((p) => basename(p) === name) ?? candidates[0];
}

/** The subcommand's --help text (empty if it fails): used to see which tuning flags exist. */
export async function helpText(repoRoot: string, command: string): Promise<string> {
  const child = new BenchChild(process.execPath, cliArgs(repoRoot, [command, '--help']), {
    cwd: repoRoot,
  });
  await child.waitForExit(30_000);
  return `${child.stdoutLines.join('\n')}\n${child.stderr}`;
}
