/**
 * Resource attacks from issue 13, each against a live child-process server with the bound it
 * must hold: memory of a client that never reads, refusals in a loop, descriptors opened by
 * wrong-secret RESUMEs, upload slots held with junk, liveness faked by messages, and limits raced
 * by concurrent OPENs and upgrades. Every attack is bounded in count and time; each test ends by
 * checking that a well-behaved client is still served.
 */
import { readdirSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Errors, encodeData, encodeOpen, loadHasher } from '../../protocol/index.js';
import { RawClient } from '../helpers/protocol-client.js';
import {
  startChildServer,
  startServer,
  type ChildServer,
  type TestServer,
} from '../helpers/server.js';
import type { AppOptions } from '../../server/index.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { recordFigures } from './lib/figures.js';
import { rssBytes, sampleRss } from './lib/proc.js';
import { errorCodeOf, frame, rawConnect } from './lib/raw-ws.js';

const KiB = 1024;
const MiB = 1024 * KiB;

function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

async function until(check: () => boolean, timeoutMs: number, stepMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) return true;
    await new Promise((resolve) => setTimeout(resolve, stepMs));
  }
  return check();
}

/** A normal client still gets an upload through: OPEN, one chunk, COMPLETE, RESULT. */
async function wellBehavedUpload(wsUrl: string): Promise<void> {
  const client = await RawClient.connect(wsUrl);
  const data = new Uint8Array(64 * KiB).fill(7);
  client.open({ fileSize: data.byteLength, chunkSize: 64 * KiB });
  await client.expect('accept');
  client.sendData(0, data);
  await client.expect('ack');
  client.complete();
  await client.expect('result');
  client.close();
}

async function openUpload(wsUrl: string): Promise<{ id: Uint8Array; secret: Uint8Array }> {
  const client = await RawClient.connect(wsUrl);
  client.open({ fileSize: 256 * KiB, chunkSize: 64 * KiB });
  const accept = await client.expect('accept');
  client.close();
  await client.closed;
  return { id: accept.uploadId, secret: accept.secret };
}

describe('abuse: every resource a client can make the server hold is bounded', () => {
  let tmp: TempDir;
  let child: ChildServer | undefined;

  beforeEach(async () => {
    tmp = await makeTempDir('bigup-abuse-');
  });
  afterEach(async () => {
    child?.kill();
    if (child) await child.exited;
    child = undefined;
    await tmp.cleanup();
  });

  const serve = async (...args: string[]): Promise<ChildServer> => {
    child = await startChildServer(['--dir', join(tmp.path, 'data'), '--no-preallocate', ...args]);
    return child;
  };

  it('cuts a client that never reads its answers once maxQueuedBytes is queued (memory stays flat)', async () => {
    // Refusals are left unbounded here so that only the send queue can stop the attack.
    const server = await serve('--max-refused', '100000000', '--max-queued-bytes', '1MiB');
    const pid = server.process.pid!;
    const before = rssBytes(pid);
    const rss = sampleRss(pid, 50);
    const raw = await rawConnect(Number(new URL(server.url).port));
    raw.socket.write(
      frame(
        0x2,
        encodeOpen({
          fileSize: 1 * MiB,
          chunkSize: 64 * KiB,
          name: 'x',
          contentType: '',
          token: '',
          metadata: {},
        }),
      ),
    );
    await until(() => raw.frames.length > 0, 5000);
    raw.socket.pause(); // stop reading: every answer from now on queues on the server
    // A well-behaved client uploads while the attack runs.
    const during = wellBehavedUpload(server.wsUrl).then(() => true);
    const hasher = await loadHasher();
    const one = new Uint8Array([1]);
    const { header, payload } = encodeData(1, hasher.h64(one), one); // OUT_OF_RANGE, non-fatal
    const message = frame(0x2, Buffer.concat([header, payload]));
    const batch = Buffer.concat(Array.from({ length: 1000 }, () => message));
    let sent = 0;
    const started = Date.now();
    // The socket is not read, so its close is not seen here: the server's log says when it cut.
    const cutLogged = () => /the client does not read its answers/.test(server.output());
    let closed = false;
    void raw.closed.then(() => {
      closed = true;
    });
    // About 60 bytes of ERROR per 25-byte message: 400,000 messages would queue ~24 MiB unbounded.
    // Kernel buffers take the first few MiB of answers; the server's queue fills after them.
    while (!closed && !cutLogged() && sent < 400_000 && Date.now() - started < 40_000) {
      if (!raw.socket.write(batch)) await new Promise((resolve) => setTimeout(resolve, 5));
      sent += 1000;
      if (sent % 20_000 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    // A loaded machine may still be answering the backlog: the bound holds whenever it is reached.
    const cut = await until(cutLogged, 40_000, 100);
    raw.socket.resume(); // read again: the connection is gone
    expect(
      await Promise.race([
        raw.closed.then(() => true),
        new Promise<boolean>((r) => setTimeout(() => r(false), 5_000)),
      ]),
    ).toBe(true);
    const peak = rss.stop();
    const growth = peak - before;
    recordFigures('abuse-unread-socket', {
      messagesSent: sent,
      cut,
      rssBeforeMiB: +(before / MiB).toFixed(1),
      rssPeakGrowthMiB: +(growth / MiB).toFixed(1),
      seconds: +((Date.now() - started) / 1000).toFixed(1),
    });
    expect(cut).toBe(true);
    expect(growth).toBeLessThan(48 * MiB);
    expect(await during).toBe(true);
    await wellBehavedUpload(server.wsUrl);
  }, 120_000);

  it('closes a connection with LIMIT_EXCEEDED after maxRefusedMessages refusals', async () => {
    const server = await serve('--max-refused', '16');
    const client = await RawClient.connect(server.wsUrl);
    client.open({ fileSize: 1 * MiB, chunkSize: 64 * KiB });
    await client.expect('accept');
    const junk = new Uint8Array(64 * KiB);
    for (let i = 0; i < 40; i++) client.sendData(0, junk, 1n); // HASH_MISMATCH each, non-fatal
    let refusals = 0;
    for (;;) {
      const error = await client.expect('error');
      if (error.code === Errors.HASH_MISMATCH.code) {
        refusals++;
        continue;
      }
      expect(error.code).toBe(Errors.LIMIT_EXCEEDED.code);
      break;
    }
    const { code, reason } = await client.closed;
    recordFigures('abuse-refusals', {
      limit: 16,
      refusalsAnswered: refusals,
      closeCode: code,
      reason,
    });
    expect(refusals).toBe(16);
    expect(code).toBe(1008);
    expect(reason).toBe('LIMIT_EXCEEDED');
    await wellBehavedUpload(server.wsUrl);
  });

  it('opens no file for a RESUME with a wrong secret (no descriptor growth, nothing cached)', async () => {
    const server = await serve();
    const pid = server.process.pid!;
    const uploads = [];
    for (let i = 0; i < 40; i++) uploads.push(await openUpload(server.wsUrl));
    // Every owner left: their uploads unload and their files close.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const before = fdCount(pid);
    for (const upload of uploads) {
      const client = await RawClient.connect(server.wsUrl);
      client.resume(upload.id, new Uint8Array(32).fill(0xee));
      await client.expectError(Errors.NOT_FOUND.code);
      await client.closed;
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    const after = fdCount(pid);
    recordFigures('abuse-wrong-secret-resume', {
      uploads: uploads.length,
      fdsBefore: before,
      fdsAfter: after,
    });
    // Two descriptors per opened upload would be 80 more; a few are sockets still closing.
    expect(after - before).toBeLessThan(6);
    // The right secret still resumes.
    const owner = await RawClient.connect(server.wsUrl);
    owner.resume(uploads[0].id, uploads[0].secret);
    await owner.expect('accept');
    owner.close();
    await wellBehavedUpload(server.wsUrl);
  });

  it('frees slots held by clients sending only refused chunks (IDLE_TIMEOUT counts progress, not messages)', async () => {
    const server = await serve(
      '--max-uploads',
      '4',
      '--idle-timeout',
      '1500ms',
      '--max-refused',
      '100000',
    );
    const holders: RawClient[] = [];
    for (let i = 0; i < 4; i++) {
      const holder = await RawClient.connect(server.wsUrl);
      holder.open({ fileSize: 1 * MiB, chunkSize: 64 * KiB });
      await holder.expect('accept');
      holders.push(holder);
    }
    const refused = await RawClient.connect(server.wsUrl);
    refused.open({ fileSize: 1 * MiB, chunkSize: 64 * KiB });
    await refused.expectError(Errors.TOO_MANY_UPLOADS.code);
    const junk = new Uint8Array(64 * KiB);
    const started = Date.now();
    const drip = setInterval(() => {
      for (const holder of holders)
        if (holder.ws.readyState === holder.ws.OPEN) holder.sendData(0, junk, 1n);
    }, 200);
    try {
      const closes = await Promise.all(holders.map((h) => h.closed));
      const seconds = (Date.now() - started) / 1000;
      recordFigures('abuse-slot-holders', {
        holders: 4,
        idleTimeoutMs: 1500,
        secondsUntilAllCut: +seconds.toFixed(1),
        closeCodes: closes.map((c) => c.code).join(','),
      });
      for (const close of closes) expect(close.code).toBe(4002);
      expect(seconds).toBeLessThan(10);
    } finally {
      clearInterval(drip);
    }
    await wellBehavedUpload(server.wsUrl);
  });

  it('drops a peer that never answers pings even while it keeps sending messages', async () => {
    const server = await serve(
      '--heartbeat',
      '300ms',
      '--idle-timeout',
      '60s',
      '--max-refused',
      '100000',
    );
    const raw = await rawConnect(Number(new URL(server.url).port), { pong: false });
    raw.socket.write(
      frame(
        0x2,
        encodeOpen({
          fileSize: 1 * MiB,
          chunkSize: 64 * KiB,
          name: 'x',
          contentType: '',
          token: '',
          metadata: {},
        }),
      ),
    );
    const hasher = await loadHasher();
    const one = new Uint8Array([1]);
    const { header, payload } = encodeData(1, hasher.h64(one), one);
    const message = frame(0x2, Buffer.concat([header, payload]));
    // Chatter only once the upload is open (DATA before ACCEPT would be a fatal UNEXPECTED_MESSAGE).
    expect(await until(() => raw.frames.some((f) => f.opcode === 0x2), 10_000)).toBe(true);
    const started = Date.now();
    const chatter = setInterval(() => {
      if (!raw.socket.destroyed) raw.socket.write(message);
    }, 50);
    try {
      await wellBehavedUpload(server.wsUrl); // while the chatter runs
      const code = await Promise.race([
        raw.closed,
        new Promise<number>((r) => setTimeout(() => r(-1), 8000)),
      ]);
      recordFigures('abuse-no-pong', {
        heartbeatMs: 300,
        secondsUntilDropped: +((Date.now() - started) / 1000).toFixed(1),
        closeCode: code,
      });
      expect(code).not.toBe(-1);
      const errors = raw.frames.filter((f) => f.opcode === 0x2).map((f) => errorCodeOf(f.payload));
      expect(errors.every((e) => e === undefined || e === Errors.OUT_OF_RANGE.code)).toBe(true);
    } finally {
      clearInterval(chatter);
    }
    await wellBehavedUpload(server.wsUrl);
  });

  it('holds maxUploads against 30 OPENs racing on 30 connections', async () => {
    const server = await serve('--max-uploads', '3');
    const clients = await Promise.all(
      Array.from({ length: 30 }, () => RawClient.connect(server.wsUrl)),
    );
    for (const client of clients) client.open({ fileSize: 1 * MiB, chunkSize: 64 * KiB });
    const answers = await Promise.all(clients.map((c) => c.next()));
    const accepted = answers.filter((a) => a.type === 'accept').length;
    const tooMany = answers.filter(
      (a) => a.type === 'error' && a.code === Errors.TOO_MANY_UPLOADS.code,
    ).length;
    recordFigures('abuse-open-race', { maxUploads: 3, opens: 30, accepted, tooMany });
    expect(accepted).toBe(3);
    expect(tooMany).toBe(27);
    for (const client of clients) client.destroy();
    await until(() => false, 300);
    await wellBehavedUpload(server.wsUrl);
  });

  it('slowloris: half-sent headers are capped by maxSockets and closed after headersTimeout', async () => {
    const server = await serve('--header-timeout', '1s', '--max-sockets', '20');
    const pid = server.process.pid!;
    const port = Number(new URL(server.url).port);
    const before = fdCount(pid);
    const sockets: Socket[] = [];
    let closed = 0;
    for (let i = 0; i < 60; i++) {
      const socket = connect(port, '127.0.0.1');
      socket.on('error', () => undefined);
      socket.on('close', () => {
        closed++;
      });
      socket.resume(); // read (and drop) the 408, so this side sees the close
      socket.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nX-Slow: `);
      sockets.push(socket);
    }
    await until(() => false, 300);
    const peak = fdCount(pid) - before;
    const started = Date.now();
    const allClosed = await until(() => closed === 60, 8000);
    const seconds = (Date.now() - started) / 1000;
    const after = fdCount(pid) - before;
    recordFigures('abuse-slowloris', {
      sockets: 60,
      maxSockets: 20,
      headersTimeoutMs: 1000,
      serverFdGrowth: peak,
      serverFdGrowthAfter: after,
      closed,
      secondsUntilAllClosed: +seconds.toFixed(1),
    });
    expect(peak).toBeLessThanOrEqual(22);
    expect(allClosed).toBe(true);
    expect(after).toBeLessThanOrEqual(2);
    for (const s of sockets) s.destroy();
    await wellBehavedUpload(server.wsUrl);
  });

  it('holds maxConnections against 40 upgrades racing', async () => {
    const server = await serve('--max-connections', '5');
    const port = Number(new URL(server.url).port);
    const attempts = await Promise.all(Array.from({ length: 40 }, () => rawConnect(port)));
    const upgraded = attempts.filter((a) => a.status === 101);
    const refused = attempts.filter((a) => a.status === 503);
    recordFigures('abuse-upgrade-race', {
      maxConnections: 5,
      upgrades: 40,
      upgraded: upgraded.length,
      refused503: refused.length,
    });
    expect(upgraded.length).toBeLessThanOrEqual(5);
    expect(upgraded.length + refused.length).toBe(40);
    for (const a of attempts) a.socket.destroy();
    await until(() => false, 300);
    await wellBehavedUpload(server.wsUrl);
  });
});

describe('abuse: reservations are bounded per client and in all, and empty ones expire soon', () => {
  let tmp: TempDir;
  let server: TestServer | undefined;
  beforeEach(async () => {
    tmp = await makeTempDir('bigup-quota-');
  });
  afterEach(async () => {
    await server?.close();
    server = undefined;
    await tmp.cleanup();
  });
  const serve = async (options: Partial<AppOptions>): Promise<TestServer> => {
    server = await startServer({ dir: join(tmp.path, 'data'), preallocate: false, ...options });
    return server;
  };
  const openNothing = async (
    wsUrl: string,
    fileSize: number,
  ): Promise<{ accepted: boolean; code?: number; client: RawClient }> => {
    const client = await RawClient.connect(wsUrl);
    client.open({ fileSize, chunkSize: 1 * MiB });
    const answer = await client.next();
    return answer.type === 'accept'
      ? { accepted: true, client }
      : { accepted: false, code: answer.type === 'error' ? answer.code : -1, client };
  };

  it('three OPENs of 300 MiB that send nothing: the second crosses the per-client quota, and survives a restart', async () => {
    const options = { maxCommittedBytesPerClient: 500 * MiB };
    const first = await serve(options);
    const a = await openNothing(first.wsUrl, 300 * MiB);
    const b = await openNothing(first.wsUrl, 300 * MiB);
    const c = await openNothing(first.wsUrl, 150 * MiB);
    recordFigures('abuse-reservation-quota', {
      quotaMiB: 500,
      firstAccepted: a.accepted,
      secondCode: b.code ?? 0,
      thirdAccepted: c.accepted,
    });
    expect(a.accepted).toBe(true);
    expect(b.code).toBe(Errors.INSUFFICIENT_STORAGE.code);
    expect(c.accepted).toBe(true);
    for (const x of [a, b, c]) x.client.destroy();
    await first.close();
    // The ledger is rebuilt from the store: a restart does not hand out a fresh quota.
    const second = await serve(options);
    const d = await openNothing(second.wsUrl, 100 * MiB);
    expect(d.code).toBe(Errors.INSUFFICIENT_STORAGE.code);
    d.client.destroy();
  });

  it('OPENs that never send a byte expire after emptyUploadTtl and give their reservation back', async () => {
    const srv = await serve({
      maxCommittedBytesPerClient: 500 * MiB,
      emptyUploadTtl: 300,
      sweepInterval: 100,
    });
    const a = await openNothing(srv.wsUrl, 400 * MiB);
    expect(a.accepted).toBe(true);
    a.client.destroy();
    const uploads = join(tmp.path, 'data', 'uploads');
    const gone = await until(() => readdirSync(uploads).length === 0, 5000);
    expect(gone).toBe(true);
    const b = await openNothing(srv.wsUrl, 400 * MiB);
    expect(b.accepted).toBe(true);
    b.client.destroy();
  });

  it('an upload that stored a chunk keeps the long ttl', async () => {
    const srv = await serve({ emptyUploadTtl: 200, sweepInterval: 100 });
    const client = await RawClient.connect(srv.wsUrl);
    client.open({ fileSize: 2 * 64 * KiB, chunkSize: 64 * KiB });
    await client.expect('accept');
    client.sendData(0, new Uint8Array(64 * KiB).fill(1));
    await client.expect('ack');
    client.close();
    await new Promise((resolve) => setTimeout(resolve, 800));
    expect(readdirSync(join(tmp.path, 'data', 'uploads')).length).toBeGreaterThan(0);
  });

  it('caps unfinished uploads per client, and OPENs per second per address', async () => {
    const srv = await serve({ maxUnfinishedUploadsPerClient: 5 });
    const held = [];
    for (let i = 0; i < 5; i++) held.push(await openNothing(srv.wsUrl, 10));
    expect(held.every((h) => h.accepted)).toBe(true);
    const sixth = await openNothing(srv.wsUrl, 10);
    expect(sixth.code).toBe(Errors.TOO_MANY_UPLOADS.code);
    for (const h of [...held, sixth]) h.client.destroy();
    await srv.close();
    const fast = await serve({ opensPerSecond: 1, openBurst: 5 });
    const started = Date.now();
    let accepted = 0;
    let refused = 0;
    // Zero-byte uploads complete at once: 318 of them a second was the attack.
    const client = await RawClient.connect(fast.wsUrl);
    for (let i = 0; i < 20; i++) {
      client.open({ fileSize: 0 });
      const answer = await client.next().catch(() => undefined);
      if (answer?.type === 'accept') {
        accepted++;
        client.complete();
        await client.expect('result');
      } else {
        refused++;
        break;
      }
    }
    // The burst, plus what the bucket refilled (1/s) while a loaded machine ran the loop.
    const refill = Math.floor((Date.now() - started) / 1000);
    recordFigures('abuse-open-rate', {
      opensPerSecond: 1,
      burst: 5,
      accepted,
      refused,
      refillDuringTest: refill,
    });
    expect(accepted).toBeGreaterThanOrEqual(5);
    expect(accepted).toBeLessThanOrEqual(5 + refill);
    expect(refused).toBe(1);
    client.destroy();
  });
});
