/**
 * The bench's orchestration: one source file, the same warm-up before every run, contenders
 * alternated run by run (so a slow minute of the machine hits everyone, not one contender's three
 * runs), each received file compared byte for byte outside the timing, then medians and ranges.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { compareFiles, ensureSource, warmUp } from './files.js';
import { describeMachine, type MachineInfo } from './machine.js';
import { cpuPerGiB, mbPerSecond, spread, type Spread } from './stats.js';
import type { Contender, ContenderKind, RunOutcome } from './types.js';

/** The contender every ratio is taken against: the network + disk limit. */
export const REFERENCE_ID = 'limit-netdisk';

export interface BenchOptions {
  repoRoot: string;
  size: number;
  runs: number;
  /** Where the source is cached (bench/.work). */
  workDir: string;
  /** Parent of per-run temp dirs. */
  tmpRoot?: string;
  /** Scratch bytes written and deleted before each run; 0 skips that part of the warm-up. */
  warmBytes: number;
  /** Cap on one run. */
  timeoutMs: number;
  log(line: string): void;
}

/** What one run produced, after the harness's own check of the received file. */
export type RunRecord = RunOutcome & { run: number };

export interface ContenderSummary {
  id: string;
  label: string;
  kind: ContenderKind;
  status: 'ok' | 'failed' | 'unavailable';
  /** Why it failed or could not run. */
  reason?: string;
  runs: number;
  mbps?: Spread;
  /** Median MB/s divided by the reference's median MB/s (same invocation). */
  ratioToReference?: number;
  serverCpuPerGiB?: Spread;
  clientCpuPerGiB?: Spread;
  /** Peaks over all runs, MiB. */
  serverPeakRssMiB?: number;
  clientPeakRssMiB?: number;
  /** Contender-specific figures, e.g. mergeSeconds. */
  extra: Record<string, Spread>;
  notes: string[];
}

export interface BenchResult {
  machine: MachineInfo;
  size: number;
  runs: number;
  warmBytes: number;
  startedAt: string;
  seconds: number;
  contenders: ContenderSummary[];
  records: Record<string, RunRecord[]>;
}

const MiB = 2 ** 20;

/**
 * Reduce one contender's runs to its row. Pure, so the test can feed it made-up runs.
 * Any failed run makes the whole contender FAILED, without figures: a fast wrong answer is no answer.
 */
export function summarize(
  contender: Pick<Contender, 'id' | 'label' | 'kind'>,
  records: readonly RunRecord[],
): ContenderSummary {
  const base = {
    id: contender.id,
    label: contender.label,
    kind: contender.kind,
    runs: records.length,
    extra: {},
    notes: [] as string[],
  };
  const failed = records.find((r) => r.status === 'failed');
  if (failed && failed.status === 'failed')
    return { ...base, status: 'failed', reason: failed.reason };
  const unavailable = records.find((r) => r.status === 'unavailable');
  if (unavailable && unavailable.status === 'unavailable')
    return { ...base, status: 'unavailable', reason: unavailable.reason };
  const ok = records.filter((r): r is Extract<RunRecord, { status: 'ok' }> => r.status === 'ok');
  if (ok.length === 0) return { ...base, status: 'unavailable', reason: 'no runs' };
  const peak = (values: (number | undefined)[]): number | undefined => {
    const finite = values.filter((v): v is number => typeof v === 'number' && v > 0);
    return finite.length ? Math.max(...finite) / MiB : undefined;
  };
  const extra: Record<string, Spread> = {};
  for (const key of new Set(ok.flatMap((r) => Object.keys(r.extra ?? {})))) {
    const s = spread(ok.map((r) => r.extra?.[key]));
    if (s) extra[key] = s;
  }
  const notes = [...new Set(ok.map((r) => r.timingNote).filter((n): n is string => !!n))];
  return {
    ...base,
    status: 'ok',
    mbps: spread(ok.map((r) => mbPerSecond(r.bytes, r.seconds))),
    serverCpuPerGiB: spread(
      ok.map((r) =>
        r.serverCpuSeconds === undefined ? undefined : cpuPerGiB(r.serverCpuSeconds, r.bytes),
      ),
    ),
    clientCpuPerGiB: spread(
      ok.map((r) =>
        r.clientCpuSeconds === undefined ? undefined : cpuPerGiB(r.clientCpuSeconds, r.bytes),
      ),
    ),
    serverPeakRssMiB: peak(ok.map((r) => r.serverPeakRssBytes)),
    clientPeakRssMiB: peak(ok.map((r) => r.clientPeakRssBytes)),
    extra,
    notes,
  };
}

/** Fill in each row's ratio to the reference row, when the reference ran. */
export function addRatios(rows: ContenderSummary[]): void {
  const ref = rows.find((r) => r.id === REFERENCE_ID)?.mbps?.median;
  for (const row of rows) if (ref && row.mbps) row.ratioToReference = row.mbps.median / ref;
}

/** Check a run's received file against the source; a mismatch turns the run into a failure. */
export async function verifyRun(
  source: string,
  outcome: RunOutcome,
  verifies: boolean,
): Promise<RunOutcome> {
  if (outcome.status !== 'ok' || !verifies) return outcome;
  if (!outcome.received) return { status: 'failed', reason: 'no received file to compare' };
  const cmp = await compareFiles(source, outcome.received);
  return cmp.identical
    ? outcome
    : { status: 'failed', reason: `received file differs from the source: ${cmp.reason}` };
}

/** Run every contender `runs` times, alternating, and summarize. */
export async function runContenders(
  contenders: readonly Contender[],
  options: BenchOptions,
): Promise<BenchResult> {
  const startedAt = new Date().toISOString();
  const t0 = performance.now();
  const machine = describeMachine(options.tmpRoot ?? os.tmpdir());
  const source = await ensureSource(options.workDir, options.size, options.log);
  const records: Record<string, RunRecord[]> = {};
  for (const c of contenders) records[c.id] = [];
  const runs = Math.max(1, Math.min(options.runs, 50));
  for (let run = 1; run <= runs; run++) {
    for (const c of contenders) {
      const mine = records[c.id];
      // A contender that failed or cannot run will not do better next round; spend the time elsewhere.
      if (mine.some((r) => r.status !== 'ok')) continue;
      const runDir = await mkdtemp(join(options.tmpRoot ?? os.tmpdir(), `bench-${c.id}-`));
      try {
        await warmUp(source, runDir, options.warmBytes);
        options.log(`run ${run}/${runs}: ${c.id}`);
        let outcome: RunOutcome;
        try {
          outcome = await c.run({
            repoRoot: options.repoRoot,
            source,
            size: options.size,
            runDir,
            timeoutMs: options.timeoutMs,
            log: options.log,
            warm: () => warmUp(source, runDir, options.warmBytes),
          });
          outcome = await verifyRun(source, outcome, c.verifies);
        } catch (error) {
          outcome = {
            status: 'failed',
            reason: error instanceof Error ? error.message : String(error),
          };
        }
        mine.push({ ...outcome, run });
        options.log(
          outcome.status === 'ok'
            ? `  ${mbPerSecond(outcome.bytes, outcome.seconds).toFixed(0)} MB/s (${outcome.seconds.toFixed(2)} s)`
            : `  ${outcome.status}: ${outcome.reason}`,
        );
      } finally {
        await rm(runDir, { recursive: true, force: true });
      }
    }
  }
  const rows = contenders.map((c) => summarize(c, records[c.id]));
  addRatios(rows);
  return {
    machine,
    size: options.size,
    runs,
    warmBytes: options.warmBytes,
    startedAt,
    seconds: (performance.now() - t0) / 1000,
    contenders: rows,
    records,
  };
}
