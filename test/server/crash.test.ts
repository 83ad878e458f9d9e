import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { bytesToHex, type ByteRange } from '../../protocol/index.js';
import { RawClient, chunksOf, missingChunks, sendChunks } from '../helpers/protocol-client.js';
import { startChildServer, type ChildServer } from '../helpers/server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

const CHUNK = 256 * 1024;

describe('server process killed with SIGKILL', () => {
  let tmp: TempDir;
  let child: ChildServer | undefined;

  beforeEach(async () => {
    tmp = await makeTempDir();
  });
  afterEach(async () => {
    child?.kill('SIGKILL');
    await child?.exited;
    await tmp.cleanup();
  });

  it('loses no acked range across several kill -9 at random moments', async () => {
    const data = randomBytes(48 * 1024 * 1024);
    const all = chunksOf(data.byteLength, CHUNK);
    const everAcked: ByteRange[] = [];
    let upload: { id: Uint8Array; secret: Uint8Array } | undefined;
    const kills = 4;
    for (let round = 0; round <= kills; round++) {
      child = await startChildServer(['--dir', tmp.path]);
      const client = await RawClient.connect(child.wsUrl);
      let accept;
      if (!upload) {
        client.open({ fileSize: data.byteLength, chunkSize: CHUNK, name: 'crash.bin' });
        accept = await client.expect('accept');
        upload = { id: accept.uploadId, secret: accept.secret };
      } else {
        client.resume(upload.id, upload.secret);
        accept = await client.expect('accept');
        // The core promise: every range acked before any crash is still acked.
        for (const r of everAcked) {
          expect(
            accept.ranges.some((s) => s.start <= r.start && r.end <= s.end),
            `acked [${r.start}, ${r.end}) lost after kill ${round}`,
          ).toBe(true);
        }
      }
      const missing = missingChunks(data.byteLength, CHUNK, accept.ranges);
      if (round < kills) {
        // Kill at a random moment while chunks are in flight (after a random share of what is left).
        const killAfter = Math.floor(Math.random() * Math.min(missing.length, 40) + 1) * CHUNK;
        const victim = child;
        const { acked } = await sendChunks(client, accept, data, missing, {
          timeoutMs: 5000,
          onAck: (bytes) => {
            if (bytes >= killAfter) victim.kill('SIGKILL');
          },
        });
        everAcked.push(...acked);
        // Under load the send can end before the kill point (a 5 s quiet spell, a refused chunk):
        // kill anyway, or the round would wait forever for a process nobody stopped.
        victim.kill('SIGKILL');
        await victim.exited;
        client.destroy();
      } else {
        const { errors } = await sendChunks(client, accept, data, missing, { timeoutMs: 30_000 });
        expect(errors).toEqual([]);
        client.complete();
        await client.expect('result');
        client.close();
      }
    }
    const stored = await readFile(join(tmp.path, 'files', bytesToHex(upload!.id), 'crash.bin'));
    expect(stored.equals(data)).toBe(true);
    expect(all.length).toBe(192);
  }, 180_000);

  it('exits promptly on SIGTERM after telling clients SHUTTING_DOWN', async () => {
    child = await startChildServer(['--dir', tmp.path]);
    const client = await RawClient.connect(child.wsUrl);
    client.open({ fileSize: 10 });
    await client.expect('accept');
    const started = Date.now();
    child.kill('SIGTERM');
    const error = await client.expect('error');
    expect(error.code).toBe(0x0304);
    expect((await client.closed).code).toBe(1001);
    expect(await child.exited).toBe(0);
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
