/**
 * OpenUpload's data path with a recording handle: one positional write at a time per upload, and
 * background flushes started by volume (syncBytes) in default mode, never in durable mode.
 */
import { describe, expect, it } from 'vitest';
import { loadHasher } from '../../protocol/index.js';
import type { ChunkRecord, UploadHandle, UploadInfo } from '../../server/index.js';
import { ServerMetrics } from '../../server/metrics.js';
import { OpenUpload } from '../../server/upload.js';

const CHUNK = 65_536;

function recordingHandle(chunks: number, checkpointMs = 0) {
  const log = {
    concurrentWrites: 0,
    maxConcurrentWrites: 0,
    checkpoints: 0,
    syncs: 0,
    runningCheckpoints: 0,
    maxRunningCheckpoints: 0,
    closed: false,
  };
  const info: UploadInfo = {
    id: 'f'.repeat(32),
    secretHash: '0'.repeat(64),
    fileSize: chunks * CHUNK,
    chunkSize: CHUNK,
    name: 'x',
    contentType: '',
    metadata: {},
    createdAt: 0,
  };
  const handle: UploadHandle = {
    info,
    writeAt: async () => {
      log.concurrentWrites++;
      log.maxConcurrentWrites = Math.max(log.maxConcurrentWrites, log.concurrentWrites);
      await new Promise((r) => setTimeout(r, 1));
      log.concurrentWrites--;
    },
    recordChunks: async () => undefined,
    syncData: async () => {
      log.syncs++;
    },
    checkpoint: async () => {
      if (log.closed)
        throw Object.assign(new Error('EBADF: file handle closed'), { code: 'EBADF' });
      log.checkpoints++;
      log.runningCheckpoints++;
      log.maxRunningCheckpoints = Math.max(log.maxRunningCheckpoints, log.runningCheckpoints);
      if (checkpointMs > 0) await new Promise((r) => setTimeout(r, checkpointMs));
      log.runningCheckpoints--;
    },
    rollbackToCheckpoint: async (): Promise<ChunkRecord[]> => [],
    finish: async () => {
      log.closed = true;
      return { digest: '0'.repeat(16), location: '', completedAt: 0 };
    },
    close: async () => {
      log.closed = true;
    },
  };
  return { handle, info, log };
}

describe('upload write path', () => {
  it('runs one data write at a time and flushes every syncBytes in default mode', async () => {
    const hasher = await loadHasher();
    const s = recordingHandle(16);
    const upload = new OpenUpload(
      s.info,
      s.handle,
      [],
      hasher,
      false,
      new ServerMetrics(),
      undefined,
      4 * CHUNK,
    );
    const payload = new Uint8Array(CHUNK);
    const hash = hasher.h64(payload);
    // All 16 handed over at once, as a full window would.
    await Promise.all(Array.from({ length: 16 }, (_, i) => upload.write(i, hash, payload)));
    await upload.close();
    expect(s.log.maxConcurrentWrites).toBe(1);
    expect(upload.acked.total).toBe(16 * CHUNK);
    // 16 chunks at 4 chunks per flush: about four volume flushes (batches may straddle a boundary).
    expect(s.log.checkpoints).toBeGreaterThanOrEqual(3);
  });

  it('runs volume flushes back to back, never one queued per batch, when the device is slower than the data', async () => {
    const hasher = await loadHasher();
    // Every chunk asks for a flush; each flush takes far longer than a chunk write.
    const s = recordingHandle(32, 25);
    const upload = new OpenUpload(
      s.info,
      s.handle,
      [],
      hasher,
      false,
      new ServerMetrics(),
      undefined,
      CHUNK,
    );
    const payload = new Uint8Array(CHUNK);
    const hash = hasher.h64(payload);
    await Promise.all(Array.from({ length: 32 }, (_, i) => upload.write(i, hash, payload)));
    await upload.close();
    expect(s.log.maxRunningCheckpoints).toBe(1);
    // 32 chunks x ~1 ms of writes against 25 ms flushes: a few flushes (plus the one at close),
    // not one per chunk left to run long after the data was written.
    expect(s.log.checkpoints).toBeGreaterThanOrEqual(2);
    expect(s.log.checkpoints).toBeLessThan(10);
    expect(upload.acked.total).toBe(32 * CHUNK);
  });

  for (const ending of ['complete', 'close'] as const) {
    it(`runs no flush on the handle after ${ending}() released it, even one waiting when it was called`, async () => {
      const hasher = await loadHasher();
      const s = recordingHandle(16, 25);
      const upload = new OpenUpload(
        s.info,
        s.handle,
        [],
        hasher,
        false,
        new ServerMetrics(),
        undefined,
        CHUNK,
      );
      const payload = new Uint8Array(CHUNK);
      const hash = hasher.h64(payload);
      await Promise.all(Array.from({ length: 16 }, (_, i) => upload.write(i, hash, payload)));
      // A flush is running and another waits: end the upload now.
      if (ending === 'complete') expect((await upload.complete(undefined)).fresh).toBe(true);
      else await upload.close();
      await new Promise((r) => setTimeout(r, 150));
      expect(upload.failure).toBeUndefined();
      if (ending === 'complete') expect((await upload.complete(undefined)).fresh).toBe(false);
    });
  }

  it('starts no volume flush when syncBytes is 0 or in durable mode', async () => {
    const hasher = await loadHasher();
    const payload = new Uint8Array(CHUNK);
    const hash = hasher.h64(payload);
    for (const [durable, syncBytes] of [
      [false, 0],
      [true, CHUNK],
    ] as const) {
      const s = recordingHandle(8);
      const upload = new OpenUpload(
        s.info,
        s.handle,
        [],
        hasher,
        durable,
        new ServerMetrics(),
        undefined,
        syncBytes,
      );
      await Promise.all(Array.from({ length: 8 }, (_, i) => upload.write(i, hash, payload)));
      expect(s.log.checkpoints).toBe(0);
      if (durable) expect(s.log.syncs).toBeGreaterThan(0);
    }
  });
});
