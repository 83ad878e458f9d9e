/**
 * <big-uploader> surviving faults, in headless Chromium against the real server: the server is
 * killed (SIGKILL) and restarted mid-upload, and the page is reloaded mid-upload and the same file
 * picked again (only the missing bytes are sent).
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startChildServer, startServer, type ChildServer } from '../helpers/server.js';
import {
  MiB,
  events,
  makeFile,
  newPage,
  openDemo,
  pickFiles,
  sha256,
  useBrowserSuite,
  waitForRow,
} from './harness.js';

/** Servers here are started per test: child processes to kill, or one per data dir. */
const suite = useBrowserSuite('bigup-browser-faults-', false);
const children: ChildServer[] = [];

afterAll(() => {
  for (const child of children) child.kill('SIGKILL');
});

const { storedFile } = suite;

describe('<big-uploader> faults', () => {
  it('keeps going when the server is killed and restarted mid-upload', async () => {
    const dataDir = join(suite.tmp.path, 'data-kill');
    const source = await makeFile(join(suite.tmp.path, 'src'), 'kill-64.bin', 64 * MiB);
    const args = ['--dir', dataDir, '--page-dir', suite.pageDir];
    const first = await startChildServer(args);
    children.push(first);
    const port = new URL(first.url).port;
    const { context, page } = await newPage(suite.browser);
    try {
      await openDemo(page, first.url, {
        'limit-rate': String(16 * MiB),
        'chunk-size': String(1 * MiB),
      });
      await pickFiles(page, [source]);
      await waitForRow(page, `r.status === 'uploading' && r.percent >= 25`);
      first.kill('SIGKILL');
      await first.exited;
      // The row says it is retrying (with a countdown), not failed.
      await waitForRow(page, `r.status === 'retrying' || r.status === 'connecting'`, 15_000);
      await page.waitForTimeout(500);
      const second = await startChildServer([...args, '--port', port]);
      children.push(second);
      await waitForRow(page, `r.status === 'done'`, 90_000);
      const starts = await events(page, 'upload-start');
      expect(starts).toHaveLength(1);
      const complete = await events(page, 'upload-complete');
      expect(complete).toHaveLength(1);
      const { uploadId } = complete[0].detail as { uploadId: string };
      expect(uploadId).toBe((starts[0].detail as { uploadId: string }).uploadId);
      expect(await events(page, 'upload-error')).toHaveLength(0);
      expect(await sha256(await storedFile(uploadId, dataDir))).toBe(await sha256(source));
      second.kill('SIGTERM');
      await second.exited;
    } finally {
      await context.close();
    }
  }, 120_000);

  it('resumes after a page reload: the same file picked again sends only the missing bytes', async () => {
    const dataDir = join(suite.tmp.path, 'data-reload');
    const server = await startServer({ dir: dataDir, pageDir: suite.pageDir });
    const size = 64 * MiB;
    const source = await makeFile(join(suite.tmp.path, 'src'), 'reload-64.bin', size);
    const attrs = { 'limit-rate': String(16 * MiB), 'chunk-size': String(1 * MiB) };
    const { context, page } = await newPage(suite.browser);
    try {
      await openDemo(page, server.url, attrs);
      await pickFiles(page, [source]);
      await waitForRow(page, `r.status === 'uploading' && r.percent >= 40`);
      const firstId = ((await events(page, 'upload-start'))[0].detail as { uploadId: string })
        .uploadId;
      await page.reload();
      await page.waitForFunction(
        () => !!document.querySelector('big-uploader')?.shadowRoot?.querySelector('#file-input'),
      );
      await openDemo(page, server.url, attrs);
      await pickFiles(page, [source]);
      // The row says where it resumes while it uploads the rest.
      const note = page.locator('big-uploader li.item .resumed');
      await note.waitFor({ timeout: 90_000 });
      const noteText = (await note.textContent())?.trim();
      await waitForRow(page, `r.status === 'done'`, 60_000);
      const start = (await events(page, 'upload-start'))[0].detail as {
        uploadId: string;
        resumedBytes: number;
        size: number;
      };
      expect(start.uploadId).toBe(firstId);
      expect(start.resumedBytes).toBeGreaterThanOrEqual(0.3 * size);
      expect(start.resumedBytes).toBeLessThan(size);
      const progress = await events(page, 'upload-progress');
      const last = progress[progress.length - 1].detail as {
        bytesSent: number;
        bytesAcked: number;
      };
      expect(last.bytesAcked).toBe(size);
      // Only the bytes the server lacked went over the wire after the reload.
      expect(last.bytesSent).toBe(size - start.resumedBytes);
      const percent = Math.floor((start.resumedBytes / size) * 100);
      expect(noteText).toBe(`Resuming at ${percent}%`);
      const complete = (await events(page, 'upload-complete'))[0].detail as { uploadId: string };
      expect(complete.uploadId).toBe(firstId);
      expect(await sha256(await storedFile(firstId, dataDir))).toBe(await sha256(source));
    } finally {
      await context.close();
      await server.close();
    }
  }, 180_000);
});
