import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeData, bytesToHex, type ByteRange } from '../../protocol/index.js';
import { RawClient, chunksOf, missingChunks, sendChunks } from '../helpers/protocol-client.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

const CHUNK = 256 * 1024;

function covered(ranges: readonly ByteRange[]): number {
  return ranges.reduce((s, r) => s + r.end - r.start, 0);
}

/** Ranges acked so far must all be inside the server's list. */
function includesAll(server: readonly ByteRange[], acked: readonly ByteRange[]): boolean {
  return acked.every((a) => server.some((r) => r.start <= a.start && a.end <= r.end));
}

describe('resume', () => {
  let tmp: TempDir;
  let server: TestServer;

  beforeEach(async () => {
    tmp = await makeTempDir();
    server = await startServer({ dir: tmp.path });
  });
  afterEach(async () => {
    await server.close();
    await tmp.cleanup();
  });

  async function finish(
    client: RawClient,
    data: Buffer,
    id: Uint8Array,
    secret: Uint8Array,
    ackedBefore: ByteRange[],
  ): Promise<void> {
    const again = await RawClient.connect(server.wsUrl);
    again.resume(id, secret);
    const accept = await again.expect('accept');
    expect(accept.created).toBe(false);
    expect(accept.secret.every((b) => b === 0)).toBe(true);
    expect(includesAll(accept.ranges, ackedBefore)).toBe(true);
    const missing = missingChunks(data.byteLength, CHUNK, accept.ranges);
    // Only missing ranges are sent; a range already acked would be a waste the client must avoid.
    expect(covered(missing) + covered(accept.ranges)).toBe(data.byteLength);
    const { acked, errors } = await sendChunks(again, accept, data, missing);
    expect(errors).toEqual([]);
    expect(covered(acked)).toBe(covered(missing));
    again.complete();
    await again.expect('result');
    const stored = await readFile(`${tmp.path}/files/${bytesToHex(id)}/f.bin`);
    expect(stored.equals(data)).toBe(true);
    again.close();
    client.destroy();
  }

  it('resumes after the client destroys the connection mid-upload', async () => {
    const data = randomBytes(8 * 1024 * 1024);
    const client = await RawClient.connect(server.wsUrl);
    client.open({ fileSize: data.byteLength, chunkSize: CHUNK, name: 'f.bin' });
    const accept = await client.expect('accept');
    const { acked } = await sendChunks(client, accept, data, chunksOf(data.byteLength, CHUNK), {
      stopAfterBytes: 3 * 1024 * 1024,
    });
    client.destroy();
    expect(covered(acked)).toBeGreaterThanOrEqual(3 * 1024 * 1024);
    await finish(client, data, accept.uploadId, accept.secret, acked);
  });

  it('resumes after a cut in the middle of a DATA frame', async () => {
    const data = randomBytes(4 * 1024 * 1024);
    const client = await RawClient.connect(server.wsUrl);
    client.open({ fileSize: data.byteLength, chunkSize: CHUNK, name: 'f.bin' });
    const accept = await client.expect('accept');
    const first = chunksOf(data.byteLength, CHUNK).slice(0, 5);
    const { acked } = await sendChunks(client, accept, data, first);
    expect(covered(acked)).toBe(5 * CHUNK);
    // Hand-made WebSocket frame (binary, masked with zeros) cut halfway through its payload.
    const { header, payload } = encodeData(
      5 * CHUNK,
      client.hasher.h64(data.subarray(5 * CHUNK, 6 * CHUNK)),
      data.subarray(5 * CHUNK, 6 * CHUNK),
    );
    const length = header.byteLength + payload.byteLength;
    const frameHead = Buffer.alloc(14);
    frameHead[0] = 0x82;
    frameHead[1] = 0x80 | 127;
    frameHead.writeBigUInt64BE(BigInt(length), 2);
    const socket = (client.ws as unknown as { _socket: Socket })._socket;
    socket.write(Buffer.concat([frameHead, header, payload.subarray(0, CHUNK / 2)]));
    await new Promise((r) => setTimeout(r, 50));
    socket.destroy();
    await finish(client, data, accept.uploadId, accept.secret, acked);
  });

  it('refuses a wrong secret and an unknown id the same way', async () => {
    const client = await RawClient.connect(server.wsUrl);
    client.open({ fileSize: 1000, name: 'f.bin' });
    const accept = await client.expect('accept');
    client.close();
    const results = [];
    for (const [id, secret] of [
      [accept.uploadId, randomBytes(32)],
      [randomBytes(16), accept.secret],
    ] as const) {
      const other = await RawClient.connect(server.wsUrl);
      other.resume(id, secret);
      const error = await other.expect('error');
      const closed = await other.closed;
      results.push({
        code: error.code,
        message: error.message,
        fatal: error.fatal,
        close: closed.code,
      });
    }
    expect(results[0]).toEqual(results[1]);
    expect(results[0]).toMatchObject({ code: 0x0102, fatal: true, close: 1000 });
  });
});

describe('RESUME churn', () => {
  it('RESUME cycles that send nothing do not grow the journal', async () => {
    const tmp = await makeTempDir();
    const server = await startServer({ dir: tmp.path });
    try {
      const first = await RawClient.connect(server.wsUrl);
      const data = new Uint8Array(2 * 65_536).fill(3);
      first.open({ fileSize: data.byteLength, chunkSize: 65_536 });
      const accept = await first.expect('accept');
      first.sendData(0, data.subarray(0, 65_536));
      await first.expect('ack');
      first.close();
      await first.closed;
      const journal = join(
        tmp.path,
        'uploads',
        `${Buffer.from(accept.uploadId).toString('hex')}.journal`,
      );
      const used = async (): Promise<number> => {
        const bytes = await readFile(journal);
        let end = bytes.byteLength;
        while (end > 0 && bytes[end - 1] === 0) end--;
        return end;
      };
      const sizes: number[] = [];
      for (let i = 0; i < 6; i++) {
        const again = await RawClient.connect(server.wsUrl);
        again.resume(accept.uploadId, accept.secret);
        await again.expect('accept');
        again.close();
        await again.closed;
        await new Promise((resolve) => setTimeout(resolve, 50)); // the unload's final checkpoint
        sizes.push(await used());
      }
      // The first RESUME may mark what the first connection left; the rest add nothing.
      expect(new Set(sizes.slice(1)).size).toBe(1);
    } finally {
      await server.close();
      await tmp.cleanup();
    }
  });
});
