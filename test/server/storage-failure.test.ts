/**
 * OpenUpload after a storage failure (SPEC.md 8, "Failed sync"), with a scripted handle: which
 * failures roll the acked set back to the last checkpoint.
 */
import { describe, expect, it } from 'vitest';
import { Errors, loadHasher } from '../../protocol/index.js';
import type { ChunkRecord, UploadHandle, UploadInfo } from '../../server/index.js';
import { ServerMetrics } from '../../server/metrics.js';
import { OpenUpload } from '../../server/upload.js';

const CHUNK = 65_536;

function errno(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: scripted`), { code });
}

/** A handle whose data write of `failWrite` and whose checkpoint fail as scripted. */
function scriptedHandle(failWrite: number) {
  let failCheckpoint!: (error: unknown) => void;
  let handleCheckpoint!: () => Promise<void>;
  const checkpointStarted = new Promise<void>((started) => {
    handleCheckpoint = () =>
      new Promise<void>((_resolve, reject) => {
        failCheckpoint = reject;
        started();
      });
  });
  const rollbacks: number[] = [];
  const info: UploadInfo = {
    id: 'e'.repeat(32),
    secretHash: '0'.repeat(64),
    fileSize: 8 * CHUNK,
    chunkSize: CHUNK,
    name: 'x',
    contentType: '',
    metadata: {},
    createdAt: 0,
  };
  const handle: UploadHandle = {
    info,
    writeAt: async (_bytes, position) => {
      if (position === failWrite * CHUNK) throw errno('ENOSPC');
    },
    recordChunks: async () => undefined,
    syncData: async () => undefined,
    checkpoint: () => handleCheckpoint(),
    rollbackToCheckpoint: async (): Promise<ChunkRecord[]> => {
      rollbacks.push(rollbacks.length);
      return [];
    },
    finish: async () => ({ digest: '0'.repeat(16), location: '', completedAt: 0 }),
    close: async () => undefined,
  };
  return {
    handle,
    info,
    rollbacks,
    checkpointStarted,
    failCheckpoint: (e: unknown) => failCheckpoint(e),
  };
}

describe('upload storage failures', () => {
  it('rolls back after a failed checkpoint even when a data write hit ENOSPC first (default mode)', async () => {
    const hasher = await loadHasher();
    const s = scriptedHandle(2);
    const upload = new OpenUpload(s.info, s.handle, [], hasher, false, new ServerMetrics());
    const payload = new Uint8Array(CHUNK);
    await upload.write(0, hasher.h64(payload), payload);
    await upload.write(1, hasher.h64(payload), payload);
    expect(upload.acked.total).toBe(2 * CHUNK);
    // A background checkpoint starts its flush; meanwhile the write of chunk 2 runs out of space.
    const checkpoint = upload.checkpoint();
    await s.checkpointStarted;
    await expect(upload.write(2, hasher.h64(payload), payload)).rejects.toMatchObject({
      code: Errors.STORAGE_FULL.code,
    });
    // The write failure alone keeps what was acked (nothing was acked for chunk 2)...
    expect(s.rollbacks).toHaveLength(0);
    expect(upload.acked.total).toBe(2 * CHUNK);
    // ...but the flush that then fails leaves chunks 0 and 1 unproven: they must be withdrawn.
    s.failCheckpoint(errno('ENOSPC'));
    await checkpoint;
    await upload.close();
    expect(s.rollbacks).toHaveLength(1);
    expect(upload.acked.total).toBe(0);
  });
});
