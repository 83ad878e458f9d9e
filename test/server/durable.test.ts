import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Errors, bytesToHex } from '../../protocol/index.js';
import { DiskStore, type UploadHandle, type UploadStore } from '../../server/index.js';
import { RawClient, chunksOf, sendChunks } from '../helpers/protocol-client.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

const CHUNK = 65_536;

describe('durable mode and storage faults', () => {
  let tmp: TempDir;
  let server: TestServer | undefined;
  beforeEach(async () => {
    tmp = await makeTempDir();
  });
  afterEach(async () => {
    await server?.close();
    await tmp.cleanup();
  });

  it('acks after fdatasync with group commit and stores the file', async () => {
    server = await startServer({ dir: tmp.path, durable: true });
    const data = randomBytes(64 * CHUNK + 3);
    const client = await RawClient.connect(server.wsUrl);
    client.open({ fileSize: data.byteLength, chunkSize: CHUNK, name: 'd.bin' });
    const accept = await client.expect('accept');
    expect(accept.durable).toBe(true);
    const { errors } = await sendChunks(client, accept, data, chunksOf(data.byteLength, CHUNK));
    expect(errors).toEqual([]);
    client.complete();
    await client.expect('result');
    expect(
      (await readFile(join(tmp.path, 'files', bytesToHex(accept.uploadId), 'd.bin'))).equals(data),
    ).toBe(true);
    client.close();
  });

  it('answers a failed flush with STORAGE_ERROR and never acks the chunk', async () => {
    const disk = new DiskStore({ dir: tmp.path });
    let syncs = 0;
    const failing = (handle: UploadHandle): UploadHandle =>
      Object.assign(Object.create(handle) as UploadHandle, {
        syncData: async () => {
          if (++syncs > 1) throw Object.assign(new Error('EIO'), { code: 'EIO' });
          return handle.syncData();
        },
      });
    const store: UploadStore = Object.assign(Object.create(disk) as DiskStore, {
      async create(this: DiskStore, info: Parameters<UploadStore['create']>[0]) {
        return failing(await DiskStore.prototype.create.call(this, info));
      },
    });
    server = await startServer({ dir: tmp.path, durable: true, store });
    const client = await RawClient.connect(server.wsUrl);
    const data = randomBytes(8 * CHUNK);
    client.open({ fileSize: data.byteLength, chunkSize: CHUNK });
    const accept = await client.expect('accept');
    const first = await sendChunks(
      client,
      accept,
      data,
      chunksOf(data.byteLength, CHUNK).slice(0, 1),
    );
    expect(first.errors).toEqual([]);
    const { acked, errors } = await sendChunks(
      client,
      accept,
      data,
      chunksOf(data.byteLength, CHUNK).slice(1),
    );
    acked.push(...first.acked);
    expect(errors.map((e) => e.code)).toEqual([Errors.STORAGE_ERROR.code]);
    expect((await client.closed).code).toBe(1011);
    expect(acked.reduce((s, r) => s + r.end - r.start, 0)).toBeLessThan(data.byteLength);
    // What was acked is still acked when the client comes back.
    const again = await RawClient.connect(server.wsUrl);
    again.resume(accept.uploadId, accept.secret);
    const resumed = await again.expect('accept');
    for (const r of acked)
      expect(resumed.ranges.some((s) => s.start <= r.start && r.end <= s.end)).toBe(true);
    again.close();
  });
});
