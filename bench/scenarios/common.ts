/**
 * What the bench's further scenarios share (one file a scenario beside this one; index.ts lists
 * them for cli/bench.ts). Each scenario is driven through the product's CLI only, and either
 * produces its table or says exactly why it could not run (a stub CLI, a flag the CLI lacks, a
 * figure the CLI does not expose), so a reader never mistakes a gap for a result. Every loop and
 * connection count is capped.
 */
import { copyFile, open } from 'node:fs/promises';
import { join } from 'node:path';
import { mbPerSecond } from '../stats.js';
import { NotAvailable, startServer, type ProductServer, type SendRecord } from '../product.js';
import type { ScenarioResult } from '../types.js';

export const SCENARIO_IDS = [
  'resume',
  'completion',
  'concurrency',
  'sweep',
  'browser',
  'firefox',
  'scale',
] as const;
export type ScenarioId = (typeof SCENARIO_IDS)[number];

export interface ScenarioContext {
  repoRoot: string;
  source: string;
  size: number;
  /** A fresh temp dir for the scenario, deleted by the caller. */
  dir: string;
  timeoutMs: number;
  /** Our contender's median MB/s in this invocation, when it ran (for side-by-side figures). */
  oursMBps?: number;
  log(line: string): void;
}

export const MiB = 2 ** 20;
export const mb = (bytes: number, seconds: number): string =>
  mbPerSecond(bytes, seconds).toFixed(0);
const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** Run `fn` with a fresh product server; turns a stub CLI into a "skipped" scenario. */
export async function withServer(
  ctx: ScenarioContext,
  id: ScenarioId,
  title: string,
  fn: (server: ProductServer) => Promise<ScenarioResult>,
  serverArgs: string[] = [],
): Promise<ScenarioResult> {
  let server: ProductServer | undefined;
  try {
    server = await startServer(ctx.repoRoot, join(ctx.dir, 'server'), serverArgs);
    return await fn(server);
  } catch (error) {
    if (error instanceof NotAvailable)
      return {
        id,
        title,
        status: 'skipped',
        reason: `big-uploader is not available yet (${error.message})`,
      };
    return { id, title, status: 'failed', reason: errorText(error) };
  } finally {
    await server?.child.stop();
  }
}

/** A file of `bytes` made of the source's bytes (repeated if needed), in `dir`. Caller deletes it. */
export async function makeFile(ctx: ScenarioContext, name: string, bytes: number): Promise<string> {
  const path = join(ctx.dir, name);
  if (bytes === ctx.size) {
    await copyFile(ctx.source, path);
    return path;
  }
  const src = await open(ctx.source, 'r');
  const dst = await open(path, 'w');
  try {
    const buf = Buffer.allocUnsafe(8 * MiB);
    for (let offset = 0; offset < bytes;) {
      const n = Math.min(buf.length, bytes - offset, ctx.size - (offset % ctx.size));
      const { bytesRead } = await src.read(buf, 0, n, offset % ctx.size);
      await dst.write(buf, 0, bytesRead, offset);
      offset += bytesRead;
    }
  } finally {
    await src.close();
    await dst.close();
  }
  return path;
}

export function recordFor(records: SendRecord[], size: number): SendRecord | undefined {
  return records.find((r) => r.size === size) ?? records[0];
}
