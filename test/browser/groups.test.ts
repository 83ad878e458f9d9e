/**
 * <big-uploader> with many files, in headless Chromium against the real server: a picked folder
 * of 10,000 small files is one row whose counts reach 10,000 done while the page never holds more
 * than one page of file rows; a file the server refuses shows in its folder's failures while the
 * rest completes; a large loose selection is one "N files" row, a small one stays file rows.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { axeViolations, newPage, openDemo, rows, useBrowserSuite } from './harness.js';

const TOKEN = 'groups-test-token';
/** The server refuses files above this (FILE_TOO_LARGE), which makes one file of a folder fail. */
const MAX_UPLOAD = 1024;
const suite = useBrowserSuite('bigup-browser-groups-', {
  token: TOKEN,
  maxUploadSize: MAX_UPLOAD,
  maxCommittedBytesPerClient: 1024 * 1024,
  // 10,000 OPENs from one address is what this test is about, not the abuse limit.
  opensPerSecond: 0,
});
const pageUrl = (): string => `${suite.server.url}/?token=${TOKEN}`;

/** `count` files of `size` bytes under dir/name, 100 per subfolder; each file's bytes name it. */
async function makeTree(dir: string, name: string, count: number, size: number): Promise<string> {
  const root = join(dir, name);
  for (let start = 0; start < count; start += 100) {
    const sub = join(root, `part-${String(start / 100).padStart(3, '0')}`);
    await mkdir(sub, { recursive: true });
    const writes: Array<Promise<void>> = [];
    for (let i = start; i < Math.min(count, start + 100); i++) {
      const body = `#${String(i).padStart(6, '0')}`.padEnd(size, '.').slice(0, size);
      writes.push(writeFile(join(sub, `f-${String(i).padStart(6, '0')}.txt`), body));
    }
    await Promise.all(writes);
  }
  return root;
}

interface GroupView {
  id: string;
  kind: string;
  status: string;
  name: string;
  done: number;
  total: number;
  failed: number;
  expanded: boolean;
}

/** The group rows as shown (data attributes and text of the shadow DOM). */
function groups(page: Page): Promise<GroupView[]> {
  return page.evaluate(() => {
    const root = document.querySelector('big-uploader')!.shadowRoot!;
    return Array.from(root.querySelectorAll<HTMLElement>('li.group')).map((li) => {
      const count = li.querySelector<HTMLElement>('.files-count');
      return {
        id: li.dataset.id ?? '',
        kind: li.dataset.kind ?? '',
        status: li.dataset.status ?? '',
        name: li.querySelector(':scope > .head .name')?.textContent?.trim() ?? '',
        done: Number(count?.dataset.done ?? -1),
        total: Number(count?.dataset.total ?? -1),
        failed: Number(li.querySelector<HTMLElement>('.failures')?.dataset.failed ?? 0),
        expanded:
          li.querySelector('[part~="expand-button"]')?.getAttribute('aria-expanded') === 'true',
      };
    });
  });
}

function liCount(page: Page): Promise<number> {
  return page.evaluate(
    () => document.querySelector('big-uploader')!.shadowRoot!.querySelectorAll('li').length,
  );
}

function rangeText(page: Page): Promise<string> {
  return page.evaluate(
    () =>
      document
        .querySelector('big-uploader')!
        .shadowRoot!.querySelector('.pager .range')
        ?.textContent?.trim() ?? '',
  );
}

/** Largest number of <li> in the component seen at any animation frame since this call. */
async function watchLiCount(page: Page): Promise<() => Promise<number>> {
  await page.evaluate(() => {
    const w = window as unknown as { __maxLi: number };
    w.__maxLi = 0;
    const sample = () => {
      const n =
        document.querySelector('big-uploader')?.shadowRoot?.querySelectorAll('li').length ?? 0;
      if (n > w.__maxLi) w.__maxLi = n;
      requestAnimationFrame(sample);
    };
    requestAnimationFrame(sample);
  });
  return () => page.evaluate(() => (window as unknown as { __maxLi: number }).__maxLi);
}

function countEvents(page: Page, type: string): Promise<{ count: number; unique: number }> {
  return page.evaluate((ty) => {
    const all = (
      window as unknown as { __events: Array<{ type: string; detail: { uploadId?: string } }> }
    ).__events.filter((e) => e.type === ty);
    return { count: all.length, unique: new Set(all.map((e) => e.detail.uploadId)).size };
  }, type);
}

describe('<big-uploader> with many files', () => {
  it('shows a folder of 10,000 files as one row with bounded file rows, and uploads all of it', async () => {
    const FILES = 10_000;
    const folder = await makeTree(join(suite.tmp.path, 'src'), 'photos', FILES, 16);
    const { context, page } = await newPage(suite.browser);
    try {
      await openDemo(page, pageUrl(), { concurrency: '8' });
      const maxLi = await watchLiCount(page);
      await page.locator('big-uploader #folder-input').setInputFiles(folder);
      await expect
        .poll(() => groups(page), { timeout: 30_000 })
        .toMatchObject([{ kind: 'folder', name: 'photos', total: FILES }]);
      // Collapsed: the folder is the only row.
      expect(await liCount(page)).toBe(1);
      expect(await rows(page)).toEqual([]);

      // Expanded: one page of 100 file rows, paged with Next.
      await page.locator('big-uploader li.group [part~="expand-button"]').click();
      await expect.poll(() => page.locator('big-uploader li.item').count()).toBe(100);
      expect(await rangeText(page)).toBe('Files 1–100 of 10,000');
      const firstPage = (await rows(page)).map((r) => r.id);
      await page.locator('big-uploader [part~="page-button"]', { hasText: 'Next' }).click();
      await expect.poll(() => rangeText(page)).toBe('Files 101–200 of 10,000');
      const secondPage = (await rows(page)).map((r) => r.id);
      expect(secondPage).toHaveLength(100);
      expect(secondPage.filter((id) => firstPage.includes(id))).toEqual([]);
      const names = await page.evaluate(() =>
        Array.from(
          document
            .querySelector('big-uploader')!
            .shadowRoot!.querySelectorAll('li.item > .head .name'),
        ).map((n) => n.textContent?.trim()),
      );
      // Rows show the path inside the picked folder (the browser lists it in directory order).
      expect(names).toHaveLength(100);
      for (const name of names) expect(name).toMatch(/^photos\/part-\d{3}\/f-\d{6}\.txt$/);

      // Every file uploads; the folder's counts say so.
      await page.waitForFunction(
        (n) => {
          const count = document
            .querySelector('big-uploader')
            ?.shadowRoot?.querySelector<HTMLElement>('li.group .files-count');
          return Number(count?.dataset.done) === n;
        },
        FILES,
        { timeout: 900_000, polling: 500 },
      );
      const [group] = await groups(page);
      expect(group).toMatchObject({ status: 'done', done: FILES, total: FILES, failed: 0 });
      const complete = await countEvents(page, 'upload-complete');
      expect(complete).toEqual({ count: FILES, unique: FILES });
      expect((await countEvents(page, 'upload-error')).count).toBe(0);
      const text = await page.evaluate(() =>
        document
          .querySelector('big-uploader')!
          .shadowRoot!.querySelector('li.group > .meta')
          ?.textContent?.replace(/\s+/g, ' ')
          .trim(),
      );
      expect(text).toContain('10,000 of 10,000 files');
      expect(text).toContain('156 KiB of 156 KiB');

      // The page never held more than the folder row, one page of files and nothing else.
      const most = await maxLi();
      process.stdout.write(`[info] ${FILES} files: at most ${most} <li> in the component\n`);
      expect(most).toBeLessThanOrEqual(101);
      expect(await liCount(page)).toBe(101);
    } finally {
      await context.close();
    }
  }, 960_000);

  it("counts a refused file in its folder's failures while the rest completes", async () => {
    const folder = await makeTree(join(suite.tmp.path, 'src'), 'mixed', 150, 16);
    await writeFile(join(folder, 'part-000', 'too-big.bin'), Buffer.alloc(MAX_UPLOAD * 2, 7));
    const { context, page } = await newPage(suite.browser);
    try {
      await openDemo(page, pageUrl(), { concurrency: '4' });
      await page.locator('big-uploader #folder-input').setInputFiles(folder);
      await expect
        .poll(() => groups(page), { timeout: 120_000 })
        .toMatchObject([{ name: 'mixed', status: 'failed', done: 150, total: 151, failed: 1 }]);
      const errors = await page.evaluate(() =>
        (
          window as unknown as { __events: Array<{ type: string; detail: { code: number } }> }
        ).__events
          .filter((e) => e.type === 'upload-error')
          .map((e) => e.detail.code),
      );
      expect(errors).toEqual([0x0103]);
      expect((await countEvents(page, 'upload-complete')).count).toBe(150);

      // "Failed only" lists just the failed file, with its reason.
      await page.locator('big-uploader li.group [part~="expand-button"]').click();
      await page.locator('big-uploader [part~="filter-button"]').click();
      await expect.poll(() => rows(page)).toMatchObject([{ status: 'failed' }]);
      const [failed] = await rows(page);
      expect(failed.text).toMatch(/^Failed: /);
      expect(await rangeText(page)).toBe('Files 1–1 of 1');
      expect(await axeViolations(page), 'expanded folder with a failure').toEqual([]);

      // Retry failed runs it again (the server refuses it again: a second error, same row).
      await page.locator('big-uploader li.group [part~="retry-failed-button"]').click();
      await expect
        .poll(async () => (await countEvents(page, 'upload-error')).count, { timeout: 30_000 })
        .toBe(2);
      await expect.poll(() => groups(page)).toMatchObject([{ failed: 1, done: 150 }]);
    } finally {
      await context.close();
    }
  }, 180_000);

  it('groups a large loose selection into one "N files" row, and leaves a small one as files', async () => {
    const many = await makeTree(join(suite.tmp.path, 'src'), 'loose', 60, 16);
    const paths = Array.from({ length: 60 }, (_, i) =>
      join(many, 'part-000', `f-${String(i).padStart(6, '0')}.txt`),
    );
    const { context, page } = await newPage(suite.browser);
    try {
      await openDemo(page, pageUrl(), { 'auto-start': null });
      await page.locator('big-uploader #file-input').setInputFiles(paths.slice(0, 10));
      await expect.poll(() => page.locator('big-uploader li.item').count()).toBe(10);
      expect(await groups(page)).toEqual([]);
      await page.locator('big-uploader #file-input').setInputFiles(paths);
      await expect
        .poll(() => groups(page))
        .toMatchObject([{ kind: 'files', name: '60 files', total: 60, status: 'queued' }]);
      expect(await liCount(page)).toBe(11);
      // Auto-start is off: the toolbar's Start runs them, and the row counts them done.
      await page.locator('big-uploader [part~="start-button"]').click();
      await expect
        .poll(() => groups(page), { timeout: 60_000 })
        .toMatchObject([{ status: 'done', done: 60 }]);
      expect(await axeViolations(page), 'loose group done').toEqual([]);
    } finally {
      await context.close();
    }
  }, 120_000);
});
