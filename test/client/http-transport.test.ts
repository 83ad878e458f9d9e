/**
 * HttpTransport (client/browser/http-transport.ts) with the unchanged client core, run in Node
 * (its fetch and Blob stand in for the browser's) against the real server's HTTP binding: a whole
 * upload with chunk bodies sent as Blob slices, and a PUT lost on the network mid-way, after which
 * the core resumes over a new lease from the acked ranges and the file is byte-identical.
 */
import { randomBytes } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  HTTP_CHUNK_SIZE,
  HTTP_PUTS_IN_FLIGHT,
  HttpTransport,
  MemoryResumeStore,
  createUploader,
} from '../../client/browser/index.js';
import { blobSource } from '../../client/browser/blob-source.js';
import { DEFAULTS } from '../../client/core/uploader.js';
import { serverPerTest } from '../helpers/server-per-test.js';

const perTest = serverPerTest('bigup-http-client-');

/** The path a fetch call asks for, whatever form its input takes. */
function pathOf(input: string | URL | Request): string {
  return new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url)
    .pathname;
}

const CHUNK = 256 * 1024;

describe('HttpTransport with the client core', () => {
  it('uploads a Blob over the HTTP binding, several PUTs in flight, byte-identical', async () => {
    const server = await perTest.server();
    const dir = await perTest.dir();
    const bytes = randomBytes(10 * CHUNK + 17);
    const blob = new Blob([bytes]);
    const methods: string[] = [];
    const fetchSpy: typeof fetch = (input, init) => {
      methods.push(`${init?.method ?? 'GET'} ${pathOf(input).split('/').length}`);
      return fetch(input, init);
    };
    const uploader = createUploader({
      endpoint: server.wsUrl,
      file: blob,
      transport: new HttpTransport({ dataFrom: blob, fetch: fetchSpy }),
      resumeStore: new MemoryResumeStore(),
      chunkSize: CHUNK,
      maxInFlightBytes: 4 * CHUNK,
    });
    const outcome = await uploader.start();
    expect(outcome.state).toBe('done');
    if (outcome.state !== 'done') return;
    expect(outcome.result.digestVerified).toBe(true);
    const stored = await readFile(join(dir, 'files', outcome.result.uploadId, 'blob'));
    expect(stored.equals(bytes)).toBe(true);
    expect(methods.filter((m) => m.startsWith('PUT')).length).toBe(11);
    expect(methods[0]).toBe('POST 2');
  });

  it('resumes over a new lease after a PUT is lost on the network, byte-identical', async () => {
    const server = await perTest.server();
    const dir = await perTest.dir();
    const bytes = randomBytes(12 * CHUNK);
    const blob = new Blob([bytes]);
    let puts = 0;
    let opens = 0;
    const flaky: typeof fetch = async (input, init) => {
      if (init?.method === 'POST' && pathOf(input) === '/upload') opens++;
      if (init?.method === 'PUT' && ++puts === 5) throw new TypeError('network error (injected)');
      return fetch(input, init);
    };
    const uploader = createUploader({
      endpoint: server.wsUrl,
      file: blob,
      transport: new HttpTransport({ dataFrom: blob, fetch: flaky }),
      resumeStore: new MemoryResumeStore(),
      chunkSize: CHUNK,
      maxInFlightBytes: 2 * CHUNK,
      backoff: { initial: 10, max: 50 },
    });
    const outcome = await uploader.start();
    expect(outcome.state).toBe('done');
    if (outcome.state !== 'done') return;
    // The first lease was dropped with the lost request; the second resumed (RESUME, not OPEN).
    expect(opens).toBe(2);
    const stored = await readFile(join(dir, 'files', outcome.result.uploadId, 'blob'));
    expect(stored.equals(bytes)).toBe(true);
  });

  it("transport 'http' proposes HTTP_CHUNK_SIZE unless a chunk size is given, byte-identical", async () => {
    const server = await perTest.server();
    const dir = await perTest.dir();
    expect(HTTP_CHUNK_SIZE).toBeGreaterThan(DEFAULTS.chunkSize);
    const bytes = randomBytes(HTTP_CHUNK_SIZE + 1000);
    const blob = new Blob([bytes]);
    for (const chunkSize of [undefined, 1024 * 1024]) {
      const uploader = createUploader({
        endpoint: server.wsUrl,
        file: blob,
        transport: 'http',
        resumeStore: false,
        ...(chunkSize !== undefined ? { chunkSize } : {}),
      });
      let accepted: number | undefined;
      uploader.on('start', (s) => (accepted = s.chunkSize));
      const outcome = await uploader.start();
      expect(outcome.state).toBe('done');
      if (outcome.state !== 'done') return;
      expect(accepted).toBe(chunkSize ?? HTTP_CHUNK_SIZE);
      const stored = await readFile(join(dir, 'files', outcome.result.uploadId, 'blob'));
      expect(stored.equals(bytes)).toBe(true);
    }
  });

  it('a file unreadable mid-way: its TERMINATE reaches the server although the lease closes right after', async () => {
    const server = await perTest.server();
    const dir = await perTest.dir();
    const blob = new Blob([randomBytes(12 * CHUNK)]);
    const source = blobSource(blob, 'goes-bad.bin');
    const deletes: number[] = [];
    const fetchSpy: typeof fetch = async (input, init) => {
      const response = await fetch(input, init);
      if (init?.method === 'DELETE') deletes.push(response.status);
      return response;
    };
    const uploader = createUploader({
      endpoint: server.wsUrl,
      // Unreadable from its sixth chunk on, as a file on a disk that failed.
      file: {
        ...source,
        read: (start, end, target) =>
          start >= 5 * CHUNK ? Promise.reject(new Error('EIO')) : source.read(start, end, target),
      },
      transport: new HttpTransport({ fetch: fetchSpy }),
      resumeStore: false,
      chunkSize: CHUNK,
      maxInFlightBytes: 2 * CHUNK,
    });
    const outcome = await uploader.start();
    expect(outcome.state).toBe('failed');
    if (outcome.state === 'failed') expect(outcome.error.name).toBe('SOURCE_ERROR');
    // The DELETE was answered (not aborted by the close), and the server holds nothing of it.
    for (let waited = 0; deletes.length === 0 && waited < 5000; waited += 50) await delay(50);
    expect(deletes).toEqual([200]);
    expect(await readdir(join(dir, 'uploads'))).toEqual([]);
  });

  it('small chunks under a big window: at most HTTP_PUTS_IN_FLIGHT PUTs pending, none refused, byte-identical', async () => {
    const server = await perTest.server();
    const dir = await perTest.dir();
    const bytes = randomBytes(40 * 65_536);
    const blob = new Blob([bytes]);
    let pending = 0;
    let most = 0;
    const fetchSpy: typeof fetch = async (input, init) => {
      if (init?.method !== 'PUT') return fetch(input, init);
      pending++;
      most = Math.max(most, pending);
      try {
        return await fetch(input, init);
      } finally {
        pending--;
      }
    };
    const uploader = createUploader({
      endpoint: server.wsUrl,
      file: blob,
      transport: new HttpTransport({ dataFrom: blob, fetch: fetchSpy }),
      resumeStore: false,
      // 64 KiB chunks under a 32 MiB window: 40 chunks could be in flight at once.
      chunkSize: 65_536,
      maxInFlightBytes: 32 * 1024 * 1024,
    });
    const outcome = await uploader.start();
    expect(outcome.state).toBe('done');
    if (outcome.state !== 'done') return;
    expect(most).toBeLessThanOrEqual(HTTP_PUTS_IN_FLIGHT);
    expect(most).toBeGreaterThan(1);
    const stored = await readFile(join(dir, 'files', outcome.result.uploadId, 'blob'));
    expect(stored.equals(bytes)).toBe(true);
  });

  it('an ACCEPT whose Bigup-Lease header cannot be read fails at once with a clear error instead of hanging', async () => {
    const server = await perTest.server();
    // As a cross-origin page sees it when the server does not expose the header.
    const hiding: typeof fetch = async (input, init) => {
      const response = await fetch(input, init);
      const headers = new Headers(response.headers);
      headers.delete('bigup-lease');
      return new Response(await response.arrayBuffer(), { status: response.status, headers });
    };
    const uploader = createUploader({
      endpoint: server.wsUrl,
      file: new Blob([randomBytes(1000)]),
      transport: new HttpTransport({ fetch: hiding }),
      resumeStore: false,
    });
    const outcome = await uploader.start();
    expect(outcome.state).toBe('failed');
    if (outcome.state === 'failed') {
      expect(outcome.error.name).toBe('HANDSHAKE_REFUSED');
      expect(outcome.error.message).toMatch(/Bigup-Lease/);
    }
  });

  it('a page served at the upload path (200, text/html): a clear error, not a refused upgrade', async () => {
    const page: typeof fetch = async () =>
      new Response('<!doctype html><title>app</title>', {
        status: 200,
        headers: { 'content-type': 'text/html' },
      });
    const uploader = createUploader({
      endpoint: 'ws://127.0.0.1:9/upload',
      file: new Blob([randomBytes(1000)]),
      transport: new HttpTransport({ fetch: page }),
      resumeStore: false,
    });
    const outcome = await uploader.start();
    expect(outcome.state).toBe('failed');
    if (outcome.state === 'failed') {
      expect(outcome.error.name).toBe('HANDSHAKE_REFUSED');
      expect(outcome.error.message).toMatch(/not the protocol's/);
    }
  });
});
