/**
 * What an OPEN makes the server write. An attack found against the old code: the journal reserved
 * a slot for every chunk at OPEN, in zeros really written, so one OPEN of 60 GiB at 64 KiB chunks
 * (a ~60-byte message) wrote a 36 MB journal; OPEN + TERMINATE 100 times took 1.85 s and 3.1 GB of
 * writes. Now a new journal reserves its first FIRST_CHUNK_SLOTS chunks and grows as chunks
 * arrive (journal.ts, "Reserved space").
 */
import { randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { bytesToHex } from '../../protocol/index.js';
import { FIRST_CHUNK_SLOTS, RECORD_BYTES, journalSlotsFor } from '../../server/store/journal.js';
import { RawClient, chunksOf, sendChunks } from '../helpers/protocol-client.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

const GiB = 1024 ** 3;
const CHUNK = 64 * 1024;
const FIRST_JOURNAL_BYTES = journalSlotsFor(FIRST_CHUNK_SLOTS) * RECORD_BYTES;

describe('journal bytes an OPEN writes', () => {
  let tmp: TempDir;
  let server: TestServer;

  beforeEach(async () => {
    tmp = await makeTempDir();
    // Sizes counted against free space would refuse 60 GiB on a small test disk: not the point.
    server = await startServer({ dir: tmp.path, preallocate: false });
  });
  afterEach(async () => {
    await server.close();
    await tmp.cleanup();
  });

  it(`OPEN of 60 GiB at 64 KiB chunks + TERMINATE, 20 times: each journal is ${FIRST_JOURNAL_BYTES} bytes, not 30 MB`, async () => {
    // A well-behaved client uploads meanwhile, and its file arrives whole.
    const bystander = (async () => {
      const data = randomBytes(8 * CHUNK + 5);
      const other = await RawClient.connect(server.wsUrl);
      other.open({ fileSize: data.byteLength, chunkSize: CHUNK, name: 'bystander.bin' });
      const accept = await other.expect('accept');
      const { errors } = await sendChunks(other, accept, data, chunksOf(data.byteLength, CHUNK));
      other.complete();
      await other.expect('result');
      other.close();
      const stored = await readFile(
        join(tmp.path, 'files', bytesToHex(accept.uploadId), 'bystander.bin'),
      );
      return { errors, identical: stored.equals(data) };
    })();
    const client = await RawClient.connect(server.wsUrl);
    for (let i = 0; i < 20; i++) {
      client.open({ fileSize: 60 * GiB, chunkSize: CHUNK, name: `big-${i}.bin` });
      const accept = await client.expect('accept');
      expect(accept.chunkSize).toBe(CHUNK);
      const journal = join(tmp.path, 'uploads', `${bytesToHex(accept.uploadId)}.journal`);
      expect((await stat(journal)).size).toBe(FIRST_JOURNAL_BYTES);
      client.terminate();
      await client.expect('terminated');
    }
    client.close();
    expect(await bystander).toEqual({ errors: [], identical: true });
  });

  it('the journal grows with the chunks stored: 32 bytes per chunk of 64 KiB, at most doubling', async () => {
    const client = await RawClient.connect(server.wsUrl);
    client.open({ fileSize: 60 * GiB, chunkSize: CHUNK, name: 'grows.bin' });
    const accept = await client.expect('accept');
    const journal = join(tmp.path, 'uploads', `${bytesToHex(accept.uploadId)}.journal`);
    const chunks = 300;
    const payload = new Uint8Array(CHUNK).fill(3);
    let acked = 0;
    for (let i = 0; i < chunks; i++) client.sendData(i * CHUNK, payload);
    while (acked < chunks * CHUNK) {
      const ack = await client.expect('ack');
      acked += ack.ranges.reduce((sum, r) => sum + r.end - r.start, 0);
    }
    const slots = (await stat(journal)).size / RECORD_BYTES;
    expect(slots).toBeGreaterThanOrEqual(chunks + 2);
    expect(slots).toBeLessThanOrEqual(2 * (2 * chunks + 2) + 128);
    client.terminate();
    await client.expect('terminated');
    client.close();
  });
});
