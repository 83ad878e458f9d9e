/**
 * Two sessions of one upload (two tabs of one page, sharing the resume store): the second RESUMEs
 * and takes the upload over, the first fails with TAKEN_OVER. Cancelling the first afterwards
 * (a user dismissing its row) must leave the second's upload alone: a RESUME to terminate it
 * would take it back and destroy it (SPEC.md 7.10).
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { MemoryResumeStore, createUploader } from '../../client/browser/index.js';
import { WsTransport } from '../../client/node/ws-transport.js';
import { storedLocation } from '../helpers/stored.js';
import { serverPerTest } from '../helpers/server-per-test.js';

const fixture = serverPerTest('bigup-taken-over-');

const MiB = 2 ** 20;

describe('an upload taken over by another session', () => {
  it('cancelling the session that lost it does not terminate it: the other one completes', async () => {
    const server = await fixture.server();
    const bytes = new Uint8Array(randomBytes(4 * MiB));
    const file = new Blob([bytes]);
    const resumeStore = new MemoryResumeStore();
    const session = (limitRate: number) =>
      createUploader({
        endpoint: server.wsUrl,
        file,
        transport: new WsTransport(),
        resumeStore,
        chunkSize: 256 * 1024,
        maxInFlightBytes: 512 * 1024,
        limitRate,
      });
    const first = session(1 * MiB);
    const firstOutcome = first.start();
    // Resumable once its record is saved (after ACCEPT) and some of it is acked.
    await new Promise<void>((resolve) =>
      first.on('progress', (p) => {
        if (p.bytesAcked >= 512 * 1024) resolve();
      }),
    );
    const second = session(2 * MiB);
    let secondResumed = false;
    second.on('start', (s) => (secondResumed = s.resumed));
    const secondOutcome = second.start();
    const lost = await firstOutcome;
    expect(lost.state).toBe('failed');
    if (lost.state === 'failed') expect(lost.error.name).toBe('TAKEN_OVER');
    await first.cancel();
    // The resume record is the second session's now: a reload of that tab resumes from it.
    expect(resumeStore.records.size).toBe(1);
    const won = await secondOutcome;
    expect(secondResumed).toBe(true);
    expect(won.state).toBe('done');
    if (won.state !== 'done') return;
    const stored = await readFile(await storedLocation(await fixture.dir(), won.result.uploadId));
    expect(stored.equals(bytes)).toBe(true);
  });
});
