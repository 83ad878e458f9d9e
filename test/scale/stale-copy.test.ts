/**
 * A node that still holds an upload in memory after another node took it over (its old
 * connection not yet found dead) must not serve that stale copy: a RESUME routed back to it
 * reports the exact acked ranges from the registry and continues, a COMPLETE there completes
 * (or replays the other node's completion), and the stale connection's own TERMINATE or COMPLETE
 * is refused with TAKEN_OVER instead of deleting or finishing an upload another node owns.
 *
 * Two nodes (in-process apps) on one s3rver bucket and one redis-server, as in redis-nodes.test.ts.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Errors, bytesToHex, chunkCount, type AcceptMessage } from '../../protocol/index.js';
import { RedisRegistry } from '../../server/registry/redis-registry.js';
import { S3Store } from '../../server/store/s3/index.js';
import { RawClient } from '../helpers/protocol-client.js';
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

describe('a stale in-memory copy after a takeover by another node', () => {
  let s3: S3rverProcess;
  let redis: RedisProcess;
  let nodeA: TestServer;
  let nodeB: TestServer;

  const nodeFor = (nodeId: string): Promise<TestServer> =>
    startServer({
      store: new S3Store({
        bucket: s3.bucket,
        client: s3ClientFor(s3.endpoint),
        registry: new RedisRegistry({ url: redis.url }),
        nodeId,
      }),
    });

  beforeAll(async () => {
    [s3, redis] = await Promise.all([startS3rver(), startRedis()]);
    nodeA = await nodeFor('node-a');
    nodeB = await nodeFor('node-b');
  }, 30_000);

  afterAll(async () => {
    await nodeA?.close();
    await nodeB?.close();
    await s3?.stop();
    await redis?.stop();
    await redis?.cleanup();
  });

  /** 4 full 5 MiB chunks and a short last one. */
  const data = randomBytes(21 * MiB);

  const allChunks = (chunk: number): number[] => [
    ...Array(chunkCount(data.byteLength, chunk)).keys(),
  ];

  interface Started {
    readonly upload: { id: Uint8Array; secret: Uint8Array };
    readonly chunk: number;
    readonly log: AckLog;
    readonly stale: RawClient;
    readonly key: string;
  }

  /** OPEN on node A and store `chunks` there; the connection stays open (A keeps the upload loaded). */
  async function startOnA(name: string, chunks: number[] | 'all'): Promise<Started> {
    const first = await openOrResume(nodeA.wsUrl, undefined, {
      fileSize: data.byteLength,
      chunkSize: 0,
      name,
    });
    const chunk = first.accept.chunkSize;
    const log = new AckLog(chunk, data.byteLength);
    const indexes = chunks === 'all' ? allChunks(chunk) : chunks;
    const sent = await pump(first.client, first.accept, data, indexes, log);
    expect(sent.errors).toEqual([]);
    return {
      upload: { id: first.accept.uploadId, secret: first.accept.secret },
      chunk,
      log,
      stale: first.client,
      key: `${bytesToHex(first.accept.uploadId)}/${name}`,
    };
  }

  async function resumeOn(
    node: TestServer,
    started: Started,
  ): Promise<{ client: RawClient; accept: AcceptMessage }> {
    return openOrResume(node.wsUrl, started.upload, {
      fileSize: data.byteLength,
      chunkSize: started.chunk,
    });
  }

  it('a RESUME routed back to the stale node reports the exact acked ranges and the upload completes there', async () => {
    const started = await startOnA('resume.bin', [0]);
    const { chunk, log } = started;

    const onB = await resumeOn(nodeB, started);
    expect(onB.accept.ranges).toEqual([{ start: 0, end: chunk }]);
    expect((await pump(onB.client, onB.accept, data, [1, 2], log)).errors).toEqual([]);
    onB.client.close();

    const backOnA = await resumeOn(nodeA, started);
    expect(backOnA.accept.ranges).toEqual([{ start: 0, end: 3 * chunk }]);
    // The connection B took the upload from hears it lost it.
    expect((await started.stale.expect('error')).code).toBe(Errors.TAKEN_OVER.code);

    const rest = allChunks(chunk).filter((i) => i >= 3);
    expect((await pump(backOnA.client, backOnA.accept, data, rest, log)).errors).toEqual([]);
    backOnA.client.complete();
    await backOnA.client.expect('result');
    backOnA.client.close();
    expect((await readObject(s3.client, s3.bucket, started.key)).equals(data)).toBe(true);
  }, 60_000);

  it('a COMPLETE after a RESUME on the stale node completes what another node stored', async () => {
    const started = await startOnA('complete.bin', [0]);
    const { chunk, log } = started;

    const onB = await resumeOn(nodeB, started);
    const rest = allChunks(chunk).filter((i) => i >= 1);
    expect((await pump(onB.client, onB.accept, data, rest, log)).errors).toEqual([]);
    // The connection to B drops before COMPLETE; the balancer sends the next one to A.
    onB.client.destroy();

    const backOnA = await resumeOn(nodeA, started);
    expect(backOnA.accept.ranges).toEqual([{ start: 0, end: data.byteLength }]);
    backOnA.client.complete();
    const result = await backOnA.client.expect('result');
    expect(result.fileSize).toBe(data.byteLength);
    backOnA.client.close();
    expect((await readObject(s3.client, s3.bucket, started.key)).equals(data)).toBe(true);
  }, 60_000);

  it('after another node completed the upload, the stale node replays that completion', async () => {
    const started = await startOnA('done-elsewhere.bin', [0]);
    const { chunk, log } = started;

    const onB = await resumeOn(nodeB, started);
    const rest = allChunks(chunk).filter((i) => i >= 1);
    expect((await pump(onB.client, onB.accept, data, rest, log)).errors).toEqual([]);
    onB.client.complete();
    const completed = await onB.client.expect('result');
    onB.client.close();

    const backOnA = await resumeOn(nodeA, started);
    expect(backOnA.accept.ranges).toEqual([{ start: 0, end: data.byteLength }]);
    backOnA.client.complete();
    const replayed = await backOnA.client.expect('result');
    expect(replayed.digest).toBe(completed.digest);
    backOnA.client.close();
  }, 60_000);

  it('a TERMINATE after a RESUME on the stale node removes the upload everywhere', async () => {
    const started = await startOnA('terminate.bin', [0]);
    const { chunk, log } = started;

    const onB = await resumeOn(nodeB, started);
    expect((await pump(onB.client, onB.accept, data, [1], log)).errors).toEqual([]);

    const backOnA = await resumeOn(nodeA, started);
    expect(backOnA.accept.ranges).toEqual([{ start: 0, end: 2 * chunk }]);
    backOnA.client.terminate();
    await backOnA.client.expect('terminated');
    backOnA.client.close();

    // B's connection was taken over by the RESUME on A: its next chunk is refused, never acked.
    onB.client.sendData(2 * chunk, data.subarray(2 * chunk, 3 * chunk));
    expect((await onB.client.expect('error')).code).toBe(Errors.TAKEN_OVER.code);
    expect(log.chunks).toEqual([0, 1]);
    onB.client.close();

    const gone = await RawClient.connect(nodeB.wsUrl);
    gone.resume(started.upload.id, started.upload.secret);
    await gone.expectError(Errors.NOT_FOUND.code);
    gone.close();
  }, 60_000);

  it("the stale connection's TERMINATE is refused with TAKEN_OVER and the new owner completes", async () => {
    const started = await startOnA('stale-terminate.bin', [0]);
    const { chunk, log } = started;

    const onB = await resumeOn(nodeB, started);
    expect((await pump(onB.client, onB.accept, data, [1], log)).errors).toEqual([]);

    // Node A has not noticed the takeover; its connection asks to delete the upload.
    started.stale.terminate();
    expect((await started.stale.expect('error')).code).toBe(Errors.TAKEN_OVER.code);
    started.stale.close();

    const rest = allChunks(chunk).filter((i) => i >= 2);
    expect((await pump(onB.client, onB.accept, data, rest, log)).errors).toEqual([]);
    onB.client.complete();
    await onB.client.expect('result');
    onB.client.close();
    expect((await readObject(s3.client, s3.bucket, started.key)).equals(data)).toBe(true);
  }, 60_000);

  it("the stale connection's COMPLETE is refused with TAKEN_OVER and the new owner completes", async () => {
    const started = await startOnA('stale-complete.bin', 'all');
    const { log } = started;

    // B takes the upload over with every chunk already stored; nothing new is sent.
    const onB = await resumeOn(nodeB, started);
    expect(onB.accept.ranges).toEqual([{ start: 0, end: data.byteLength }]);

    started.stale.complete();
    expect((await started.stale.expect('error')).code).toBe(Errors.TAKEN_OVER.code);
    started.stale.close();

    onB.client.complete();
    await onB.client.expect('result');
    onB.client.close();
    expect(log.bytes).toBe(data.byteLength);
    expect((await readObject(s3.client, s3.bucket, started.key)).equals(data)).toBe(true);
  }, 60_000);
});
