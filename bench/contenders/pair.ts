/**
 * The common shape of a contender made of two bench peers: start the server process, wait until it
 * listens, start the client process, and measure the server's CPU between just before the client
 * starts and just after it reports (so the server's start-up is not counted).
 */
import { spawnGatedClient, spawnPeer, type BenchChild, type ChildMessage } from '../proc.js';
import { busyCores, machineCpu, type MachineCpu } from '../machine.js';
import type { RunContext, RunOutcome } from '../types.js';

export interface PairSpec {
  server: { script: string; args: string[] };
  client: (port: number) => { script: string; args: string[] };
  /** Locate the received file once the client has reported. */
  received?: (result: ChildMessage) => Promise<string | undefined> | string | undefined;
  /** Extra numeric fields of the client's result to keep (e.g. mergeSeconds). */
  extra?: string[];
}

const isResult = (m: ChildMessage): boolean => m.event === 'result' || m.event === 'error';

export async function runPair(ctx: RunContext, spec: PairSpec): Promise<RunOutcome> {
  let server: BenchChild | undefined;
  let client: BenchChild | undefined;
  try {
    server = spawnPeer(ctx.repoRoot, spec.server.script, spec.server.args);
    const listening = await server.waitForMessage(
      (m) => m.event === 'listening' || m.event === 'error',
      30_000,
    );
    if (listening.event === 'error')
      return { status: 'failed', reason: `server: ${String(listening.message)}` };
    const port = Number(listening.port);
    const c = spec.client(port);
    let before = server.sample();
    let machineBefore: MachineCpu | undefined;
    client = await spawnGatedClient(ctx.repoRoot, c.script, c.args, async () => {
      await ctx.warm();
      before = server!.sample();
      machineBefore = machineCpu();
    });
    const result = await client.waitForMessage(isResult, ctx.timeoutMs);
    const after = server.sample();
    const busy = busyCores(machineBefore, machineCpu());
    if (result.event === 'error')
      return { status: 'failed', reason: `client: ${String(result.message)}` };
    const extra: Record<string, number> = {};
    for (const key of spec.extra ?? [])
      if (typeof result[key] === 'number') extra[key] = result[key];
    if (busy !== undefined) extra.busyCores = busy;
    return {
      status: 'ok',
      seconds: Number(result.seconds),
      bytes: Number(result.bytes),
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
      received: spec.received ? await spec.received(result) : undefined,
      extra,
    };
  } catch (error) {
    return { status: 'failed', reason: error instanceof Error ? error.message : String(error) };
  } finally {
    await Promise.all([client?.stop(), server?.stop()]);
  }
}
