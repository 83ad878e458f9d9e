/**
 * Upload slots one client address may hold (`maxUploadsPerAddress`). An attack found against the
 * old code: 64 connections from one address, each storing a new 64 KiB chunk every 50 s (84 KiB/s
 * in all, within `idleTimeout` and `minThroughput`), held every upload slot for as long as they
 * liked; every other client got TOO_MANY_UPLOADS. Another address is another loopback address here.
 */
import { Writable } from 'node:stream';
import Fastify from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { bigUploader } from '../../server/index.js';
import { Errors } from '../../protocol/index.js';
import { RawClient } from '../helpers/protocol-client.js';
import { serverPerTest } from '../helpers/server-per-test.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

const CHUNK = 64 * 1024;

describe('upload slots per client address', () => {
  const perTest = serverPerTest('bigup-slots-');
  let server: TestServer;

  beforeEach(async () => {
    server = await perTest.server({ maxUploads: 8, maxUploadsPerAddress: 3 });
  });

  async function opened(localAddress: string, name: string) {
    const client = await RawClient.connect(server.wsUrl, { localAddress });
    client.open({ fileSize: 4 * CHUNK, chunkSize: CHUNK, name });
    return { client, answer: await client.next() };
  }

  it('one address holds at most maxUploadsPerAddress (3) of the 8 slots; others still open; a freed slot is its again', async () => {
    const held: RawClient[] = [];
    for (let i = 0; i < 3; i++) {
      const { client, answer } = await opened('127.0.0.1', `held-${i}.bin`);
      expect(answer.type).toBe('accept');
      held.push(client);
    }
    const { client: fourth, answer: refused } = await opened('127.0.0.1', 'fourth.bin');
    expect(refused).toMatchObject({ type: 'error', code: Errors.TOO_MANY_UPLOADS.code });
    expect(refused.type === 'error' && refused.message).toContain('maxUploadsPerAddress');
    fourth.close();
    // Another client is served.
    const { client: other, answer: otherAnswer } = await opened('127.0.0.2', 'other.bin');
    expect(otherAnswer.type).toBe('accept');
    other.close();
    // A slot given back is the address's to use again.
    const first = held.shift();
    first?.close();
    await first?.closed;
    let again: { client: RawClient; answer: Awaited<ReturnType<RawClient['next']>> } | undefined;
    for (let i = 0; i < 50; i++) {
      again = await opened('127.0.0.1', `again-${i}.bin`);
      if (again.answer.type === 'accept') break;
      again.client.close();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(again?.answer.type).toBe('accept');
    again?.client.close();
    for (const client of held) client.close();
  });

  it('RESUME counts too: a fourth upload from the same address is refused on RESUME as on OPEN', async () => {
    const { client, answer } = await opened('127.0.0.1', 'resumable.bin');
    expect(answer.type).toBe('accept');
    if (answer.type !== 'accept') return;
    client.close();
    await client.closed;
    const held: RawClient[] = [];
    for (let i = 0; i < 3; i++) {
      const opened3 = await opened('127.0.0.1', `held-${i}.bin`);
      expect(opened3.answer.type).toBe('accept');
      held.push(opened3.client);
    }
    const resumer = await RawClient.connect(server.wsUrl, { localAddress: '127.0.0.1' });
    resumer.resume(answer.uploadId, answer.secret);
    expect(await resumer.next()).toMatchObject({
      type: 'error',
      code: Errors.TOO_MANY_UPLOADS.code,
    });
    resumer.close();
    const elsewhere = await RawClient.connect(server.wsUrl, { localAddress: '127.0.0.3' });
    elsewhere.resume(answer.uploadId, answer.secret);
    expect((await elsewhere.next()).type).toBe('accept');
    elsewhere.close();
    for (const c of held) c.close();
  });
});

describe('no existence oracle at the per-address bound (SPEC.md 7.2)', () => {
  const perTest = serverPerTest('bigup-slots-');
  let server: TestServer;
  beforeEach(async () => {
    server = await perTest.server({ maxUploads: 8, maxUploadsPerAddress: 2 });
  });

  it('an address at its bound gets TOO_MANY_UPLOADS for an unknown id and for a connected upload with a wrong secret alike', async () => {
    const victim = await RawClient.connect(server.wsUrl, { localAddress: '127.0.0.2' });
    victim.open({ fileSize: 4 * CHUNK, chunkSize: CHUNK, name: 'victim.bin' });
    const victimAccept = await victim.expect('accept');
    const held: RawClient[] = [];
    for (let i = 0; i < 2; i++) {
      const client = await RawClient.connect(server.wsUrl, { localAddress: '127.0.0.1' });
      client.open({ fileSize: 4 * CHUNK, chunkSize: CHUNK, name: `mine-${i}.bin` });
      await client.expect('accept');
      held.push(client);
    }
    const probe = async (id: Uint8Array) => {
      const client = await RawClient.connect(server.wsUrl, { localAddress: '127.0.0.1' });
      client.resume(id, new Uint8Array(32).fill(0xcd));
      const answer = await client.next();
      client.close();
      return answer.type === 'error' ? { code: answer.code, message: answer.message } : answer.type;
    };
    const unknown = await probe(new Uint8Array(16).fill(0x5a));
    const connected = await probe(victimAccept.uploadId);
    expect(unknown).toMatchObject({ code: Errors.TOO_MANY_UPLOADS.code });
    expect(connected).toEqual(unknown);
    victim.close();
    for (const client of held) client.close();
  });
});

describe('behind a reverse proxy (trustProxy)', () => {
  let tmp: TempDir;
  afterEach(async () => {
    await tmp.cleanup();
  });

  async function openFrom(server: TestServer, forwardedFor: string) {
    const client = await RawClient.connect(server.wsUrl, {
      headers: { 'X-Forwarded-For': forwardedFor },
    });
    client.open({ fileSize: 4 * CHUNK, chunkSize: CHUNK, name: 'p.bin' });
    return { client, answer: await client.next() };
  }

  it("with the proxy trusted, X-Forwarded-For names the client; without, every client is the proxy's address", async () => {
    tmp = await makeTempDir();
    const trusting = await startServer({
      dir: tmp.path,
      maxUploadsPerAddress: 1,
      trustProxy: ['127.0.0.1'],
    });
    try {
      const a = await openFrom(trusting, '10.0.0.1');
      expect(a.answer.type).toBe('accept');
      const b = await openFrom(trusting, '10.0.0.2');
      expect(b.answer.type).toBe('accept');
      const again = await openFrom(trusting, '10.0.0.1');
      expect(again.answer).toMatchObject({ type: 'error', code: Errors.TOO_MANY_UPLOADS.code });
      // IPv6 counts by /64: another address of the same /64 is the same client, another /64 not.
      const v6 = await openFrom(trusting, '2001:db8::1');
      expect(v6.answer.type).toBe('accept');
      const sameNet = await openFrom(trusting, '2001:db8::beef');
      expect(sameNet.answer).toMatchObject({
        type: 'error',
        code: Errors.TOO_MANY_UPLOADS.code,
      });
      const otherNet = await openFrom(trusting, '2001:db8:0:1::1');
      expect(otherNet.answer.type).toBe('accept');
      for (const c of [a, b, again, v6, sameNet, otherNet]) c.client.close();
    } finally {
      await trusting.close();
    }
    const plain = await startServer({ dir: tmp.path, maxUploadsPerAddress: 1 });
    try {
      const a = await openFrom(plain, '10.0.0.1');
      expect(a.answer.type).toBe('accept');
      const b = await openFrom(plain, '10.0.0.2');
      expect(b.answer).toMatchObject({ type: 'error', code: Errors.TOO_MANY_UPLOADS.code });
      for (const c of [a, b]) c.client.close();
    } finally {
      await plain.close();
    }
  });
});

describe('RESUMEs per client address (opensPerSecond)', () => {
  const perTest = serverPerTest('bigup-slots-');
  let server: TestServer;
  beforeEach(async () => {
    server = await perTest.server({ opensPerSecond: 1, openBurst: 3 });
  });

  it('a client looping RESUME and close on its own upload takes from the OPEN bucket: past the burst, TOO_MANY_UPLOADS', async () => {
    const first = await RawClient.connect(server.wsUrl);
    first.open({ fileSize: 4 * CHUNK, chunkSize: CHUNK, name: 'loop.bin' });
    const accept = await first.expect('accept');
    first.close();
    await first.closed;
    const answers: string[] = [];
    for (let i = 0; i < 4; i++) {
      const client = await RawClient.connect(server.wsUrl);
      client.resume(accept.uploadId, accept.secret);
      const answer = await client.next();
      answers.push(answer.type === 'error' ? `error ${answer.code}` : answer.type);
      client.close();
      await client.closed;
    }
    // The OPEN took one token of 3: two RESUMEs go, the next ones are refused until the refill.
    expect(answers.slice(0, 2)).toEqual(['accept', 'accept']);
    expect(answers.slice(2)).toEqual([
      `error ${Errors.TOO_MANY_UPLOADS.code}`,
      `error ${Errors.TOO_MANY_UPLOADS.code}`,
    ]);
  });
});

describe('a forwarded request from an untrusted address', () => {
  it('is noted once in the log (a proxy in front without trustProxy makes every client one address)', async () => {
    let logged = '';
    const sink = new Writable({
      write(chunk, _enc, done) {
        logged += chunk.toString();
        done();
      },
    });
    const app = Fastify({ logger: { level: 'warn', stream: sink } });
    const dir = await makeTempDir();
    await app.register(bigUploader, { dir: dir.path });
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      await fetch(`${url}/uploads/${'0'.repeat(32)}`);
      expect(logged).not.toContain('X-Forwarded-For');
      for (let i = 0; i < 3; i++)
        await fetch(`${url}/uploads/${'0'.repeat(32)}`, {
          headers: { 'X-Forwarded-For': '198.51.100.7' },
        });
    } finally {
      await app.close();
      await dir.cleanup();
    }
    expect(logged.split('X-Forwarded-For').length - 1).toBe(1);
  });
});
