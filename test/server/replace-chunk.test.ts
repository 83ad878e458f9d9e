/**
 * REPLACE_CHUNK on the server (SPEC.md 16.9): after a resume, VERIFY withdraws exactly the acked
 * chunks whose stored hash differs from the client's, durably, and the client re-sends only those;
 * the file completes with the new bytes. Misuse gets the specified error and changes nothing.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  Capability,
  Errors,
  encodeResume,
  encodeVerify,
  loadHasher,
  wholeFileDigest,
  withStream,
  type Hasher,
} from '../../protocol/index.js';
import { RawClientV2 } from '../helpers/protocol-client-v2.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

const CHUNK = 65_536;
const CHUNKS = 4;
const REPLACE = [
  { id: Capability.MULTIPLEX, value: 4 },
  { id: Capability.REPLACE_CHUNK, value: 0 },
];

function file(seed: number): Uint8Array {
  const out = new Uint8Array(CHUNK * CHUNKS);
  for (let i = 0; i < out.length; i++) out[i] = (i * 131 + seed) & 0xff;
  return out;
}

const chunkOf = (bytes: Uint8Array, index: number) =>
  bytes.subarray(index * CHUNK, (index + 1) * CHUNK);

describe('REPLACE_CHUNK: VERIFY after a resume (SPEC.md 16.9)', () => {
  let tmp: TempDir;
  let server: TestServer;
  let hasher: Hasher;

  beforeEach(async () => {
    tmp = await makeTempDir();
    hasher = await loadHasher();
    server = await startServer({ dir: tmp.path, maxUploadSize: 16 * 1024 * 1024 });
  });

  afterEach(async () => {
    await server.close();
    await tmp.cleanup();
  });

  /** Upload every chunk of `data` on one connection without completing; returns id and secret. */
  async function uploadAllButComplete(data: Uint8Array, digest?: bigint) {
    const client = await RawClientV2.connect(server.wsUrl);
    client.hello();
    client.open(1, {
      fileSize: data.byteLength,
      chunkSize: CHUNK,
      name: 'edited.bin',
      ...(digest === undefined ? {} : { digest }),
    });
    const accept = await client.expect(1, 'accept');
    for (let i = 0; i < CHUNKS; i++) client.data(1, i * CHUNK, chunkOf(data, i));
    const ackedBytes = () =>
      client
        .on(1)
        .flatMap((m) => (m.type === 'ack' ? m.ranges : []))
        .reduce((n, r) => n + (r.end - r.start), 0);
    await client.waitFor(() => ackedBytes() === data.byteLength);
    client.close();
    await client.closed;
    return { uploadId: accept.uploadId, secret: accept.secret };
  }

  async function resume(
    capabilities: typeof REPLACE,
    upload: { uploadId: Uint8Array; secret: Uint8Array },
  ): Promise<RawClientV2> {
    const client = await RawClientV2.connect(server.wsUrl);
    client.hello(capabilities);
    client.send(withStream(1, encodeResume({ ...upload, token: '' })));
    await client.expect(1, 'accept');
    return client;
  }

  it('withdraws only the changed chunk; the client re-sends it and the new file completes', async () => {
    const before = file(1);
    const upload = await uploadAllButComplete(before);
    const after = before.slice();
    after.fill(0xee, 2 * CHUNK + 100, 2 * CHUNK + 3500); // 3,400 bytes rewritten in chunk 2
    const client = await resume(REPLACE, upload);
    const welcome = await client.waitFor((f) => f.message.type === 'welcome');
    expect(welcome.message).toEqual({ type: 'welcome', capabilities: REPLACE });
    const hashes = Array.from({ length: CHUNKS }, (_, i) => hasher.h64(chunkOf(after, i)));
    client.send(
      encodeVerify(
        1,
        hashes.map((hash, index) => ({ index, hash })),
      ),
    );
    const verified = await client.expect(1, 'verified');
    expect(verified.withdrawn).toEqual([2]);
    // Only chunk 2 goes again; it used to be CONFLICT, now it is missing and takes new bytes.
    client.data(1, 2 * CHUNK, chunkOf(after, 2));
    client.complete(1, wholeFileDigest(hasher, hashes));
    const result = await client.expect(1, 'result');
    const id = Buffer.from(result.uploadId).toString('hex');
    expect(await readFile(join(tmp.path, 'files', id, 'edited.bin'))).toEqual(Buffer.from(after));
    expect(client.on(1).some((m) => m.type === 'error')).toBe(false);
    client.close();
  });

  it('a withdrawn chunk stays withdrawn across a server restart (never acked with its old hash)', async () => {
    const before = file(2);
    const upload = await uploadAllButComplete(before);
    const client = await resume(REPLACE, upload);
    client.send(encodeVerify(1, [{ index: 1, hash: 12345n }]));
    expect((await client.expect(1, 'verified')).withdrawn).toEqual([1]);
    client.destroy();
    await server.close();
    server = await startServer({ dir: tmp.path, maxUploadSize: 16 * 1024 * 1024 });
    const again = await RawClientV2.connect(server.wsUrl);
    again.hello(REPLACE);
    again.send(withStream(1, encodeResume({ ...upload, token: '' })));
    const accept = await again.expect(1, 'accept');
    expect(accept.ranges).toEqual([
      { start: 0, end: CHUNK },
      { start: 2 * CHUNK, end: 4 * CHUNK },
    ]);
    again.close();
  });

  /** The whole-file digest of `bytes` at CHUNK (SPEC.md 7.8). */
  const digestOf = (bytes: Uint8Array) =>
    wholeFileDigest(
      hasher,
      Array.from({ length: CHUNKS }, (_, i) => hasher.h64(chunkOf(bytes, i))),
    );

  for (const restart of [false, true]) {
    it(`a withdrawal ends the binding of the OPEN digest${restart ? ', across a server restart' : ''}: the edited file completes with its COMPLETE digest`, async () => {
      const before = file(3);
      const upload = await uploadAllButComplete(before, digestOf(before));
      const after = before.slice();
      after.fill(0x5a, 3 * CHUNK + 10, 3 * CHUNK + 20);
      let client = await resume(REPLACE, upload);
      client.send(encodeVerify(1, [{ index: 3, hash: hasher.h64(chunkOf(after, 3)) }]));
      expect((await client.expect(1, 'verified')).withdrawn).toEqual([3]);
      if (restart) {
        client.destroy();
        await server.close();
        server = await startServer({ dir: tmp.path, maxUploadSize: 16 * 1024 * 1024 });
        client = await resume(REPLACE, upload);
      }
      client.data(1, 3 * CHUNK, chunkOf(after, 3));
      client.complete(1, digestOf(after));
      const result = await client.expect(1, 'result');
      expect(result.digest).toBe(digestOf(after));
      const id = Buffer.from(result.uploadId).toString('hex');
      expect(await readFile(join(tmp.path, 'files', id, 'edited.bin'))).toEqual(Buffer.from(after));
      client.close();
    });
  }

  it('without a withdrawal the OPEN digest still binds: other bytes in place of an unacked chunk are DIGEST_MISMATCH', async () => {
    const before = file(4);
    const client = await RawClientV2.connect(server.wsUrl);
    client.hello(REPLACE);
    client.open(1, {
      fileSize: before.byteLength,
      chunkSize: CHUNK,
      name: 'a.bin',
      digest: digestOf(before),
    });
    await client.expect(1, 'accept');
    const after = before.slice();
    after[0] ^= 1;
    for (let i = 0; i < CHUNKS; i++) client.data(1, i * CHUNK, chunkOf(after, i));
    client.complete(1, digestOf(after));
    const error = await client.expect(1, 'error');
    expect(error.code).toBe(Errors.DIGEST_MISMATCH.code);
    client.close();
  });

  it('matching hashes withdraw nothing; chunks not acked are ignored', async () => {
    const data = file(3);
    const upload = await uploadAllButComplete(data);
    const client = await resume(REPLACE, upload);
    client.send(encodeVerify(1, [{ index: 0, hash: hasher.h64(chunkOf(data, 0)) }]));
    expect((await client.expect(1, 'verified')).withdrawn).toEqual([]);
    client.close();
  });

  it('withdrawals past the bound: VERIFY is answered CONFLICT, and the stream still takes the TERMINATE that follows', async () => {
    const one = new Uint8Array(CHUNK).fill(7);
    const client = await RawClientV2.connect(server.wsUrl);
    client.hello(REPLACE);
    client.open(1, { fileSize: CHUNK, chunkSize: CHUNK, name: 'looped.bin' });
    const accept = await client.expect(1, 'accept');
    client.data(1, 0, one);
    await client.expect(1, 'ack');
    const upload = { uploadId: accept.uploadId, secret: accept.secret };
    // Each round: a new stream takes the upload over, withdraws chunk 0 and sends it again.
    let answer: { type: string; code?: number } | undefined;
    let stream = 1;
    for (let round = 0; round < 1000; round++) {
      stream += 2;
      client.send(withStream(stream, encodeResume({ ...upload, token: '' })));
      await client.expect(stream, 'accept');
      client.send(encodeVerify(stream, [{ index: 0, hash: BigInt(round + 1) }]));
      const frame = await client.waitFor(
        (f) => f.stream === stream && (f.message.type === 'verified' || f.message.type === 'error'),
      );
      if (frame.message.type === 'error') {
        answer = { type: 'error', code: frame.message.code };
        break;
      }
      client.data(stream, 0, one);
      await client.expect(stream, 'ack');
    }
    expect(answer).toEqual({ type: 'error', code: Errors.CONFLICT.code });
    // The client then terminates the upload to start afresh: answered, not a protocol violation.
    client.terminate(stream);
    await client.expect(stream, 'terminated');
    client.close();
  });

  it('without REPLACE_CHUNK granted, VERIFY is UNEXPECTED_MESSAGE (fatal) and nothing is withdrawn', async () => {
    const data = file(4);
    const upload = await uploadAllButComplete(data);
    const client = await resume([{ id: Capability.MULTIPLEX, value: 4 }], upload);
    client.send(encodeVerify(1, [{ index: 0, hash: 1n }]));
    const error = await client.waitFor((f) => f.message.type === 'error');
    expect(error.message).toMatchObject({ code: Errors.UNEXPECTED_MESSAGE.code, fatal: true });
    await client.closed;
    const check = await resume(REPLACE, upload);
    const accept = check.on(1).find((m) => m.type === 'accept');
    expect(accept && accept.type === 'accept' ? accept.ranges : []).toEqual([
      { start: 0, end: CHUNKS * CHUNK },
    ]);
    check.close();
  });

  it('VERIFYs of a stream list ascending chunks only (each chunk once); an index past the file is OUT_OF_RANGE on the stream', async () => {
    const upload = await uploadAllButComplete(file(5));
    const client = await resume(REPLACE, upload);
    client.send(encodeVerify(1, [{ index: CHUNKS, hash: 1n }]));
    const outOfRange = await client.expect(1, 'error');
    expect(outOfRange.code).toBe(Errors.OUT_OF_RANGE.code);
    client.close();

    const twice = await resume(REPLACE, upload);
    twice.send(encodeVerify(1, [{ index: 0, hash: 1n }]));
    expect((await twice.waitFor((f) => f.message.type === 'verified')).message).toMatchObject({
      withdrawn: [0],
    });
    // A second page above the first is fine ...
    twice.send(encodeVerify(1, [{ index: 1, hash: 1n }]));
    await twice.waitFor((f) => f.message.type === 'verified' && f.message.withdrawn.includes(1));
    // ... listing chunk 1 again is not.
    twice.send(
      encodeVerify(1, [
        { index: 1, hash: 2n },
        { index: 2, hash: 1n },
      ]),
    );
    const error = await twice.waitFor((f) => f.message.type === 'error');
    expect(error.message).toMatchObject({ code: Errors.UNEXPECTED_MESSAGE.code, fatal: true });
    await twice.closed;
    // Only the first two VERIFYs took effect.
    const check = await resume(REPLACE, upload);
    const accept = check.on(1).find((m) => m.type === 'accept');
    expect(accept && accept.type === 'accept' ? accept.ranges : []).toEqual([
      { start: 2 * CHUNK, end: CHUNKS * CHUNK },
    ]);
    check.close();
  });
});
