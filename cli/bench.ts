/**
 * `big-uploader bench`: run the benchmark harness (bench/) and print its table.
 * This file only parses flags and writes outputs; the measuring lives in bench/.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { selectContenders, GROUPS, ALL_CONTENDERS } from '../bench/contenders/index.js';
import { ensureSource } from '../bench/files.js';
import { runContenders } from '../bench/harness.js';
import {
  renderJson,
  keptWriteUps,
  renderResultsMarkdown,
  renderScenario,
  renderSvg,
  renderTable,
  renderTargets,
} from '../bench/report.js';
import { SCENARIOS, SCENARIO_IDS, type ScenarioId } from '../bench/scenarios/index.js';
import type { ScenarioResult } from '../bench/types.js';
import { parseSize, parseDuration, UsageError } from './units.js';

const HELP = `Usage: big-uploader bench [options]

Measures big-uploader against the machine's limits and peer stacks on 127.0.0.1, each
contender in turn on one generated file (cached in bench/.work/), alternating runs.

Options:
  --size SIZE        file size (default 256MiB; e.g. 1GiB)
  --runs N           runs per contender (default 3, max 50)
  --only LIST        comma-separated contenders or groups (default: all)
                     groups: ${Object.keys(GROUPS).join(', ')}
                     ids: ${ALL_CONTENDERS.map((c) => c.id).join(', ')}
  --resume, --completion, --concurrency, --sweep, --browser, --firefox, --scale
                     further scenarios (--browser: Chromium, --firefox: the same
                     comparison in Firefox ESR); a full run (no --only) runs all of them
                     unless some are named or --no-scenarios is given
  --no-scenarios     contenders only
  --json             print the JSON document instead of the markdown table
  --out DIR          write RESULTS.md, results.svg and results.json into DIR
                     (a full run writes them into bench/ by default)
  --no-write         write no files
  --warm SIZE        scratch bytes written+deleted before each run (default 2GiB, 0 = off)
  --timeout DURATION cap on one run (default 10m)
  --note TEXT        a line put at the top of RESULTS.md (e.g. the run's conditions); repeatable
  -h, --help         this text
`;

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The commit measured, and whether the working tree differed from it: figures belong to code. */
function sourceRevision(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd: repoRoot,
      encoding: 'utf8',
    }).trim();
    // The bench's own output files do not make the measured code dirty.
    const dirty =
      execFileSync(
        'git',
        [
          'status',
          '--porcelain',
          '--untracked-files=no',
          '--',
          '.',
          ':!bench/RESULTS.md',
          ':!bench/results.json',
          ':!bench/results.svg',
        ],
        { cwd: repoRoot, encoding: 'utf8' },
      ).trim() !== '';
    return dirty ? `${head} + uncommitted changes` : head;
  } catch {
    return 'unknown (not a git checkout)';
  }
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      size: { type: 'string' },
      runs: { type: 'string' },
      only: { type: 'string' },
      json: { type: 'boolean' },
      out: { type: 'string' },
      'no-write': { type: 'boolean' },
      'no-scenarios': { type: 'boolean' },
      warm: { type: 'string' },
      timeout: { type: 'string' },
      resume: { type: 'boolean' },
      completion: { type: 'boolean' },
      concurrency: { type: 'boolean' },
      sweep: { type: 'boolean' },
      browser: { type: 'boolean' },
      firefox: { type: 'boolean' },
      scale: { type: 'boolean' },
      note: { type: 'string', multiple: true },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const size = parseSize(values.size ?? '256MiB', '--size');
  if (size < 1) throw new UsageError('--size: must be at least 1 byte');
  const runs = Number(values.runs ?? '3');
  if (!Number.isInteger(runs) || runs < 1 || runs > 50)
    throw new UsageError(`--runs: "${values.runs}" is not an integer from 1 to 50`);
  const only = values.only
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const { selected, unknown } = selectContenders(only);
  if (unknown.length) throw new UsageError(`--only: unknown contender(s) ${unknown.join(', ')}`);
  const warmBytes = parseSize(values.warm ?? '2GiB', '--warm');
  const timeoutMs = parseDuration(values.timeout ?? '10m', '--timeout');

  const named = SCENARIO_IDS.filter((id) => values[id] === true);
  const full = !only || only.length === 0;
  const scenarioIds: ScenarioId[] = values['no-scenarios']
    ? []
    : named.length
      ? named
      : full
        ? [...SCENARIO_IDS]
        : [];
  const outDir = values['no-write']
    ? undefined
    : values.out
      ? resolve(values.out)
      : full
        ? join(repoRoot, 'bench')
        : undefined;

  // Progress goes to stderr so stdout stays the table (or the JSON) alone.
  const log = (line: string): void => {
    process.stderr.write(`bench: ${line}\n`);
  };
  const workDir = join(repoRoot, 'bench', '.work');
  const result = await runContenders(selected, {
    repoRoot,
    size,
    runs,
    workDir,
    warmBytes,
    timeoutMs,
    log,
  });

  const scenarios: ScenarioResult[] = [];
  const oursMBps = result.contenders.find((c) => c.id === 'ours')?.mbps?.median;
  for (const id of scenarioIds) {
    log(`scenario ${id}`);
    const dir = await mkdtemp(join(os.tmpdir(), `bench-${id}-`));
    try {
      const source = await ensureSource(workDir, size, log);
      scenarios.push(
        await SCENARIOS[id]({ repoRoot, source, size, dir, timeoutMs, oursMBps, log }),
      );
    } catch (error) {
      scenarios.push({
        id,
        title: id,
        status: 'failed',
        reason: error instanceof Error ? error.message : String(error),
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    const last = scenarios[scenarios.length - 1];
    log(`  ${last.status}${last.reason ? `: ${last.reason}` : ''}`);
  }

  const ours = result.contenders.filter((c) => c.kind === 'ours');
  const banner: string[] = [...(values.note ?? [])];
  if (ours.length === 0)
    banner.push('Our contender was not part of this run (--only): this is not an official result.');
  else if (ours.some((c) => c.status !== 'ok')) {
    banner.push(
      `Our contender could not run (${ours.map((c) => `${c.id}: ${c.reason ?? c.status}`).join('; ')}): this is not an official result; it will be regenerated.`,
    );
  }

  if (values.json) process.stdout.write(renderJson(result, scenarios));
  else {
    const parts = [renderTable(result), '', renderTargets(result)];
    for (const s of scenarios) parts.push('', renderScenario(s));
    process.stdout.write(`${parts.join('\n')}\n`);
  }
  if (outDir) {
    await mkdir(outDir, { recursive: true });
    const resultsFile = join(outDir, 'RESULTS.md');
    const kept = keptWriteUps(await readFile(resultsFile, 'utf8').catch(() => ''));
    await writeFile(
      resultsFile,
      renderResultsMarkdown(result, scenarios, 'results.svg', banner, sourceRevision(), kept),
    );
    await writeFile(join(outDir, 'results.svg'), renderSvg(result, scenarios));
    await writeFile(join(outDir, 'results.json'), renderJson(result, scenarios));
    log(`wrote ${join(outDir, 'RESULTS.md')}, results.svg, results.json`);
  }
  // Exit 1 if a contender failed its byte check or crashed: CI can gate on it. Not-yet-available is not a failure.
  return result.contenders.some((c) => c.status === 'failed') ||
    scenarios.some((s) => s.status === 'failed')
    ? 1
    : 0;
}
