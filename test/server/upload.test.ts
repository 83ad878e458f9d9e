import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Errors, bytesToHex, hashToHex } from '../../protocol/index.js';
import { RawClient, chunksOf, digestOf, sendChunks } from '../helpers/protocol-client.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

const MiB = 1024 * 1024;

describe('upload', () => {
  let tmp: TempDir;
  let server: TestServer;
  const completions: string[] = [];

  beforeEach(async () => {
    tmp = await makeTempDir();
    server = await startServer({
      dir: tmp.path,
      onUploadComplete: (u) => {
        completions.push(u.id);
      },
    });
  });
  afterEach(async () => {
    await server.close();
    await tmp.cleanup();
  });

  it('stores a 64 MiB file sent out of order with duplicates byte for byte', async () => {
    const data = randomBytes(64 * MiB);
    const client = await RawClient.connect(server.wsUrl);
    client.open({ fileSize: data.byteLength, chunkSize: MiB, name: 'big.bin' });
    const accept = await client.expect('accept');
    expect(accept.created).toBe(true);
    expect(accept.chunkSize).toBe(MiB);
    expect(accept.ranges).toEqual([]);
    const chunks = chunksOf(data.byteLength, MiB);
    // Shuffle, then repeat a few chunks: duplicates with the same hash are acked again, not rewritten.
    for (let i = chunks.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [chunks[i], chunks[j]] = [chunks[j], chunks[i]];
    }
    const sent = [...chunks.slice(0, 40), chunks[3], chunks[7], ...chunks.slice(40), chunks[0]];
    const { errors } = await sendChunks(client, accept, data, sent);
    expect(errors).toEqual([]);
    client.complete(digestOf(client.hasher, data, MiB));
    const result = await client.expect('result');
    expect(result.fileSize).toBe(data.byteLength);
    expect(hashToHex(result.digest)).toBe(hashToHex(digestOf(client.hasher, data, MiB)));
    const id = bytesToHex(accept.uploadId);
    const stored = await readFile(`${tmp.path}/files/${id}/big.bin`);
    expect(stored.equals(data)).toBe(true);
    expect(completions).toContain(id);
    client.close();
  });

  it('handles a zero-byte file and a short last chunk', async () => {
    const client = await RawClient.connect(server.wsUrl);
    client.open({ fileSize: 0, name: 'empty' });
    const accept = await client.expect('accept');
    expect(accept.ranges).toEqual([]);
    client.complete();
    await client.expect('result');
    const data = randomBytes(65_536 * 2 + 100);
    client.open({ fileSize: data.byteLength, chunkSize: 65_536, name: 'small' });
    const second = await client.expect('accept');
    const { errors } = await sendChunks(client, second, data, chunksOf(data.byteLength, 65_536));
    expect(errors).toEqual([]);
    // COMPLETE with a wrong digest: refused, upload stays; then the right one.
    client.complete(123n);
    await client.expectError(Errors.DIGEST_MISMATCH.code);
    client.complete();
    await client.expect('result');
    const stored = await readFile(`${tmp.path}/files/${bytesToHex(second.uploadId)}/small`);
    expect(stored.equals(data)).toBe(true);
    client.close();
  });
  it('checks an OPEN digest only at the chunk size it was computed for', async () => {
    // Larger than 16 MiB, so the chunk lists (and digests) at 16 MiB and 64 MiB differ.
    const data = randomBytes(17 * MiB + 5);
    const client = await RawClient.connect(server.wsUrl);
    // Honoured: the proposal is agreed, so a wrong OPEN digest is caught at COMPLETE.
    client.open({ fileSize: data.byteLength, chunkSize: MiB, name: 'a', digest: 42n });
    const agreed = await client.expect('accept');
    expect(agreed.chunkSize).toBe(MiB);
    expect((await sendChunks(client, agreed, data, chunksOf(data.byteLength, MiB))).errors).toEqual(
      [],
    );
    client.complete();
    await client.expectError(Errors.DIGEST_MISMATCH.code);
    client.terminate();
    await client.expect('terminated');
    // Dropped: the server clamps a 64 MiB proposal to its 16 MiB maximum, where the digest
    // computed at 64 MiB cannot match; the upload completes on the chunk hashes alone.
    client.open({
      fileSize: data.byteLength,
      chunkSize: 64 * MiB,
      name: 'b',
      digest: digestOf(client.hasher, data, 64 * MiB),
    });
    const clamped = await client.expect('accept');
    expect(clamped.chunkSize).toBe(16 * MiB);
    expect(
      (await sendChunks(client, clamped, data, chunksOf(data.byteLength, clamped.chunkSize)))
        .errors,
    ).toEqual([]);
    client.complete();
    const result = await client.expect('result');
    expect(hashToHex(result.digest)).toBe(hashToHex(digestOf(client.hasher, data, 16 * MiB)));
    client.close();
  });
});
