/**
 * Server behaviour that SPEC.md pins down where a clean-room implementer once had to guess
 * (Appendix B, decisions 15, 17, 20, 21, 22): each rule is checked against the real server.
 */
import { randomBytes } from 'node:crypto';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Errors,
  Limits,
  SUBPROTOCOL_V1,
  encodeOpen,
  loadHasher,
  rangeOffGrid,
} from '../../protocol/index.js';
import { MAX_MESSAGE_BEFORE_ACCEPT } from '../../server/session.js';
import { RawClient, chunksOf, digestOf, sendChunks } from '../helpers/protocol-client.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

const CHUNK = Limits.MIN_CHUNK_SIZE;

let tmp: TempDir;
let server: TestServer;

beforeAll(async () => {
  tmp = await makeTempDir();
  server = await startServer({ dir: tmp.path, window: 4 * CHUNK, defaultChunkSize: CHUNK });
});
afterAll(async () => {
  await server.close();
  await tmp.cleanup();
});

async function opened(size: number, digest?: bigint) {
  const client = await RawClient.connect(server.wsUrl);
  client.open({ fileSize: size, chunkSize: CHUNK, ...(digest === undefined ? {} : { digest }) });
  const accept = await client.expect('accept');
  return { client, accept };
}

describe('SPEC rules the server follows', () => {
  it('7.8: a correct COMPLETE digest does not override a different OPEN digest (DIGEST_MISMATCH)', async () => {
    const data = randomBytes(3 * CHUNK + 7);
    const { client, accept } = await opened(data.byteLength, 0x1234n);
    const { errors } = await sendChunks(client, accept, data, chunksOf(data.byteLength, CHUNK));
    expect(errors).toEqual([]);
    client.complete(digestOf(client.hasher, data, CHUNK));
    const error = await client.expectError(Errors.DIGEST_MISMATCH.code);
    expect(error.fatal).toBe(false);
    // Nothing was stored as done: the upload is still active and can be terminated.
    client.terminate();
    await client.expect('terminated');
    client.close();
  });

  it('7.8: with both digests right the upload completes', async () => {
    const data = randomBytes(2 * CHUNK + 1);
    const digest = digestOf(await loadHasher(), data, CHUNK);
    const { client, accept } = await opened(data.byteLength, digest);
    await sendChunks(client, accept, data, chunksOf(data.byteLength, CHUNK));
    client.complete(digest);
    const result = await client.expect('result');
    expect(result.digest).toBe(digest);
    client.close();
  });

  it('5: a TERMINATE right after COMPLETE is UNEXPECTED_MESSAGE; resuming recovers the COMPLETE outcome', async () => {
    const data = randomBytes(2 * CHUNK + 3);
    const { client, accept } = await opened(data.byteLength);
    await sendChunks(client, accept, data, chunksOf(data.byteLength, CHUNK));
    client.complete();
    client.terminate();
    // The COMPLETE may or may not be answered before the fatal error; the TERMINATE never is.
    let message = await client.next();
    if (message.type === 'result') message = await client.next();
    expect(message).toMatchObject({
      type: 'error',
      code: Errors.UNEXPECTED_MESSAGE.code,
      fatal: true,
    });
    expect((await client.closed).code).toBe(1002);

    const again = await RawClient.connect(server.wsUrl);
    again.resume(accept.uploadId, accept.secret);
    const resumed = await again.expect('accept');
    expect(resumed.ranges).toEqual([{ start: 0, end: data.byteLength }]);
    again.complete(digestOf(again.hasher, data, CHUNK));
    expect((await again.expect('result')).fileSize).toBe(data.byteLength);
    again.close();
  });

  it('7.5: an ERROR naming a DATA frees its bytes from the window', async () => {
    const data = randomBytes(8 * CHUNK);
    const { client, accept } = await opened(data.byteLength);
    expect(accept.window).toBe(4 * CHUNK);
    // Fill the window, one chunk with a wrong hash; wait for all four answers.
    for (let i = 0; i < 4; i++) {
      const payload = data.subarray(i * CHUNK, (i + 1) * CHUNK);
      client.sendData(i * CHUNK, payload, i === 1 ? 1n : undefined);
    }
    const answers = [];
    let acked = 0;
    while (acked + answers.length < 4) {
      const m = await client.next();
      if (m.type === 'ack') acked += m.ranges.reduce((n, r) => n + (r.end - r.start) / CHUNK, 0);
      else answers.push(m);
    }
    expect(answers).toEqual([
      expect.objectContaining({
        type: 'error',
        code: Errors.HASH_MISMATCH.code,
        offset: CHUNK,
        length: CHUNK,
      }),
    ]);
    // Nothing is outstanding now (3 acked, 1 answered by ERROR): a full window may go again. Had
    // the refused chunk still counted, this would be 5 chunks against a 4-chunk window.
    for (let i = 4; i < 7; i++)
      client.sendData(i * CHUNK, data.subarray(i * CHUNK, (i + 1) * CHUNK));
    client.sendData(CHUNK, data.subarray(CHUNK, 2 * CHUNK));
    let more = 0;
    while (more < 4) {
      const m = await client.next();
      expect(
        m.type,
        JSON.stringify(m, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)),
      ).toBe('ack');
      if (m.type === 'ack') more += m.ranges.reduce((n, r) => n + (r.end - r.start) / CHUNK, 0);
    }
    client.close();
  });

  it('6.3: ranges in a resumed ACCEPT lie on the chunk grid, also with a short last chunk', async () => {
    const data = randomBytes(5 * CHUNK + 11);
    const { client, accept } = await opened(data.byteLength);
    const chunks = chunksOf(data.byteLength, CHUNK);
    await sendChunks(client, accept, data, [chunks[0], chunks[2], chunks[5]]);
    client.close();
    const again = await RawClient.connect(server.wsUrl);
    again.resume(accept.uploadId, accept.secret);
    const resumed = await again.expect('accept');
    expect(resumed.ranges).toEqual([
      { start: 0, end: CHUNK },
      { start: 2 * CHUNK, end: 3 * CHUNK },
      { start: 5 * CHUNK, end: data.byteLength },
    ]);
    expect(rangeOffGrid(resumed.ranges, resumed.fileSize, resumed.chunkSize)).toBeUndefined();
    again.close();
  });

  it('3.2: the 426 carries Bigup-Versions and an informational JSON body', async () => {
    const { status, headers, body } = await new Promise<{
      status: number;
      headers: IncomingHttpHeaders;
      body: string;
    }>((resolve, reject) => {
      const request = httpRequest(`${server.url}/upload`, {
        headers: {
          Connection: 'Upgrade',
          Upgrade: 'websocket',
          'Sec-WebSocket-Version': '13',
          'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
          'Sec-WebSocket-Protocol': 'other.1',
        },
      });
      request.on('response', (res) => {
        let text = '';
        res.on('data', (d: Buffer) => {
          text += d.toString();
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }),
        );
      });
      request.on('upgrade', () => reject(new Error('upgraded')));
      request.on('error', reject);
      request.end();
    });
    expect(status).toBe(426);
    expect(headers['bigup-versions']).toBe(`bigup.2, ${SUBPROTOCOL_V1}`);
    expect(headers['content-type']).toMatch(/^application\/json/);
    expect(JSON.parse(body)).toEqual({
      code: 'UPGRADE_REQUIRED',
      error: expect.stringContaining(SUBPROTOCOL_V1),
    });
  });
});

describe('messages before ACCEPT are bounded by the largest OPEN', () => {
  it('accepts the largest valid OPEN and refuses a bigger frame at its header (1009) before any upload', async () => {
    const metadata: Record<string, string> = {};
    const per = Limits.MAX_METADATA_TOTAL_BYTES / Limits.MAX_METADATA_ENTRIES;
    for (let i = 0; i < Limits.MAX_METADATA_ENTRIES; i++) {
      const key = `k${String(i).padStart(3, '0')}`;
      metadata[key] = 'v'.repeat(per - key.length);
    }
    const largest = encodeOpen({
      fileSize: 1,
      chunkSize: 0,
      name: 'n'.repeat(Limits.MAX_NAME_BYTES),
      contentType: 'c'.repeat(Limits.MAX_CONTENT_TYPE_BYTES),
      token: 't'.repeat(Limits.MAX_TOKEN_BYTES),
      metadata,
    });
    expect(largest.byteLength).toBe(MAX_MESSAGE_BEFORE_ACCEPT);
    const tmp = await makeTempDir();
    const server = await startServer({ dir: tmp.path });
    try {
      const ok = await RawClient.connect(server.wsUrl);
      ok.send(largest);
      await ok.expect('accept');
      ok.close();
      const big = await RawClient.connect(server.wsUrl);
      big.send(new Uint8Array(MAX_MESSAGE_BEFORE_ACCEPT + 1));
      expect((await big.closed).code).toBe(1009);
    } finally {
      await server.close();
      await tmp.cleanup();
    }
  });
});
