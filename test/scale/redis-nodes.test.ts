/**
 * Two nodes (in-process apps) sharing one s3rver bucket and one redis-server: any node resumes
 * any upload, and a node that loses Redis stops acking and says so (STORAGE_ERROR naming the
 * registry) instead of acking chunks no other node could know about.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Errors, bytesToHex, chunkCount, loadHasher } from '../../protocol/index.js';
import { RedisRegistry } from '../../server/registry/redis-registry.js';
import { S3Store } from '../../server/store/s3/index.js';
import { RawClient, digestOf } from '../helpers/protocol-client.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { AckLog, openOrResume, pump } from '../reliability/lib/pump.js';
import { startRedis, type RedisProcess } from '../../bench/services/redis.js';
import {
  readObject,
  s3ClientFor,
  startS3rver,
  type S3rverProcess,
} from '../../bench/services/s3rver.js';

const MiB = 1024 * 1024;

describe('two nodes on s3rver + redis-server', () => {
  let s3: S3rverProcess;
  let redis: RedisProcess;
  let node1: TestServer;
  let node2: TestServer;

  const nodeFor = (nodeId: string): Promise<TestServer> =>
    startServer({
      store: new S3Store({
        bucket: s3.bucket,
        client: s3ClientFor(s3.endpoint),
        registry: new RedisRegistry({ url: redis.url, commandTimeout: 500 }),
        nodeId,
      }),
      maxUnfinishedUploadsPerClient: 1,
    });

  beforeAll(async () => {
    [s3, redis] = await Promise.all([startS3rver(), startRedis()]);
    node1 = await nodeFor('node-1');
    node2 = await nodeFor('node-2');
  }, 30_000);

  afterAll(async () => {
    await node1?.close();
    await node2?.close();
    await s3?.stop();
    await redis?.stop();
    await redis?.cleanup();
  });

  it('a node that loses Redis stops acking and says so; another node resumes from Redis once it is back', async () => {
    const data = randomBytes(26 * MiB);
    const first = await openOrResume(node1.wsUrl, undefined, {
      fileSize: data.byteLength,
      chunkSize: 0,
      name: 'split.bin',
    });
    const { accept } = first;
    const chunk = accept.chunkSize;
    const log = new AckLog(chunk, data.byteLength);
    const sent = await pump(first.client, accept, data, [0, 1], log);
    expect(sent.errors).toEqual([]);

    await redis.stop();
    first.client.sendData(2 * chunk, data.subarray(2 * chunk, 3 * chunk));
    const refused = await first.client.expect('error', 15_000);
    expect(refused.code).toBe(Errors.STORAGE_ERROR.code);
    expect(refused.message).toMatch(/registry/);
    expect(log.chunks).toEqual([0, 1]);
    first.client.destroy();

    await redis.restart();
    // ioredis reconnects on its own (at most every 2 s); resume on the other node once it has.
    let other: Awaited<ReturnType<typeof openOrResume>> | undefined;
    for (let attempt = 0; attempt < 50 && !other; attempt++) {
      try {
        other = await openOrResume(
          node2.wsUrl,
          { id: accept.uploadId, secret: accept.secret },
          { fileSize: data.byteLength, chunkSize: chunk },
        );
      } catch {
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    if (!other) throw new Error('node 2 never resumed the upload after Redis came back');
    expect(other.accept.ranges).toEqual([{ start: 0, end: 2 * chunk }]);
    const rest = [...Array(chunkCount(data.byteLength, chunk)).keys()].filter((i) => i >= 2);
    const more = await pump(other.client, other.accept, data, rest, log);
    expect(more.errors).toEqual([]);
    other.client.complete();
    await other.client.expect('result');
    other.client.close();
    const key = `${bytesToHex(accept.uploadId)}/split.bin`;
    expect((await readObject(s3.client, s3.bucket, key)).equals(data)).toBe(true);
  }, 90_000);

  it('counts unfinished uploads per client across nodes', async () => {
    const one = await openOrResume(node1.wsUrl, undefined, {
      fileSize: 10,
      chunkSize: 0,
      name: 'q1.bin',
    });
    const refused = await RawClient.connect(node2.wsUrl);
    refused.open({ fileSize: 10, chunkSize: 0, name: 'q2.bin' });
    await refused.expectError(Errors.TOO_MANY_UPLOADS.code);
    one.client.terminate();
    await one.client.expect('terminated');
    one.client.close();
    refused.close();
    const second = await RawClient.connect(node2.wsUrl);
    second.open({ fileSize: 10, chunkSize: 0, name: 'q2.bin' });
    const accepted = await second.expect('accept');
    second.terminate();
    await second.expect('terminated');
    second.close();
    expect(accepted.fileSize).toBe(10);
  }, 30_000);

  it('a connection another node took over writes no part: the object the new owner completes is the bytes it acked', async () => {
    const chunk = 5 * MiB;
    const acked = randomBytes(3 * chunk);
    const stale = await RawClient.connect(node1.wsUrl);
    stale.open({ fileSize: acked.byteLength, chunkSize: chunk, name: 'stale.bin' });
    const accept = await stale.expect('accept');
    stale.sendData(0, acked.subarray(0, chunk));
    await stale.expect('ack');
    const owner = await RawClient.connect(node2.wsUrl);
    owner.resume(accept.uploadId, accept.secret);
    await owner.expect('accept');
    for (const index of [1, 2]) {
      owner.sendData(index * chunk, acked.subarray(index * chunk, (index + 1) * chunk));
      await owner.expect('ack');
    }
    // The old connection on node 1 has not heard yet (its lease renewal is seconds away) and sends
    // other bytes, with their right hash, for a chunk node 2 recorded.
    stale.sendData(chunk, Buffer.alloc(chunk, 0x58));
    expect((await stale.expect('error')).code).toBe(Errors.TAKEN_OVER.code);
    stale.destroy();
    owner.complete(digestOf(await loadHasher(), acked, chunk));
    const result = await owner.expect('result');
    owner.close();
    expect(result.type).toBe('result');
    const key = `${bytesToHex(accept.uploadId)}/stale.bin`;
    expect((await readObject(s3.client, s3.bucket, key)).equals(acked)).toBe(true);
  }, 60_000);

  it("a node's sweeper leaves an upload a connection holds on another node, however old", async () => {
    const data = randomBytes(64 * 1024);
    const client = await RawClient.connect(node2.wsUrl);
    client.open({ fileSize: data.byteLength, chunkSize: data.byteLength, name: 'held.bin' });
    const accept = await client.expect('accept');
    // Two days on, as node 1's sweeper sees it: idle past every TTL, empty, and held on node 2.
    await node1.app.bigUploader.sweep(Date.now() + 48 * 3_600_000);
    client.sendData(0, data);
    const ack = await client.expect('ack');
    expect(ack.ranges).toEqual([{ start: 0, end: data.byteLength }]);
    client.terminate();
    await client.expect('terminated');
    client.close();
    expect(bytesToHex(accept.uploadId)).toHaveLength(32);
  }, 30_000);
});
