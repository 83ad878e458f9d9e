/** The contract between the harness and each contender. */

/** What a contender gets for one run. */
export interface RunContext {
  repoRoot: string;
  /** The generated source file, already in page cache. */
  source: string;
  size: number;
  /** A fresh directory for this run only; the harness deletes it afterwards. */
  runDir: string;
  /** Hard cap on one run, so a hung contender cannot hold the bench forever. */
  timeoutMs: number;
  log(line: string): void;
  /** The warm-up, to run again right before a timed transfer starts (see spawnGatedClient). */
  warm(): Promise<void>;
}

/** Figures of one successful run. CPU and RSS are undefined when not measurable, never guessed. */
export interface RunMeasure {
  seconds: number;
  bytes: number;
  serverCpuSeconds?: number;
  /** The client process's own CPU (user + system) over the timed transfer, as it reported it. */
  clientCpuSeconds?: number;
  serverPeakRssBytes?: number;
  clientPeakRssBytes?: number;
  /** Where the received file is, for the byte comparison (outside the timing). */
  received?: string;
  /** Contender-specific figures (e.g. the naive recipe's merge seconds). */
  extra?: Record<string, number>;
  /** How the time was taken when it differs from the usual connect-to-final-reply. */
  timingNote?: string;
}

export type RunOutcome =
  | ({ status: 'ok' } & RunMeasure)
  | { status: 'unavailable'; reason: string }
  | { status: 'failed'; reason: string };

export type ContenderKind = 'limit' | 'ours' | 'peer';

export interface Contender {
  /** Stable id used by --only and in JSON. */
  id: string;
  label: string;
  kind: ContenderKind;
  /** Whether the contender writes a file the harness must compare with the source. */
  verifies: boolean;
  run(ctx: RunContext): Promise<RunOutcome>;
}

/** A further scenario (resume, completion, concurrency, sweep, browser): a small table, or why it could not run. */
export interface ScenarioResult {
  id: string;
  title: string;
  status: 'ok' | 'skipped' | 'failed';
  /** Why it was skipped or failed, in words a reader can act on. */
  reason?: string;
  headers?: string[];
  rows?: string[][];
  notes?: string[];
  /** Points to plot (x label, y value), e.g. the sweep's MB/s per setting. */
  plot?: { title: string; unit: string; points: Array<{ label: string; value: number }> };
}
