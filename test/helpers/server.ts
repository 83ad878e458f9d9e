/**
 * Servers for tests: in-process (`startServer`, a real Fastify app on 127.0.0.1 port 0) and as a
 * child process running `big-uploader serve` (`startChildServer`, for kill -9 and signal tests).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { buildApp, type AppOptions } from '../../server/index.js';

export interface TestServer {
  readonly app: FastifyInstance;
  /** http://127.0.0.1:PORT */
  readonly url: string;
  /** ws://127.0.0.1:PORT/upload */
  readonly wsUrl: string;
  close(): Promise<void>;
}

/** Build the app with `options` (logs off unless given) and listen on a free loopback port. */
export async function startServer(options: AppOptions): Promise<TestServer> {
  const app = await buildApp({ logLevel: false, ...options });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  return {
    app,
    url,
    wsUrl: `${url.replace(/^http/, 'ws')}${options.path ?? '/upload'}`,
    close: () => app.close(),
  };
}

export interface ChildServer {
  readonly process: ChildProcess;
  readonly url: string;
  readonly wsUrl: string;
  /** Everything the child wrote to stdout and stderr so far. */
  output(): string;
  /** Resolves with the exit code (or signal name) when the child ends. */
  readonly exited: Promise<number | string>;
  kill(signal?: NodeJS.Signals): void;
}

const BIN = fileURLToPath(new URL('../../bin/big-uploader.js', import.meta.url));

/** Spawn `big-uploader serve --port 0 ...args` and wait for its "listening on" line. */
export function startChildServer(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  timeoutMs = 20_000,
): Promise<ChildServer> {
  // Later options win in parseArgs, so `args` may override the host.
  const child = spawn(
    process.execPath,
    [BIN, 'serve', '--host', '127.0.0.1', '--port', '0', '--log-level', 'warn', ...args],
    {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  const exited = new Promise<number | string>((resolve) => {
    child.on('exit', (code, signal) => resolve(code ?? signal ?? -1));
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child server did not start:\n${output}`));
    }, timeoutMs);
    const onData = (d: Buffer) => {
      output += d.toString();
      const match = /listening on (http:\/\/[^\s]+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        const url = match[1];
        resolve({
          process: child,
          url,
          wsUrl: `${url.replace(/^http/, 'ws')}/upload`,
          output: () => output,
          exited,
          kill: (signal = 'SIGKILL') => {
            child.kill(signal);
          },
        });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`child server exited (${code}) before listening:\n${output}`));
    });
  });
}
