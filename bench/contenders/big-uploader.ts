/** Contender 4: big-uploader end to end, through its CLI, default settings and with --durable. */
import { join } from 'node:path';
import { NotAvailable, locateStored, runSend, startServer, type ProductServer } from '../product.js';
import type { Contender, RunContext, RunOutcome } from '../types.js';

function ours(id: string, label: string, serverArgs: string[]): Contender {
  return {
    id,
    label,
    kind: 'ours',
    verifies: true,
    run: async (ctx: RunContext): Promise<RunOutcome> => {
      let server: ProductServer | undefined;
      try {
        const dir = join(ctx.runDir, 'server');
        server = await startServer(ctx.repoRoot, dir, serverArgs);
        const before = server.child.sample();
        const sent = await runSend(ctx.repoRoot, [ctx.source], server.url, join(ctx.runDir, 'client'), [], ctx.timeoutMs);
        const after = server.child.sample();
        if (sent.code !== 0) {
          return { status: 'failed', reason: `send exited ${sent.code}: ${sent.child.stderr.trim().slice(-400)}` };
        }
        const record = sent.records.find((r) => r.size === ctx.size) ?? sent.records[0];
        // The client's own figure runs from connect to the server's final reply, without the
        // process start-up; the wall time is only a fallback (and says so).
        const reported = typeof record?.seconds === 'number' && record.seconds > 0 ? record.seconds : undefined;
        const received = await locateStored(dir, record, ctx.source, ctx.size);
        if (!received) return { status: 'failed', reason: `no stored file of ${ctx.size} bytes under ${dir}` };
        return {
          status: 'ok',
          seconds: reported ?? sent.wallSeconds,
          bytes: ctx.size,
          serverCpuSeconds: before && after ? after.userSeconds + after.sysSeconds - before.userSeconds - before.sysSeconds : undefined,
          serverPeakRssBytes: after?.peakRssBytes,
          clientPeakRssBytes: sent.child.lastSample?.peakRssBytes,
          received,
          extra: typeof record?.bytesSent === 'number' ? { bytesSent: record.bytesSent } : {},
          timingNote: reported ? undefined : 'send --json gave no seconds: wall time of the send process, start-up included',
        };
      } catch (error) {
        if (error instanceof NotAvailable) return { status: 'unavailable', reason: `not available yet (${error.message})` };
        return { status: 'failed', reason: error instanceof Error ? error.message : String(error) };
      } finally {
        await server?.child.stop();
      }
    },
  };
}

export const oursDefault = ours('ours', 'big-uploader (default)', []);
export const oursDurable = ours('ours-durable', 'big-uploader --durable', ['--durable']);
