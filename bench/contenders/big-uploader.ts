/**
 * Contender 4: big-uploader end to end: the real server through its CLI (`serve`, default settings
 * and --durable) and the Node client core that `send` drives, started behind the bench's gate.
 */
import { join } from 'node:path';
import { spawnGatedClient, type BenchChild } from '../proc.js';
import {
  NotAvailable,
  locateStored,
  startServer,
  type ProductServer,
  type SendRecord,
} from '../product.js';
import { busyCores, machineCpu, type MachineCpu } from '../machine.js';
import type { Contender, RunContext, RunOutcome } from '../types.js';

function ours(id: string, label: string, serverArgs: string[]): Contender {
  return {
    id,
    label,
    kind: 'ours',
    verifies: true,
    run: async (ctx: RunContext): Promise<RunOutcome> => {
      let server: ProductServer | undefined;
      let client: BenchChild | undefined;
      try {
        const dir = join(ctx.runDir, 'server');
        server = await startServer(ctx.repoRoot, dir, serverArgs);
        const serverChild = server.child;
        let before = serverChild.sample();
        let machineBefore: MachineCpu | undefined;
        // The client core `send` drives, in a gated peer: loaded, then the same warm-up as every
        // contender, then go (see spawnGatedClient).
        client = await spawnGatedClient(
          ctx.repoRoot,
          'bench/peers/bigup-client.ts',
          ['--url', server.url, '--file', ctx.source],
          async () => {
            await ctx.warm();
            before = serverChild.sample();
            machineBefore = machineCpu();
          },
        );
        const result = await client.waitForMessage(
          (m) => m.event === 'result' || m.event === 'error',
          ctx.timeoutMs,
        );
        const after = serverChild.sample();
        const busy = busyCores(machineBefore, machineCpu());
        if (result.event === 'error')
          return { status: 'failed', reason: `client: ${String(result.message)}` };
        const record: SendRecord = {
          id: String(result.id),
          name: String(result.name),
          size: Number(result.size),
        };
        const received = await locateStored(dir, record, ctx.source, ctx.size);
        if (!received)
          return { status: 'failed', reason: `no stored file of ${ctx.size} bytes under ${dir}` };
        const extra: Record<string, number> = {};
        for (const key of ['bytesSent', 'completionSeconds'])
          if (typeof result[key] === 'number') extra[key] = result[key];
        if (busy !== undefined) extra.busyCores = busy;
        return {
          status: 'ok',
          seconds: Number(result.seconds),
          bytes: ctx.size,
          serverCpuSeconds:
            before && after
              ? after.userSeconds + after.sysSeconds - before.userSeconds - before.sysSeconds
              : undefined,
          serverPeakRssBytes: after?.peakRssBytes,
          clientCpuSeconds: typeof result.cpuSeconds === 'number' ? result.cpuSeconds : undefined,
          clientPeakRssBytes:
            typeof result.peakRssBytes === 'number'
              ? result.peakRssBytes
              : client.lastSample?.peakRssBytes,
          received,
          extra,
        };
      } catch (error) {
        if (error instanceof NotAvailable)
          return { status: 'unavailable', reason: `not available yet (${error.message})` };
        return { status: 'failed', reason: error instanceof Error ? error.message : String(error) };
      } finally {
        await client?.stop();
        await server?.child.stop();
      }
    },
  };
}

export const oursDefault = ours('ours', 'big-uploader (default)', []);
export const oursDurable = ours('ours-durable', 'big-uploader --durable', ['--durable']);
