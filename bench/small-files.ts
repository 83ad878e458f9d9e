/**
 * Issue 16 scenario: many small files. For one tree (N files of S bytes, or a given folder) it
 * measures, in one run on one disk: the disk's durable per-file limit (write, fdatasync, rename,
 * directory fsync per file), its one-sync limit (write all, one sync), `tar | ` over a TCP socket
 * into `tar -x` (the "just copy it" reference), and `big-uploader send DIR` including the CLI's
 * start-up (bigup.2 pipelined, and bigup.1-style one file at a time with --files-in-flight 1).
 * The peer: @tus/server (FileStore) with tus-js-client in Node, one file after another and 8 in
 * parallel (bench/peers/tus-folder-client.ts), whole process timed like ours.
 * Prints files/s and MB/s medians as JSON lines.
 *
 *   npx tsx bench/small-files.ts --files 2000 --size 16384 --runs 3
 *   npx tsx bench/small-files.ts --tree node_modules/ws --runs 3
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  mkdirSync,
  openSync,
  closeSync,
  writeSync,
  fdatasyncSync,
  renameSync,
  fsyncSync,
  readdirSync,
  statSync,
  rmSync,
  cpSync,
} from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    files: { type: 'string', default: '2000' },
    size: { type: 'string', default: '16384' },
    tree: { type: 'string' },
    runs: { type: 'string', default: '3' },
    dir: { type: 'string', default: join(tmpdir(), `bigup-small-${process.pid}`) },
  },
});
const runs = Number(values.runs);
const root = values.dir;
const repo = new URL('..', import.meta.url).pathname;
const cli = join(repo, 'dist/cli/main.js');

function listTree(dir: string): { path: string; size: number }[] {
  const out: { path: string; size: number }[] = [];
  for (const e of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (e.isFile()) {
      const path = join(e.parentPath, e.name);
      out.push({ path, size: statSync(path).size });
    }
  }
  return out;
}

function makeSource(): string {
  const src = join(root, 'src');
  rmSync(src, { recursive: true, force: true });
  if (values.tree) {
    cpSync(values.tree, join(src, 'tree'), {
      recursive: true,
      dereference: false,
      verbatimSymlinks: true,
    });
  } else {
    mkdirSync(join(src, 'tree'), { recursive: true });
    for (let i = 0; i < Number(values.files); i++) {
      const fd = openSync(join(src, 'tree', `f${i}.bin`), 'w');
      writeSync(fd, randomBytes(Number(values.size)));
      closeSync(fd);
    }
  }
  return join(src, 'tree');
}

const median = (xs: number[]): number =>
  [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

/** Durable per file: write + fdatasync + rename + fsync of the directory. */
function diskPerFile(files: { path: string; size: number }[], out: string): number {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const dirFd = openSync(out, 'r');
  const buf = randomBytes(Math.max(1, ...files.map((f) => f.size)));
  const t0 = performance.now();
  files.forEach((f, i) => {
    const tmp = join(out, `${i}.tmp`);
    const fd = openSync(tmp, 'w');
    writeSync(fd, buf, 0, f.size);
    fdatasyncSync(fd);
    closeSync(fd);
    renameSync(tmp, join(out, `${i}`));
    fsyncSync(dirFd);
  });
  closeSync(dirFd);
  return (performance.now() - t0) / 1000;
}

/** One sync for all: write every file, then `sync` once. */
function diskOneSync(files: { path: string; size: number }[], out: string): number {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const buf = randomBytes(Math.max(1, ...files.map((f) => f.size)));
  const t0 = performance.now();
  files.forEach((f, i) => {
    const fd = openSync(join(out, `${i}`), 'w');
    writeSync(fd, buf, 0, f.size);
    closeSync(fd);
  });
  execFileSync('sync', ['-f', out]);
  return (performance.now() - t0) / 1000;
}

/** tar -c | TCP socket | tar -x, then one sync of the target. */
async function tarOverTcp(src: string, out: string): Promise<number> {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const t0 = performance.now();
  await new Promise<void>((resolve, reject) => {
    const server = createServer((socket) => {
      const x = spawn('tar', ['-x', '-C', out], { stdio: ['pipe', 'ignore', 'inherit'] });
      socket.pipe(x.stdin);
      x.on('exit', () => {
        server.close();
        resolve();
      });
    });
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      const c = spawn('tar', ['-c', '-C', join(src, '..'), 'tree'], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const socket = connect(port, '127.0.0.1');
      c.stdout.pipe(socket);
      c.on('error', reject);
    });
  });
  execFileSync('sync', ['-f', out]);
  return (performance.now() - t0) / 1000;
}

async function ours(src: string, data: string, extra: string[]): Promise<number> {
  rmSync(data, { recursive: true, force: true });
  const server = spawn(process.execPath, [cli, 'serve', '--port', '0', '--dir', data], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer): void => {
      text += chunk.toString();
      const m = /listening on (http:\/\/[^\s]+)/.exec(text);
      if (m?.[1]) resolve(m[1].replace(/^http/, 'ws').replace(/\/$/, '') + '/upload');
    };
    server.stdout.on('data', onData);
    server.stderr.on('data', onData);
    server.on('exit', () => reject(new Error(`server exited: ${text}`)));
  });
  const t0 = performance.now();
  execFileSync(
    process.execPath,
    [cli, 'send', '--url', url, '--quiet', '--no-resume', ...extra, src],
    { stdio: 'ignore' },
  );
  const seconds = (performance.now() - t0) / 1000;
  server.kill();
  return seconds;
}

const tsx = join(repo, 'node_modules/tsx/dist/cli.mjs');

/** @tus/server in a process of its own; resolves with its endpoint. */
async function tusServer(dir: string): Promise<{ endpoint: string; stop: () => void }> {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const server = spawn(
    process.execPath,
    [tsx, join(repo, 'bench/peers/tus-server.ts'), '--dir', dir],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise<number>((resolve, reject) => {
    let text = '';
    server.stdout.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      const m = /"port":(\d+)/.exec(text);
      if (m?.[1]) resolve(Number(m[1]));
    });
    server.on('exit', () => reject(new Error(`tus server exited: ${text}`)));
  });
  return { endpoint: `http://127.0.0.1:${port}/files`, stop: () => server.kill() };
}

async function tus(src: string, dir: string, parallel: number): Promise<number> {
  const server = await tusServer(dir);
  const t0 = performance.now();
  execFileSync(
    process.execPath,
    [
      tsx,
      join(repo, 'bench/peers/tus-folder-client.ts'),
      '--endpoint',
      server.endpoint,
      '--dir',
      src,
      '--parallel',
      String(parallel),
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const seconds = (performance.now() - t0) / 1000;
  server.stop();
  // Every file arrived whole: @tus/server keeps one data file per upload, named by its id.
  const stored = readdirSync(dir).filter((name) => !name.endsWith('.json'));
  const storedBytes = stored.reduce((a, name) => a + statSync(join(dir, name)).size, 0);
  if (stored.length !== files.length || storedBytes !== bytes)
    throw new Error(`tus stored ${stored.length} files, ${storedBytes} bytes`);
  return seconds;
}

const src = makeSource();
const files = listTree(src);
const bytes = files.reduce((a, f) => a + f.size, 0);
const results: Record<string, number[]> = {};
const add = (name: string, seconds: number): void => {
  (results[name] ??= []).push(seconds);
};
for (let r = 0; r < runs; r++) {
  add('disk durable per file', diskPerFile(files, join(root, 'disk')));
  add('disk one sync', diskOneSync(files, join(root, 'disk')));
  add('tar | tcp | tar -x', await tarOverTcp(src, join(root, 'tar')));
  add('big-uploader send (bigup.2, 16 in flight)', await ours(src, join(root, 'data'), []));
  add(
    'big-uploader send (one file at a time)',
    await ours(src, join(root, 'data'), ['--files-in-flight', '1']),
  );
  add('tus-js-client -> @tus/server (one at a time)', await tus(src, join(root, 'tus'), 1));
  add('tus-js-client -> @tus/server (8 in parallel)', await tus(src, join(root, 'tus'), 8));
}
for (const [name, list] of Object.entries(results)) {
  const s = median(list);
  console.log(
    JSON.stringify({
      scenario: values.tree ?? `${values.files} x ${values.size} B`,
      contender: name,
      files: files.length,
      bytes,
      runs,
      medianSeconds: +s.toFixed(3),
      filesPerSecond: +(files.length / s).toFixed(1),
      MBps: +(bytes / s / 1e6).toFixed(2),
    }),
  );
}
rmSync(root, { recursive: true, force: true });
