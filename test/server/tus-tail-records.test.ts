/**
 * A tus upload's partial-chunk record (<dir>/tus/<id>.tail) goes with the upload, whatever path
 * ends it. An attack found against the old code: only tus's own DELETE and completion removed it,
 * so uploads ended by a WebSocket TERMINATE or COMPLETE, the sweeper or the admin's DELETE left
 * their record (an inode each) until a restart: 500 in 8 s from one client, no bound.
 */
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RawClient } from '../helpers/protocol-client.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { tusRequest } from '../helpers/tus.js';

const MiB = 1024 * 1024;
const CHUNK = MiB;

describe('tus tail records go with their upload', () => {
  let tmp: TempDir;
  let server: TestServer;

  beforeEach(async () => {
    tmp = await makeTempDir();
    server = await startServer({
      dir: tmp.path,
      defaultChunkSize: CHUNK,
      adminToken: 'admin',
      ttl: 300,
      sweepInterval: 3_600_000,
    });
  });
  afterEach(async () => {
    await server.close();
    await tmp.cleanup();
  });

  const tails = async (): Promise<string[]> =>
    (await readdir(join(tmp.path, 'tus'))).filter((name) => name.endsWith('.tail'));

  /** A tus upload of `size` bytes with its first `sent` bytes sent (a tail when not chunk-aligned). */
  async function withTail(
    data: Buffer,
    sent: number,
  ): Promise<{ id: string; secret: string; path: string }> {
    const created = await tusRequest(`${server.url}/files/`, 'POST', {
      'Upload-Length': String(data.byteLength),
      'Upload-Metadata': `filename ${Buffer.from('t.bin').toString('base64')}`,
    });
    expect(created.status).toBe(201);
    const path = new URL(created.headers.get('location') ?? '', server.url).pathname;
    const id = path.slice(path.lastIndexOf('/') + 1);
    const patched = await tusRequest(
      `${server.url}${path}`,
      'PATCH',
      { 'Content-Type': 'application/offset+octet-stream', 'Upload-Offset': '0' },
      data.subarray(0, sent),
    );
    expect(patched.status).toBe(204);
    expect(await tails()).toContain(`${id}.tail`);
    return { id, secret: created.headers.get('bigup-secret') ?? '', path };
  }

  it('a WebSocket TERMINATE removes it', async () => {
    const { id, secret } = await withTail(randomBytes(2 * CHUNK), 100);
    const client = await RawClient.connect(server.wsUrl);
    client.resume(Buffer.from(id, 'hex'), Buffer.from(secret, 'hex'));
    await client.expect('accept');
    client.terminate();
    await client.expect('terminated');
    client.close();
    await client.closed;
    await expect.poll(tails).not.toContain(`${id}.tail`);
  });

  it('a WebSocket COMPLETE removes it', async () => {
    const data = randomBytes(CHUNK + 10);
    const { id, secret } = await withTail(data, 100);
    const client = await RawClient.connect(server.wsUrl);
    client.resume(Buffer.from(id, 'hex'), Buffer.from(secret, 'hex'));
    const accept = await client.expect('accept');
    expect(accept.chunkSize).toBe(CHUNK);
    client.sendData(0, data.subarray(0, CHUNK));
    client.sendData(CHUNK, data.subarray(CHUNK));
    for (let acked = 0; acked < data.byteLength;) {
      const ack = await client.expect('ack');
      acked += ack.ranges.reduce((sum, r) => sum + r.end - r.start, 0);
    }
    client.complete();
    await client.expect('result');
    client.close();
    await expect.poll(tails).not.toContain(`${id}.tail`);
  });

  it("the sweeper's expiry and the admin's DELETE remove it", async () => {
    const expiring = await withTail(randomBytes(2 * CHUNK), 100);
    const deleted = await withTail(randomBytes(2 * CHUNK), 200);
    const gone = await fetch(`${server.url}/uploads/${deleted.id}`, {
      method: 'DELETE',
      headers: { Authorization: 'Bearer admin' },
    });
    expect(gone.status).toBe(204);
    await expect.poll(tails).not.toContain(`${deleted.id}.tail`);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(await server.app.bigUploader.sweep()).toBeGreaterThanOrEqual(1);
    await expect.poll(tails).not.toContain(`${expiring.id}.tail`);
  });
});
