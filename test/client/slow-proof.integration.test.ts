/**
 * A CHALLENGE for a file the client takes longer to hash than the server waits (SPEC.md 16.10):
 * the server closes the connection with IDLE_TIMEOUT, the client opens again at once (no error,
 * no attempt counted: a slow disk is nobody's fault) and is challenged again, and answers from the
 * digest it was already computing instead of reading the file again from the start (which, taking
 * as long, would time out on every attempt).
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { blobSource } from '../../client/browser/blob-source.js';
import { createUploader } from '../../client/browser/index.js';
import type { FileSource } from '../../client/core/types.js';
import { WsTransport } from '../../client/node/ws-transport.js';
import { serverPerTest } from '../helpers/server-per-test.js';

const fixture = serverPerTest('bigup-slow-proof-');

const CHUNK = 256 * 1024;

describe('instant upload of a file slower to hash than the server waits', () => {
  it('the retried OPEN answers from the digest being computed: instant, the file read once for it', async () => {
    const server = await fixture.server({
      idleTimeout: 1000,
      heartbeatInterval: 60_000,
      instantUpload: 'address',
    });
    const bytes = new Uint8Array(randomBytes(8 * CHUNK));
    const upload = (file: FileSource | Blob) =>
      createUploader({
        endpoint: server.wsUrl,
        file,
        transport: new WsTransport(),
        resumeStore: false,
        chunkSize: CHUNK,
      });
    const first = await upload(new Blob([bytes])).start();
    expect(first.state).toBe('done');
    // The same content again, from a source whose whole-chunk reads take 300 ms each: hashing
    // the 8 chunks takes about 2.4 s, more than twice the server's wait for a PROOF.
    const source = blobSource(new Blob([bytes]), 'slow.bin');
    let wholeChunkReads = 0;
    const slow: FileSource = {
      ...source,
      read: async (start, end, target) => {
        if (end - start === CHUNK) {
          wholeChunkReads++;
          await delay(300);
        }
        return source.read(start, end, target);
      },
    };
    const second = upload(slow);
    const errors: string[] = [];
    second.on('error', (e) => errors.push(e.name));
    const infos: string[] = [];
    second.on('info', (i) => infos.push(i.message));
    const outcome = await second.start();
    expect(outcome.state).toBe('done');
    if (outcome.state === 'done') expect(outcome.result.instant).toBe(true);
    // The server's waits that ran out while the client hashed are neither errors nor attempts.
    expect(errors).toEqual([]);
    expect(infos.filter((i) => /still hashing/.test(i)).length).toBeGreaterThan(0);
    // One read of each chunk for the digest: no retry started hashing again.
    expect(wholeChunkReads).toBe(8);
  });
});
