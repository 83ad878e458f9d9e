/**
 * Debian's redis-server as a child process for the registry tests: a free port (redis-server has
 * no "port 0"), its files in a temp dir, AOF on with fsync per write (so a kill -9 of Redis loses
 * no acked record), no RDB snapshots. `stop` ends only this process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { makeTempDir, type TempDir } from './temp-dir.js';

export interface RedisProcess {
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  process: ChildProcess;
  /** SIGKILL and wait. */
  stop(): Promise<void>;
  /** Start again on the same port and directory (after stop). */
  restart(): Promise<void>;
  /** Remove the directory (after stop). */
  cleanup(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function launch(
  port: number,
  dir: string,
): Promise<{ child: ChildProcess; exited: Promise<void> }> {
  const child = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      'yes',
      '--appendfsync',
      'always',
      '--protected-mode',
      'no',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`redis-server did not start:\n${output}`)),
      15_000,
    );
    const onData = (d: Buffer): void => {
      output += d.toString();
      if (output.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve({ child, exited });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    void exited.then(() => reject(new Error(`redis-server exited:\n${output}`)));
  });
}

export async function startRedis(): Promise<RedisProcess> {
  const tmp: TempDir = await makeTempDir('bigup-redis-');
  const port = await freePort();
  let running = await launch(port, tmp.path);
  const handle: RedisProcess = {
    port,
    url: `redis://127.0.0.1:${port}/0`,
    dir: tmp.path,
    process: running.child,
    async stop() {
      running.child.kill('SIGKILL');
      await running.exited;
    },
    async restart() {
      running = await launch(port, tmp.path);
      handle.process = running.child;
    },
    cleanup: () => tmp.cleanup(),
  };
  return handle;
}
