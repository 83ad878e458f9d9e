/**
 * Real-browser test harness: builds the demo page (which embeds <big-uploader>) with vite into a
 * temp dir, launches Debian's Chromium through playwright-core (no browser download), or Debian's
 * Firefox ESR through puppeteer-core, and offers small helpers to drive the component and read its
 * state and events from the page.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import type { Browser as PuppeteerBrowser } from 'puppeteer-core';
import { build } from 'vite';
import { afterAll, beforeAll } from 'vitest';
import type { AppOptions } from '../../server/index.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const OUTPUT = join(ROOT, 'test-output');
export const MiB = 1024 * 1024;

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
];

/** Build the demo page (component bundled in) into `outDir`. */
export async function buildDemo(outDir: string): Promise<void> {
  await build({
    configFile: join(ROOT, 'vite.config.ts'),
    mode: 'production',
    logLevel: 'warn',
    build: { outDir, emptyOutDir: true, sourcemap: false },
  });
}

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: CHROMIUM_ARGS,
  });
}

/**
 * Debian's Firefox ESR, headless. playwright-core drives only its own patched Firefox build (a
 * download, which does not work here); a stock Firefox speaks WebDriver BiDi, which puppeteer-core
 * drives.
 */
export async function launchFirefox(): Promise<PuppeteerBrowser> {
  // Loaded here, so the Chromium suites do not need puppeteer-core installed.
  const { default: puppeteer } = await import('puppeteer-core');
  return puppeteer.launch({
    browser: 'firefox',
    executablePath: process.env.FIREFOX_PATH ?? '/usr/bin/firefox-esr',
    headless: true,
  });
}

export interface BrowserSuite<B = Browser> {
  /** The suite's temp dir (removed after the file's tests). */
  readonly tmp: TempDir;
  /** The built demo page, under tmp. */
  readonly pageDir: string;
  /** The in-process server's data dir, tmp/data. */
  readonly dataDir: string;
  /** The in-process server on dataDir serving pageDir (absent with `server: false`). */
  readonly server: TestServer;
  readonly browser: B;
  /** Path of the stored file of a completed upload (in `dataDir` unless another is given). */
  storedFile(uploadId: string, dataDir?: string): Promise<string>;
}

/**
 * The set-up every browser test file shares, as its beforeAll / afterAll: a temp dir, the demo
 * page built into it, the real server on tmp/data serving that page (with `server` options, or
 * none with `server: false`) and the browser `launch` starts (Chromium unless given); all of it
 * closed and removed after the file's tests. `prepare` runs after the build, before the server
 * starts (files the page must serve). The fields are read inside tests (they exist once beforeAll
 * ran).
 */
export function useBrowserSuite<B extends { close(): Promise<void> } = Browser>(
  prefix: string,
  server: Omit<AppOptions, 'dir' | 'pageDir'> | false = {},
  prepare?: (suite: BrowserSuite<B>) => Promise<void>,
  launch: () => Promise<B> = launchBrowser as unknown as () => Promise<B>,
): BrowserSuite<B> {
  let tmp: TempDir | undefined;
  let started: TestServer | undefined;
  let browser: B | undefined;
  const ready = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`browser suite: no ${what} (used outside a test?)`);
    return value;
  };
  const suite: BrowserSuite<B> = {
    get tmp() {
      return ready(tmp, 'temp dir');
    },
    get pageDir() {
      return join(suite.tmp.path, 'page');
    },
    get dataDir() {
      return join(suite.tmp.path, 'data');
    },
    get server() {
      return ready(started, 'server');
    },
    get browser() {
      return ready(browser, 'browser');
    },
    async storedFile(uploadId, dataDir = suite.dataDir) {
      const dir = join(dataDir, 'files', uploadId);
      const [name] = await readdir(dir);
      return join(dir, name);
    },
  };
  beforeAll(async () => {
    tmp = await makeTempDir(prefix);
    await buildDemo(suite.pageDir);
    await prepare?.(suite);
    if (server !== false)
      started = await startServer({ ...server, dir: suite.dataDir, pageDir: suite.pageDir });
    browser = await launch();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await started?.close();
    await tmp?.cleanup();
  });
  return suite;
}

/**
 * Run in the page before its scripts (an init script, in any engine): records every component
 * event, also across reloads, into window.__events (read with `events`).
 */
export function recordComponentEvents(): void {
  const w = window as unknown as {
    __events: Array<{ type: string; detail: unknown; t: number }>;
  };
  w.__events = [];
  for (const type of [
    'upload-start',
    'upload-progress',
    'upload-complete',
    'upload-error',
    'upload-refused',
  ]) {
    document.addEventListener(type, (e) =>
      w.__events.push({ type, detail: (e as CustomEvent).detail, t: performance.now() }),
    );
  }
}

/** Run in the page: whether <big-uploader> rendered (its file input exists). */
export function componentRendered(): boolean {
  return !!document.querySelector('big-uploader')?.shadowRoot?.querySelector('#file-input');
}

/** Run in the page: set (or with null remove) attributes on <big-uploader>, resolved once rendered. */
export function setComponentAttributes(attrs: Record<string, string | null>): Promise<boolean> {
  const el = document.querySelector('big-uploader')!;
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null) el.removeAttribute(name);
    else el.setAttribute(name, value);
  }
  return (el as unknown as { updateComplete: Promise<boolean> }).updateComplete;
}

/** A fresh context (own IndexedDB, so resume records never leak between tests) and page. */
export async function newPage(
  browser: Browser,
  options: { locale?: string; colorScheme?: 'light' | 'dark'; enforceCSP?: boolean } = {},
): Promise<{ context: BrowserContext; page: Page }> {
  // The test's own probes (waitForFunction strings, injected axe) are eval and inline scripts,
  // which the page's CSP forbids: Playwright lifts the CSP for them. The page itself is proven to
  // work under its CSP by the packaging test, whose Vite app page runs with `enforceCSP`.
  const context = await browser.newContext({
    locale: options.locale ?? 'en-US',
    colorScheme: options.colorScheme ?? 'light',
    viewport: { width: 820, height: 640 },
    bypassCSP: options.enforceCSP !== true,
  });
  await context.addInitScript(recordComponentEvents);
  const page = await context.newPage();
  page.on('pageerror', (error) => process.stderr.write(`[page error] ${error.message}\n`));
  return { context, page };
}

/** Open the demo and wait until the component rendered. `attrs` are set on the element before use. */
export async function openDemo(
  page: Page,
  url: string,
  attrs: Record<string, string | null> = {},
): Promise<void> {
  await page.goto(url);
  await page.waitForFunction(componentRendered);
  await page.evaluate(setComponentAttributes, attrs);
}

export async function pickFiles(page: Page, paths: string[]): Promise<void> {
  await page.locator('big-uploader #file-input').setInputFiles(paths);
}

export interface RowState {
  id: string;
  status: string;
  text: string;
  percent: number;
  note: string;
}

/** What the rows show, read from the shadow DOM (what a user sees, not the controller's fields). */
export function rows(page: Page): Promise<RowState[]> {
  return page.evaluate(() => {
    const root = document.querySelector('big-uploader')!.shadowRoot!;
    return Array.from(root.querySelectorAll<HTMLElement>('li.item')).map((li) => ({
      id: li.dataset.id ?? '',
      status: li.dataset.status ?? '',
      text: li.querySelector('.state')?.textContent?.trim() ?? '',
      percent: Number(li.querySelector('[role=progressbar]')?.getAttribute('aria-valuenow') ?? -1),
      note: li.querySelector('.note')?.textContent?.trim() ?? '',
    }));
  });
}

export async function waitForRow(page: Page, predicate: string, timeoutMs = 60_000): Promise<void> {
  // `predicate` is a JS expression over `r` (RowState-like: status, percent, text).
  await page.waitForFunction(
    (expr) => {
      const root = document.querySelector('big-uploader')?.shadowRoot;
      if (!root) return false;
      // eslint-disable-next-line @typescript-eslint/no-implied-eval -- the predicate is test code, run in the page
      const test = new Function('r', `return (${expr});`) as (r: unknown) => boolean;
      return Array.from(root.querySelectorAll<HTMLElement>('li.item')).some((li) =>
        test({
          status: li.dataset.status,
          percent: Number(
            li.querySelector('[role=progressbar]')?.getAttribute('aria-valuenow') ?? -1,
          ),
          text: li.querySelector('.state')?.textContent?.trim() ?? '',
        }),
      );
    },
    predicate,
    { timeout: timeoutMs, polling: 50 },
  );
}

export interface PageEvent {
  type: string;
  detail: Record<string, unknown>;
  t: number;
}

export function events(page: Page, type?: string): Promise<PageEvent[]> {
  return page.evaluate((ty) => {
    const all = (window as unknown as { __events: PageEvent[] }).__events;
    return ty ? all.filter((e) => e.type === ty) : all;
  }, type);
}

export async function clickRowButton(page: Page, part: string): Promise<void> {
  await page.locator(`big-uploader li.item [part~="${part}"]`).first().click();
}

/** Largest number of <li> in the component seen at any animation frame since this call. */
export async function watchLiCount(page: Page): Promise<() => Promise<number>> {
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

/** A file of `size` bytes that never repeats a 1 MiB block (each block carries its index). */
export async function makeFile(dir: string, name: string, size: number): Promise<string> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, name);
  const handle = await open(path, 'w');
  const block = randomBytes(MiB);
  try {
    for (let at = 0, i = 0; at < size; at += MiB, i++) {
      block.writeUInt32BE(i, 0);
      await handle.write(block, 0, Math.min(MiB, size - at), at);
    }
  } finally {
    await handle.close();
  }
  return path;
}

export async function sha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * MiB }))
    hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Run axe-core (injected from node_modules) on the page; serious and critical violations. */
export async function axeViolations(
  page: Page,
): Promise<Array<{ id: string; impact: string; help: string; nodes: string[] }>> {
  await page.addScriptTag({ path: join(ROOT, 'node_modules/axe-core/axe.min.js') });
  return page.evaluate(async () => {
    const axe = (
      window as unknown as {
        axe: {
          run(
            ctx: unknown,
            opts: unknown,
          ): Promise<{
            violations: Array<{
              id: string;
              impact: string;
              help: string;
              nodes: Array<{ target: unknown }>;
            }>;
          }>;
        };
      }
    ).axe;
    const result = await axe.run(document, { resultTypes: ['violations'] });
    return result.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => ({
        id: v.id,
        impact: v.impact,
        help: v.help,
        nodes: v.nodes.map((n) => JSON.stringify(n.target)),
      }));
  });
}
