/**
 * `minFreeInodes`: every stored file is an inode, and a client sending empty files (or deep
 * folders) fills a disk's inodes long before its bytes. Below the reserve a new upload is refused
 * with INSUFFICIENT_STORAGE, as when bytes run out. The reserve is set above this filesystem's
 * free inodes to stand for a disk that ran out (a real one cannot be made here without root).
 */
import { statfs } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { Errors } from '../../protocol/index.js';
import { RawClientV2 } from '../helpers/protocol-client-v2.js';
import { serverPerTest } from '../helpers/server-per-test.js';
import { makeTempDir } from '../helpers/tmp.js';
import { DiskStore } from '../../server/index.js';
import type { TestServer } from '../helpers/server.js';

describe('abuse: inodes kept free (minFreeInodes)', () => {
  const perTest = serverPerTest('bigup-inodes-');

  async function openEmptyFile(
    server: TestServer,
  ): Promise<{ type: string; code?: number; message?: string }> {
    const client = await RawClientV2.connect(server.wsUrl);
    client.hello();
    client.open(1, { fileSize: 0, name: 'empty.bin' });
    const answer = await client.waitFor(
      (f) =>
        f.stream === 1 &&
        (f.message.type === 'accept' || f.message.type === 'error' || f.message.type === 'result'),
    );
    client.close();
    return answer.message.type === 'error'
      ? { type: 'error', code: answer.message.code, message: answer.message.message }
      : { type: answer.message.type };
  }

  it('below the reserve a new upload is refused with INSUFFICIENT_STORAGE naming the inodes', async () => {
    const free = (await statfs(await perTest.dir())).ffree;
    expect(free).toBeGreaterThan(0);
    const answer = await openEmptyFile(await perTest.server({ minFreeInodes: free + 1_000_000 }));
    expect(answer).toMatchObject({ type: 'error', code: Errors.INSUFFICIENT_STORAGE.code });
    expect(answer.message).toMatch(/free inodes/);
  });

  it('with the default reserve the same upload is served', async () => {
    expect((await openEmptyFile(await perTest.server())).type).toBe('accept');
  });
});

describe('abuse: inodes admitted within one measurement (minFreeInodes)', () => {
  it('a burst of uploads of deep folders counts its inodes against the reused measurement: the floor holds', async () => {
    const tmp = await makeTempDir('bigup-inodes-burst-');
    try {
      const free = (await statfs(tmp.path)).ffree;
      // Room for about 200 inodes above the floor; each upload below needs up to 3 files and 34
      // folders (files/<id>, 32 folders of its relative path, and the name).
      const store = new DiskStore({ dir: tmp.path, minFreeInodes: free - 200 });
      await store.init();
      let admitted = 0;
      let refused = '';
      for (let i = 0; i < 50; i++) {
        const id = i.toString(16).padStart(32, '0');
        try {
          const handle = await store.create({
            id,
            secretHash: '0'.repeat(64),
            fileSize: 0,
            chunkSize: 65_536,
            name: 'e.bin',
            contentType: '',
            metadata: { relativePath: `${Array(32).fill('d').join('/')}/e.bin` },
            createdAt: Date.now(),
          });
          await handle.close();
          admitted++;
        } catch (error) {
          refused = (error as Error).message;
          break;
        }
      }
      // Before: the 1 s measurement admitted all 50 (1,850 inodes promised past a 200 margin).
      expect(admitted).toBeLessThanOrEqual(200 / 37 + 1);
      expect(refused).toMatch(/minFreeInodes/);
      await store.close();
    } finally {
      await tmp.cleanup();
    }
  });
});
