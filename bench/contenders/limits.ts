/** Contenders 1-3: what the machine allows, so every other figure can be read as a fraction of it. */
import { join } from 'node:path';
import { spawnPeer } from '../proc.js';
import type { Contender, RunContext, RunOutcome } from '../types.js';
import { runPair } from './pair.js';

/** Message size and messages in flight of the limit pipes: the same as our client's defaults (4 MiB x 8 = 32 MiB). */
export const LIMIT_CHUNK = 4 * 2 ** 20;
export const LIMIT_WINDOW = 8;

function wsPipe(
  id: string,
  label: string,
  mode: 'discard' | 'write',
  chunk = LIMIT_CHUNK,
  window = LIMIT_WINDOW,
): Contender {
  return {
    id,
    label,
    kind: 'limit',
    verifies: mode === 'write',
    run: (ctx: RunContext) => {
      const dest = join(ctx.runDir, 'received.bin');
      return runPair(ctx, {
        server: {
          script: 'bench/peers/ws-server.ts',
          args: ['--mode', mode, ...(mode === 'write' ? ['--file', dest] : [])],
        },
        client: (port) => ({
          script: 'bench/peers/ws-client.ts',
          args: [
            '--url',
            `ws://127.0.0.1:${port}/`,
            '--file',
            ctx.source,
            '--chunk',
            String(chunk),
            '--window',
            String(window),
          ],
        }),
        received: () => (mode === 'write' ? dest : undefined),
      });
    },
  };
}

function diskAlone(id: string, label: string, sync: boolean): Contender {
  return {
    id,
    label,
    kind: 'limit',
    verifies: true,
    run: async (ctx: RunContext): Promise<RunOutcome> => {
      // The writer holds the whole file in memory; past this size it would measure swapping, not the disk.
      if (ctx.size > 8 * 2 ** 30)
        return { status: 'unavailable', reason: 'file larger than 8 GiB: would not fit in memory' };
      const dest = join(ctx.runDir, 'received.bin');
      const child = spawnPeer(ctx.repoRoot, 'bench/peers/disk-writer.ts', [
        '--source',
        ctx.source,
        '--dest',
        dest,
        '--chunk',
        String(LIMIT_CHUNK),
        ...(sync ? ['--sync'] : []),
      ]);
      try {
        const result = await child.waitForMessage(
          (m) => m.event === 'result' || m.event === 'error',
          ctx.timeoutMs,
        );
        if (result.event === 'error') return { status: 'failed', reason: String(result.message) };
        // One process is both sides: its CPU is the "server" CPU; its RSS is the file it holds, so not reported.
        return {
          status: 'ok',
          seconds: Number(result.seconds),
          bytes: Number(result.bytes),
          serverCpuSeconds: Number(result.cpuSeconds),
          received: dest,
        };
      } catch (error) {
        return { status: 'failed', reason: error instanceof Error ? error.message : String(error) };
      } finally {
        await child.stop();
      }
    },
  };
}

export const limitNet = wsPipe(
  'limit-net',
  'Limit: ws pipe, discard (4 MiB x8, zero mask)',
  'discard',
);
/** The reference every ratio is taken against. */
export const limitNetDisk = wsPipe(
  'limit-netdisk',
  'Limit: ws pipe + positional write (4 MiB x8)',
  'write',
);
export const limitDisk = diskAlone(
  'limit-disk',
  'Limit: disk, positional 4 MiB writes (page cache)',
  false,
);
export const limitDiskSync = diskAlone(
  'limit-disk-sync',
  'Limit: disk + final fdatasync (device rate)',
  true,
);

export { wsPipe };
