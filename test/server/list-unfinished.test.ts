/**
 * Start-up stays O(unfinished uploads) (issue 16, point 3): the registry rebuilds quotas from
 * `list({ unfinished: true })`, and the disk store answers it from journal names, reading the
 * state of unfinished uploads only, however many completed ones are on disk.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DiskStore, type UploadInfo } from '../../server/index.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

class CountingStore extends DiskStore {
  reads = 0;
  override readState(id: string) {
    this.reads++;
    return super.readState(id);
  }
}

function info(n: number, fileSize: number): UploadInfo {
  return {
    id: n.toString(16).padStart(32, '0'),
    secretHash: '0'.repeat(64),
    fileSize,
    chunkSize: 65_536,
    name: `f${n}`,
    contentType: '',
    metadata: {},
    client: 'address:127.0.0.1',
    createdAt: Date.now(),
  };
}

describe('listing unfinished uploads', () => {
  let tmp: TempDir;
  beforeEach(async () => {
    tmp = await makeTempDir();
  });
  afterEach(async () => {
    await tmp.cleanup();
  });

  it('reads the state of unfinished uploads only, with 100 completed ones beside them', async () => {
    const store = new CountingStore({ dir: tmp.path });
    await store.init();
    for (let n = 1; n <= 100; n++) {
      const handle = await store.create(info(n, 0));
      await handle.finish('0'.repeat(16));
    }
    for (let n = 1000; n < 1003; n++) await store.create(info(n, 10)).then((h) => h.close());
    store.reads = 0;
    const unfinished = await store.list({ unfinished: true });
    expect(unfinished.map((s) => s.id)).toEqual(
      [1000, 1001, 1002].map((n) => n.toString(16).padStart(32, '0')),
    );
    expect(unfinished.every((s) => !s.completed && s.fileSize === 10)).toBe(true);
    expect(store.reads).toBe(3);
    // The full listing still has everything (the sweeper pages through it).
    store.reads = 0;
    expect(await store.list()).toHaveLength(103);
    expect(store.reads).toBe(103);
  });
});
