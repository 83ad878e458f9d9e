/**
 * `minThroughput` on a bigup.2 connection (SPEC.md 16.7) is the connection's, judged for the
 * uploads held when a period begins and when it ends, by upload id: re-accepting uploads on new
 * streams starts nothing anew (a reviewer kept four uploads without a byte alive that way), while
 * a client feeding its uploads oldest first at more than the minimum passes (a per-upload
 * minimum cut a reviewer's batch on a slow link). One stream is fed here at about 640 KiB/s
 * against a minimum of 200 KiB/s.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Errors, encodeResume, withStream } from '../../protocol/index.js';
import { RawClient } from '../helpers/protocol-client.js';
import { RawClientV2 } from '../helpers/protocol-client-v2.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

const CHUNK = 65_536;
const FILE = 1024 * CHUNK;

describe('minThroughput on a bigup.2 connection', () => {
  let tmp: TempDir;
  let server: TestServer;

  beforeEach(async () => {
    tmp = await makeTempDir();
    server = await startServer({
      dir: tmp.path,
      minThroughput: 200 * 1024,
      throughputWindow: 500,
      idleTimeout: 60_000,
    });
  });

  afterEach(async () => {
    await server.close();
    await tmp.cleanup();
  });

  /**
   * Opens `streams` uploads, then sends stream 1 a chunk every 100 ms for `ms`, or until an
   * ERROR comes on the connection (so an error seen came while stream 1 was being fed).
   */
  async function trickle(streams: number, ms: number): Promise<RawClientV2> {
    const client = await RawClientV2.connect(server.wsUrl);
    client.hello();
    await client.waitFor((f) => f.message.type === 'welcome');
    for (let stream = 1; stream <= streams; stream++) {
      client.open(stream, { fileSize: FILE, chunkSize: CHUNK });
      await client.expect(stream, 'accept');
    }
    const chunk = randomBytes(CHUNK);
    const until = Date.now() + ms;
    for (let at = 0; Date.now() < until && at < FILE; at += CHUNK) {
      client.data(1, at, chunk);
      await new Promise((r) => setTimeout(r, 100));
      if (client.on(0).some((m) => m.type === 'error')) break;
    }
    return client;
  }

  it('keeps a connection whose one upload stores more than the minimum', async () => {
    const client = await trickle(1, 2_500);
    expect(client.on(0).filter((m) => m.type === 'error')).toEqual([]);
    expect(client.on(1).some((m) => m.type === 'ack')).toBe(true);
    client.close();
  });

  it('keeps a connection that feeds the oldest of its four uploads above the minimum (an oldest-first sender)', async () => {
    const client = await trickle(4, 2_500);
    expect(client.on(0).filter((m) => m.type === 'error')).toEqual([]);
    expect(client.on(1).some((m) => m.type === 'ack')).toBe(true);
    client.close();
  });

  it('judges uploads RESUMEd again on new streams from their first ACCEPT (re-accepting is no fresh start)', async () => {
    const client = await RawClientV2.connect(server.wsUrl);
    client.hello();
    await client.waitFor((f) => f.message.type === 'welcome');
    const held: Array<{ uploadId: Uint8Array; secret: Uint8Array }> = [];
    for (let stream = 1; stream <= 4; stream++) {
      client.open(stream, { fileSize: FILE, chunkSize: CHUNK });
      const accept = await client.expect(stream, 'accept');
      held.push({ uploadId: accept.uploadId, secret: accept.secret });
    }
    // No byte at all; every 200 ms each upload is taken onto a new stream (a reviewer's dodge).
    let next = 5;
    const until = Date.now() + 4_000;
    while (Date.now() < until && !client.on(0).some((m) => m.type === 'error')) {
      await new Promise((r) => setTimeout(r, 200));
      for (const { uploadId, secret } of held) {
        const stream = next++;
        client.send(withStream(stream, encodeResume({ uploadId, secret, token: '' })));
        await client.expect(stream, 'accept').catch(() => undefined);
      }
    }
    const error = client.on(0).find((m) => m.type === 'error');
    expect(error?.type === 'error' && error.code).toBe(Errors.TOO_SLOW.code);
    client.destroy();
  });

  it('does not judge an upload RESUMEd again mid-period over the part of the period it was not held', async () => {
    const client = await RawClientV2.connect(server.wsUrl);
    client.hello();
    await client.waitFor((f) => f.message.type === 'welcome');
    client.open(1, { fileSize: FILE, chunkSize: CHUNK });
    const accept = await client.expect(1, 'accept');
    // Another connection takes the upload over and lets it go; stream 1 ends with TAKEN_OVER.
    const other = await RawClient.connect(server.wsUrl);
    other.resume(accept.uploadId, accept.secret);
    await other.expect('accept');
    other.close();
    await client.expect(1, 'error');
    // Two periods without the upload, then it is RESUMEd mid-period and fed above the minimum.
    await new Promise((r) => setTimeout(r, 1_150));
    client.send(
      withStream(3, encodeResume({ uploadId: accept.uploadId, secret: accept.secret, token: '' })),
    );
    await client.expect(3, 'accept');
    const chunk = randomBytes(CHUNK);
    for (let i = 0; i < 20 && !client.on(0).some((m) => m.type === 'error'); i++) {
      client.data(3, i * CHUNK, chunk);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(client.on(0).filter((m) => m.type === 'error')).toEqual([]);
    client.close();
  });
});
