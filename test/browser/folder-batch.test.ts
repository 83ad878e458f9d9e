/**
 * A folder of 2000 small files through <big-uploader> in headless Chromium against the real
 * server: the files share ONE WebSocket (bigup.2, counted on the server's HTTP upgrades), every
 * stored file is byte-identical at its relative path, the page stays responsive (the folder is one
 * row, an expanded folder lists one page of rows, a pause click mid-folder takes effect), pause and
 * resume of the folder work, and a reload mid-folder resumes without sending completed files again
 * (the server completes them from the copy it holds: instant upload, bytes counted on the server).
 *
 * The server's `authorizeUpload` hook (what an application uses to check each OPEN) can hold OPENs
 * after a given number: that keeps a folder unfinished for as long as a test needs, without timing.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient } from '../helpers/protocol-client.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { storedLocation } from '../helpers/stored.js';
import { buildDemo, events, launchBrowser, newPage, openDemo, watchLiCount } from './harness.js';

const TOKEN = 'folder-batch-token';
const ADMIN = 'folder-batch-admin';
const FILES = 2000;
let tmp: TempDir;
let server: TestServer;
let browser: Browser;
let pageUrl: string;
let pageDir: string;
/** WebSocket upgrades of the upload endpoint the server received. */
let upgrades = 0;

/** OPENs past `allow` wait until `release()`. */
const gate = {
  allow: Infinity,
  seen: 0,
  held: [] as Array<() => void>,
  release(): void {
    this.allow = Infinity;
    for (const resume of this.held.splice(0)) resume();
  },
};

beforeAll(async () => {
  tmp = await makeTempDir('bigup-browser-folder-batch-');
  pageDir = join(tmp.path, 'page');
  await buildDemo(pageDir);
  server = await startServer({
    dir: join(tmp.path, 'data'),
    pageDir,
    token: TOKEN,
    adminToken: ADMIN,
    metrics: true,
    // Thousands of OPENs from one address is what this test is about, not the abuse limit.
    opensPerSecond: 0,
    multiplexedOpensPerSecond: 0,
    // The reload test's files are small: the server remembers every file's content for instant
    // upload (by default only from 64 KiB up), and the page (no ticket) finds its address's.
    instantUploadMinSize: 1,
    instantUpload: 'address',
    authorizeUpload: async () => {
      if (++gate.seen > gate.allow) await new Promise<void>((resume) => gate.held.push(resume));
      return true;
    },
  });
  server.app.server.on('upgrade', (request: IncomingMessage) => {
    if (request.url?.startsWith('/upload')) upgrades++;
  });
  pageUrl = `${server.url}/?token=${TOKEN}`;
  browser = await launchBrowser();
}, 60_000);

afterAll(async () => {
  gate.release();
  await browser?.close();
  await server?.close();
  await tmp?.cleanup();
});

/** `count` files of 2-16 KiB of random bytes under dir/name, 100 per subfolder. */
async function makeFolder(
  dir: string,
  name: string,
  count: number,
): Promise<{ root: string; sizes: Map<string, number> }> {
  const root = join(dir, name);
  const sizes = new Map<string, number>();
  for (let start = 0; start < count; start += 100) {
    const part = `part-${String(start / 100).padStart(2, '0')}`;
    await mkdir(join(root, part), { recursive: true });
    const writes: Array<Promise<void>> = [];
    for (let i = start; i < Math.min(count, start + 100); i++) {
      const file = `f-${String(i).padStart(5, '0')}.bin`;
      const size = 2048 + Math.floor(Math.random() * (14 * 1024 + 1));
      sizes.set(`${name}/${part}/${file}`, size);
      writes.push(writeFile(join(root, part, file), randomBytes(size)));
    }
    await Promise.all(writes);
  }
  return { root, sizes };
}

interface FolderRow {
  status: string;
  done: number;
  total: number;
  failed: number;
}

function folderRow(page: Page): Promise<FolderRow | undefined> {
  return page.evaluate(() => {
    const li = document
      .querySelector('big-uploader')
      ?.shadowRoot?.querySelector<HTMLElement>('li.group');
    if (!li) return undefined;
    const count = li.querySelector<HTMLElement>('.files-count');
    return {
      status: li.dataset.status ?? '',
      done: Number(count?.dataset.done ?? -1),
      total: Number(count?.dataset.total ?? -1),
      failed: Number(li.querySelector<HTMLElement>('.failures')?.dataset.failed ?? 0),
    };
  });
}

async function waitForDone(page: Page, atLeast: number, timeout = 600_000): Promise<void> {
  await page.waitForFunction(
    (n) => {
      const count = document
        .querySelector('big-uploader')
        ?.shadowRoot?.querySelector<HTMLElement>('li.group .files-count');
      return Number(count?.dataset.done) >= n;
    },
    atLeast,
    { timeout, polling: 100 },
  );
}

interface Completion {
  uploadId: string;
  name: string;
  size: number;
}

async function completions(page: Page): Promise<Completion[]> {
  return (await events(page, 'upload-complete')).map((e) => e.detail as unknown as Completion);
}

/**
 * Every completion's stored file equals its source, where its metadata says it is, which ends in
 * its relative path (files/<batch>/<path> for a folder over one connection, else files/<id>/).
 */
async function expectStoredAsSent(
  list: Completion[],
  sourceDir: string,
  dataDir = join(tmp.path, 'data'),
): Promise<void> {
  for (const c of list) {
    const location = await storedLocation(dataDir, c.uploadId);
    expect(location.endsWith(`/${c.name}`), location).toBe(true);
    const stored = await readFile(location);
    const source = await readFile(join(sourceDir, c.name));
    expect(stored.equals(source), c.name).toBe(true);
  }
}

async function bytesReceived(): Promise<number> {
  const text = await (
    await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } })
  ).text();
  const match = /^bigup_bytes_received_total(?:\{[^}]*\})? (\d+(?:\.\d+)?(?:e\+\d+)?)$/m.exec(text);
  if (!match) throw new Error(`no bigup_bytes_received_total in /metrics:\n${text.slice(0, 500)}`);
  return Number(match[1]);
}

describe('<big-uploader>: a folder of small files over one connection', () => {
  it('uploads 2000 files over ONE WebSocket, byte-identical at their paths, with a bounded row list', async () => {
    const src = join(tmp.path, 'src-one');
    const { root, sizes } = await makeFolder(src, 'album', FILES);
    const { context, page } = await newPage(browser);
    try {
      await openDemo(page, pageUrl);
      const maxLi = await watchLiCount(page);
      const before = upgrades;
      await page.locator('big-uploader #folder-input').setInputFiles(root);
      await expect.poll(() => folderRow(page), { timeout: 30_000 }).toMatchObject({ total: FILES });
      // Expanded mid-upload: one page of file rows, whatever the folder holds.
      await page.locator('big-uploader li.group [part~="expand-button"]').click();
      await waitForDone(page, FILES);
      expect(await folderRow(page)).toMatchObject({ status: 'done', done: FILES, failed: 0 });
      expect(upgrades - before).toBe(1);

      const done = await completions(page);
      expect(done).toHaveLength(FILES);
      expect(new Set(done.map((c) => c.name))).toEqual(new Set(sizes.keys()));
      for (const c of done) expect(c.size).toBe(sizes.get(c.name));
      await expectStoredAsSent(done, src);
      expect(await events(page, 'upload-error')).toEqual([]);
      const most = await maxLi();
      process.stdout.write(`[info] ${FILES} files: at most ${most} <li> in the component\n`);
      expect(most).toBeLessThanOrEqual(101);
    } finally {
      await context.close();
    }
  }, 660_000);

  it('pauses the folder mid-upload (the click is handled, nothing more completes) and resumes it', async () => {
    const src = join(tmp.path, 'src-pause');
    const { root } = await makeFolder(src, 'pausing', FILES);
    const { context, page } = await newPage(browser);
    try {
      await openDemo(page, pageUrl);
      gate.seen = 0;
      gate.allow = 400;
      await page.locator('big-uploader #folder-input').setInputFiles(root);
      await waitForDone(page, 300);
      await expect.poll(() => gate.held.length, { timeout: 30_000 }).toBeGreaterThan(0);
      expect(await folderRow(page)).toMatchObject({ status: 'uploading' });
      await page.locator('big-uploader li.group [part~="pause-button"]').click();
      gate.release(); // the held OPENs are answered, and the paused files terminated
      await expect
        .poll(async () => (await folderRow(page))?.status, { timeout: 60_000 })
        .toBe('paused');
      const paused = await folderRow(page);
      expect(paused?.done).toBeLessThan(FILES);
      const opensWhilePaused = gate.seen;
      // Nothing runs while paused: no OPEN reaches the server and the done count stays.
      await page.waitForTimeout(1500);
      expect(gate.seen).toBe(opensWhilePaused);
      expect((await folderRow(page))?.done).toBe(paused?.done);

      await page.locator('big-uploader li.group [part~="resume-button"]').click();
      await waitForDone(page, FILES);
      expect(await folderRow(page)).toMatchObject({ status: 'done', done: FILES, failed: 0 });
      const done = await completions(page);
      expect(new Set(done.map((c) => c.name)).size).toBe(FILES);
      await expectStoredAsSent(done, src);
    } finally {
      gate.release();
      await context.close();
    }
  }, 660_000);

  it('resumes a folder after a reload without sending its completed files again', async () => {
    const src = join(tmp.path, 'src-reload');
    const { root, sizes } = await makeFolder(src, 'reloaded', FILES);
    const { context, page } = await newPage(browser);
    try {
      await openDemo(page, pageUrl);
      gate.seen = 0;
      gate.allow = 600;
      await page.locator('big-uploader #folder-input').setInputFiles(root);
      await waitForDone(page, 500);
      await expect.poll(() => gate.held.length, { timeout: 30_000 }).toBeGreaterThan(0);
      const doneBefore = await completions(page);
      await page.reload();
      gate.release();
      await page.waitForFunction(
        () => !!document.querySelector('big-uploader')?.shadowRoot?.querySelector('#file-input'),
      );
      const bytesBefore = await bytesReceived();
      await page.locator('big-uploader #folder-input').setInputFiles(root);
      await waitForDone(page, FILES);
      expect(await folderRow(page)).toMatchObject({ status: 'done', done: FILES, failed: 0 });
      const sent = (await bytesReceived()) - bytesBefore;

      // Only files not completed before the reload went over the wire again.
      const doneNames = new Set(doneBefore.map((c) => c.name));
      let notDoneBytes = 0;
      for (const [name, size] of sizes) if (!doneNames.has(name)) notDoneBytes += size;
      process.stdout.write(
        `[info] reload: ${doneBefore.length} files done before; ${sent} bytes sent after, ${notDoneBytes} bytes were left\n`,
      );
      expect(doneBefore.length).toBeGreaterThanOrEqual(500);
      expect(sent).toBeGreaterThan(0);
      expect(sent).toBeLessThanOrEqual(notDoneBytes);
      // The rows of the files done before say so ("Already on the server").
      const instant = await page.evaluate(() => {
        const el = document.querySelector('big-uploader') as unknown as {
          uploads: { items: Array<{ displayName: string; instant: boolean }> };
        };
        return el.uploads.items.filter((i) => i.instant).map((i) => i.displayName);
      });
      for (const name of doneNames) expect(instant, name).toContain(name);

      const after = await completions(page);
      expect(new Set(after.map((c) => c.name)).size).toBe(FILES);
      await expectStoredAsSent(after, src);
    } finally {
      gate.release();
      await context.close();
    }
  }, 660_000);

  it('transport="auto" without a usable WebSocket: the folder goes file by file over the HTTP binding', async () => {
    // One connection allowed, and it is taken: every WebSocket upgrade is refused (503, which a
    // browser reports as 1006 with no reason). The HTTP binding is not a connection.
    const dataDir = join(tmp.path, 'data-full');
    const full = await startServer({ dir: dataDir, pageDir, maxConnections: 1 });
    let chunkPuts = 0;
    full.app.server.on('request', (request: IncomingMessage) => {
      if (
        request.method === 'PUT' &&
        /^\/upload\/[0-9a-f]{32}\/chunks\/\d+/.test(request.url ?? '')
      )
        chunkPuts++;
    });
    const holder = await RawClient.connect(full.wsUrl);
    const src = join(tmp.path, 'src-auto');
    const { root } = await makeFolder(src, 'fallback', 30);
    const { context, page } = await newPage(browser);
    try {
      await openDemo(page, `${full.url}/`, { transport: 'auto' });
      await page.locator('big-uploader #folder-input').setInputFiles(root);
      await waitForDone(page, 30, 120_000);
      expect(await folderRow(page)).toMatchObject({ status: 'done', done: 30, failed: 0 });
      expect(chunkPuts).toBeGreaterThanOrEqual(30);
      const done = await completions(page);
      expect(done).toHaveLength(30);
      await expectStoredAsSent(done, src, dataDir);
    } finally {
      holder.close();
      await context.close();
      await full.close();
    }
  }, 180_000);
});
