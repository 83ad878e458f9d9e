/**
 * The browser entry (BrowserWebSocketTransport + blobSource) against the real server, run in Node
 * with `ws` standing in for the page's WebSocket (same onopen/onmessage/binaryType surface), and a
 * Blob as the file. IndexedDB is not available here; the in-memory store stands in for it.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import WebSocket from 'ws';
import { describe, expect, it } from 'vitest';
import {
  BrowserWebSocketTransport,
  MemoryResumeStore,
  createUploader,
} from '../../client/browser/index.js';
import { serverPerTest } from '../helpers/server-per-test.js';

const fixture = serverPerTest('bigup-browser-');

describe('browser entry', () => {
  it('uploads a Blob through a WebSocket-API transport, pauses and resumes', async () => {
    const dir = await fixture.dir();
    const server = await fixture.server();
    const bytes = randomBytes(3 * 1024 * 1024 + 5);
    const blob = new Blob([bytes], { type: 'application/x-test' });
    const store = new MemoryResumeStore();
    const uploader = createUploader({
      endpoint: server.wsUrl,
      file: blob,
      transport: new BrowserWebSocketTransport(WebSocket as unknown as typeof globalThis.WebSocket),
      resumeStore: store,
      chunkSize: 256 * 1024,
      maxInFlightBytes: 512 * 1024,
      limitRate: 8 * 1024 * 1024,
    });
    let acked = 0;
    uploader.on('progress', (p) => (acked = p.bytesAcked));
    const first = uploader.start();
    await new Promise<void>((resolve) => {
      const off = uploader.on('progress', (p) => {
        if (p.bytesAcked >= 1024 * 1024) {
          off();
          resolve();
        }
      });
    });
    await uploader.pause();
    expect(await first).toEqual({ state: 'paused' });
    expect(store.records.size).toBe(1);
    const outcome = await uploader.resume();
    expect(outcome.state).toBe('done');
    if (outcome.state !== 'done') return;
    expect(acked).toBe(bytes.byteLength);
    expect(outcome.result.digestVerified).toBe(true);
    const stored = await readFile(join(dir, 'files', outcome.result.uploadId, 'blob'));
    expect(stored.equals(bytes)).toBe(true);
    expect(store.records.size).toBe(0);
  });
});
