/**
 * `big-uploader send` as a child process with its own HOME and state directory, for CLI tests:
 * the exit code (or signal), stdout, stderr, the JSON lines it printed, and a way to wait for a
 * progress line before acting (kill, edit the file...).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/big-uploader.js', import.meta.url));

export interface SendOutcome<Report> {
  readonly code: number | string;
  readonly stdout: string;
  readonly stderr: string;
  /** The JSON lines of stdout (`--json`), parsed. */
  readonly reports: Report[];
}

export interface SendRun<Report> {
  readonly done: Promise<SendOutcome<Report>>;
  kill(signal?: NodeJS.Signals): void;
  /** Resolves once stderr matches `pattern`. */
  waitFor(pattern: RegExp, ms?: number): Promise<void>;
}

export function runSend<Report = Record<string, unknown>>(
  args: string[],
  home: string,
): SendRun<Report> {
  const child = spawn(process.execPath, [BIN, 'send', ...args], {
    env: { ...process.env, HOME: home, XDG_STATE_HOME: join(home, 'state') },
    cwd: home,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const watchers: Array<{ pattern: RegExp; resolve: () => void }> = [];
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    for (const w of [...watchers]) {
      if (w.pattern.test(stderr)) {
        watchers.splice(watchers.indexOf(w), 1);
        w.resolve();
      }
    }
  });
  const done = new Promise<SendOutcome<Report>>((resolve) => {
    child.on('exit', (code, signal) => {
      const reports = stdout
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Report);
      resolve({ code: code ?? signal ?? -1, stdout, stderr, reports });
    });
  });
  return {
    done,
    kill: (signal = 'SIGKILL') => child.kill(signal),
    waitFor: (pattern, ms = 20_000) =>
      new Promise<void>((resolve, reject) => {
        if (pattern.test(stderr)) return resolve();
        const timer = setTimeout(
          () => reject(new Error(`stderr never matched ${pattern}:\n${stderr}`)),
          ms,
        );
        watchers.push({
          pattern,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        });
      }),
  };
}

/**
 * At least `percent`% (a multiple of 10) acked, as printed by the plain-line progress (one line per
 * 10%). 100% counts: after a resume the next line may jump straight to it.
 */
export const atLeast = (percent: number): RegExp => new RegExp(`: ([${percent / 10}-9]\\d|100)% `);
