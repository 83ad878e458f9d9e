/**
 * A server whose data directory is a small tmpfs, for the full-disk cases fault injection cannot
 * show (a short write of the journal, the kernel refusing one more page). No root needed: the
 * child runs in a new user + mount namespace (`unshare -rm`), mounts the tmpfs there and starts
 * the server (tiny-fs-server.ts). The parent reads the files through /proc/<pid>/root. Where
 * user namespaces are off, `tinyFsAvailable()` says so and the tests skip.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(new URL('./tiny-fs-server.ts', import.meta.url));

let available: boolean | undefined;

/** Whether this machine lets an unprivileged process mount a tmpfs in its own namespace. */
export function tinyFsAvailable(): boolean {
  if (available === undefined) {
    const probe = join(tmpdir(), `bigup-tinyfs-probe-${process.pid}`);
    mkdirSync(probe, { recursive: true });
    const r = spawnSync(
      'unshare',
      ['-rm', 'sh', '-c', 'mount -t tmpfs -o size=64k none "$0"', probe],
      { stdio: 'ignore' },
    );
    rmSync(probe, { recursive: true, force: true });
    available = r.status === 0;
  }
  return available;
}

export interface TinyFsServer {
  readonly process: ChildProcess;
  readonly url: string;
  readonly wsUrl: string;
  /** The data directory as the parent sees it (through /proc/<pid>/root). */
  readonly dir: string;
  output(): string;
  /** SIGTERM (graceful close), then wait for the exit. */
  stop(): Promise<void>;
  /** SIGKILL, then wait for the exit. */
  kill(): Promise<void>;
}

/**
 * Start a server on a `sizeBytes` tmpfs. `emptyPath`: the server finds no tools on PATH (as on
 * a host without util-linux). `serverOptions` are AppOptions (JSON values only);
 * `storeOptions` go to its DiskStore. The tmpfs and everything on it vanish with the process.
 */
export function startTinyFsServer(
  sizeBytes: number,
  serverOptions: Record<string, unknown> = {},
  storeOptions: Record<string, unknown> = {},
  { emptyPath = false } = {},
): Promise<TinyFsServer> {
  const mountPoint = join(
    tmpdir(),
    `bigup-tinyfs-${process.pid}-${Math.random().toString(16).slice(2)}`,
  );
  mkdirSync(mountPoint, { recursive: true });
  const child = spawn(
    'unshare',
    [
      '-rm',
      'sh',
      '-c',
      `mount -t tmpfs -o size=${sizeBytes},mode=0700 none "$0" && ${emptyPath ? 'PATH=/nonexistent ' : ''}exec "$@"`,
      mountPoint,
      process.execPath,
      '--import',
      'tsx',
      SCRIPT,
    ],
    {
      env: {
        ...process.env,
        BIGUP_TEST_DIR: mountPoint,
        BIGUP_TEST_SERVER_OPTIONS: JSON.stringify({ ...serverOptions, store: storeOptions }),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  const exited = new Promise<void>((resolve) =>
    child.on('exit', () => {
      rmSync(mountPoint, { recursive: true, force: true });
      resolve();
    }),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`tiny-fs server did not start:\n${output}`));
    }, 20_000);
    const onData = (d: Buffer) => {
      output += d.toString();
      const match = /listening on (http:\/\/\S+)/.exec(output);
      if (!match) return;
      clearTimeout(timer);
      const url = match[1];
      resolve({
        process: child,
        url,
        wsUrl: `${url.replace(/^http/, 'ws')}/upload`,
        // unshare and sh exec into node, so the child's pid is the server's.
        dir: `/proc/${child.pid}/root${mountPoint}`,
        output: () => output,
        stop: () => {
          child.kill('SIGTERM');
          return exited;
        },
        kill: () => {
          child.kill('SIGKILL');
          return exited;
        },
      });
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`tiny-fs server exited before listening:\n${output}`));
    });
  });
}
