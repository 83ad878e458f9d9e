/**
 * The registry's memory bound (RedisRegistry `maxMemory`, `serve --registry-max-memory`): an attack
 * helper completed 1-byte files with 16 KiB of metadata until Redis held 21.9 KB per completed
 * upload, kept for the TTL and counted by nothing. Here the bound is set 1.5 MiB above what Redis
 * uses at the start: the flood is refused with INSUFFICIENT_STORAGE near it, and an upload opened
 * before the flood still gets its chunks acked and completes.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Errors } from '../../protocol/index.js';
import { CONTENT_DIGESTS_PER_SIZE, RedisRegistry } from '../../server/registry/redis-registry.js';
import { S3Store } from '../../server/store/s3/index.js';
import { RawClient } from '../helpers/protocol-client.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { startRedis, type RedisProcess } from '../../bench/services/redis.js';
import { s3ClientFor, startS3rver, type S3rverProcess } from '../../bench/services/s3rver.js';

const MiB = 1024 * 1024;
const HEADROOM = 1.5 * MiB;

describe('the registry memory bound', () => {
  let s3: S3rverProcess;
  let redis: RedisProcess;
  let probe: Redis;
  let node: TestServer;
  let limit = 0;

  const usedMemory = async (): Promise<number> =>
    Number(/^used_memory:(\d+)/m.exec(await probe.info('memory'))?.[1] ?? Number.NaN);

  beforeAll(async () => {
    [s3, redis] = await Promise.all([startS3rver(), startRedis()]);
    probe = new Redis(redis.url);
    limit = Math.floor((await usedMemory()) + HEADROOM);
    node = await startServer({
      store: new S3Store({
        bucket: s3.bucket,
        client: s3ClientFor(s3.endpoint),
        registry: new RedisRegistry({ url: redis.url, maxMemory: limit }),
        nodeId: 'node-1',
      }),
    });
  }, 30_000);

  afterAll(async () => {
    await node?.close();
    probe?.disconnect();
    await s3?.stop();
    await redis?.stop();
    await redis?.cleanup();
  });

  it('refuses new uploads past it while an open upload still gets its chunks acked', async () => {
    const chunk = 5 * MiB;
    const kept = randomBytes(2 * chunk);
    const open = await RawClient.connect(node.wsUrl);
    open.open({ fileSize: kept.byteLength, chunkSize: chunk, name: 'kept.bin' });
    await open.expect('accept');
    open.sendData(0, kept.subarray(0, chunk));
    await open.expect('ack');

    // Completed uploads of 1 byte, each with about 15 KB of metadata, one after another.
    const metadata = Object.fromEntries(
      Array.from({ length: 15 }, (_, i) => [`k${i}`, 'v'.repeat(1000)]),
    );
    let completed = 0;
    let refusal: { code: number; message: string } | undefined;
    const flood = await RawClient.connect(node.wsUrl);
    for (let i = 0; i < 600 && !refusal; i++) {
      flood.open({ fileSize: 1, name: `f${i}.bin`, metadata });
      const answer = await flood.next();
      if (answer.type === 'error') {
        refusal = answer;
        break;
      }
      expect(answer.type).toBe('accept');
      flood.sendData(0, Buffer.from([i & 0xff]));
      await flood.expect('ack');
      flood.complete();
      await flood.expect('result');
      completed++;
    }
    flood.close();
    expect(refusal?.code).toBe(Errors.INSUFFICIENT_STORAGE.code);
    expect(refusal?.message).toMatch(/registry/);
    expect(completed).toBeGreaterThan(10);
    // A reading is used for up to a second: what that second completed may pass the bound.
    expect(await usedMemory()).toBeLessThan(limit + 2 * MiB);

    open.sendData(chunk, kept.subarray(chunk));
    await open.expect('ack');
    open.complete();
    expect((await open.expect('result')).type).toBe('result');
    open.close();
  }, 120_000);

  it('keeps content hints for contentTtl after their last write, at most CONTENT_DIGESTS_PER_SIZE per size', async () => {
    const registry = new RedisRegistry({
      url: redis.url,
      keyPrefix: 'hints:',
      contentTtl: 60_000,
    });
    await registry.init();
    try {
      const key = { fileSize: 1000, chunkSize: 65_536 };
      for (let i = 0; i < CONTENT_DIGESTS_PER_SIZE + 20; i++) {
        const digest = i.toString(16).padStart(16, '0');
        await registry.addContent(
          { ...key, digest },
          { id: randomBytes(16).toString('hex'), location: `s3://b/k${i}`, client: 'c1' },
        );
      }
      const bySize = 'hints:content:1000:65536';
      expect(await probe.scard(bySize)).toBeLessThanOrEqual(CONTENT_DIGESTS_PER_SIZE);
      expect(await probe.scard(`${bySize}@c1`)).toBeLessThanOrEqual(CONTENT_DIGESTS_PER_SIZE);
      for (const hint of [bySize, `${bySize}@c1`, `${bySize}:${'0'.repeat(16)}`]) {
        const ttl = await probe.pttl(hint);
        expect(ttl).toBeGreaterThan(0);
        expect(ttl).toBeLessThanOrEqual(60_000);
      }
    } finally {
      await registry.close();
    }
  });
});
