import { randomBytes } from 'node:crypto';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Errors, bytesToHex, type ByteRange } from '../../protocol/index.js';
import {
  DiskStore,
  type UploadHandle,
  type UploadInfo,
  type UploadStore,
} from '../../server/index.js';
import { RawClient, chunksOf, missingChunks, sendChunks } from '../helpers/protocol-client.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

const CHUNK = 65_536;

describe('upload lifecycle', () => {
  let tmp: TempDir;
  const servers: TestServer[] = [];
  async function serve(options: Parameters<typeof startServer>[0] = {}): Promise<TestServer> {
    const server = await startServer({ dir: tmp.path, ...options });
    servers.push(server);
    return server;
  }

  beforeEach(async () => {
    tmp = await makeTempDir();
  });
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.close();
    await tmp.cleanup();
  });

  async function opened(server: TestServer, size: number) {
    const client = await RawClient.connect(server.wsUrl);
    client.open({ fileSize: size, chunkSize: CHUNK, name: 'f.bin' });
    return { client, accept: await client.expect('accept') };
  }

  it('lets a newer connection take over: the older gets TAKEN_OVER and 4001, nothing acked is lost', async () => {
    const server = await serve();
    const data = randomBytes(40 * CHUNK);
    const { client: older, accept } = await opened(server, data.byteLength);
    const { acked } = await sendChunks(
      older,
      accept,
      data,
      chunksOf(data.byteLength, CHUNK).slice(0, 10),
    );
    // Keep writing from the older connection while the newer one resumes.
    for (const c of chunksOf(data.byteLength, CHUNK).slice(10, 14))
      older.sendData(c.start, data.subarray(c.start, c.end));
    const newer = await RawClient.connect(server.wsUrl);
    newer.resume(accept.uploadId, accept.secret);
    const second = await newer.expect('accept');
    let message = await older.next();
    while (message.type === 'ack') message = await older.next();
    expect(message).toMatchObject({ type: 'error', code: Errors.TAKEN_OVER.code, fatal: true });
    expect((await older.closed).code).toBe(4001);
    for (const r of acked)
      expect(second.ranges.some((s) => s.start <= r.start && r.end <= s.end)).toBe(true);
    const { errors } = await sendChunks(
      newer,
      second,
      data,
      missingChunks(data.byteLength, CHUNK, second.ranges),
    );
    expect(errors).toEqual([]);
    newer.complete();
    await newer.expect('result');
    expect(
      (await readFile(join(tmp.path, 'files', bytesToHex(accept.uploadId), 'f.bin'))).equals(data),
    ).toBe(true);
    newer.close();
  });

  it('reports state over HTTP and removes an upload on DELETE, closing its connection with 4004', async () => {
    const server = await serve({ token: 'tok', adminToken: 'admin' });
    const client = await RawClient.connect(server.wsUrl, { token: 'tok' });
    const data = randomBytes(8 * CHUNK);
    client.open({ fileSize: data.byteLength, chunkSize: CHUNK, name: 'f.bin' });
    const accept = await client.expect('accept');
    await sendChunks(client, accept, data, chunksOf(data.byteLength, CHUNK).slice(0, 3));
    const id = bytesToHex(accept.uploadId);
    const bySecret = await fetch(`${server.url}/uploads/${id}`, {
      headers: { 'Bigup-Secret': bytesToHex(accept.secret) },
    });
    expect(bySecret.status).toBe(200);
    expect(await bySecret.json()).toMatchObject({
      id,
      state: 'uploading',
      fileSize: data.byteLength,
      ackedBytes: 3 * CHUNK,
      ranges: [{ start: 0, end: 3 * CHUNK }],
      connected: true,
    });
    const wrong = await fetch(`${server.url}/uploads/${id}`, {
      headers: { 'Bigup-Secret': 'ab'.repeat(32) },
    });
    const unknown = await fetch(`${server.url}/uploads/${'ab'.repeat(16)}`, {
      headers: { Authorization: 'Bearer admin' },
    });
    // The server token lets a client upload; it does not manage other uploads.
    const byUploadToken = await fetch(`${server.url}/uploads/${id}`, {
      headers: { Authorization: 'Bearer tok' },
    });
    expect([wrong.status, unknown.status, byUploadToken.status]).toEqual([404, 404, 404]);
    expect(await wrong.text()).toBe(await unknown.text());
    const del = await fetch(`${server.url}/uploads/${id}`, {
      method: 'DELETE',
      headers: { Authorization: 'Bearer admin' },
    });
    expect(del.status).toBe(204);
    await client.expectError(Errors.UPLOAD_GONE.code);
    expect((await client.closed).code).toBe(4004);
    expect(await readdir(join(tmp.path, 'uploads'))).toEqual([]);
    expect(
      (await fetch(`${server.url}/uploads/${id}`, { headers: { Authorization: 'Bearer admin' } }))
        .status,
    ).toBe(404);
  });

  it('terminates an upload on TERMINATE and stays usable', async () => {
    const server = await serve();
    const { client, accept } = await opened(server, 4 * CHUNK);
    await sendChunks(
      client,
      accept,
      randomBytes(4 * CHUNK),
      chunksOf(4 * CHUNK, CHUNK).slice(0, 2),
    );
    client.terminate();
    const terminated = await client.expect('terminated');
    expect(terminated.uploadId).toEqual(accept.uploadId);
    expect(await readdir(join(tmp.path, 'uploads'))).toEqual([]);
    client.open({ fileSize: 10, name: 'next' });
    await client.expect('accept');
    client.close();
  });

  it('replays the same RESULT when a completed upload is resumed (lost RESULT)', async () => {
    const server = await serve();
    const data = randomBytes(3 * CHUNK);
    const { client, accept } = await opened(server, data.byteLength);
    await sendChunks(client, accept, data, chunksOf(data.byteLength, CHUNK));
    client.complete();
    const first = await client.expect('result');
    client.destroy();
    const again = await RawClient.connect(server.wsUrl);
    again.resume(accept.uploadId, accept.secret);
    const resumed = await again.expect('accept');
    expect(resumed.ranges).toEqual([{ start: 0, end: data.byteLength }]);
    again.complete();
    expect(await again.expect('result')).toEqual(first);
    again.close();
  });

  it('expires idle incomplete uploads after the TTL, but never one with a connection', async () => {
    const server = await serve({ ttl: 200, sweepInterval: 60_000 });
    const { client: idle, accept: idleAccept } = await opened(server, 4 * CHUNK);
    idle.close();
    await idle.closed;
    const { client: live, accept: liveAccept } = await opened(server, 4 * CHUNK);
    await new Promise((r) => setTimeout(r, 400));
    const removed = await server.app.bigUploader.sweep();
    expect(removed).toBe(1);
    const left = await readdir(join(tmp.path, 'uploads'));
    expect(left.some((f) => f.startsWith(bytesToHex(idleAccept.uploadId)))).toBe(false);
    expect(left.some((f) => f.startsWith(bytesToHex(liveAccept.uploadId)))).toBe(true);
    // The live one keeps working.
    const data = randomBytes(4 * CHUNK);
    const { errors } = await sendChunks(live, liveAccept, data, chunksOf(4 * CHUNK, CHUNK));
    expect(errors).toEqual([]);
    live.close();
  });

  it('shuts down gracefully mid-upload (acks in-flight writes, SHUTTING_DOWN, 1001) and resumes after restart', async () => {
    // A window far smaller than the file, so the shutdown lands while chunks are still unsent.
    const server = await serve({ window: 16 * CHUNK });
    const data = randomBytes(256 * CHUNK);
    const { client, accept } = await opened(server, data.byteLength);
    const acked: ByteRange[] = [];
    let closing: Promise<void> | undefined;
    const { errors } = await sendChunks(client, accept, data, chunksOf(data.byteLength, CHUNK), {
      timeoutMs: 5000,
      onAck: (bytes) => {
        if (bytes >= 8 * CHUNK) closing ??= server.close();
      },
    }).then((r) => {
      acked.push(...r.acked);
      return r;
    });
    await closing;
    expect(acked.length).toBeGreaterThan(0);
    expect(errors.map((e) => e.code)).toEqual([Errors.SHUTTING_DOWN.code]);
    expect((await client.closed).code).toBe(1001);
    const restarted = await serve();
    const again = await RawClient.connect(restarted.wsUrl);
    again.resume(accept.uploadId, accept.secret);
    const resumed = await again.expect('accept');
    for (const r of acked)
      expect(resumed.ranges.some((s) => s.start <= r.start && r.end <= s.end)).toBe(true);
    await sendChunks(again, resumed, data, missingChunks(data.byteLength, CHUNK, resumed.ranges));
    again.complete();
    await again.expect('result');
    expect(
      (await readFile(join(tmp.path, 'files', bytesToHex(accept.uploadId), 'f.bin'))).equals(data),
    ).toBe(true);
    again.close();
  });

  it('waits on close for an upload whose connection had already gone (its final checkpoint and close)', async () => {
    const disk = new DiskStore({ dir: tmp.path });
    let closeStarted!: () => void;
    const started = new Promise<void>((resolve) => {
      closeStarted = resolve;
    });
    let closed = 0;
    // A slow final close, so an app.close() that does not wait for it returns first.
    const slow = (handle: UploadHandle): UploadHandle =>
      Object.assign(Object.create(handle) as UploadHandle, {
        close: async () => {
          closeStarted();
          await new Promise((resolve) => setTimeout(resolve, 300));
          await handle.close();
          closed++;
        },
      });
    const store: UploadStore = Object.assign(Object.create(disk) as DiskStore, {
      init: () => disk.init(),
      create: async (info: UploadInfo) => slow(await disk.create(info)),
      open: async (id: string) => slow(await disk.open(id)),
    });
    const server = await serve({ store });
    const data = randomBytes(8 * CHUNK);
    const { client, accept } = await opened(server, data.byteLength);
    const { errors } = await sendChunks(client, accept, data, chunksOf(data.byteLength, CHUNK));
    expect(errors).toEqual([]);
    client.close();
    // The server saw the connection go and is unloading the upload outside any shutdown.
    await started;
    await server.close();
    expect(closed, 'the upload handle was still open when app.close() returned').toBe(1);
    // Its final checkpoint is on disk: the last record (before the reserved zero slots) is a SYNC mark.
    const journal = await readFile(
      join(tmp.path, 'uploads', `${bytesToHex(accept.uploadId)}.journal`),
    );
    let end = journal.byteLength;
    while (end > 0 && journal[end - 1] === 0) end--;
    expect(journal[Math.ceil(end / 32) * 32 - 32]).toBe(2);
  });

  it('refuses an OPEN larger than the free space with INSUFFICIENT_STORAGE, creating nothing', async () => {
    const disk = new DiskStore({ dir: tmp.path });
    // No small filesystem can be mounted here: inject the free-space answer through the store interface.
    const store: UploadStore = Object.assign(Object.create(disk) as DiskStore, {
      freeSpace: async () => 10 * CHUNK,
    });
    const server = await serve({ store });
    const client = await RawClient.connect(server.wsUrl);
    client.open({ fileSize: 11 * CHUNK });
    await client.expectError(Errors.INSUFFICIENT_STORAGE.code);
    expect((await client.closed).code).toBe(1000);
    expect(await readdir(join(tmp.path, 'uploads'))).toEqual([]);
    const ok = await RawClient.connect(server.wsUrl);
    // Not quite 10 chunks: the journal's reserved slots count against the free space too.
    ok.open({ fileSize: 9 * CHUNK });
    await ok.expect('accept');
    ok.close();
  });

  it('sizes the file at OPEN (sparse: its size is counted against the free space, see disk-store-space.test.ts)', async () => {
    const server = await serve();
    const { client, accept } = await opened(server, 256 * CHUNK);
    const part = await stat(join(tmp.path, 'uploads', `${bytesToHex(accept.uploadId)}.part`));
    expect(part.size).toBe(256 * CHUNK);
    client.close();
  });

  it('closes a silent connection with IDLE_TIMEOUT (4002)', async () => {
    const server = await serve({ idleTimeout: 150 });
    const client = await RawClient.connect(server.wsUrl);
    await client.expectError(Errors.IDLE_TIMEOUT.code, 3000);
    expect((await client.closed).code).toBe(4002);
  });

  it('closes an upload trickling below the minimum rate with TOO_SLOW (4003)', async () => {
    const server = await serve({ minThroughput: 1024 * 1024, throughputWindow: 150 });
    const { client } = await opened(server, 10 * CHUNK);
    await client.expectError(Errors.TOO_SLOW.code, 3000);
    expect((await client.closed).code).toBe(4003);
  });

  it('asks the authorizeUpload hook about the OPEN/RESUME token field', async () => {
    const server = await serve({ authorizeUpload: ({ token }) => token === 'ticket-1' });
    const refused = await RawClient.connect(server.wsUrl);
    refused.open({ fileSize: 10, token: 'forged' });
    await refused.expectError(Errors.UNAUTHORIZED.code);
    expect((await refused.closed).code).toBe(1008);
    const allowed = await RawClient.connect(server.wsUrl);
    allowed.open({ fileSize: 10, token: 'ticket-1' });
    await allowed.expect('accept');
    allowed.close();
  });

  it('refuses connections over maxConnections with 503 before the upgrade', async () => {
    const server = await serve({ maxConnections: 1 });
    const first = await RawClient.connect(server.wsUrl);
    expect((await RawClient.refused(server.wsUrl)).status).toBe(503);
    first.close();
  });

  it('answers TOO_MANY_UPLOADS over the limit', async () => {
    const server = await serve({ maxUploads: 1 });
    const { client } = await opened(server, 10);
    const second = await RawClient.connect(server.wsUrl);
    second.open({ fileSize: 10 });
    const error = await second.expectError(Errors.TOO_MANY_UPLOADS.code);
    expect(error.retryable).toBe(true);
    client.close();
  });
});

describe('incremental sweep', () => {
  it('reads at most sweepBatch records per pass and still covers the whole store', async () => {
    const tmp = await makeTempDir();
    class CountingStore extends DiskStore {
      reads = 0;
      override readState(id: string) {
        this.reads++;
        return super.readState(id);
      }
    }
    const store = new CountingStore({ dir: tmp.path, preallocate: false });
    const server = await startServer({
      dir: tmp.path,
      store,
      sweepBatch: 10,
      ttl: 60_000,
      emptyUploadTtl: 60_000,
      sweepInterval: 3_600_000,
    });
    try {
      for (let i = 0; i < 25; i++) {
        const client = await RawClient.connect(server.wsUrl);
        client.open({ fileSize: 10 });
        await client.expect('accept');
        client.close();
        await client.closed;
      }
      const perPass: number[] = [];
      for (let pass = 0; pass < 3; pass++) {
        store.reads = 0;
        expect(await server.app.bigUploader.sweep()).toBe(0); // nothing expired yet
        perPass.push(store.reads);
      }
      expect(perPass).toEqual([10, 10, 5]);
      // An hour later every upload has expired; three passes remove all 25.
      let removed = 0;
      for (let pass = 0; pass < 3; pass++)
        removed += await server.app.bigUploader.sweep(Date.now() + 3_600_000);
      expect(removed).toBe(25);
    } finally {
      await server.close();
      await tmp.cleanup();
    }
  });
});
