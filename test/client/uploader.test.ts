import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WsTransport } from '../../client/node/ws-transport.js';
import type { AppOptions } from '../../server/index.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { bytesToHex, encodeAck } from '../../protocol/index.js';
import { MemoryResumeStore } from '../../client/core/memory-store.js';
import { createUploader } from '../../client/core/uploader.js';
import { defaultFingerprint } from '../../client/core/fingerprint.js';
import type {
  FileSource,
  Transport,
  Uploader,
  UploaderEventMap,
  UploaderOptions,
} from '../../client/core/types.js';
import { FakeServer, memorySource, randomBytes, until } from './fakes.js';

const CHUNK = 65_536;

async function setup(size: number, options: Partial<UploaderOptions> = {}) {
  const server = await new FakeServer().init();
  const bytes = randomBytes(size, size);
  const file = memorySource(bytes);
  const uploader = createUploader({
    endpoint: 'ws://fake/upload',
    file,
    transport: server,
    chunkSize: CHUNK,
    backoff: { initial: 1, max: 20, jitter: 0 },
    ...options,
  });
  const events: Array<
    {
      [K in keyof UploaderEventMap]: { type: K; payload: UploaderEventMap[K] };
    }[keyof UploaderEventMap]
  > = [];
  for (const type of ['start', 'progress', 'state', 'complete', 'error', 'info'] as const) {
    uploader.on(type, (payload) => events.push({ type, payload } as never));
  }
  const states = () => events.filter((e) => e.type === 'state').map((e) => e.payload.state);
  return { server, bytes, file, uploader, events, states };
}

/** The resume record an earlier session would have left for `file`. */
async function remember(
  store: MemoryResumeStore,
  file: FileSource,
  uploadId: string,
  secret: string,
): Promise<void> {
  await store.set(await defaultFingerprint(file, 'ws://fake/upload'), {
    version: 1,
    endpoint: 'ws://fake/upload',
    uploadId,
    secret,
    name: file.name,
    size: file.size,
    lastModified: file.lastModified,
    chunkSize: CHUNK,
    createdAt: 0,
  });
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;
}

/**
 * What a real server can show is tested against the real server (test/helpers/server.ts, over
 * client/node's WsTransport); the scripted FakeServer is for what a real server never does on cue.
 */
describe('Uploader against the real server', () => {
  let tmp: TempDir;
  let server: TestServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
    await tmp?.cleanup();
  });

  /** A real server on a temp dir, and an uploader for `file` that counts its connections. */
  async function realSetup(
    file: FileSource,
    serverOptions: Omit<AppOptions, 'dir'> = {},
    options: Partial<UploaderOptions> = {},
  ) {
    tmp = await makeTempDir('bigup-uploader-');
    server = await startServer({ dir: tmp.path, ...serverOptions });
    const ws = new WsTransport();
    const connections = { count: 0 };
    const transport: Transport = {
      sendsHeaders: ws.sendsHeaders,
      connect(...args) {
        connections.count++;
        return ws.connect(...args);
      },
    };
    const uploader = createUploader({
      endpoint: server.wsUrl,
      file,
      transport,
      chunkSize: CHUNK,
      backoff: { initial: 1, max: 20, jitter: 0 },
      ...options,
    });
    const events: Array<{ type: string; payload: unknown }> = [];
    for (const type of ['state', 'progress', 'error', 'start'] as const)
      uploader.on(type, (payload) => events.push({ type, payload }));
    const stored = async (uploadId: string): Promise<Uint8Array> => {
      const dir = join(tmp.path, 'files', uploadId);
      const [name] = await readdir(dir);
      return readFile(join(dir, name));
    };
    return { uploader, connections, events, stored };
  }

  it('uploads a multi-chunk file with a short last chunk and verifies the digest', async () => {
    const bytes = randomBytes(CHUNK * 5 + 123, 7);
    const { uploader, events, stored } = await realSetup(memorySource(bytes));
    const outcome = await uploader.start();
    if (outcome.state !== 'done') throw new Error(`upload ${outcome.state}`);
    const complete = outcome.result;
    expect(complete).toMatchObject({
      size: bytes.byteLength,
      bytesSent: bytes.byteLength,
      bytesSkipped: 0,
      digestVerified: true,
    });
    expect(complete.digest).toMatch(/^[0-9a-f]{16}$/);
    expect(sameBytes(await stored(complete.uploadId), bytes)).toBe(true);
    const states = events
      .filter((e) => e.type === 'state')
      .map((e) => (e.payload as { state: string }).state);
    expect(states).toEqual(['connecting', 'uploading', 'completing', 'done']);
    expect(events.map((e) => e.type)).toContain('start');
    expect(events.filter((e) => e.type === 'error')).toEqual([]);
    const last = events.filter((e) => e.type === 'progress').at(-1)!.payload as {
      bytesAcked: number;
    };
    expect(last.bytesAcked).toBe(bytes.byteLength);
  });

  it('a server that stops answering while it owes ACKs: the connection counts as lost after answerTimeout, and the upload resumes', async () => {
    // One chunk in flight: the wait is answerTimeout plus 64 KiB at the 32 KiB/s floor, about 2.2 s.
    const { server, bytes, uploader, events } = await setup(10 * CHUNK, {
      answerTimeout: 200,
      maxInFlightBytes: CHUNK,
    });
    // The first connection takes DATA and never acks it (a server whose storage hangs).
    server.autoAck = false;
    uploader.on('error', () => {
      server.autoAck = true;
    });
    const outcome = await uploader.start();
    expect(outcome.state).toBe('done');
    const errors = events.filter((e) => e.type === 'error').map((e) => e.payload);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ name: 'NETWORK', fatal: false });
    expect(errors[0]?.message).toMatch(/no answer from the server/);
    expect(server.connections.length).toBe(2);
    expect(sameBytes(server.soleUpload().data, bytes)).toBe(true);
  });

  it('a long pause of the client before COMPLETE is not charged to the server: a RESULT that takes a while is waited for', async () => {
    const bytes = randomBytes(4 * CHUNK, 4);
    const { server, uploader, events } = await setup(4 * CHUNK, {
      answerTimeout: 200,
      maxInFlightBytes: CHUNK,
      // The source check before COMPLETE takes 2.5 s after the last ACK: longer than COMPLETE's
      // allowance (10 x 200 ms), during which the server owed nothing.
      file: {
        ...memorySource(bytes),
        changed: async () => {
          await new Promise((resolve) => setTimeout(resolve, 2500));
          return false;
        },
      },
    });
    server.resultDelayMs = 300;
    const outcome = await uploader.start();
    expect(outcome.state).toBe('done');
    expect(events.filter((e) => e.type === 'error')).toEqual([]);
    expect(server.connections.length).toBe(1);
  });

  it('uploads an empty file', async () => {
    const { uploader, stored } = await realSetup(memorySource(new Uint8Array(0), 'empty.bin'));
    const outcome = await uploader.start();
    if (outcome.state !== 'done') throw new Error(`upload ${outcome.state}`);
    expect(outcome.result).toMatchObject({ size: 0, bytesSent: 0, digestVerified: true });
    expect((await stored(outcome.result.uploadId)).byteLength).toBe(0);
  });

  it('uploads a file whose name holds a lone surrogate (replaced before OPEN)', async () => {
    const bytes = randomBytes(10, 10);
    const { uploader, stored } = await realSetup(memorySource(bytes, 'bad\uD800name.bin'));
    const outcome = await uploader.start();
    if (outcome.state !== 'done') throw new Error(`upload ${outcome.state}`);
    expect(sameBytes(await stored(outcome.result.uploadId), bytes)).toBe(true);
    const [name] = await readdir(join(tmp.path, 'files', outcome.result.uploadId));
    expect(name).toBe('bad\uFFFDname.bin');
  });

  it('fails without retrying on a non-retryable refusal', async () => {
    const { uploader, connections, events } = await realSetup(memorySource(randomBytes(CHUNK)), {
      maxUploadSize: CHUNK - 1,
    });
    const outcome = await uploader.start();
    expect(outcome).toMatchObject({
      state: 'failed',
      error: { name: 'FILE_TOO_LARGE', fatal: true, retryable: false },
    });
    expect(connections.count).toBe(1);
    expect(events.filter((e) => e.type === 'error')).toHaveLength(1);
  });

  it('fails on HTTP 401 at the handshake without retrying', async () => {
    const { uploader, connections } = await realSetup(memorySource(randomBytes(CHUNK)), {
      token: 'the-token',
    });
    const outcome = await uploader.start();
    expect(outcome).toMatchObject({ state: 'failed', error: { name: 'HANDSHAKE_UNAUTHORIZED' } });
    expect(connections.count).toBe(1);
  });
});

describe('Uploader against a scripted server', () => {
  it('hashes with the loadHasher it is given (the Node entry passes the native one)', async () => {
    const { loadHasher } = await import('../../protocol/index.js');
    const wasm = await loadHasher();
    let calls = 0;
    const { server, uploader } = await setup(CHUNK * 2 + 7, {
      loadHasher: async () => ({
        h64: (bytes: Uint8Array) => {
          calls++;
          return wasm.h64(bytes);
        },
      }),
    });
    expect((await uploader.start()).state).toBe('done');
    // One call per chunk plus the whole-file digest for COMPLETE (and again to check RESULT).
    expect(calls).toBeGreaterThanOrEqual(4);
    expect(server.soleUpload().data.byteLength).toBe(CHUNK * 2 + 7);
  });

  it('sends the handshake token as a query parameter', async () => {
    const { server, uploader } = await setup(10, { token: 's3cret', uploadToken: 'ticket' });
    await uploader.start();
    expect(new URL(server.urls[0]).searchParams.get('token')).toBe('s3cret');
  });

  it('sends the token as Authorization: Bearer, not in the URL, when the transport can set headers', async () => {
    const server = await new FakeServer().init();
    server.sendsHeaders = true;
    const uploader = createUploader({
      endpoint: 'ws://fake/upload',
      file: memorySource(randomBytes(10)),
      transport: server,
      token: 's3cret',
    });
    await uploader.start();
    expect(new URL(server.urls[0]).searchParams.has('token')).toBe(false);
    expect(server.headers[0]).toEqual({ Authorization: 'Bearer s3cret' });
  });

  it('closes with 1002 on an ACK off the chunk grid or past the file, and takes an in-grid re-ack as acked', async () => {
    const { server, uploader } = await setup(CHUNK * 3 + 10);
    server.autoAck = false;
    const done = uploader.start();
    await until(() => server.dataLog.length >= 1);
    const conn = server.connections[0];
    // A chunk this connection has not sent yet, in grid: accepted (SPEC.md 6.5), no violation.
    conn.reply(encodeAck([{ start: 2 * CHUNK, end: 3 * CHUNK }]));
    await new Promise((r) => setTimeout(r, 20));
    expect(conn.closedByClient).toBeUndefined();
    expect(uploader.progress.bytesAcked).toBe(CHUNK);
    conn.reply(encodeAck([{ start: 1, end: CHUNK }]));
    await until(() => conn.closedByClient !== undefined);
    expect(conn.closedByClient?.code).toBe(1002);
    await uploader.cancel().catch(() => undefined);
    await done;
  });

  it('never has more outstanding bytes than the server window', async () => {
    const { server, uploader } = await setup(CHUNK * 20);
    server.autoAck = false;
    server.window = 3 * CHUNK;
    const run = uploader.start();
    await until(() => server.dataLog.length === 3);
    await new Promise((r) => setTimeout(r, 20));
    expect(server.dataLog.length).toBe(3); // window full: the client waits
    const conn = server.connections[0];
    conn.releaseAcks();
    await until(() => server.dataLog.length === 6);
    // The server shrinks the window to 0: nothing more is sent until it grows again.
    conn.setWindow(0);
    conn.releaseAcks();
    await new Promise((r) => setTimeout(r, 20));
    expect(server.dataLog.length).toBe(6);
    conn.setWindow(5 * CHUNK);
    server.autoAck = true;
    await until(() => conn.held.length > 0 || server.dataLog.length > 6);
    conn.releaseAcks();
    expect((await run).state).toBe('done');
    expect(server.windowViolations).toBe(0);
    expect(server.maxOutstanding).toBeLessThanOrEqual(5 * CHUNK);
  });

  it('caps in-flight bytes at maxInFlightBytes below the server window', async () => {
    const { server, uploader } = await setup(CHUNK * 10, { maxInFlightBytes: 2 * CHUNK });
    server.autoAck = false;
    server.window = 16 * CHUNK;
    const run = uploader.start();
    await until(() => server.dataLog.length === 2);
    await new Promise((r) => setTimeout(r, 20));
    expect(server.dataLog.length).toBe(2);
    server.autoAck = true;
    server.connections[0].releaseAcks();
    expect((await run).state).toBe('done');
    expect(server.maxOutstanding).toBeLessThanOrEqual(2 * CHUNK);
  });

  it('resumes from the store and sends only the ranges missing from ACCEPT', async () => {
    const store = new MemoryResumeStore();
    const { server, bytes, file, uploader, events } = await setup(CHUNK * 6 + 7, {
      resumeStore: store,
    });
    const seeded = server.seed(bytes, CHUNK, [0, 2, 3, 6]);
    await remember(store, file, seeded.id, seeded.secret);
    const outcome = await uploader.start();
    expect(outcome.state).toBe('done');
    expect(server.log[0].type).toBe('resume');
    expect(server.dataLog.map((d) => d.offset / CHUNK)).toEqual([1, 4, 5]);
    expect(sameBytes(server.soleUpload().data, bytes)).toBe(true);
    const complete = events.find((e) => e.type === 'complete')!.payload;
    expect(complete.bytesSkipped).toBe(4 * CHUNK - CHUNK + 7);
    expect(complete.bytesSent).toBe(3 * CHUNK);
    // The chunks acked in the earlier session were re-read and hashed: COMPLETE carried a digest.
    expect(complete.digestVerified).toBe(true);
    expect(server.log.at(-1)).toMatchObject({ type: 'complete' });
    expect(server.log.at(-1)!.digest).toBeDefined();
    expect(
      events.some((e) => e.type === 'info' && e.payload.code === 'VERIFYING_SENT_CHUNKS'),
    ).toBe(true);
    const start = events.find((e) => e.type === 'start')!.payload;
    expect(start).toMatchObject({ resumed: true, uploadId: seeded.id });
    expect(events.some((e) => e.type === 'info' && e.payload.code === 'RESUMING')).toBe(true);
    expect(store.records.size).toBe(0); // removed on completion
  });

  it('uploads afresh when a file edited between sessions no longer matches the chunks the server holds', async () => {
    const store = new MemoryResumeStore();
    const { server, bytes, file, uploader, events } = await setup(CHUNK * 6 + 7, {
      resumeStore: store,
    });
    // The earlier session sent chunks 0, 2, 3 of the old content; chunk 2 was edited since.
    const old = bytes.slice();
    old[2 * CHUNK + 100] = old[2 * CHUNK + 100] ^ 0xff;
    const seeded = server.seed(old, CHUNK, [0, 2, 3]);
    await remember(store, file, seeded.id, seeded.secret);
    const outcome = await uploader.start();
    expect(outcome.state).toBe('done');
    expect(server.log.map((e) => e.type)).toContain('terminate');
    expect(server.log.filter((e) => e.type === 'open')).toHaveLength(1);
    expect(
      events.some((e) => e.type === 'info' && e.payload.code === 'SOURCE_CHANGED_STARTING_FRESH'),
    ).toBe(true);
    expect(server.uploads.has(seeded.id)).toBe(false);
    expect(sameBytes(server.soleUpload().data, bytes)).toBe(true);
    const complete = events.find((e) => e.type === 'complete')!.payload;
    expect(complete.digestVerified).toBe(true);
  });

  it('reads a byte before OPEN: an unreadable file fails with SOURCE_ERROR and opens nothing on the server', async () => {
    const { server, file, uploader } = await setup(CHUNK * 3);
    file.read = async () => {
      throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
    };
    const result = await uploader.start();
    expect(result.state).toBe('failed');
    expect(result.state === 'failed' && result.error.name).toBe('SOURCE_ERROR');
    expect(server.connections).toHaveLength(0);
    expect(server.uploads.size).toBe(0);
  });

  it('fails with SOURCE_ERROR and terminates the upload when the file changed while it was sent', async () => {
    const { server, file, uploader } = await setup(CHUNK * 3);
    let checks = 0;
    // The source reports a change at the check before COMPLETE (the last chunk was read by then).
    file.changed = async () => {
      checks++;
      return server.dataLog.length === 3;
    };
    const result = await uploader.start();
    expect(checks).toBe(1);
    expect(result.state).toBe('failed');
    expect(result.state === 'failed' && result.error.name).toBe('SOURCE_ERROR');
    expect(server.log.map((e) => e.type)).not.toContain('complete');
    expect(server.log.at(-1)!.type).toBe('terminate');
    await until(() => server.uploads.size === 0);
  });

  it('on NOT_FOUND for a stored upload, removes the record, tells the user and starts fresh', async () => {
    const store = new MemoryResumeStore();
    const { server, bytes, file, uploader, events } = await setup(CHUNK * 2, {
      resumeStore: store,
    });
    await remember(store, file, 'ab'.repeat(16), 'cd'.repeat(32));
    const outcome = await uploader.start();
    expect(outcome.state).toBe('done');
    expect(server.log.map((e) => e.type).slice(0, 2)).toEqual(['resume', 'open']);
    expect(
      events.some((e) => e.type === 'info' && e.payload.code === 'UPLOAD_NOT_FOUND_STARTING_FRESH'),
    ).toBe(true);
    expect(sameBytes(server.soleUpload().data, bytes)).toBe(true);
    expect(store.records.size).toBe(0);
  });

  it('saves a resume record when the upload is created', async () => {
    const store = new MemoryResumeStore();
    const { server, uploader } = await setup(CHUNK * 4, { resumeStore: store });
    server.autoAck = false;
    void uploader.start();
    await until(() => store.records.size === 1);
    const [record] = [...store.records.values()];
    expect(record).toMatchObject({
      version: 1,
      uploadId: uploader.uploadId,
      size: CHUNK * 4,
      chunkSize: CHUNK,
    });
    expect(record.secret).toBe(bytesToHex(server.soleUpload().secret));
    await uploader.cancel();
  });

  it('resends a chunk refused with HASH_MISMATCH', async () => {
    const { server, bytes, uploader, events } = await setup(CHUNK * 4);
    let refused = false;
    server.onData = (offset) => {
      if (offset === 2 * CHUNK && !refused) {
        refused = true;
        return 'HASH_MISMATCH';
      }
      return undefined;
    };
    expect((await uploader.start()).state).toBe('done');
    expect(server.dataLog.filter((d) => d.offset === 2 * CHUNK)).toHaveLength(2);
    expect(sameBytes(server.soleUpload().data, bytes)).toBe(true);
    const errors = events.filter((e) => e.type === 'error').map((e) => e.payload);
    expect(errors).toEqual([
      expect.objectContaining({ name: 'HASH_MISMATCH', retryable: true, fatal: false }),
    ]);
  });

  it('on INCOMPLETE with nothing missing locally, reconnects and trusts the new ACCEPT', async () => {
    const { server, bytes, uploader } = await setup(CHUNK * 3);
    let lost = false;
    // The server acks chunk 1, then "loses" it (as after an OS crash) before COMPLETE is evaluated.
    server.onData = (offset, conn) => {
      if (offset === 2 * CHUNK && !lost) {
        lost = true;
        conn.upload!.acked.remove(CHUNK, 2 * CHUNK);
      }
      return undefined;
    };
    expect((await uploader.start()).state).toBe('done');
    expect(server.log.filter((e) => e.type === 'resume')).toHaveLength(1);
    expect(server.dataLog.filter((d) => d.offset === CHUNK)).toHaveLength(2);
    expect(sameBytes(server.soleUpload().data, bytes)).toBe(true);
  });

  it('reconnects after a retryable server error and finishes', async () => {
    const { server, bytes, uploader, states } = await setup(CHUNK * 6);
    let sent = 0;
    server.onData = (_offset, conn) => {
      if (++sent === 3) {
        conn.error('SHUTTING_DOWN');
      }
      return undefined;
    };
    expect((await uploader.start()).state).toBe('done');
    expect(sameBytes(server.soleUpload().data, bytes)).toBe(true);
    expect(states()).toContain('retrying');
    expect(server.log.filter((e) => e.type === 'resume')).toHaveLength(1);
  });
});

describe('backoff', () => {
  it('follows the exponential schedule and gives up after maxAttempts', async () => {
    const { server, uploader, events } = await setup(CHUNK, {
      backoff: { initial: 2, factor: 3, max: 40, jitter: 0.5, maxAttempts: 5 },
      random: () => 0.5,
    });
    server.refuse = 'down';
    const outcome = await uploader.start();
    const delays = events
      .filter((e) => e.type === 'state' && e.payload.state === 'retrying')
      .map((e) => (e.payload as UploaderEventMap['state']).retryInMs);
    // min(40, 2 * 3^(n-1)) * (1 - 0.5 * 0.5)
    expect(delays).toEqual([2, 6, 18, 40, 40].map((d) => Math.round(d * 0.75)));
    expect(outcome).toMatchObject({
      state: 'failed',
      error: { name: 'NETWORK', fatal: true, retryable: true },
    });
    expect(server.connections).toHaveLength(6);
  });

  it('resets the attempt counter when progress is made', async () => {
    const { server, bytes, uploader } = await setup(CHUNK * 8, {
      backoff: { initial: 1, max: 2, maxAttempts: 1 },
    });
    let count = 0;
    // Drop the connection after every second chunk: 4+ drops, only 1 attempt allowed without progress.
    server.window = 2 * CHUNK;
    server.onData = () => (++count % 3 === 0 ? 'drop' : undefined);
    expect((await uploader.start()).state).toBe('done');
    expect(sameBytes(server.soleUpload().data, bytes)).toBe(true);
    expect(server.connections.length).toBeGreaterThan(3);
  });

  it('lets onShouldRetry veto a retry', async () => {
    const seen: number[] = [];
    const { server, uploader } = await setup(CHUNK, {
      onShouldRetry: (_e, attempt) => {
        seen.push(attempt);
        return attempt < 2;
      },
    });
    server.refuse = 'down';
    expect((await uploader.start()).state).toBe('failed');
    expect(seen).toEqual([1, 2]);
  });
});

describe('pause, resume, cancel', () => {
  async function startHeld(size: number, options: Partial<UploaderOptions> = {}) {
    const ctx = await setup(size, options);
    ctx.server.autoAck = false;
    ctx.server.window = 4 * CHUNK;
    const run = ctx.uploader.start();
    await until(() => ctx.server.connections[0]?.held.length === 4);
    return { ...ctx, run };
  }

  it('pause waits for in-flight ACKs, closes, and resume continues with RESUME', async () => {
    const { server, bytes, uploader, run, states } = await startHeld(CHUNK * 10);
    const paused = uploader.pause();
    await new Promise((r) => setTimeout(r, 10));
    expect(uploader.state).toBe('uploading'); // still waiting for the 4 ACKs
    expect(server.connections[0].closedByClient).toBeUndefined();
    server.connections[0].releaseAcks();
    await paused;
    expect(uploader.state).toBe('paused');
    expect(await run).toEqual({ state: 'paused' });
    expect(server.connections[0].closedByClient).toBeDefined();
    expect(server.soleUpload().acked.total).toBe(4 * CHUNK);
    expect(server.dataLog).toHaveLength(4);
    server.autoAck = true;
    const outcome = await uploader.resume();
    expect(outcome.state).toBe('done');
    expect(server.log.filter((e) => e.type === 'resume')).toHaveLength(1);
    expect(server.dataLog.map((d) => d.offset / CHUNK)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(sameBytes(server.soleUpload().data, bytes)).toBe(true);
    expect(states()).toEqual([
      'connecting',
      'uploading',
      'paused',
      'connecting',
      'uploading',
      'completing',
      'done',
    ]);
  });

  it('cancel sends TERMINATE, the server forgets the upload, and no events follow', async () => {
    const store = new MemoryResumeStore();
    const { server, uploader, run, events } = await startHeld(CHUNK * 10, { resumeStore: store });
    await until(() => store.records.size === 1);
    const before = events.length;
    const cancelled = uploader.cancel();
    server.connections[0].releaseAcks(); // late ACKs must not produce events
    await cancelled;
    expect(await run).toEqual({ state: 'cancelled' });
    expect(uploader.state).toBe('cancelled');
    expect(server.log.map((e) => e.type)).toContain('terminate');
    expect(server.uploads.size).toBe(0);
    expect(store.records.size).toBe(0);
    await new Promise((r) => setTimeout(r, 20));
    expect(events.length).toBe(before);
  });

  it('cancel while paused reconnects only to terminate', async () => {
    const { server, uploader } = await startHeld(CHUNK * 10);
    const paused = uploader.pause();
    server.connections[0].releaseAcks();
    await paused;
    await uploader.cancel();
    expect(server.log.map((e) => e.type).slice(-2)).toEqual(['resume', 'terminate']);
    expect(server.uploads.size).toBe(0);
    expect(uploader.state).toBe('cancelled');
  });

  it('pause during a backoff wait stops retrying', async () => {
    const { server, uploader } = await setup(CHUNK, { backoff: { initial: 50, jitter: 0 } });
    server.refuse = 'down';
    const run = uploader.start();
    await until(() => uploader.state === 'retrying');
    await uploader.pause();
    expect(uploader.state).toBe('paused');
    expect((await run).state).toBe('paused');
    const n = server.connections.length;
    await new Promise((r) => setTimeout(r, 80));
    expect(server.connections.length).toBe(n);
  });
});

export type { Uploader };
