/** Contenders 5-7: the stacks people would otherwise use, each run the way its documentation runs it. */
import { join } from 'node:path';
import { findFilesOfSize } from '../files.js';
import type { Contender, RunContext } from '../types.js';
import { runPair } from './pair.js';

function tus(id: string, label: string, chunk: number): Contender {
  return {
    id,
    label,
    kind: 'peer',
    verifies: true,
    run: (ctx: RunContext) => {
      const dir = join(ctx.runDir, 'tus');
      return runPair(ctx, {
        server: { script: 'bench/peers/tus-server.ts', args: ['--dir', dir] },
        client: (port) => ({
          script: 'bench/peers/tus-client.ts',
          args: [
            '--endpoint',
            `http://127.0.0.1:${port}/files`,
            '--file',
            ctx.source,
            '--chunk',
            String(chunk),
          ],
        }),
        // The file store names the data file by upload id, next to a JSON sidecar of another size.
        received: async () => (await findFilesOfSize(dir, ctx.size, 1))[0],
      });
    },
  };
}

export const tusOnePatch = tus('tus', 'tus: @tus/server + tus-js-client, one PATCH (default)', 0);
export const tus8m = tus('tus-8m', 'tus: 8 MiB chunks', 8 * 2 ** 20);

export const naive: Contender = {
  id: 'naive',
  label: 'Naive recipe: Express + Multer, 1 MiB multipart POSTs + merge',
  kind: 'peer',
  verifies: true,
  run: (ctx: RunContext) =>
    runPair(ctx, {
      server: { script: 'bench/peers/naive-server.ts', args: ['--dir', join(ctx.runDir, 'naive')] },
      client: (port) => ({
        script: 'bench/peers/naive-client.ts',
        args: [
          '--url',
          `http://127.0.0.1:${port}`,
          '--file',
          ctx.source,
          '--chunk',
          String(2 ** 20),
        ],
      }),
      received: (result) => (typeof result.path === 'string' ? result.path : undefined),
      extra: ['mergeSeconds'],
    }),
};

export const put: Contender = {
  id: 'put',
  label: 'Plain HTTP PUT streamed to a file (no resume)',
  kind: 'peer',
  verifies: true,
  run: (ctx: RunContext) => {
    const dest = join(ctx.runDir, 'received.bin');
    return runPair(ctx, {
      server: { script: 'bench/peers/put-server.ts', args: ['--file', dest] },
      client: (port) => ({
        script: 'bench/peers/put-client.ts',
        args: ['--url', `http://127.0.0.1:${port}/upload`, '--file', ctx.source],
      }),
      received: () => dest,
    });
  },
};
