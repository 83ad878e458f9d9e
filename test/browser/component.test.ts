/**
 * <big-uploader> in headless Chromium against the real server (in-process, 127.0.0.1, port 0,
 * temp data dir): a 256 MiB upload checked byte for byte, no long tasks while it runs, pause and
 * resume, cancel, refused files, both languages, accessibility, and a mid-upload screenshot.
 */
import { copyFile, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import {
  MiB,
  OUTPUT,
  ROOT,
  axeViolations,
  buildDemo,
  clickRowButton,
  events,
  launchBrowser,
  makeFile,
  newPage,
  openDemo,
  pickFiles,
  rows,
  sha256,
  waitForRow,
} from './harness.js';

const TOKEN = 'browser-test-token';
let tmp: TempDir;
let server: TestServer;
let browser: Browser;
let pageUrl: string;

beforeAll(async () => {
  tmp = await makeTempDir('bigup-browser-');
  const pageDir = join(tmp.path, 'page');
  await Promise.all([buildDemo(pageDir), mkdir(OUTPUT, { recursive: true })]);
  server = await startServer({ dir: join(tmp.path, 'data'), pageDir, token: TOKEN });
  pageUrl = `${server.url}/?token=${TOKEN}`;
  browser = await launchBrowser();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await tmp?.cleanup();
});

async function storedFile(uploadId: string): Promise<string> {
  const dir = join(tmp.path, 'data', 'files', uploadId);
  const [name] = await readdir(dir);
  return join(dir, name!);
}

async function serverState(uploadId: string): Promise<number> {
  const res = await fetch(`${server.url}/uploads/${uploadId}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  return res.status;
}

describe('<big-uploader> in Chromium', () => {
  it('uploads a 256 MiB file byte for byte without main-thread long tasks', async () => {
    const source = await makeFile(join(tmp.path, 'src'), 'big-256.bin', 256 * MiB);
    const { context, page } = await newPage(browser);
    try {
      await openDemo(page, pageUrl);
      // Long tasks (> 50 ms) on the page's main thread while the upload runs.
      await page.evaluate(() => {
        const w = window as unknown as { __long: number[] };
        w.__long = [];
        new PerformanceObserver((list) => {
          for (const e of list.getEntries()) w.__long.push(e.duration);
        }).observe({ type: 'longtask' });
      });
      const t0 = Date.now();
      await pickFiles(page, [source]);
      await waitForRow(page, `r.status === 'uploading' && r.percent >= 30`);
      await page.screenshot({ path: join(OUTPUT, 'big-uploader-mid-upload.png') });
      await waitForRow(page, `r.status === 'done'`, 120_000);
      const seconds = (Date.now() - t0) / 1000;
      const long = await page.evaluate(() => (window as unknown as { __long: number[] }).__long);
      const complete = await events(page, 'upload-complete');
      expect(complete).toHaveLength(1);
      const detail = complete[0]!.detail as { uploadId: string; size: number; digest: string; name: string };
      expect(detail.size).toBe(256 * MiB);
      expect(detail.name).toBe('big-256.bin');
      expect(detail.digest).toMatch(/^[0-9a-f]{16}$/);
      expect(await sha256(await storedFile(detail.uploadId))).toBe(await sha256(source));
      const progress = await events(page, 'upload-progress');
      expect(progress.length).toBeGreaterThan(3);
      const acked = progress.map((e) => (e.detail as { bytesAcked: number }).bytesAcked);
      expect(acked).toEqual([...acked].sort((a, b) => a - b));
      process.stdout.write(`[measure] 256 MiB through <big-uploader> in headless Chromium: ${seconds.toFixed(2)} s, ${(256 * MiB / 1e6 / seconds).toFixed(1)} MB/s; long tasks: ${long.length ? long.map((d) => d.toFixed(0)).join(', ') + ' ms' : 'none'}\n`);
      expect(long.filter((d) => d > 50)).toEqual([]);
    } finally {
      await context.close();
    }
  }, 150_000);
});
