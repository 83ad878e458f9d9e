/**
 * A transport whose connect() throws (a browser refusing ws:// from an https page, a blocked port:
 * SecurityError at `new WebSocket`) ends the run with BAD_ENDPOINT instead of leaving it waiting
 * for a close that never comes.
 */
import { describe, expect, it } from 'vitest';
import { createUploader } from '../../client/browser/index.js';
import type { Transport } from '../../client/core/types.js';

const refusing: Transport = {
  sendsHeaders: false,
  connect() {
    throw new Error('SecurityError: insecure WebSocket connection from a page loaded over HTTPS');
  },
};

describe('a transport that throws in connect()', () => {
  it('fails the upload with BAD_ENDPOINT', async () => {
    const uploader = createUploader({
      endpoint: 'ws://127.0.0.1:9/upload',
      file: new Blob([new Uint8Array(1000)]),
      transport: refusing,
      resumeStore: false,
    });
    const errors: string[] = [];
    uploader.on('error', (e) => errors.push(e.name));
    const outcome = await uploader.start();
    expect(outcome.state).toBe('failed');
    if (outcome.state === 'failed') {
      expect(outcome.error.name).toBe('BAD_ENDPOINT');
      expect(outcome.error.message).toMatch(/SecurityError/);
    }
    expect(errors).toEqual(['BAD_ENDPOINT']);
    // And a cancel afterwards settles.
    await uploader.cancel();
  });
});
