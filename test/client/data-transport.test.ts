/**
 * UploaderOptions.dataTransport (client/core/uploader.ts, `moveToDataTransport`): an upload opens
 * over its transport (here the Node WebSocket, bigup.2) and, once accepted with at least
 * DATA_TRANSPORT_MIN_BYTES to send, resumes over the data transport (here HttpTransport on Node's
 * fetch, standing in for Chromium's `auto`) against the real server. A server without the HTTP
 * binding sends it back to the WebSocket without an error; a small file and a resumed upload with
 * acked chunks to check stay where they opened.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HttpTransport, MemoryResumeStore, createUploader } from '../../client/browser/index.js';
import { Errors, encodeError } from '../../protocol/index.js';
import { DATA_TRANSPORT_MIN_BYTES } from '../../client/core/uploader.js';
import type { UploadOutcome } from '../../client/core/types.js';
import { WsTransport } from '../../client/node/ws-transport.js';
import type { AppOptions } from '../../server/index.js';
import { storedLocation } from '../helpers/stored.js';
import { serverPerTest } from '../helpers/server-per-test.js';

const fixture = serverPerTest('bigup-data-transport-');

const MiB = 2 ** 20;

/** Upload `size` random bytes with a WebSocket transport and an HTTP data transport; what went where. */
async function upload(
  size: number,
  {
    server: serverOptions = {},
    resumeStore = new MemoryResumeStore(),
    bytes = new Uint8Array(randomBytes(size)),
    putFault,
    postFault,
    expectState = 'done',
  }: {
    server?: Omit<AppOptions, 'dir'>;
    resumeStore?: MemoryResumeStore;
    bytes?: Uint8Array<ArrayBuffer>;
    /** Stand in for what is between the page and the server: the answer to the nth PUT (from 1). */
    putFault?: (n: number) => Response | 'network' | undefined;
    /** The answer to the nth POST over HTTP (RESUME, COMPLETE...), from 1. */
    postFault?: (n: number) => Response | undefined;
    expectState?: UploadOutcome['state'];
  } = {},
) {
  const dir = await fixture.dir();
  const server = await fixture.server(serverOptions);
  const blob = new Blob([bytes]);
  const traffic = { sockets: 0, puts: 0, posts: 0, answered: 0 };
  /** Whether the uploader has taken in an ACK (set once it exists). */
  let acked = (): boolean => false;
  const ws = new WsTransport();
  const control = {
    sendsHeaders: ws.sendsHeaders,
    connect: (...args: Parameters<WsTransport['connect']>) => {
      traffic.sockets++;
      return ws.connect(...args);
    },
  };
  const data = new HttpTransport({
    dataFrom: blob,
    fetch: (input, init) => {
      if (init?.method === 'PUT') {
        traffic.puts++;
        const fault = putFault?.(traffic.puts);
        // After the answers to the PUTs before it (their ACKs), as a connection dropped mid-body
        // is: whether the data transport acked first must not depend on the machine's load.
        const before = Math.min(traffic.puts - 1, 2);
        const answeredBefore = async (): Promise<void> => {
          // The earlier PUTs answered, and their ACKs taken in by the uploader (progress).
          for (
            let waited = 0;
            (traffic.answered < before || (before > 0 && !acked())) && waited < 3000;
            waited += 10
          )
            await delay(10);
          await delay(20);
          traffic.answered++;
        };
        if (fault === 'network')
          return answeredBefore().then(() => Promise.reject(new TypeError('fetch failed')));
        if (fault) return answeredBefore().then(() => fault);
        return fetch(input, init).then((response) => {
          traffic.answered++;
          return response;
        });
      }
      if (init?.method === 'POST') {
        traffic.posts++;
        const fault = postFault?.(traffic.posts);
        if (fault) return Promise.resolve(fault);
      }
      return fetch(input, init);
    },
  });
  const uploader = createUploader({
    endpoint: server.wsUrl,
    file: blob,
    transport: control,
    dataTransport: data,
    resumeStore,
  });
  const errors: string[] = [];
  const starts: boolean[] = [];
  uploader.on('error', (e) => errors.push(String(e.code)));
  uploader.on('start', (e) => starts.push(e.resumed));
  acked = () => uploader.progress.bytesAcked > 0;
  const outcome: UploadOutcome = await uploader.start();
  expect(outcome.state).toBe(expectState);
  if (outcome.state === 'done') {
    const stored = await readFile(await storedLocation(dir, outcome.result.uploadId));
    expect(stored.equals(bytes)).toBe(true);
  }
  return { traffic, errors, starts, uploader, outcome };
}

describe('dataTransport', () => {
  it('a file of 24 MiB opens over WebSocket and sends its chunks over HTTP, byte-identical', async () => {
    const { traffic, errors, starts } = await upload(24 * MiB);
    expect(traffic.sockets).toBe(1);
    expect(traffic.posts).toBeGreaterThanOrEqual(2); // the RESUME, the COMPLETE
    expect(traffic.puts).toBe(6); // every 4 MiB chunk
    expect(errors).toEqual([]);
    // The move is not a resume anyone sees: one start, of a new upload.
    expect(starts).toEqual([false]);
  });

  it('a server without the HTTP binding: back to WebSocket at once, no error, byte-identical', async () => {
    const { traffic, errors, starts } = await upload(24 * MiB, { server: { httpBinding: false } });
    expect(traffic.sockets).toBe(2);
    expect(traffic.puts).toBe(0);
    expect(errors).toEqual([]);
    expect(starts).toEqual([false]);
  });

  it(`a file with less than ${DATA_TRANSPORT_MIN_BYTES / MiB} MiB to send stays on WebSocket`, async () => {
    const { traffic } = await upload(DATA_TRANSPORT_MIN_BYTES - 1);
    expect(traffic.sockets).toBe(1);
    expect(traffic.puts + traffic.posts).toBe(0);
  });

  it('a resumed upload with acked chunks stays on WebSocket (their check is bigup.2 only)', async () => {
    const server = await fixture.server();
    const bytes = new Uint8Array(randomBytes(24 * MiB));
    const store = new MemoryResumeStore();
    // A first session, WebSocket only, paused with part of the file acked.
    const blob = new Blob([bytes]);
    const first = createUploader({
      endpoint: server.wsUrl,
      file: blob,
      transport: new WsTransport(),
      resumeStore: store,
      limitRate: 8 * MiB,
    });
    let pausing: Promise<void> | undefined;
    first.on('progress', (p) => {
      if (p.bytesAcked >= 4 * MiB) pausing ??= first.pause();
    });
    const paused = await first.start();
    await pausing;
    expect(paused.state).toBe('paused');
    const { traffic, starts } = await upload(bytes.byteLength, { resumeStore: store, bytes });
    expect(traffic.sockets).toBe(1);
    expect(traffic.puts + traffic.posts).toBe(0);
    expect(starts).toEqual([true]);
  });

  it('PUTs refused by something in between (413) before any ACK: back to WebSocket at once, no error', async () => {
    const { traffic, errors, starts } = await upload(24 * MiB, {
      putFault: () => new Response('too large', { status: 413 }),
    });
    expect(traffic.puts).toBeGreaterThan(0);
    expect(traffic.sockets).toBe(2);
    expect(errors).toEqual([]);
    // Nothing the user sees says "resumed": the upload was new and nothing was sent before.
    expect(starts).toEqual([false, false]);
  });

  it('the data transport lost after it acked chunks: one error, and the retry stays on HTTP', async () => {
    const { traffic, errors } = await upload(24 * MiB, {
      putFault: (n) => (n === 3 ? 'network' : undefined),
    });
    // The loss is reported once, as any lost connection is, and retried where the bytes went.
    expect(errors).toHaveLength(1);
    expect(traffic.sockets).toBe(1);
    // Two RESUMEs and the COMPLETE.
    expect(traffic.posts).toBe(3);
  });

  it('lost after ACKs, then the retry over HTTP acks nothing: back to WebSocket, for good', async () => {
    const { traffic, errors } = await upload(24 * MiB, {
      putFault: (n) => (n >= 3 ? 'network' : undefined),
    });
    // One error for the loss; the retry's silent failure sends the rest over the WebSocket.
    expect(errors).toHaveLength(1);
    expect(traffic.sockets).toBe(2);
    expect(traffic.posts).toBe(2);
  });

  it('refused after ACKs (a 403 from a WAF on a PUT): the rest goes over WebSocket', async () => {
    const { traffic, errors } = await upload(24 * MiB, {
      putFault: (n) => (n === 3 ? new Response('forbidden', { status: 403 }) : undefined),
    });
    expect(errors).toHaveLength(1);
    expect(traffic.sockets).toBe(2);
    expect(traffic.posts).toBe(1);
  });

  it('after ACKs, a lease the server does not know (round-robin without affinity): the rest goes over WebSocket', async () => {
    const unknownLease = new Response(
      Buffer.from(encodeError({ code: Errors.IDLE_TIMEOUT.code, message: 'no such lease' })),
      { status: 404, headers: { 'content-type': 'application/octet-stream' } },
    );
    const { traffic, errors } = await upload(24 * MiB, {
      putFault: (n) => (n === 3 ? unknownLease : undefined),
    });
    // Another node would refuse it again: no retry over HTTP (the RESUME, then the lease's
    // release, which the client sends after any fatal answer).
    expect(errors).toHaveLength(1);
    expect(traffic.sockets).toBe(2);
    expect(traffic.posts).toBe(2);
  });

  it('an HTTP route that does not know the upload (NOT_FOUND to the RESUME): back to WebSocket, the same upload, no error', async () => {
    const notFound = new Response(
      Buffer.from(encodeError({ code: Errors.NOT_FOUND.code, message: 'no such upload' })),
      { status: 404, headers: { 'content-type': 'application/octet-stream' } },
    );
    const { traffic, errors, outcome } = await upload(24 * MiB, {
      postFault: (n) => (n === 1 ? notFound : undefined),
    });
    expect(errors).toEqual([]);
    // One upload: created over WebSocket, resumed there after the refusal (not opened anew, which
    // would leave the first one unfinished on the server).
    expect(traffic.sockets).toBe(2);
    expect(traffic.posts).toBe(1);
    // Nothing unfinished left behind (completed uploads keep their record, <id>.json).
    if (outcome.state === 'done')
      expect(
        (await readdir(join(await fixture.dir(), 'uploads'))).filter(
          (name) => !/\.(json|ledger)$/.test(name),
        ),
      ).toEqual([]);
  });

  it('a data transport that cannot even start (connect throws): the rest over WebSocket, no error', async () => {
    const dir = await fixture.dir();
    const server = await fixture.server();
    const bytes = new Uint8Array(randomBytes(24 * MiB));
    const blob = new Blob([bytes]);
    const uploader = createUploader({
      endpoint: server.wsUrl,
      file: blob,
      transport: new WsTransport(),
      dataTransport: {
        sendsHeaders: true,
        connect: () => {
          throw new TypeError('fetch is not available here');
        },
      },
      resumeStore: false,
    });
    const errors: string[] = [];
    uploader.on('error', (e) => errors.push(e.name));
    const outcome = await uploader.start();
    expect(outcome.state).toBe('done');
    expect(errors).toEqual([]);
    if (outcome.state === 'done') {
      const stored = await readFile(await storedLocation(dir, outcome.result.uploadId));
      expect(stored.equals(bytes)).toBe(true);
    }
  });

  it('a fatal answer about the upload over HTTP (TAKEN_OVER) stays fatal: no WebSocket steals it back', async () => {
    const takenOver = new Response(
      Buffer.from(
        encodeError({ code: Errors.TAKEN_OVER.code, message: 'another connection opened it' }),
      ),
      { status: 409, headers: { 'content-type': 'application/octet-stream' } },
    );
    const { traffic, outcome } = await upload(24 * MiB, {
      putFault: (n) => (n === 1 ? takenOver : undefined),
      expectState: 'failed',
    });
    if (outcome.state === 'failed') expect(outcome.error.name).toBe('TAKEN_OVER');
    expect(traffic.sockets).toBe(1);
  });
});
