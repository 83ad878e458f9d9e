/**
 * <big-uploader> in a second engine, so the component is not tuned to one browser: Debian's
 * Firefox ESR (driven by puppeteer-core over WebDriver BiDi) picks a file through the demo page's
 * file input and uploads it to the real server over each transport, the stored file compared
 * byte for byte. Which binding carried the chunks is read on the server's socket (HTTP requests and
 * WebSocket upgrades), since the upload runs in a worker that page-side probes do not see.
 */
import { join } from 'node:path';
import type { IncomingMessage } from 'node:http';
import type { ElementHandle, Page } from 'puppeteer-core';
import { describe, expect, it } from 'vitest';
import {
  MiB,
  componentRendered,
  launchFirefox,
  makeFile,
  recordComponentEvents,
  setComponentAttributes,
  sha256,
  useBrowserSuite,
  type PageEvent,
} from './harness.js';

const TOKEN = 'firefox-test-token';
const suite = useBrowserSuite('bigup-firefox-', { token: TOKEN }, undefined, launchFirefox);

/** Chunk PUTs of the HTTP binding and WebSocket upgrades the server saw while `run` ran. */
async function serverTraffic(
  run: () => Promise<void>,
): Promise<{ puts: number; upgrades: number }> {
  const seen = { puts: 0, upgrades: 0 };
  const http = suite.server.app.server;
  const onRequest = (request: IncomingMessage): void => {
    if (request.method === 'PUT' && /\/upload\/[0-9a-f]{32}\/chunks\/\d+$/.test(request.url ?? ''))
      seen.puts++;
  };
  const onUpgrade = (): void => {
    seen.upgrades++;
  };
  http.on('request', onRequest);
  http.on('upgrade', onUpgrade);
  try {
    await run();
  } finally {
    http.off('request', onRequest);
    http.off('upgrade', onUpgrade);
  }
  return seen;
}

function pageEvents(page: Page): Promise<PageEvent[]> {
  return page.evaluate(() => (window as unknown as { __events: PageEvent[] }).__events);
}

/** Open the demo in a fresh context with `transport`, pick `source`, wait for its end; its events. */
async function uploadThroughDemo(
  transport: 'auto' | 'websocket' | 'http',
  source: string,
): Promise<PageEvent[]> {
  const context = await suite.browser.createBrowserContext();
  try {
    const page = await context.newPage();
    page.on('pageerror', (error) => process.stderr.write(`[page error] ${String(error)}\n`));
    await page.evaluateOnNewDocument(recordComponentEvents);
    await page.goto(`${suite.server.url}/?token=${TOKEN}`);
    await page.waitForFunction(componentRendered, { timeout: 30_000 });
    await page.evaluate(setComponentAttributes, { transport });
    const input = (await page.waitForSelector(
      'big-uploader >>> #file-input',
    )) as ElementHandle<HTMLInputElement>;
    await input.uploadFile(source);
    await page.waitForFunction(
      () =>
        (window as unknown as { __events: PageEvent[] }).__events.some(
          (e) => e.type === 'upload-complete' || e.type === 'upload-error',
        ),
      { timeout: 60_000, polling: 100 },
    );
    return await pageEvents(page);
  } finally {
    await context.close();
  }
}

describe('<big-uploader> in Firefox ESR', () => {
  it.each([
    ['auto', 32],
    ['websocket', 24],
    ['http', 24],
  ] as const)(
    'transport=%s: a %i MiB file picked in the demo page is stored byte-identical',
    async (transport, mib) => {
      const source = await makeFile(join(suite.tmp.path, 'src'), `${transport}.bin`, mib * MiB);
      let found: PageEvent[] = [];
      const traffic = await serverTraffic(async () => {
        found = await uploadThroughDemo(transport, source);
      });
      expect(found.filter((e) => e.type === 'upload-error')).toEqual([]);
      const complete = found.find((e) => e.type === 'upload-complete');
      expect(complete).toBeDefined();
      const { uploadId } = complete!.detail as { uploadId: string };
      expect(await sha256(await suite.storedFile(uploadId))).toBe(await sha256(source));
      if (transport === 'http') {
        expect(traffic.upgrades).toBe(0);
        expect(traffic.puts).toBeGreaterThan(0);
      } else {
        // `auto` tries a WebSocket first, and here nothing stops it.
        expect(traffic.upgrades).toBeGreaterThan(0);
        expect(traffic.puts).toBe(0);
      }
    },
  );
});
