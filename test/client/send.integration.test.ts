/**
 * `big-uploader send` as a child process against the real server (in-process Fastify app, or
 * `big-uploader serve` as a child when the test kills the server). Every test checks the stored
 * file byte for byte, and resume tests check through --json that acked bytes were not sent again.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BIN, atLeast, runSend, type SendRun } from '../helpers/cli.js';
import {
  startChildServer,
  startServer,
  type ChildServer,
  type TestServer,
} from '../helpers/server.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

const MiB = 1024 * 1024;

interface Report {
  id: string;
  name: string;
  size: number;
  bytesSent: number;
  bytesSkipped: number;
  seconds: number;
  MBps: number;
  digest: string | null;
  state: string;
  firstAckSeconds?: number;
}

function send(args: string[], home: string): SendRun<Report> {
  return runSend<Report>(args, home);
}

async function makeFile(
  dir: string,
  name: string,
  size: number,
): Promise<{ path: string; bytes: Buffer }> {
  const bytes = randomBytes(size);
  const path = join(dir, name);
  await writeFile(path, bytes);
  return { path, bytes };
}

async function stored(dataDir: string, report: Report): Promise<Buffer> {
  return readFile(join(dataDir, 'files', report.id, report.name));
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

let tmp: TempDir;
let home: string;
let dataDir: string;
let server: TestServer | undefined;
let child: ChildServer | undefined;
let proxy: FaultProxy | undefined;

beforeEach(async () => {
  tmp = await makeTempDir('bigup-send-');
  home = tmp.path;
  dataDir = join(tmp.path, 'data');
});

afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
  await server?.close();
  server = undefined;
  child?.kill('SIGKILL');
  if (child) await child.exited;
  child = undefined;
  await tmp.cleanup();
});

describe('big-uploader send against the real server', () => {
  it('uploads several files in one command and prints one JSON line per file', async () => {
    server = await startServer({ dir: dataDir });
    const files = [
      await makeFile(home, 'a.bin', 5 * MiB + 17),
      await makeFile(home, 'b.bin', 1),
      await makeFile(home, 'c.bin', 0),
    ];
    const run = send(
      [...files.map((f) => f.path), '--url', server.wsUrl, '--json', '--chunk-size', '1MiB'],
      home,
    );
    const result = await run.done;
    expect(result.code, result.stderr).toBe(0);
    expect(result.reports.map((r) => r.name)).toEqual(['a.bin', 'b.bin', 'c.bin']);
    for (const [i, report] of result.reports.entries()) {
      expect(Object.keys(report).slice(0, 8)).toEqual([
        'id',
        'name',
        'size',
        'bytesSent',
        'bytesSkipped',
        'seconds',
        'MBps',
        'digest',
      ]);
      expect(report).toMatchObject({
        size: files[i].bytes.byteLength,
        bytesSent: files[i].bytes.byteLength,
        bytesSkipped: 0,
      });
      expect(report.digest).toMatch(/^[0-9a-f]{16}$/);
      expect((await stored(dataDir, report)).equals(files[i].bytes)).toBe(true);
    }
  });

  it('resumes after the client process is killed, sending only the missing bytes', async () => {
    server = await startServer({ dir: dataDir });
    const file = await makeFile(home, 'big.bin', 24 * MiB);
    const args = [
      file.path,
      '--url',
      server.wsUrl,
      '--json',
      '--chunk-size',
      '1MiB',
      '--window',
      '4MiB',
    ];
    const first = send([...args, '--limit-rate', '8MiB'], home);
    await first.waitFor(atLeast(30));
    first.kill('SIGKILL');
    expect((await first.done).code).toBe('SIGKILL');
    const second = await send(args, home).done;
    expect(second.code, second.stderr).toBe(0);
    const [report] = second.reports;
    expect(report.bytesSkipped).toBeGreaterThanOrEqual(6 * MiB);
    expect(report.bytesSkipped).toBeLessThan(24 * MiB);
    // Never re-send acked bytes: this run sent exactly what the server did not have.
    expect(report.bytesSent).toBe(24 * MiB - report.bytesSkipped);
    expect(second.stderr).toMatch(/resuming at \d+%/);
    // The resumed run reports how long its connection took to get new bytes acked.
    expect(report.firstAckSeconds).toBeGreaterThan(0);
    expect(report.firstAckSeconds).toBeLessThanOrEqual(report.seconds);
    expect((await stored(dataDir, report)).equals(file.bytes)).toBe(true);
  });

  it('Ctrl-C pauses cleanly (exit 130) and the same command resumes', async () => {
    server = await startServer({ dir: dataDir });
    const file = await makeFile(home, 'int.bin', 16 * MiB);
    const args = [file.path, '--url', server.wsUrl, '--json', '--chunk-size', '1MiB'];
    const first = send([...args, '--limit-rate', '8MiB'], home);
    await first.waitFor(atLeast(20));
    first.kill('SIGINT');
    const paused = await first.done;
    expect(paused.code).toBe(130);
    expect(paused.stderr).toMatch(/paused at \d+%; run the same command again to resume/);
    const sentBefore = paused.reports[0].bytesSent;
    const second = await send(args, home).done;
    expect(second.code, second.stderr).toBe(0);
    // Everything sent before Ctrl-C was acked and recorded before the client closed.
    expect(second.reports[0].bytesSkipped).toBe(sentBefore);
    expect((await stored(dataDir, second.reports[0])).equals(file.bytes)).toBe(true);
  });

  it('resumes after the server is killed (kill -9) and restarted', async () => {
    const port = await freePort();
    // A 4 MiB window bounds what can be in flight unacked at the kill, however slow the machine.
    const serverArgs = ['--dir', dataDir, '--port', String(port), '--window', '4MiB'];
    child = await startChildServer(serverArgs);
    const file = await makeFile(home, 'srv.bin', 24 * MiB);
    const run = send(
      [
        file.path,
        '--url',
        `ws://127.0.0.1:${port}/upload`,
        '--json',
        '--chunk-size',
        '1MiB',
        '--limit-rate',
        '12MiB',
        '--retries',
        '20',
      ],
      home,
    );
    await run.waitFor(atLeast(30));
    child.kill('SIGKILL');
    await child.exited;
    await run.waitFor(/retrying/);
    child = await startChildServer(serverArgs);
    const result = await run.done;
    expect(result.code, result.stderr).toBe(0);
    const [report] = result.reports;
    // Acked ranges survived the crash: far less than a second full copy was sent.
    expect(report.bytesSent).toBeLessThan(24 * MiB + 8 * MiB);
    expect((await stored(dataDir, report)).equals(file.bytes)).toBe(true);
  });

  it('retries with backoff while the server is down, then uploads', async () => {
    const port = await freePort();
    const file = await makeFile(home, 'late.bin', 3 * MiB);
    const run = send([file.path, '--url', `ws://127.0.0.1:${port}/upload`, '--json'], home);
    await run.waitFor(/NETWORK: could not connect.*retrying/);
    await new Promise((r) => setTimeout(r, 1500));
    child = await startChildServer(['--dir', dataDir, '--port', String(port)]);
    const result = await run.done;
    expect(result.code, result.stderr).toBe(0);
    expect((result.stderr.match(/retrying/g) ?? []).length).toBeGreaterThanOrEqual(2);
    expect((await stored(dataDir, result.reports[0])).equals(file.bytes)).toBe(true);
  });

  it('ends byte-identical when a proxy cuts the connection repeatedly', async () => {
    server = await startServer({ dir: dataDir });
    proxy = await startFaultProxy(Number(new URL(server.url).port));
    const file = await makeFile(home, 'cut.bin', 24 * MiB);
    const run = send(
      [
        file.path,
        '--url',
        `ws://127.0.0.1:${proxy.port}/upload`,
        '--json',
        '--chunk-size',
        '1MiB',
        '--limit-rate',
        '16MiB',
        '--retries',
        '20',
      ],
      home,
    );
    let cuts = 0;
    for (const percent of [10, 30, 50, 70]) {
      await run.waitFor(atLeast(percent));
      // Under load the client may be between connections: cut the next one it opens.
      for (let tries = 0; tries < 20; tries++) {
        if (proxy.cutAll('rst') > 0) {
          cuts++;
          break;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const result = await run.done;
    expect(result.code, result.stderr).toBe(0);
    expect(cuts).toBeGreaterThanOrEqual(3);
    expect(proxy.accepted).toBeGreaterThanOrEqual(cuts + 1);
    const [report] = result.reports;
    expect((await stored(dataDir, report)).equals(file.bytes)).toBe(true);
  });
});

describe('big-uploader send exit codes and messages', () => {
  it('exits 2 on a usage error and on a missing file', async () => {
    const noUrl = await send(['x.bin'], home).done;
    expect(noUrl.code).toBe(2);
    expect(noUrl.stderr).toMatch(/--url is required/);
    const missing = await send(['nope.bin', '--url', 'ws://127.0.0.1:1/upload'], home).done;
    expect(missing.code).toBe(2);
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('exits 3 with one line when the server refuses the token', async () => {
    server = await startServer({ dir: dataDir, token: 'right' });
    const file = await makeFile(home, 't.bin', 1000);
    const result = await send([file.path, '--url', server.wsUrl, '--token', 'wrong'], home).done;
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/HANDSHAKE_UNAUTHORIZED .*--token/);
    expect(result.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('exits 4 when the server stays unreachable after the retries', async () => {
    const port = await freePort();
    const file = await makeFile(home, 'n.bin', 1000);
    const result = await send(
      [file.path, '--url', `ws://127.0.0.1:${port}/upload`, '--retries', '2', '--quiet'],
      home,
    ).done;
    expect(result.code).toBe(4);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/NETWORK .*gave up after 2 retries/);
  });

  it('a wrong path or an unknown host fails at once instead of retrying for minutes', async () => {
    server = await startServer({ dir: dataDir });
    const file = await makeFile(home, 'w.bin', 1000);
    const started = Date.now();
    const wrongPath = await send(
      [file.path, '--url', server.wsUrl.replace(/\/upload$/, '/nope'), '--quiet'],
      home,
    ).done;
    expect(wrongPath.code).toBe(3);
    expect(wrongPath.stderr).toMatch(/HTTP 404/);
    const noHost = await send(
      [file.path, '--url', 'ws://no-such-host.invalid:3000/upload', '--quiet'],
      home,
    ).done;
    expect(noHost.code).toBe(4);
    expect(noHost.stderr).toMatch(/no such host/);
    // The default retries would take about two minutes: both answers came without any.
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('--help documents every option and the exit codes', async () => {
    const child = spawn(process.execPath, [BIN, 'send', '--help']);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise((resolve) => child.on('exit', resolve));
    expect(code).toBe(0);
    for (const flag of [
      '--url',
      '--token',
      '--chunk-size',
      '--window',
      '--limit-rate',
      '--state',
      '--json',
      '--quiet',
      '--retries',
      'Exit codes',
    ]) {
      expect(out).toContain(flag);
    }
  });
});
