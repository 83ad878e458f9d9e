/**
 * The object store failing under the backend (a fault proxy in front of s3rver): 500 and 503
 * SlowDown and timeouts are retried by the SDK up to `maxAttempts`; past that the client gets
 * STORAGE_ERROR (retryable), nothing is acked for that chunk, and a resume continues. Expiry and
 * terminate abort the multipart upload with its UploadId.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Errors, bytesToHex, chunkCount } from '../../protocol/index.js';
import { S3Store } from '../../server/store/s3/index.js';
import { RawClient } from '../helpers/protocol-client.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { AckLog, openOrResume, pump } from '../reliability/lib/pump.js';
import { startS3FaultProxy, type S3FaultProxy } from '../../bench/services/s3-fault-proxy.js';
import {
  readObject,
  S3RVER_CREDENTIALS,
  startS3rver,
  type S3rverProcess,
} from '../../bench/services/s3rver.js';

const MiB = 1024 * 1024;

describe('object-store faults', () => {
  let s3: S3rverProcess;
  let proxy: S3FaultProxy;
  let store: S3Store;
  let server: TestServer;

  beforeAll(async () => {
    process.env.AWS_ACCESS_KEY_ID = S3RVER_CREDENTIALS.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = S3RVER_CREDENTIALS.secretAccessKey;
    s3 = await startS3rver();
    proxy = await startS3FaultProxy(s3.endpoint);
    store = new S3Store({
      bucket: s3.bucket,
      endpoint: proxy.endpoint,
      forcePathStyle: true,
      region: 'us-east-1',
      maxAttempts: 3,
      requestTimeout: 1000,
    });
    server = await startServer({ store });
  }, 30_000);

  afterAll(async () => {
    await server?.close();
    await store?.close();
    await proxy?.close();
    await s3?.stop();
  });

  const upload = async (data: Buffer, name: string) => {
    const opened = await openOrResume(server.wsUrl, undefined, {
      fileSize: data.byteLength,
      chunkSize: 0,
      name,
    });
    return { ...opened, log: new AckLog(opened.accept.chunkSize, data.byteLength) };
  };

  const finishAndCheck = async (
    client: RawClient,
    id: Uint8Array,
    data: Buffer,
    name: string,
  ): Promise<void> => {
    client.complete();
    await client.expect('result', 30_000);
    client.close();
    expect((await readObject(s3.client, s3.bucket, `${bytesToHex(id)}/${name}`)).equals(data)).toBe(
      true,
    );
  };

  it('retries 500, 503 SlowDown and a timeout on UploadPart: every chunk is acked, no error reaches the client', async () => {
    const data = randomBytes(15 * MiB);
    const { client, accept, log } = await upload(data, 'retried.bin');
    const before = proxy.seen.get('UploadPart') ?? 0;
    // Writes of one upload run one at a time: chunk 0 meets a 500 then a timeout, chunk 1 two
    // SlowDowns; each succeeds at its third (last) attempt.
    proxy.inject('UploadPart', 'error500');
    proxy.inject('UploadPart', 'hang');
    const chunks = chunkCount(data.byteLength, accept.chunkSize);
    const first = await pump(client, accept, data, [0], log, { timeoutMs: 30_000 });
    proxy.inject('UploadPart', 'slowdown', 2);
    const rest = [...Array(chunks).keys()].slice(1);
    const result = await pump(client, accept, data, rest, log, { timeoutMs: 30_000 });
    expect([...first.errors, ...result.errors]).toEqual([]);
    expect(log.chunks.length).toBe(chunks);
    expect((proxy.seen.get('UploadPart') ?? 0) - before).toBe(chunks + 4);
    await finishAndCheck(client, accept.uploadId, data, 'retried.bin');
  }, 60_000);

  it('an UploadPart failing past maxAttempts is STORAGE_ERROR (retryable), not acked, and a resume completes', async () => {
    const data = randomBytes(11 * MiB);
    const { client, accept, log } = await upload(data, 'failed.bin');
    await pump(client, accept, data, [0], log);
    proxy.inject('UploadPart', 'slowdown', 3);
    client.sendData(accept.chunkSize, data.subarray(accept.chunkSize, 2 * accept.chunkSize));
    const error = await client.expectError(Errors.STORAGE_ERROR.code, 30_000);
    expect(error.retryable).toBe(true);
    expect(log.chunks).toEqual([0]);
    client.destroy();
    const again = await openOrResume(
      server.wsUrl,
      { id: accept.uploadId, secret: accept.secret },
      { fileSize: data.byteLength, chunkSize: accept.chunkSize },
    );
    expect(again.accept.ranges).toEqual([{ start: 0, end: accept.chunkSize }]);
    const rest = await pump(again.client, again.accept, data, [1, 2], log);
    expect(rest.errors).toEqual([]);
    await finishAndCheck(again.client, accept.uploadId, data, 'failed.bin');
  }, 60_000);

  it('CompleteMultipartUpload failing past maxAttempts is STORAGE_ERROR; COMPLETE after a resume completes', async () => {
    const data = randomBytes(6 * MiB);
    const { client, accept, log } = await upload(data, 'complete.bin');
    await pump(client, accept, data, [0, 1], log);
    proxy.inject('CompleteMultipartUpload', 'error500', 3);
    client.complete();
    await client.expectError(Errors.STORAGE_ERROR.code, 30_000);
    client.destroy();
    let again: Awaited<ReturnType<typeof openOrResume>> | undefined;
    for (let attempt = 0; !again; attempt++) {
      try {
        again = await openOrResume(
          server.wsUrl,
          { id: accept.uploadId, secret: accept.secret },
          { fileSize: data.byteLength, chunkSize: accept.chunkSize },
        );
      } catch (error) {
        // The failed upload is unloaded in the background; until then RESUME says STORAGE_ERROR.
        if (attempt > 20) throw error;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    expect(again.accept.ranges).toEqual([{ start: 0, end: data.byteLength }]);
    await finishAndCheck(again.client, accept.uploadId, data, 'complete.bin');
  }, 60_000);

  it('expiry and terminate abort the multipart upload with its UploadId and forget the upload', async () => {
    const data = randomBytes(6 * MiB);
    const expiring = await upload(data, 'expire.bin');
    await pump(expiring.client, expiring.accept, data, [0], expiring.log);
    expiring.client.close();
    await expiring.client.closed;
    const id = bytesToHex(expiring.accept.uploadId);
    const multipartId = (await store.registry.get(id))?.location.multipartId;
    expect(multipartId).toBeDefined();
    await new Promise((r) => setTimeout(r, 100));
    expect(await server.app.bigUploader.sweep(Date.now() + 48 * 3_600_000)).toBeGreaterThanOrEqual(
      1,
    );
    expect(proxy.aborts).toContainEqual({
      key: `/${s3.bucket}/${id}/expire.bin`,
      uploadId: multipartId,
    });
    const gone = await RawClient.connect(server.wsUrl);
    gone.resume(expiring.accept.uploadId, expiring.accept.secret);
    await gone.expectError(Errors.NOT_FOUND.code);
    gone.close();

    const terminated = await upload(data, 'terminate.bin');
    const tid = bytesToHex(terminated.accept.uploadId);
    const tmultipart = (await store.registry.get(tid))?.location.multipartId;
    terminated.client.terminate();
    await terminated.client.expect('terminated');
    terminated.client.close();
    expect(proxy.aborts).toContainEqual({
      key: `/${s3.bucket}/${tid}/terminate.bin`,
      uploadId: tmultipart,
    });
    expect(store.abortFailures).toBe(0);
    expect(await store.registry.get(tid)).toBeUndefined();
  }, 60_000);
});
