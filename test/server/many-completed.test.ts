/**
 * Issue 16 point 3: the store, registry and sweeper stay O(active) with 100k completed uploads
 * on disk (completion records are kept until the TTL). Before, start-up read every record and a
 * data dir with 100k completions did not start within Fastify's plugin timeout.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DiskStore } from '../../server/index.js';
import { RawClient } from '../helpers/protocol-client.js';
import { startServer } from '../helpers/server.js';
import { makeTempDir } from '../helpers/tmp.js';

const COMPLETED = 100_000;

/** Completion records as the disk store writes them (uploads/<id>.json with `completion`). */
function plantCompleted(dir: string, count: number, at: number): void {
  mkdirSync(join(dir, 'uploads'), { recursive: true });
  mkdirSync(join(dir, 'files'), { recursive: true });
  for (let i = 0; i < count; i++) {
    const id = randomBytes(16).toString('hex');
    const info = {
      id,
      secretHash: '0'.repeat(64),
      fileSize: 1024,
      chunkSize: 65536,
      name: `f${i}.bin`,
      contentType: 'application/octet-stream',
      metadata: {},
      createdAt: at,
    };
    const completion = {
      digest: '0123456789abcdef',
      location: join(dir, 'files', id, `f${i}.bin`),
      completedAt: at,
    };
    writeFileSync(
      join(dir, 'uploads', `${id}.json`),
      JSON.stringify({ version: 1, info, completion }),
    );
  }
}

describe('100k completed uploads on disk', () => {
  it('start-up, the registry and a sweep pass read only the active uploads and a bounded slice', async () => {
    const tmp = await makeTempDir();
    class CountingStore extends DiskStore {
      reads = 0;
      override readState(id: string) {
        this.reads++;
        return super.readState(id);
      }
    }
    try {
      // Three unfinished uploads, made through the server, then the completions around them.
      let server = await startServer({ dir: tmp.path, sweepInterval: 3_600_000 });
      for (let i = 0; i < 3; i++) {
        const client = await RawClient.connect(server.wsUrl);
        client.open({ fileSize: 10 });
        await client.expect('accept');
        client.close();
        await client.closed;
      }
      await server.close();
      plantCompleted(tmp.path, COMPLETED, Date.now());

      const store = new CountingStore({ dir: tmp.path });
      server = await startServer({
        dir: tmp.path,
        store,
        sweepBatch: 500,
        sweepInterval: 3_600_000,
        ttl: 60_000,
        emptyUploadTtl: 60_000,
      });
      try {
        // Store start-up and the registry's quota rebuild: the 3 unfinished ones, each at most twice.
        expect(store.reads).toBeGreaterThanOrEqual(3);
        expect(store.reads).toBeLessThanOrEqual(6);
        store.reads = 0;
        expect(await server.app.bigUploader.sweep()).toBe(0);
        expect(store.reads).toBe(500);
        // A new upload is served as usual next to them.
        const client = await RawClient.connect(server.wsUrl);
        client.open({ fileSize: 10 });
        await client.expect('accept');
        client.close();
        await client.closed;
      } finally {
        await server.close();
      }
    } finally {
      await tmp.cleanup();
    }
  }, 120_000);
});
