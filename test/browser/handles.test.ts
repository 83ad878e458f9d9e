/**
 * One-click resume after a reload through stored File System Access handles, in headless Chromium
 * against the real server, and its graceful degradation where the API is missing.
 *
 * The seam: headless Chromium cannot click the native file picker, so the test replaces only
 * `window.showOpenFilePicker` (which the component looks up at call time, platform.ts
 * `pickHandles`) with a function that returns a real FileSystemFileHandle from the Origin Private
 * File System. Everything after the picker is the component's own code: getFile(), storing the
 * handle in IndexedDB, listing it after the reload, the permission check and getFile() on click.
 */
import { execFileSync } from 'node:child_process';
import { copyFile, mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import {
  MiB,
  events,
  makeFile,
  newPage,
  openDemo,
  sha256,
  useBrowserSuite,
  waitForRow,
} from './harness.js';

/** `fixture` copies source files into fixtures/: the page serves them for the picker stand-in. */
const suite = useBrowserSuite('bigup-browser-handles-', {}, async ({ pageDir }) => {
  await mkdir(join(pageDir, 'fixtures'));
});
const SIZE = 64 * MiB;
/** lib.dom does not declare the File System Access picker yet. */
type PickerWindow = { showOpenFilePicker?: (options: unknown) => Promise<FileSystemFileHandle[]> };
const ATTRS = { 'limit-rate': String(16 * MiB), 'chunk-size': String(1 * MiB) };

const { storedFile } = suite;

/** Before any page script runs, as in a browser without the File System Access API. */
async function withoutFilePicker(context: BrowserContext): Promise<void> {
  await context.addInitScript(() => {
    delete (Window.prototype as { showOpenFilePicker?: unknown }).showOpenFilePicker;
    delete (window as { showOpenFilePicker?: unknown }).showOpenFilePicker;
  });
}

/** The "Choose files" button falls back to the native <input type=file>. */
async function pickWithButton(page: Page, source: string): Promise<void> {
  const [chooser] = await Promise.all([
    page.waitForEvent('filechooser'),
    page.locator('big-uploader [part~="pick-button"]').click(),
  ]);
  await chooser.setFiles([source]);
}

/** A source file on disk, also served by the test server under /fixtures/<name>. */
async function fixture(name: string): Promise<string> {
  const source = await makeFile(join(suite.tmp.path, 'src'), name, SIZE);
  await copyFile(source, join(suite.pageDir, 'fixtures', name));
  return source;
}

const unfinishedNames = (page: Page) =>
  page.evaluate(() =>
    Array.from(
      document.querySelector('big-uploader')!.shadowRoot!.querySelectorAll('.unfinished li .name'),
    ).map((e) => e.textContent?.trim() ?? ''),
  );

/** Saved handles in the component's IndexedDB store (read directly, not through the component). */
const savedHandles = (page: Page) =>
  page.evaluate(
    () =>
      new Promise<Array<{ name: string; size: number; kind: string }>>((resolve, reject) => {
        const req = indexedDB.open('big-uploader-handles', 1);
        req.onupgradeneeded = () => req.result.createObjectStore('handles', { keyPath: 'key' });
        req.onerror = () => reject(req.error ?? new Error('IndexedDB request failed'));
        req.onsuccess = () => {
          const get = req.result.transaction('handles').objectStore('handles').getAll();
          get.onsuccess = () => {
            resolve(
              (
                get.result as Array<{ name: string; size: number; handle: FileSystemFileHandle }>
              ).map((s) => ({ name: s.name, size: s.size, kind: s.handle.kind })),
            );
            req.result.close();
          };
          get.onerror = () => reject(get.error ?? new Error('IndexedDB request failed'));
        };
      }),
  );

/** After the upload finished: the page's view of what was sent, and the server's file. */
async function expectResumedOnlyMissing(
  page: Page,
  firstId: string,
  source: string,
): Promise<{ resumedBytes: number }> {
  const start = (await events(page, 'upload-start'))[0].detail as {
    uploadId: string;
    resumedBytes: number;
  };
  expect(start.uploadId).toBe(firstId);
  expect(start.resumedBytes).toBeGreaterThanOrEqual(0.3 * SIZE);
  expect(start.resumedBytes).toBeLessThan(SIZE);
  const progress = await events(page, 'upload-progress');
  const last = progress[progress.length - 1].detail as { bytesSent: number; bytesAcked: number };
  expect(last.bytesAcked).toBe(SIZE);
  // Only the bytes the server lacked went over the wire after the reload.
  expect(last.bytesSent).toBe(SIZE - start.resumedBytes);
  const complete = (await events(page, 'upload-complete'))[0].detail as { uploadId: string };
  expect(complete.uploadId).toBe(firstId);
  expect(await sha256(await storedFile(firstId))).toBe(await sha256(source));
  return start;
}

describe('<big-uploader> resume with stored file handles', () => {
  it('offers one-click resume after a reload and sends only the missing bytes', async () => {
    const name = 'opfs-64.bin';
    const source = await fixture(name);
    const { context, page } = await newPage(suite.browser);
    try {
      await openDemo(page, suite.server.url, ATTRS);
      // The real picker exists here; only the dialog is replaced: it "picks" an OPFS file holding
      // the fixture's bytes (a real FileSystemFileHandle, storable in IndexedDB).
      const api = await page.evaluate(async (fileName) => {
        const w = window as unknown as PickerWindow & { __pickerCalls: unknown[] };
        const native = typeof w.showOpenFilePicker === 'function';
        const root = await navigator.storage.getDirectory();
        const handle = await root.getFileHandle(fileName, { create: true });
        const res = await fetch(`/fixtures/${fileName}`);
        await res.body!.pipeTo(await handle.createWritable());
        w.__pickerCalls = [];
        w.showOpenFilePicker = async (options) => {
          w.__pickerCalls.push(options);
          return [await root.getFileHandle(fileName)];
        };
        return { native, size: (await handle.getFile()).size };
      }, name);
      expect(api).toEqual({ native: true, size: SIZE });
      await page.locator('big-uploader [part~="pick-button"]').click();
      expect(
        await page.evaluate(
          () => (window as unknown as { __pickerCalls: unknown[] }).__pickerCalls,
        ),
      ).toEqual([{ multiple: true }]);
      await waitForRow(page, `r.status === 'uploading' && r.percent >= 40`);
      const firstId = ((await events(page, 'upload-start'))[0].detail as { uploadId: string })
        .uploadId;
      expect(await savedHandles(page)).toEqual([{ name, size: SIZE, kind: 'file' }]);

      await page.reload();
      await openDemo(page, suite.server.url, ATTRS);
      // No picker this time: the offer comes from the handle stored before the reload.
      await page.evaluate(() => {
        (window as unknown as PickerWindow).showOpenFilePicker = () =>
          Promise.reject(new Error('the picker must not be used'));
      });
      const offer = page.locator('big-uploader .unfinished');
      await offer.waitFor({ timeout: 10_000 });
      expect(await offer.locator('h2').textContent()).toBe(
        'Unfinished uploads from an earlier visit',
      );
      expect(await unfinishedNames(page)).toEqual([name]);
      expect(await page.locator('big-uploader li.item').count()).toBe(0);
      // Offers belong to an endpoint: pointing the element elsewhere by property (as frameworks
      // do after connecting it) hides this one, pointing it back offers it again.
      const endpoint = await page.evaluate(
        () =>
          document.querySelector('big-uploader')!.getAttribute('endpoint') ??
          (document.querySelector('big-uploader') as unknown as { endpoint: string }).endpoint,
      );
      await page.evaluate(() => {
        (document.querySelector('big-uploader') as unknown as { endpoint: string }).endpoint =
          'ws://127.0.0.1:9/elsewhere';
      });
      await expect.poll(() => offer.count()).toBe(0);
      await page.evaluate((url) => {
        (document.querySelector('big-uploader') as unknown as { endpoint: string }).endpoint = url;
      }, endpoint);
      await offer.waitFor({ timeout: 10_000 });
      expect(await unfinishedNames(page)).toEqual([name]);
      await offer.getByRole('button', { name: `Resume ${name}` }).click();
      await page.locator('big-uploader li.item .resumed').waitFor({ timeout: 90_000 });
      await expect.poll(() => offer.count()).toBe(0); // the offer becomes the row
      await waitForRow(page, `r.status === 'done'`, 60_000);
      await expectResumedOnlyMissing(page, firstId, source);
      // A finished upload is forgotten: nothing is offered after another reload.
      await expect.poll(() => savedHandles(page)).toEqual([]);
      await page.reload();
      await openDemo(page, suite.server.url, ATTRS);
      await page.waitForTimeout(300);
      expect(await unfinishedNames(page)).toEqual([]);
    } finally {
      await context.close();
    }
  }, 180_000);

  it('degrades without showOpenFilePicker: no offer, picking the file again still resumes', async () => {
    const name = 'plain-64.bin';
    const source = await fixture(name);
    const { context, page } = await newPage(suite.browser);
    await withoutFilePicker(context);
    const pickThroughButton = (): Promise<void> => pickWithButton(page, source);
    try {
      await openDemo(page, suite.server.url, ATTRS);
      expect(await page.evaluate(() => 'showOpenFilePicker' in window)).toBe(false);
      await pickThroughButton();
      await waitForRow(page, `r.status === 'uploading' && r.percent >= 40`);
      const firstId = ((await events(page, 'upload-start'))[0].detail as { uploadId: string })
        .uploadId;
      expect(await savedHandles(page)).toEqual([]);

      await page.reload();
      await openDemo(page, suite.server.url, ATTRS);
      await page.waitForTimeout(300);
      expect(await page.locator('big-uploader .unfinished').count()).toBe(0);
      await pickThroughButton();
      const note = page.locator('big-uploader li.item .resumed');
      await note.waitFor({ timeout: 90_000 });
      const noteText = (await note.textContent())?.trim();
      await waitForRow(page, `r.status === 'done'`, 60_000);
      const { resumedBytes } = await expectResumedOnlyMissing(page, firstId, source);
      expect(noteText).toBe(`Resuming at ${Math.floor((resumedBytes / SIZE) * 100)}%`);
      expect(await page.locator('big-uploader .unfinished').count()).toBe(0);
    } finally {
      await context.close();
    }
  }, 180_000);

  it('a re-picked file edited since the earlier session: only the changed part is sent again (REPLACE_CHUNK), with a note in the row, and stored as it is now', async () => {
    const name = 'edited-64.bin';
    const source = await fixture(name);
    const { context, page } = await newPage(suite.browser);
    await withoutFilePicker(context);
    const pickThroughButton = (): Promise<void> => pickWithButton(page, source);
    try {
      await openDemo(page, suite.server.url, ATTRS);
      await pickThroughButton();
      await waitForRow(page, `r.status === 'uploading' && r.percent >= 40`);
      const firstId = ((await events(page, 'upload-start'))[0].detail as { uploadId: string })
        .uploadId;
      await page.reload();
      // Bytes the server already holds change on disk; the mtime is put back, so the resume
      // fingerprint (name, size, mtime, start/middle/end samples) still matches.
      const reference = `${source}.mtime`;
      execFileSync('touch', ['-r', source, reference]);
      const handle = await open(source, 'r+');
      await handle.write(Buffer.alloc(3400, 0x5a), 0, 3400, 10 * MiB);
      await handle.close();
      execFileSync('touch', ['-r', reference, source]);
      await openDemo(page, suite.server.url, ATTRS);
      await pickThroughButton();
      const note = page.locator('big-uploader li.item .changed-parts');
      await note.waitFor({ timeout: 60_000 });
      expect((await note.textContent())?.trim()).toBe(
        'Parts of the file changed since the earlier upload; sending only those again',
      );
      await waitForRow(page, `r.status === 'done'`, 60_000);
      const complete = (await events(page, 'upload-complete'))[0].detail as { uploadId: string };
      // The same upload went on (what the server had unchanged was kept) and holds the new bytes.
      expect(complete.uploadId).toBe(firstId);
      expect(await sha256(await storedFile(complete.uploadId))).toBe(await sha256(source));
    } finally {
      await context.close();
    }
  }, 120_000);
});
