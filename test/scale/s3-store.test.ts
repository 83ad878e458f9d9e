/**
 * The object-store backend against a real s3rver process: upload (chunks sent out of order),
 * resume on a new connection and on another node sharing the registry, byte-identical read-back
 * through the S3 API, terminate, and the chunk size chosen for S3's part rules.
 */
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { DeleteObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Capability,
  Errors,
  LimitsV2,
  bytesToHex,
  chunkCount,
  wholeFileDigest,
} from '../../protocol/index.js';
import { MemoryRegistry } from '../../server/registry/memory-registry.js';
import {
  S3Store,
  chunkSizeForParts,
  MAX_PARTS,
  MIN_PART_BYTES,
} from '../../server/store/s3/index.js';
import { RawClient, digestOf } from '../helpers/protocol-client.js';
import { RawClientV2 } from '../helpers/protocol-client-v2.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { AckLog, openOrResume, pump } from '../reliability/lib/pump.js';
import { tusRequest, tusUpload } from '../helpers/tus.js';
import { runSend } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';
import {
  readObject,
  S3RVER_CREDENTIALS,
  startS3rver,
  type S3rverProcess,
} from '../../bench/services/s3rver.js';

const MiB = 1024 * 1024;

describe('chunk size for S3 parts', () => {
  it('keeps parts >= 5 MiB and at most 10,000 of them', () => {
    // A file within one proposed chunk keeps the proposal (one part of any size).
    expect(chunkSizeForParts(100, 1 * MiB, 16 * MiB)).toBe(1 * MiB);
    expect(chunkSizeForParts(2 * MiB, 1 * MiB, 16 * MiB)).toBe(MIN_PART_BYTES);
    expect(chunkSizeForParts(64 * MiB, 8 * MiB, 16 * MiB)).toBe(8 * MiB);
    const big = 100 * 1024 * MiB;
    const chunk = chunkSizeForParts(big, 4 * MiB, 16 * MiB);
    expect(chunk).toBeGreaterThanOrEqual(big / MAX_PARTS); // ~10.7 MB (10.24 MiB)
    expect(chunkCount(big, chunk)).toBeLessThanOrEqual(MAX_PARTS);
    // A small file fits one chunk even when maxChunkSize is below 5 MiB (one part, any size).
    expect(chunkSizeForParts(3 * MiB, 1 * MiB, 4 * MiB)).toBe(3 * MiB);
    expect(() => chunkSizeForParts(MAX_PARTS * 16 * MiB + 1, 4 * MiB, 16 * MiB)).toThrow(
      /10000 parts/,
    );
    expect(() => chunkSizeForParts(8 * MiB, 1 * MiB, 4 * MiB)).toThrow(/maxChunkSize/);
  });
});

describe('S3 store against s3rver', () => {
  let s3: S3rverProcess;
  const registry = new MemoryRegistry();
  const calls: string[] = [];
  let node1: TestServer;
  let node2: TestServer;

  const storeFor = (nodeId: string): S3Store =>
    new S3Store({
      bucket: s3.bucket,
      prefix: 'in/',
      endpoint: s3.endpoint,
      forcePathStyle: true,
      region: 'us-east-1',
      registry,
      nodeId,
      observe: (backend, operation, _seconds, error) =>
        calls.push(`${backend}:${operation}${error ? `:${error}` : ''}`),
    });

  beforeAll(async () => {
    // Credentials from the standard AWS environment variables, as `serve` takes them.
    process.env.AWS_ACCESS_KEY_ID = S3RVER_CREDENTIALS.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = S3RVER_CREDENTIALS.secretAccessKey;
    s3 = await startS3rver();
    // The upload token names the dedupe subject of instant uploads; without one, the address.
    const authorizeUpload = ({ token }: { token: string }) => (token ? { subject: token } : true);
    node1 = await startServer({
      store: storeFor('node-1'),
      window: 16 * MiB,
      authorizeUpload,
      instantUploadMinSize: 1, // the inline test adopts files of 1 and 5000 bytes
      instantUpload: 'address', // clients without a token share their address's content
    });
    node2 = await startServer({
      store: storeFor('node-2'),
      window: 16 * MiB,
      authorizeUpload,
      instantUploadMinSize: 1, // the inline test adopts files of 1 and 5000 bytes
      instantUpload: 'address', // clients without a token share their address's content
    });
  }, 30_000);

  afterAll(async () => {
    await node1?.close();
    await node2?.close();
    await s3?.stop();
  });

  it('stores an upload sent out of order as one object, byte-identical, with parts >= 5 MiB', async () => {
    const data = randomBytes(23 * MiB + 12_345);
    const { client, accept } = await openOrResume(node1.wsUrl, undefined, {
      fileSize: data.byteLength,
      chunkSize: 1 * MiB,
      name: 'a b.bin',
    });
    expect(accept.chunkSize).toBe(MIN_PART_BYTES);
    const chunks = chunkCount(data.byteLength, accept.chunkSize);
    const order = [...Array(chunks).keys()].reverse();
    const log = new AckLog(accept.chunkSize, data.byteLength);
    const result = await pump(client, accept, data, order, log);
    expect(result.errors).toEqual([]);
    expect(log.chunks.length).toBe(chunks);
    client.complete(digestOf(client.hasher, data, accept.chunkSize));
    const done = await client.expect('result');
    expect(done.digest).toBe(digestOf(client.hasher, data, accept.chunkSize));
    client.close();
    const key = `in/${bytesToHex(accept.uploadId)}/a b.bin`;
    expect((await readObject(s3.client, s3.bucket, key)).equals(data)).toBe(true);
    expect(calls.filter((c) => c.startsWith('store:UploadPart')).length).toBeGreaterThanOrEqual(
      chunks,
    );
    expect(calls.some((c) => c.includes('ListParts'))).toBe(false);
  }, 60_000);

  it('a wrong secret reads the registry record alone, never its part list (GET, DELETE, RESUME)', async () => {
    const data = randomBytes(6 * MiB);
    const client = await RawClient.connect(node1.wsUrl);
    client.open({ fileSize: 2 * data.byteLength, chunkSize: 0, name: 'parts.bin' });
    const accept = await client.expect('accept');
    client.sendData(0, data.subarray(0, accept.chunkSize));
    await client.expect('ack');
    client.close();
    await client.closed;
    const id = bytesToHex(accept.uploadId);
    const before = calls.length;
    const wrong = { 'Bigup-Secret': 'ab'.repeat(32) };
    expect((await fetch(`${node2.url}/uploads/${id}`, { headers: wrong })).status).toBe(404);
    expect(
      (await fetch(`${node2.url}/uploads/${id}`, { method: 'DELETE', headers: wrong })).status,
    ).toBe(404);
    const resumer = await RawClient.connect(node2.wsUrl);
    resumer.resume(accept.uploadId, new Uint8Array(32).fill(0xab));
    expect(await resumer.next()).toMatchObject({ type: 'error', code: Errors.NOT_FOUND.code });
    resumer.close();
    const made = calls.slice(before);
    expect(made.filter((c) => c === 'registry:getInfo').length).toBeGreaterThanOrEqual(3);
    expect(made).not.toContain('registry:get');
    // The right secret still sees the stored part.
    const right = await fetch(`${node2.url}/uploads/${id}`, {
      headers: { 'Bigup-Secret': bytesToHex(accept.secret) },
    });
    expect(await right.json()).toMatchObject({ ackedBytes: accept.chunkSize });
  }, 60_000);

  it('resumes on a new connection and on another node from the registry, and the old owner is fenced off', async () => {
    const data = randomBytes(20 * MiB + 1);
    const first = await openOrResume(node1.wsUrl, undefined, {
      fileSize: data.byteLength,
      chunkSize: 0,
      name: 'resume.bin',
    });
    const { accept } = first;
    const upload = { id: accept.uploadId, secret: accept.secret };
    const chunk = accept.chunkSize;
    const log = new AckLog(chunk, data.byteLength);
    await pump(first.client, accept, data, [0, 2], log);
    first.client.close();
    await first.client.closed;

    // Same node, new connection: exactly the acked chunks.
    const again = await openOrResume(node1.wsUrl, upload, {
      fileSize: data.byteLength,
      chunkSize: chunk,
    });
    expect(again.accept.ranges).toEqual([
      { start: 0, end: chunk },
      { start: 2 * chunk, end: 3 * chunk },
    ]);
    await pump(again.client, again.accept, data, [1], log);

    // Another node takes over while node 1 still holds the connection.
    const other = await openOrResume(node2.wsUrl, upload, {
      fileSize: data.byteLength,
      chunkSize: chunk,
    });
    expect(other.accept.ranges).toEqual([{ start: 0, end: 3 * chunk }]);
    // Node 1's connection may still send: its record write is refused (TAKEN_OVER), never acked.
    again.client.sendData(3 * chunk, data.subarray(3 * chunk, 4 * chunk));
    const refused = await again.client.expectError(Errors.TAKEN_OVER.code);
    expect(refused.fatal).toBe(true);
    const rest = [...Array(chunkCount(data.byteLength, chunk)).keys()].filter((i) => i >= 3);
    const sent = await pump(other.client, other.accept, data, rest, log);
    expect(sent.errors).toEqual([]);
    other.client.complete();
    await other.client.expect('result');
    other.client.close();
    const key = `in/${bytesToHex(accept.uploadId)}/resume.bin`;
    expect((await readObject(s3.client, s3.bucket, key)).equals(data)).toBe(true);
  }, 60_000);

  it('tus-js-client (one PATCH, its default) uploads through /files/ into the object store, byte-identical', async () => {
    const data = randomBytes(17 * MiB + 777);
    const result = await tusUpload(data, {
      endpoint: `${node1.url}/files/`,
      metadata: { filename: 'tus.bin' },
    });
    expect(result.offsets.at(-1)).toBe(data.byteLength);
    expect((await readObject(s3.client, s3.bucket, `in/${result.id}/tus.bin`)).equals(data)).toBe(
      true,
    );
  });

  /** Whether the object store holds `key` (HeadObject). */
  const exists = async (key: string): Promise<boolean> => {
    try {
      await s3.client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: key }));
      return true;
    } catch {
      return false;
    }
  };

  it('tus-js-client with PATCHes that end inside a part (3 MiB + 5 against 5 MiB parts) uploads byte-identical; the partial part is gone after', async () => {
    const data = randomBytes(17 * MiB + 777);
    const patchSize = 3 * MiB + 5;
    const result = await tusUpload(data, {
      endpoint: `${node1.url}/files/`,
      chunkSize: patchSize,
      metadata: { filename: 'small-patches.bin' },
    });
    // Every PATCH but the last ended inside a 5 MiB part, and the next one went on from there.
    const expected = [...Array(Math.ceil(data.byteLength / patchSize)).keys()].map((i) =>
      Math.min((i + 1) * patchSize, data.byteLength),
    );
    expect(result.offsets).toEqual(expected);
    expect(
      (await readObject(s3.client, s3.bucket, `in/${result.id}/small-patches.bin`)).equals(data),
    ).toBe(true);
    expect(await exists(`in/.partial/${result.id}`)).toBe(false);
  }, 60_000);

  it('a partial part written on one node is continued on the other; a bad checksum changes nothing; DELETE removes it', async () => {
    const data = randomBytes(12 * MiB + 3);
    const created = await tusRequest(`${node1.url}/files/`, 'POST', {
      'Upload-Length': String(data.byteLength),
      'Upload-Metadata': `filename ${Buffer.from('nodes.bin').toString('base64')}`,
    });
    expect(created.status).toBe(201);
    const path = new URL(created.headers.get('location') ?? '', node1.url).pathname;
    const id = path.slice(path.lastIndexOf('/') + 1);
    const patch = (node: TestServer, from: number, to: number, headers = {}) =>
      tusRequest(
        `${node.url}${path}`,
        'PATCH',
        {
          'Content-Type': 'application/offset+octet-stream',
          'Upload-Offset': String(from),
          ...headers,
        },
        data.subarray(from, to),
      );
    const offsetOn = async (node: TestServer): Promise<string | null> =>
      (await tusRequest(`${node.url}${path}`, 'HEAD')).headers.get('upload-offset');

    // 3 MiB on node 1: inside part 1, kept apart.
    expect((await patch(node1, 0, 3 * MiB)).status).toBe(204);
    expect(await exists(`in/.partial/${id}`)).toBe(true);
    // Node 2 sees it and continues it past the part's end (part 1 whole, 2 MiB of part 2 apart).
    expect(await offsetOn(node2)).toBe(String(3 * MiB));
    expect((await patch(node2, 3 * MiB, 7 * MiB)).status).toBe(204);
    expect(await offsetOn(node1)).toBe(String(7 * MiB));
    // A body whose checksum does not match stores nothing: the offset and the kept bytes stay.
    const wrong = await patch(node1, 7 * MiB, 8 * MiB, {
      'Upload-Checksum': `sha1 ${createHash('sha1').update('not the body').digest('base64')}`,
    });
    expect(wrong.status).toBe(460);
    expect(await offsetOn(node2)).toBe(String(7 * MiB));
    // The same bytes, checked, then the rest: byte-identical.
    const sha1 = createHash('sha1')
      .update(data.subarray(7 * MiB, 8 * MiB))
      .digest('base64');
    expect(
      (await patch(node1, 7 * MiB, 8 * MiB, { 'Upload-Checksum': `sha1 ${sha1}` })).status,
    ).toBe(204);
    // Checked bodies that complete the part the kept bytes began: a mismatch stores nothing (the
    // part is written whole only once the checksum matched), a match stores it and the rest.
    const restSha1 = createHash('sha1')
      .update(data.subarray(8 * MiB))
      .digest('base64');
    const wrongRest = await patch(node2, 8 * MiB, data.byteLength, {
      'Upload-Checksum': `sha1 ${createHash('sha1').update('not the rest').digest('base64')}`,
    });
    expect(wrongRest.status).toBe(460);
    expect(await offsetOn(node1)).toBe(String(8 * MiB));
    expect(
      (await patch(node2, 8 * MiB, data.byteLength, { 'Upload-Checksum': `sha1 ${restSha1}` }))
        .status,
    ).toBe(204);
    expect((await readObject(s3.client, s3.bucket, `in/${id}/nodes.bin`)).equals(data)).toBe(true);
    expect(await exists(`in/.partial/${id}`)).toBe(false);

    // An upload terminated with a partial part leaves no partial object behind.
    const other = await tusRequest(`${node2.url}/files/`, 'POST', {
      'Upload-Length': String(data.byteLength),
    });
    const otherPath = new URL(other.headers.get('location') ?? '', node2.url).pathname;
    const otherId = otherPath.slice(otherPath.lastIndexOf('/') + 1);
    const first = await tusRequest(
      `${node2.url}${otherPath}`,
      'PATCH',
      { 'Content-Type': 'application/offset+octet-stream', 'Upload-Offset': '0' },
      data.subarray(0, MiB),
    );
    expect(first.status).toBe(204);
    expect(await exists(`in/.partial/${otherId}`)).toBe(true);
    expect((await tusRequest(`${node1.url}${otherPath}`, 'DELETE')).status).toBe(204);
    expect(await exists(`in/.partial/${otherId}`)).toBe(false);
  }, 60_000);

  it('kept bytes of a part that fail their check (changed or removed in the bucket) are dropped: 409, HEAD gives the part start, nothing wrong is stored', async () => {
    const data = randomBytes(MIN_PART_BYTES + 2 * MiB);
    const created = await tusRequest(`${node1.url}/files/`, 'POST', {
      'Upload-Length': String(data.byteLength),
      'Upload-Metadata': `filename ${Buffer.from('checked.bin').toString('base64')}`,
    });
    const path = new URL(created.headers.get('location') ?? '', node1.url).pathname;
    const id = path.slice(path.lastIndexOf('/') + 1);
    const key = `in/.partial/${id}`;
    const patch = (node: TestServer, from: number, to: number) =>
      tusRequest(
        `${node.url}${path}`,
        'PATCH',
        { 'Content-Type': 'application/offset+octet-stream', 'Upload-Offset': String(from) },
        data.subarray(from, to),
      );
    const offsetOn = async (node: TestServer): Promise<string | null> =>
      (await tusRequest(`${node.url}${path}`, 'HEAD')).headers.get('upload-offset');

    // Changed: the same length and description, other bytes.
    expect((await patch(node1, 0, MiB)).status).toBe(204);
    const head = await s3.client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: key }));
    await s3.client.send(
      new PutObjectCommand({
        Bucket: s3.bucket,
        Key: key,
        Body: randomBytes(MiB),
        Metadata: head.Metadata,
      }),
    );
    expect(await offsetOn(node2)).toBe(String(MiB));
    const refused = await patch(node2, MiB, 2 * MiB);
    expect(refused.status).toBe(409);
    expect(await refused.text()).toContain('failed their check');
    expect(await exists(key)).toBe(false);
    expect(await offsetOn(node1)).toBe('0');
    // Removed after the PATCH described it (its HeadObject), before its first body byte.
    expect((await patch(node1, 0, MiB)).status).toBe(204);
    const heads = () => calls.filter((c) => c === 'store:HeadObject').length;
    const headsBefore = heads();
    const target = new URL(`${node2.url}${path}`);
    const late = httpRequest({
      host: target.hostname,
      port: target.port,
      path: target.pathname,
      method: 'PATCH',
      headers: {
        'Tus-Resumable': '1.0.0',
        'Content-Type': 'application/offset+octet-stream',
        'Upload-Offset': String(MiB),
        'Content-Length': String(MiB),
      },
    });
    const answered = new Promise<{ status: number; body: string }>((resolve, reject) => {
      late.on('response', (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      late.on('error', reject);
    });
    late.flushHeaders();
    for (const until = Date.now() + 30_000; heads() === headsBefore && Date.now() < until;)
      await new Promise((r) => setTimeout(r, 10));
    await s3.client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: key }));
    late.end(data.subarray(MiB, 2 * MiB));
    const second = await answered;
    expect(second.status).toBe(409);
    expect(second.body).toContain('failed their check');
    expect(await offsetOn(node1)).toBe('0');
    expect((await patch(node1, 0, data.byteLength)).status).toBe(204);
    expect((await readObject(s3.client, s3.bucket, `in/${id}/checked.bin`)).equals(data)).toBe(
      true,
    );
  }, 60_000);

  it('bounds the PATCHes that end inside one part (tusPartialWritesPerChunk, 64): the 65th gets 400 and keeps nothing; a PATCH to the part end still goes', async () => {
    const data = randomBytes(MIN_PART_BYTES + 1000);
    const created = await tusRequest(`${node1.url}/files/`, 'POST', {
      'Upload-Length': String(data.byteLength),
      'Upload-Metadata': `filename ${Buffer.from('tiny-patches.bin').toString('base64')}`,
    });
    const path = new URL(created.headers.get('location') ?? '', node1.url).pathname;
    const id = path.slice(path.lastIndexOf('/') + 1);
    const patch = (from: number, to: number) =>
      tusRequest(
        `${node1.url}${path}`,
        'PATCH',
        { 'Content-Type': 'application/offset+octet-stream', 'Upload-Offset': String(from) },
        data.subarray(from, to),
      );
    const puts = () => calls.filter((c) => c === 'store:PutObject').length;
    const before = puts();
    // A well-behaved client uploads meanwhile, through the other node.
    const bystander = randomBytes(7 * MiB + 3);
    const alongside = tusUpload(bystander, {
      endpoint: `${node2.url}/files/`,
      metadata: { filename: 'bystander.bin' },
    });
    for (let i = 0; i < 64; i++) expect((await patch(i, i + 1)).status).toBe(204);
    const other = await alongside;
    expect(
      (await readObject(s3.client, s3.bucket, `in/${other.id}/bystander.bin`)).equals(bystander),
    ).toBe(true);
    expect(puts() - before).toBe(64);
    const refused = await patch(64, 65);
    expect(refused.status).toBe(400);
    expect(await refused.text()).toContain('TUS_PATCH_TOO_SMALL');
    expect(puts() - before).toBe(64);
    const head = await tusRequest(`${node2.url}${path}`, 'HEAD');
    expect(head.headers.get('upload-offset')).toBe('64');
    // A PATCH without a body reads nothing back (the partial part is read at the first byte).
    const gets = () => calls.filter((c) => c === 'store:GetObject').length;
    const getsBefore = gets();
    expect((await patch(64, 64)).status).toBe(204);
    expect(gets()).toBe(getsBefore);
    // Up to the part's end: a whole part, nothing kept apart; then a new part starts its count.
    expect((await patch(64, MIN_PART_BYTES)).status).toBe(204);
    expect((await patch(MIN_PART_BYTES, MIN_PART_BYTES + 10)).status).toBe(204);
    expect((await patch(MIN_PART_BYTES + 10, data.byteLength)).status).toBe(204);
    expect((await readObject(s3.client, s3.bucket, `in/${id}/tiny-patches.bin`)).equals(data)).toBe(
      true,
    );
  }, 60_000);

  it('instant upload: a file sent again completes as a reference to the held object, on either node, at the CLI default chunk size; another subject is not found without a read of the content', async () => {
    const home = await makeTempDir('bigup-s3-instant-');
    try {
      const send = async (path: string, url: string, ...extra: string[]) => {
        const run = await runSend(
          [path, '--url', url, '--json', '--no-resume', ...extra],
          home.path,
        ).done;
        expect(run.code, run.stderr).toBe(0);
        return run.reports[0];
      };
      // 12 MiB at the CLI's default proposal (4 MiB): the store agrees 5 MiB (parts >= 5 MiB),
      // and the CHALLENGE names it, so the digest is taken at the size the content is held at.
      const big = join(home.path, 'big file.bin');
      const data = randomBytes(12 * MiB + 5);
      await writeFile(big, data);
      const first = await send(big, node1.wsUrl);
      expect(first).toMatchObject({ bytesSent: data.byteLength });
      const before = calls.length;
      const again = await send(big, node2.wsUrl);
      expect(again).toMatchObject({ bytesSent: 0, instant: true, digest: first.digest });
      expect(again.id).not.toBe(first.id);
      // A reference, not a copy: no part, no CopyObject; the completion names the held object.
      const during = calls.slice(before);
      expect(during.filter((c) => /UploadPart|CopyObject|PutObject/.test(c))).toEqual([]);
      const held = `in/${String(first.id)}/big file.bin`;
      expect((await registry.get(String(again.id)))?.completion?.location).toBe(
        `s3://${s3.bucket}/${held}`,
      );
      expect((await readObject(s3.client, s3.bucket, held)).equals(data)).toBe(true);
      // A file within one chunk of the proposal keeps the proposed chunk size.
      const small = join(home.path, 'small.bin');
      const smallData = randomBytes(3 * MiB);
      await writeFile(small, smallData);
      await send(small, node1.wsUrl);
      const smallAgain = await send(small, node1.wsUrl);
      expect(smallAgain).toMatchObject({ bytesSent: 0, instant: true });
      expect((await registry.get(String(smallAgain.id)))?.completion?.location).toMatch(
        /\/small\.bin$/,
      );
      // Another subject (upload token) that holds a file of that size: it is challenged, proves
      // the digest of the first subject's content, and is not found without a single read of it.
      const sameSize = join(home.path, 'same size.bin');
      await writeFile(sameSize, randomBytes(data.byteLength));
      await send(sameSize, node1.wsUrl, '--upload-token', 'tenant-b');
      const start = calls.length;
      const other = await send(big, node1.wsUrl, '--upload-token', 'tenant-b');
      expect(other).toMatchObject({ bytesSent: data.byteLength });
      expect(other.instant).toBeUndefined();
      expect(calls.slice(start).filter((c) => /GetObject|HeadObject/.test(c))).toEqual([]);
    } finally {
      await home.cleanup();
    }
  }, 120_000);

  it('small files whole in their OPEN (SPEC.md 16.11) are stored as objects, byte-identical; sent again to the other node they are adopted (INSTANT)', async () => {
    const files = [1, 5000, LimitsV2.MAX_INLINE_FILE_SIZE].map((size) => randomBytes(size));
    const send = async (
      url: string,
      token: string,
    ): Promise<Array<{ id: string; instant?: boolean }>> => {
      const client = await RawClientV2.connect(url);
      client.hello([
        { id: Capability.MULTIPLEX, value: 4 },
        { id: Capability.PROOF_OF_POSSESSION, value: 1 },
        { id: Capability.OPEN_WITH_DATA, value: LimitsV2.MAX_INLINE_FILE_SIZE },
      ]);
      await client.waitFor((f) => f.message.type === 'welcome');
      files.forEach((bytes, i) =>
        client.open(i + 1, {
          fileSize: bytes.byteLength,
          chunkSize: 4 * MiB,
          name: `small-${i}.bin`,
          token,
          digest: wholeFileDigest(client.hasher, [client.hasher.h64(bytes)]),
          data: bytes,
        }),
      );
      const answers = [];
      for (let i = 0; i < files.length; i++) {
        const result = await client.expect(i + 1, 'result', 30_000);
        expect(client.on(i + 1).map((m) => m.type)).toEqual(['result']);
        answers.push({
          id: bytesToHex(result.uploadId),
          ...(result.instant ? { instant: true } : {}),
        });
      }
      client.close();
      return answers;
    };
    const token = `inline-${Date.now()}`;
    const first = await send(node1.wsUrl, token);
    for (const [i, answer] of first.entries()) {
      expect(answer.instant).toBeUndefined();
      const location = (await registry.get(answer.id))?.completion?.location ?? '';
      const key = location.replace(`s3://${s3.bucket}/`, '');
      expect((await readObject(s3.client, s3.bucket, key)).equals(files[i])).toBe(true);
    }
    const before = calls.length;
    const again = await send(node2.wsUrl, token);
    expect(again.map((a) => a.instant)).toEqual([true, true, true]);
    expect(calls.slice(before).filter((c) => /UploadPart|PutObject/.test(c))).toEqual([]);
  }, 60_000);

  it('terminate aborts the multipart upload and forgets the upload', async () => {
    const data = randomBytes(6 * MiB);
    const { client, accept } = await openOrResume(node1.wsUrl, undefined, {
      fileSize: data.byteLength,
      chunkSize: 0,
      name: 'gone.bin',
    });
    await pump(client, accept, data, [0], new AckLog(accept.chunkSize, data.byteLength));
    const before = calls.length;
    client.terminate();
    await client.expect('terminated');
    // s3rver answers AbortMultipartUpload with MethodNotAllowed: the call is made, the failure is
    // counted and logged, and the record still goes (the lifecycle rule frees the parts).
    expect(calls.slice(before)).toContain('store:AbortMultipartUpload:MethodNotAllowed');
    expect(calls.slice(before)).toContain('registry:delete');
    client.resume(accept.uploadId, accept.secret);
    await client.expectError(Errors.NOT_FOUND.code);
    client.close();
    const gone = await RawClient.connect(node2.wsUrl);
    gone.resume(accept.uploadId, accept.secret);
    await gone.expectError(Errors.NOT_FOUND.code);
    gone.close();
  }, 60_000);
});
