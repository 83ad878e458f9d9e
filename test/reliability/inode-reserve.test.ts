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
