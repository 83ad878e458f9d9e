/**
 * A real full disk (a small tmpfs, lib/tiny-fs.ts): every chunk acked before the disk filled is
 * still acked after RESUME (SPEC.md 7.6 lets the acked set shrink only after a power loss or a
 * failed sync), and its bytes are the client's.
 */
import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Errors, bytesToHex } from '../../protocol/index.js';
import { AckLog, chunksIn, mismatchedRanges, openOrResume, pump } from './lib/pump.js';
import { startTinyFsServer, tinyFsAvailable } from './lib/tiny-fs.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const CHUNK = 64 * KiB;

/** Write zeros to `path` until the filesystem says ENOSPC; returns the bytes written. */
async function fillDisk(path: string): Promise<number> {
  const file = await open(path, 'wx');
  const block = Buffer.alloc(4 * KiB);
  let total = 0;
  try {
    for (;;) {
      try {
        const { bytesWritten } = await file.write(block, 0, block.byteLength, total);
        if (bytesWritten === 0) break;
        total += bytesWritten;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOSPC') break;
        throw error;
      }
    }
  } finally {
    await file.close();
  }
  return total;
}

describe.skipIf(!tinyFsAvailable())('full disk (tmpfs)', () => {
  for (const preallocate of [false, true]) {
    it(`keeps every acked chunk when the disk fills mid-upload (preallocate ${preallocate}, flush by time only)`, async () => {
      const server = await startTinyFsServer(16 * MiB, { syncBytes: 0, syncInterval: 60_000 }, { preallocate });
      try {
        const FILE = 10 * MiB;
        const data = randomBytes(FILE);
        const log = new AckLog(CHUNK, FILE);
        const first = await openOrResume(server.wsUrl, undefined, { fileSize: FILE, chunkSize: CHUNK, name: 'a.bin' });
        const all = [...Array(FILE / CHUNK).keys()];
        const half = all.slice(0, 0);
        const r1 = await pump(first.client, first.accept, data, half, log, { wireStart: first.wireStart });
        expect(r1.errors).toEqual([]);
        const filled = await fillDisk(join(server.dir, 'filler'));
        const r2 = await pump(first.client, first.accept, data, all.slice(half.length), log, {});
        first.client.close();
        console.log('filled', filled, 'errors', r2.errors.map((e) => e.code), 'acked', log.chunks.length);
        const again = await openOrResume(server.wsUrl, { id: first.accept.uploadId, secret: first.accept.secret }, { fileSize: FILE, chunkSize: CHUNK });
        const reported = chunksIn(again.accept.ranges, CHUNK, FILE);
        again.client.close();
        console.log('acked', log.chunks.length, 'reported', reported.size);
        expect(log.chunks.filter((i) => !reported.has(i)), 'acked chunks missing after RESUME').toEqual([]);
        const part = join(server.dir, 'uploads', `${bytesToHex(first.accept.uploadId)}.part`);
        expect(await mismatchedRanges(part, data, again.accept.ranges)).toEqual([]);
        void Errors;
      } finally {
        await server.stop();
      }
    });
  }
});
