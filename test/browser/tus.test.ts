/**
 * The tus clients users run in browsers, in headless Chromium against our tus endpoint (/files/):
 * tus-js-client on a picked File, and Uppy (@uppy/core + @uppy/tus) with its Dashboard, the file
 * added and the upload started through the Dashboard's UI. Each uploads plainly, resumes after its
 * connection is cut mid-PATCH (a TCP proxy between browser and server), and resumes after the
 * server process is SIGKILLed mid-PATCH and restarted on the same data directory and port. Each
 * ends with the stored file byte-identical to the source and completed in `GET /uploads/:id`, and
 * a resume must really resume: the PATCH after the fault starts where the server's HEAD said,
 * above 0, so the bytes below it were not sent again.
 *
 * The page (tus-page/) is served by the server under test, through the proxy when there is one, so
 * the endpoint is same-origin. The proxy trickles the upload at 16 MiB/s so a fault lands mid-upload.
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { build } from 'vite';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startChildServer, startServer, type ChildServer } from '../helpers/server.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import type { UploadStateBody } from '../../server/index.js';
import type { ClientSettings, TusPageState } from './tus-page/page.js';
import { MiB, ROOT, makeFile, newPage, useBrowserSuite } from './harness.js';

const SIZE = 48 * MiB + 12_345;
/** The fault is injected once the server stored this much: a sixth of the way or a bit more. */
const FAULT_AT = 8 * MiB;
const PACE = 16 * MiB;
/** Long enough in all to outlast a server restart (a second or two). */
const RETRY_DELAYS = [200, 500, 1000, 1000, 2000, 2000, 3000, 3000, 5000];

/** Servers are started per test (one data dir each); the tus page is built into pageDir/tus. */
const suite = useBrowserSuite('bigup-browser-tus-', false, async ({ pageDir }) => {
  await build({
    configFile: false,
    root: join(ROOT, 'test/browser/tus-page'),
    base: './',
    logLevel: 'warn',
    build: { outDir: join(pageDir, 'tus'), emptyOutDir: true, sourcemap: false, target: 'es2022' },
  });
});
let source: string;
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  source = await makeFile(join(suite.tmp.path, 'src'), 'tus-source.bin', SIZE);
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

type Client = 'tus-js-client' | 'uppy';

async function openPage(url: string): Promise<Page> {
  const { context, page } = await newPage(suite.browser);
  cleanups.push(() => context.close());
  await page.goto(`${url}/tus/index.html`);
  await page.waitForFunction(() => 'startTusJs' in window && 'mountUppy' in window);
  return page;
}

/** Pick the source and start the upload: in #file for tus-js-client, through the Dashboard for Uppy. */
async function startUpload(page: Page, client: Client): Promise<void> {
  const settings: ClientSettings = { retryDelays: RETRY_DELAYS };
  if (client === 'tus-js-client') {
    await page.locator('#file').setInputFiles(source);
    await page.evaluate(
      (s) => (window as unknown as { startTusJs(s: ClientSettings): void }).startTusJs(s),
      settings,
    );
    return;
  }
  await page.evaluate(
    (s) => (window as unknown as { mountUppy(s: ClientSettings): void }).mountUppy(s),
    settings,
  );
  await page.locator('#uppy input.uppy-Dashboard-input').first().setInputFiles(source);
  // The Dashboard lists the file and offers its upload button; a user clicks it.
  await page.locator('#uppy .uppy-Dashboard-Item').waitFor();
  await page.locator('#uppy button.uppy-StatusBar-actionBtn--upload').click();
}

function pageState(page: Page): Promise<TusPageState> {
  return page.evaluate(() => (window as unknown as { __tus: TusPageState }).__tus);
}

/** The upload's state from `GET /uploads/:id`, with the secret its creation answer carried. */
async function uploadState(serverUrl: string, state: TusPageState): Promise<UploadStateBody> {
  const url = state.createdUrl!;
  const response = await fetch(`${serverUrl}/uploads/${url.slice(url.lastIndexOf('/') + 1)}`, {
    headers: { 'Bigup-Secret': state.secret! },
  });
  expect(response.status).toBe(200);
  return (await response.json()) as UploadStateBody;
}

/**
 * Until the server stored `bytes` of the upload: the fault then lands mid-upload with something to
 * resume from. (The browser's own progress runs some MiB ahead, the bytes in socket buffers.)
 */
async function waitForStored(page: Page, serverUrl: string, bytes: number): Promise<void> {
  await page.waitForFunction(
    () => (window as unknown as { __tus: TusPageState }).__tus.createdUrl !== undefined,
    undefined,
    { polling: 20, timeout: 20_000 },
  );
  const created = await pageState(page);
  const deadline = Date.now() + 20_000;
  for (;;) {
    const { ackedBytes } = await uploadState(serverUrl, created);
    if (ackedBytes >= bytes) return;
    if (Date.now() > deadline) throw new Error(`the server stored only ${ackedBytes} bytes`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function waitForEnd(page: Page): Promise<TusPageState> {
  await page.waitForFunction(
    () => {
      const s = (window as unknown as { __tus: TusPageState }).__tus;
      return s.done || s.error !== undefined;
    },
    undefined,
    { polling: 50, timeout: 40_000 },
  );
  const state = await pageState(page);
  expect(state.error).toBeUndefined();
  return state;
}

/** The stored file equals the source byte for byte, and GET /uploads/:id shows it completed. */
async function expectStored(
  serverUrl: string,
  dataDir: string,
  state: TusPageState,
): Promise<void> {
  expect(state.uploadUrl).toMatch(/\/files\/[0-9a-f]{32}$/);
  const id = state.uploadUrl!.slice(state.uploadUrl!.lastIndexOf('/') + 1);
  const dir = join(dataDir, 'files', id);
  expect(await readdir(dir)).toEqual(['tus-source.bin']);
  expect((await readFile(join(dir, 'tus-source.bin'))).equals(await readFile(source))).toBe(true);
  expect(state.createdUrl).toBe(state.uploadUrl);
  expect(await uploadState(serverUrl, state)).toMatchObject({
    id,
    state: 'completed',
    name: 'tus-source.bin',
    fileSize: SIZE,
    ackedBytes: SIZE,
  });
}

/** After one fault: the client asked where to go on, and went on from there, above 0. */
function expectResumed(state: TusPageState): void {
  const seen = `PATCH offsets ${state.patchOffsets.join(',')}; HEAD offsets ${state.headOffsets.join(',')}`;
  expect(state.patchOffsets.length, seen).toBeGreaterThanOrEqual(2);
  expect(state.patchOffsets[0], seen).toBe(0);
  const resumedAt = state.patchOffsets[1];
  expect(resumedAt, seen).toBeGreaterThan(0);
  expect(state.headOffsets).toContain(resumedAt);
  // Never back below a point the server reported.
  for (let i = 2; i < state.patchOffsets.length; i++)
    expect(state.patchOffsets[i]).toBeGreaterThanOrEqual(state.patchOffsets[i - 1]);
}

async function withProxy(port: number): Promise<FaultProxy> {
  const proxy = await startFaultProxy(port);
  proxy.trickle(PACE);
  cleanups.push(() => proxy.close());
  return proxy;
}

describe.each<Client>(['tus-js-client', 'uppy'])('%s in Chromium against /files/', (client) => {
  it('uploads a file: byte-identical, completed in GET /uploads/:id', async () => {
    const dataDir = join(suite.tmp.path, `${client}-plain`);
    const server = await startServer({ dir: dataDir, pageDir: suite.pageDir });
    cleanups.push(() => server.close());
    const page = await openPage(server.url);
    await startUpload(page, client);
    const state = await waitForEnd(page);
    expect(state.patchOffsets[0]).toBe(0);
    await expectStored(server.url, dataDir, state);
  }, 60_000);

  it('resumes after its connection is cut mid-PATCH', async () => {
    const dataDir = join(suite.tmp.path, `${client}-cut`);
    const server = await startServer({ dir: dataDir, pageDir: suite.pageDir });
    cleanups.push(() => server.close());
    const proxy = await withProxy(Number(new URL(server.url).port));
    const page = await openPage(`http://127.0.0.1:${proxy.port}`);
    await startUpload(page, client);
    await waitForStored(page, server.url, FAULT_AT);
    expect(proxy.cutAll('rst')).toBeGreaterThan(0);
    const state = await waitForEnd(page);
    expectResumed(state);
    await expectStored(server.url, dataDir, state);
  }, 60_000);

  it('resumes after the server is SIGKILLed mid-PATCH and restarted on the same directory and port', async () => {
    const dataDir = join(suite.tmp.path, `${client}-kill`);
    const args = ['--dir', dataDir, '--page-dir', suite.pageDir];
    let server: ChildServer = await startChildServer(args);
    cleanups.push(async () => {
      server.kill('SIGKILL');
      await server.exited;
    });
    const port = new URL(server.url).port;
    const proxy = await withProxy(Number(port));
    const page = await openPage(`http://127.0.0.1:${proxy.port}`);
    await startUpload(page, client);
    await waitForStored(page, server.url, FAULT_AT);
    server.kill('SIGKILL');
    await server.exited;
    server = await startChildServer([...args, '--port', port]);
    const state = await waitForEnd(page);
    expectResumed(state);
    await expectStored(server.url, dataDir, state);
  }, 60_000);
});
