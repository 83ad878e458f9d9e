/**
 * One upload, two bindings: <big-uploader transport="websocket"> sends part of a file and is
 * paused, the page reloads, and the same file picked again with transport="http" resumes the same
 * upload from the acked ranges the WebSocket stored, over PUTs, to a byte-identical file.
 * Then the reverse (HTTP first, WebSocket to finish), `auto` falling back to HTTP when a WebSocket
 * cannot be opened, and `auto` in Chromium keeping the bytes on its WebSocket.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { RawClient } from '../helpers/protocol-client.js';
import { startServer } from '../helpers/server.js';
import {
  MiB,
  clickRowButton,
  events,
  makeFile,
  newPage,
  openDemo,
  pickFiles,
  sha256,
  useBrowserSuite,
  waitForRow,
} from './harness.js';

const TOKEN = 'switch-test-token';
const ADMIN = 'switch-test-admin';
const suite = useBrowserSuite('bigup-switch-', { token: TOKEN, adminToken: ADMIN });

/** What the page sent, by binding: WebSocket connections opened and chunk PUTs. */
function watchTraffic(context: BrowserContext, page: Page): { sockets: number; puts: number } {
  const seen = { sockets: 0, puts: 0 };
  page.on('websocket', () => seen.sockets++);
  context.on('request', (request) => {
    if (request.method() === 'PUT' && /\/upload\/[0-9a-f]{32}\/chunks\/\d+$/.test(request.url()))
      seen.puts++;
  });
  return seen;
}

async function acked(uploadId: string): Promise<{ ackedBytes: number; connected: boolean }> {
  const response = await fetch(`${suite.server.url}/uploads/${uploadId}`, {
    headers: { authorization: `Bearer ${ADMIN}` },
  });
  return (await response.json()) as { ackedBytes: number; connected: boolean };
}

const { storedFile } = suite;

async function switchMidway(first: 'websocket' | 'http', second: 'websocket' | 'http') {
  const size = 24 * MiB;
  const source = await makeFile(join(suite.tmp.path, 'src'), `switch-${first}-${second}.bin`, size);
  const { context, page } = await newPage(suite.browser);
  try {
    const url = `${suite.server.url}/?token=${TOKEN}`;
    const firstTraffic = watchTraffic(context, page);
    // Slow enough to be caught mid-way.
    await openDemo(page, url, { transport: first, 'limit-rate': String(4 * MiB) });
    await pickFiles(page, [source]);
    await waitForRow(page, `r.status === 'uploading' && r.percent >= 20 && r.percent <= 70`);
    await clickRowButton(page, 'pause-button');
    await waitForRow(page, `r.status === 'paused'`);
    const uploadId = ((await events(page, 'upload-start'))[0].detail as { uploadId: string })
      .uploadId;
    const before = await acked(uploadId);
    expect(before.ackedBytes).toBeGreaterThan(0);
    expect(before.ackedBytes).toBeLessThan(size);
    expect(before.connected).toBe(false);
    if (first === 'websocket') expect(firstTraffic.sockets).toBeGreaterThan(0);
    else expect(firstTraffic.puts).toBeGreaterThan(0);

    // A new page (same browser profile: its resume record) picks the same file on the other binding.
    await page.close();
    const next = await context.newPage();
    const secondTraffic = watchTraffic(context, next);
    secondTraffic.puts = 0;
    await openDemo(next, url, { transport: second });
    await pickFiles(next, [source]);
    await waitForRow(next, `r.status === 'done'`, 120_000);
    const start = (await events(next, 'upload-start'))[0].detail as {
      uploadId: string;
      resumedBytes: number;
    };
    expect(start.uploadId).toBe(uploadId);
    expect(start.resumedBytes).toBeGreaterThanOrEqual(before.ackedBytes);
    const complete = (await events(next, 'upload-complete'))[0].detail as { uploadId: string };
    expect(complete.uploadId).toBe(uploadId);
    if (second === 'http') {
      // Only what was missing went over HTTP, and no WebSocket was opened.
      expect(secondTraffic.sockets).toBe(0);
      expect(secondTraffic.puts).toBeGreaterThan(0);
      expect(secondTraffic.puts).toBeLessThanOrEqual(Math.ceil((size - before.ackedBytes) / MiB));
    } else {
      expect(secondTraffic.sockets).toBeGreaterThan(0);
      expect(secondTraffic.puts).toBe(0);
    }
    expect(await sha256(await storedFile(uploadId))).toBe(await sha256(source));
  } finally {
    await context.close();
  }
}

describe('<big-uploader> switching bindings mid-upload', () => {
  it('WebSocket first, then HTTP from the same acked ranges: byte-identical', async () => {
    await switchMidway('websocket', 'http');
  });

  it('HTTP first, then WebSocket from the same acked ranges: byte-identical', async () => {
    await switchMidway('http', 'websocket');
  });
});

describe('transport="auto" when a WebSocket cannot be opened', () => {
  it('falls back to the HTTP binding and completes', async () => {
    // One connection allowed, and it is taken: every WebSocket upgrade is refused (503, which a
    // browser reports as 1006 with no reason). The HTTP binding is not a connection.
    const full = await startServer({
      dir: join(suite.tmp.path, 'data-full'),
      pageDir: suite.pageDir,
      maxConnections: 1,
    });
    const holder = await RawClient.connect(full.wsUrl);
    const source = await makeFile(join(suite.tmp.path, 'src'), 'auto.bin', 6 * MiB);
    const { context, page } = await newPage(suite.browser);
    try {
      const traffic = watchTraffic(context, page);
      await openDemo(page, `${full.url}/`, { transport: 'auto' });
      await pickFiles(page, [source]);
      await waitForRow(page, `r.status === 'done'`, 60_000);
      expect(traffic.sockets).toBeGreaterThan(0);
      expect(traffic.puts).toBeGreaterThan(0);
      const { uploadId } = (await events(page, 'upload-complete'))[0].detail as {
        uploadId: string;
      };
      const dir = join(suite.tmp.path, 'data-full', 'files', uploadId);
      const [name] = await readdir(dir);
      expect(await sha256(join(dir, name))).toBe(await sha256(source));
    } finally {
      holder.close();
      await context.close();
      await full.close();
    }
  });
});

describe('transport="auto" in Chromium: the bytes stay on the WebSocket', () => {
  it('a 40 MiB file: one WebSocket, no chunk PUT, 8 MiB chunks, byte-identical', async () => {
    // Before, `auto` moved a big file's bytes to HTTP in Chromium; its WebSocket now sends the
    // bytes read for the hash (client/browser/transports.ts `sendsBytesRead`), faster there.
    const dir = join(suite.tmp.path, 'data-auto-ws');
    const server = await startServer({ dir, pageDir: suite.pageDir });
    const source = await makeFile(join(suite.tmp.path, 'src'), 'auto-ws.bin', 40 * MiB);
    const { context, page } = await newPage(suite.browser);
    try {
      const traffic = watchTraffic(context, page);
      const dataFrames: number[] = [];
      page.on('websocket', (socket) =>
        socket.on('framesent', ({ payload }) => {
          if (payload.length > MiB) dataFrames.push(payload.length);
        }),
      );
      await openDemo(page, `${server.url}/`, { transport: 'auto' });
      // What tells Chromium apart in the upload worker is there in this page (a secure context).
      expect(await page.evaluate(() => 'userAgentData' in navigator)).toBe(true);
      await pickFiles(page, [source]);
      await waitForRow(page, `r.status === 'done'`, 120_000);
      expect(await events(page, 'upload-error')).toEqual([]);
      const { uploadId } = (await events(page, 'upload-complete'))[0].detail as {
        uploadId: string;
      };
      const stored = join(dir, 'files', uploadId);
      const [storedName] = await readdir(stored);
      expect(await sha256(join(stored, storedName))).toBe(await sha256(source));
      expect(traffic).toEqual({ sockets: 1, puts: 0 });
      // Chunks of BYTES_READ_CHUNK_SIZE (8 MiB), each DATA frame its header and payload.
      expect(dataFrames).toHaveLength(5);
      expect(dataFrames.every((n) => n > 8 * MiB && n < 8 * MiB + 64)).toBe(true);
    } finally {
      await context.close();
      await server.close();
    }
  });
});
