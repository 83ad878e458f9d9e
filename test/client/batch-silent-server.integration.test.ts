/**
 * The batch path (a folder on one bigup.2 connection) against a server that goes silent while it
 * owes answers (BatchOptions.answerTimeout): the connection counts as lost, the files in
 * flight go back to the queue, and a new connection takes them. Before, the run waited forever.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createBatchUploader, fileEntry } from '../../client/node/index.js';
import { WsTransport } from '../../client/node/ws-transport.js';
import type { Transport } from '../../client/core/types.js';
import { serverPerTest } from '../helpers/server-per-test.js';

const fixture = serverPerTest('bigup-batch-silent-');

describe('batch uploader and a silent server', () => {
  it('the first connection hears nothing after WELCOME: it is given up after answerTimeout and the files go over a second one', async () => {
    const dir = await fixture.dir();
    const server = await fixture.server({}, 'data');
    const entries = [];
    for (let i = 0; i < 5; i++) {
      const path = join(dir, `f${i}.bin`);
      await writeFile(path, Buffer.alloc(10_000, i));
      entries.push(fileEntry(path, `f${i}.bin`));
    }
    const ws = new WsTransport();
    let connections = 0;
    // The first connection's messages after the first one (WELCOME) are lost, as from a server
    // whose storage hangs: nothing is answered.
    const silentFirst: Transport = {
      sendsHeaders: ws.sendsHeaders,
      connect(url, protocols, handlers, headers) {
        const silent = connections++ === 0;
        let heard = 0;
        return ws.connect(
          url,
          protocols,
          {
            ...handlers,
            onMessage: (data) => {
              if (!silent || heard++ === 0) handlers.onMessage(data);
            },
          },
          headers,
        );
      },
    };
    const batch = createBatchUploader({
      endpoint: server.wsUrl,
      transport: silentFirst,
      answerTimeout: 300,
      backoff: { initial: 10, max: 50, jitter: 0 },
    });
    const summary = await batch.run(entries);
    expect(summary).toMatchObject({ done: 5, failed: 0 });
    // The first connection given up; a loaded machine may give up a later one as well.
    expect(connections).toBeGreaterThanOrEqual(2);
  });
});
