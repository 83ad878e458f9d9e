/**
 * The package as users get it: `npm pack`, the tarball installed into an empty app with only its
 * dependencies (plus fastify, which the app imports itself, and @types/node for TypeScript), and
 * there, with plain node: the README's server example receives a byte-identical upload from the
 * installed bin and from the README's Node client example; a TypeScript consumer typechecks
 * against the shipped .d.ts; a Vite app bundles the component, and it uploads in Chromium; the
 * installed bin serves the uploader page at /; the README's scale-out example runs on a real s3rver
 * and redis-server (started here) and stores an upload the installed bin sends.
 *
 * Needs dist/ (npm test builds it first). The pack runs with --ignore-scripts because other test
 * files use dist/ concurrently and prepack rebuilds it from scratch.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { copyFile, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { build } from 'vite';
import { launchBrowser, newPage, pickFiles, ROOT } from '../browser/harness.js';
import { makeTempDir, listFiles, type TempDir } from '../helpers/tmp.js';
import { startRedis } from '../../bench/services/redis.js';
import { readObject, S3RVER_CREDENTIALS, startS3rver } from '../../bench/services/s3rver.js';

const run = promisify(execFile);
const EXAMPLES = join(ROOT, 'docs', 'examples');

let tmp: TempDir;
let app: string;
let packed: string[];
const children: ChildProcess[] = [];

interface Started {
  readonly child: ChildProcess;
  output(): string;
  readonly url: string;
}

/** Start `command args` and resolve once its output matches `ready` (the URL is group 1). */
function start(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  ready: RegExp,
): Promise<Started> {
  const child = spawn(command, args, {
    cwd: app,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${command} did not start:\n${output}`)),
      30_000,
    );
    const onData = (d: Buffer): void => {
      output += d.toString();
      const match = ready.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve({ child, output: () => output, url: match[1] });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${command} exited (${code}) before it was ready:\n${output}`));
    });
  });
}

async function sha256(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
}

async function makeFile(name: string, size: number): Promise<string> {
  const path = join(tmp.path, name);
  await writeFile(path, randomBytes(size));
  return path;
}

/** The one completed file under a data dir's files/ (the layout of server/store/disk-store.ts). */
async function storedFiles(dataDir: string): Promise<string[]> {
  return (await listFiles(join(dataDir, 'files'))).map((f) => join(dataDir, 'files', f));
}

beforeAll(async () => {
  tmp = await makeTempDir('bigup-pack-');
  const { stdout } = await run(
    'npm',
    ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp.path],
    { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 },
  );
  const [info] = JSON.parse(stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  packed = info.files.map((f) => f.path);
  app = join(tmp.path, 'app');
  await mkdir(app);
  await writeFile(
    join(app, 'package.json'),
    JSON.stringify({ name: 'consumer', private: true, type: 'module' }),
  );
  const ours = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
    devDependencies: Record<string, string>;
  };
  await run(
    'npm',
    [
      'install',
      '--no-audit',
      '--no-fund',
      '--prefer-offline',
      '--loglevel=error',
      join(tmp.path, info.filename),
      `fastify@${ours.dependencies.fastify}`,
      `@types/node@${ours.devDependencies['@types/node']}`,
    ],
    { cwd: app, maxBuffer: 16 * 1024 * 1024 },
  );
  for (const name of await readdir(EXAMPLES)) await copyFile(join(EXAMPLES, name), join(app, name));
}, 300_000);

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await tmp?.cleanup();
});

describe('the npm package', () => {
  it('ships compiled JS, types, the bin, README, LICENSE and SPEC.md, and no tests, bench or sources', () => {
    expect(packed).toEqual(
      expect.arrayContaining([
        'bin/big-uploader.js',
        'README.md',
        'LICENSE',
        'protocol/SPEC.md',
        'package.json',
        'dist/server/index.js',
        'dist/server/index.d.ts',
        'dist/server/index.d.ts.map',
        'dist/client/node/index.js',
        'dist/client/browser/index.js',
        'dist/protocol/index.js',
        'dist/lib/index.js',
        'dist/lib/define.js',
        'dist/component/big-uploader.js',
        'dist/demo/index.html',
      ]),
    );
    const stray = packed.filter(
      (p) => !/^(dist\/|bin\/|README\.md$|LICENSE$|package\.json$|protocol\/SPEC\.md$)/.test(p),
    );
    expect(stray).toEqual([]);
    expect(
      packed.filter(
        (p) => /\.test\.|^dist\/bench\/|\/peers\/|\.ts$/.test(p) && !p.endsWith('.d.ts'),
      ),
    ).toEqual([]);
  });

  it('installs no TypeScript runner: the bin runs compiled JS with plain node', async () => {
    const installed = JSON.parse(
      await readFile(join(app, 'node_modules', 'big-uploader', 'package.json'), 'utf8'),
    ) as { dependencies: Record<string, string> };
    for (const tool of ['tsx', 'typescript', 'vite', 'vitest', 'esbuild'])
      expect(installed.dependencies[tool]).toBeUndefined();
    const { stdout } = await run(join(app, 'node_modules', '.bin', 'big-uploader'), ['--help'], {
      cwd: app,
    });
    expect(stdout).toContain('Usage: big-uploader <command>');
  });

  it('runs the README server example with plain node; the installed bin and the README Node client upload byte-identical files to it', async () => {
    const uploads = join(tmp.path, 'uploads');
    const server = await start(
      process.execPath,
      ['server.mjs'],
      { PORT: '0', UPLOAD_DIR: uploads },
      /Server listening at (http:\/\/127\.0\.0\.1:\d+)/,
    );
    const endpoint = `${server.url.replace(/^http/, 'ws')}/files/upload`;
    // The prefix moved every route and left the app's own / alone.
    expect(await (await fetch(`${server.url}/`)).text()).toContain('my app');
    expect((await fetch(`${server.url}/files/healthz`)).status).toBe(200);
    expect((await fetch(`${server.url}/healthz`)).status).toBe(404);

    const viaBin = await makeFile('via-bin.bin', 3 * 1024 * 1024 + 17);
    await run(
      join(app, 'node_modules', '.bin', 'big-uploader'),
      ['send', viaBin, '--url', endpoint, '--json', '--no-resume'],
      { cwd: app },
    );
    const viaClient = await makeFile('via-client.bin', 5 * 1024 * 1024 + 3);
    const { stdout } = await run(process.execPath, ['node-client.mjs', viaClient, endpoint], {
      cwd: app,
    });
    expect(stdout).toMatch(/stored as [0-9a-f]+, digest [0-9a-f]+/);

    const stored = await storedFiles(uploads);
    expect(stored).toHaveLength(2);
    const digests = new Set(await Promise.all(stored.map(sha256)));
    expect(digests).toEqual(new Set([await sha256(viaBin), await sha256(viaClient)]));
  }, 120_000);

  it('runs the README ticket backend: its tickets upload, nothing else does', async () => {
    const uploads = join(app, 'uploads');
    const env = { PORT: '0', TICKET_SECRET: 't'.repeat(48), ADMIN_TOKEN: 'admin' };
    const server = await start(
      process.execPath,
      ['ticket-backend.mjs'],
      env,
      /listening on (http:\/\/127\.0\.0\.1:\d+)/,
    );
    expect((await fetch(`${server.url}/upload-ticket`, { method: 'POST' })).status).toBe(401);
    const { ticket, endpoint } = (await (
      await fetch(`${server.url}/upload-ticket`, { method: 'POST', headers: { 'x-user': 'erin' } })
    ).json()) as { ticket: string; endpoint: string };
    const file = await makeFile('via-ticket.bin', 1024 * 1024 + 9);
    const url = `${server.url.replace(/^http/, 'ws')}${endpoint}`;
    const { stdout } = await run(process.execPath, ['node-client.mjs', file, url], {
      cwd: app,
      env: { ...process.env, UPLOAD_TOKEN: ticket },
    });
    expect(stdout).toMatch(/stored as [0-9a-f]+/);
    await expect(
      run(process.execPath, ['node-client.mjs', file, url], {
        cwd: app,
        env: { ...process.env, UPLOAD_TOKEN: 'forged' },
      }),
    ).rejects.toThrow();
    const stored = await storedFiles(uploads);
    expect(stored).toHaveLength(1);
    expect(await sha256(stored[0])).toBe(await sha256(file));
  }, 120_000);

  it('runs the README scale-out example (S3 store + Redis registry) with plain node on s3rver and redis-server; the installed bin uploads a byte-identical object', async () => {
    const [s3, redis] = await Promise.all([startS3rver('uploads'), startRedis()]);
    try {
      const server = await start(
        process.execPath,
        ['scale-server.mjs'],
        {
          PORT: '0',
          S3_ENDPOINT: s3.endpoint,
          S3_BUCKET: s3.bucket,
          REDIS_URL: redis.url,
          AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
          AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
          AWS_REGION: 'us-east-1',
        },
        /listening on (http:\/\/127\.0\.0\.1:\d+)/,
      );
      const health = (await (await fetch(`${server.url}/healthz`)).json()) as Record<
        string,
        unknown
      >;
      expect(JSON.stringify(health)).toMatch(/redis/);
      const file = await makeFile('via-s3.bin', 6 * 1024 * 1024 + 11);
      await run(
        join(app, 'node_modules', '.bin', 'big-uploader'),
        ['send', file, '--url', `${server.url.replace(/^http/, 'ws')}/upload`, '--no-resume'],
        { cwd: app },
      );
      const listed = await s3.client.send(
        new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: 'incoming/' }),
      );
      const keys = (listed.Contents ?? []).map((o) => o.Key ?? '');
      expect(keys).toHaveLength(1);
      expect(keys[0]).toMatch(/^incoming\/[0-9a-f]{32}\/via-s3\.bin$/);
      const stored = await readObject(s3.client, s3.bucket, keys[0]);
      expect(createHash('sha256').update(stored).digest('hex')).toBe(await sha256(file));
      // Its shutdown handler closes the app, then the store: the process exits on its own.
      const exited = new Promise((resolve) => server.child.once('exit', resolve));
      server.child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      await s3.stop();
      await redis.stop();
      await redis.cleanup();
    }
  }, 120_000);

  it('imports big-uploader/client from plain node as the Node entry', async () => {
    const script =
      "const m = await import('big-uploader/client'); console.log(typeof m.openUploader, m.createUploader === m.openUploader, typeof m.WsTransport, typeof m.JsonFileResumeStore);";
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], {
      cwd: app,
    });
    expect(stdout.trim()).toBe('function true function function');
  });

  it('typechecks a TypeScript consumer of server, client, protocol and component (nodenext, skipLibCheck false)', async () => {
    await writeFile(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          lib: ['ES2022', 'DOM', 'DOM.Iterable'],
          strict: true,
          skipLibCheck: false,
          noEmit: true,
          types: ['node'],
        },
        files: ['consumer.ts'],
      }),
    );
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const result = await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: app }).then(
      () => '',
      (error: { stdout?: string; message?: string }) => error.stdout ?? error.message ?? 'failed',
    );
    expect(result).toBe('');
  }, 120_000);

  it('serves the uploader page at / from the installed bin, and --no-page turns it off', async () => {
    const served = await start(
      join(app, 'node_modules', '.bin', 'big-uploader'),
      ['serve', '--port', '0', '--dir', join(tmp.path, 'serve-data')],
      {},
      /listening on (http:\/\/[^\s]+)/,
    );
    const page = await (await fetch(`${served.url}/`)).text();
    expect(page).toContain('<big-uploader');
    const off = await start(
      join(app, 'node_modules', '.bin', 'big-uploader'),
      ['serve', '--port', '0', '--no-page', '--dir', join(tmp.path, 'off-data')],
      {},
      /listening on (http:\/\/[^\s]+)/,
    );
    expect((await fetch(`${off.url}/`)).status).toBe(404);
  });

  it('bundles the component into a Vite app, and that page uploads a byte-identical file in Chromium', async () => {
    await writeFile(
      join(app, 'index.html'),
      '<!doctype html><html><body><script type="module" src="./component-app.js"></script></body></html>',
    );
    const out = join(tmp.path, 'vite-out');
    await build({
      root: app,
      configFile: false,
      logLevel: 'warn',
      base: './',
      build: { outDir: out, emptyOutDir: true },
    });
    const bundled = (await readdir(join(out, 'assets'))).filter((f) => f.endsWith('.js'));
    expect(bundled.length).toBeGreaterThan(0);

    const dataDir = join(tmp.path, 'vite-data');
    const server = await start(
      join(app, 'node_modules', '.bin', 'big-uploader'),
      ['serve', '--port', '0', '--dir', dataDir, '--page-dir', out],
      {},
      /listening on (http:\/\/[^\s]+)/,
    );
    const file = await makeFile('from-vite-app.bin', 2 * 1024 * 1024 + 5);
    const browser = await launchBrowser();
    try {
      // The page runs under the Content-Security-Policy the server sends with it.
      const { page } = await newPage(browser, { enforceCSP: true });
      const violations: string[] = [];
      page.on('console', (m) => {
        if (/Content Security Policy/i.test(m.text())) violations.push(m.text());
      });
      const response = await page.goto(`${server.url}/`);
      expect(response?.headers()['content-security-policy']).toMatch(/default-src 'self'/);
      await page.waitForFunction(
        () => !!document.querySelector('big-uploader')?.shadowRoot?.querySelector('#file-input'),
      );
      await pickFiles(page, [file]);
      await page.waitForFunction(
        () =>
          (window as unknown as { __events: Array<{ type: string }> }).__events.some(
            (e) => e.type === 'upload-complete' || e.type === 'upload-error',
          ),
        undefined,
        { timeout: 60_000 },
      );
      const types = await page.evaluate(() =>
        (window as unknown as { __events: Array<{ type: string }> }).__events.map((e) => e.type),
      );
      expect(types).toContain('upload-complete');
      expect(violations).toEqual([]);
    } finally {
      await browser.close();
    }
    const stored = await storedFiles(dataDir);
    expect(stored).toHaveLength(1);
    expect(await sha256(stored[0])).toBe(await sha256(file));
  }, 180_000);

  it("README's library examples are the files this test runs", async () => {
    const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
    for (const name of [
      'server.mjs',
      'scale-server.mjs',
      'node-client.mjs',
      'component-app.js',
      'ticket-backend.mjs',
    ]) {
      const text = (await readFile(join(EXAMPLES, name), 'utf8')).trim();
      expect(readme, `README.md must quote docs/examples/${name} verbatim`).toContain(text);
    }
  });
});
