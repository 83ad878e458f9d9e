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

/** The client process a contender drives against our server. */
type ClientFor = (server: ProductServer, ctx: RunContext) => { script: string; args: string[] };

/** The client core `send` drives. */
const bigupClient: ClientFor = (server, ctx) => ({
  script: 'bench/peers/bigup-client.ts',
  args: ['--url', server.url, '--file', ctx.source],
});

function ours(
  id: string,
  label: string,
  serverArgs: string[],
  clientFor: ClientFor = bigupClient,
): Contender {
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
        // The client in a gated peer: loaded, then the same warm-up as every contender, then go
        // (see spawnGatedClient).
        const spec = clientFor(server, ctx);
        client = await spawnGatedClient(ctx.repoRoot, spec.script, spec.args, async () => {
          await ctx.warm();
          before = serverChild.sample();
          machineBefore = machineCpu();
        });
        const result = await client.waitForMessage(
          (m) => m.event === 'result' || m.event === 'error',
          ctx.timeoutMs,
        );
        const after = serverChild.sample();
        const busy = busyCores(machineBefore, machineCpu());
        if (result.event === 'error')
          return { status: 'failed', reason: `client: ${String(result.message)}` };
        // A tus client reports no id (its upload URL ends with it) and no name: found by size.
        const record: SendRecord | undefined =
          typeof result.id === 'string'
            ? { id: result.id, name: String(result.name), size: Number(result.size) }
            : undefined;
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
/** Issue 18: the tus client users run, against our tus endpoint (same client as contender `tus`). */
export const tusToOurs = ours(
  'tus-ours',
  'tus-js-client, one PATCH (default) -> big-uploader /files/',
  [],
  (server, ctx) => ({
    script: 'bench/peers/tus-client.ts',
    args: [
      '--endpoint',
      `http://127.0.0.1:${server.port}/files/`,
      '--file',
      ctx.source,
      '--chunk',
      '0',
    ],
  }),
);
