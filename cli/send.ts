/**
 * `big-uploader send`: upload files to a big-uploader server, one after the other, resuming where
 * an earlier run stopped. A thin shell over the client core (client/core) with the Node defaults
 * (client/node): everything about the protocol lives there; this file parses options, draws
 * progress and maps outcomes to exit codes and one-line messages.
 */
import { statSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { collectEntries, type SendEntry, type WalkResult } from './walk.js';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { ClientErrors, errorAdvice } from '../client/core/errors.js';
import { DEFAULTS } from '../client/core/uploader.js';
import { DEFAULT_BACKOFF } from '../client/core/backoff.js';
import type {
  CompleteEvent,
  UploadProgress,
  Uploader,
  UploadErrorInfo,
  UploadOutcome,
} from '../client/core/types.js';
import {
  JsonFileResumeStore,
  WsTransport,
  openUploader,
  createBatchUploader,
  defaultStatePath,
  fileEntry,
} from '../client/node/index.js';
import { BATCH_DEFAULTS, type BatchResult } from '../client/core/batch-uploader.js';
import { Limits } from '../protocol/index.js';
import { formatBytes, parseSize, UsageError } from './units.js';

/** Exit codes of `send` (also listed in --help). */
export const ExitCode = {
  OK: 0,
  /** Unexpected internal fault (a bug): the only case that may print more than one line. */
  INTERNAL: 1,
  /** Bad command line, or a FILE that does not exist / is not a regular file. */
  USAGE: 2,
  /** The server refused: an error from the protocol registry or a refused handshake (401/403/404/426). */
  REFUSED: 3,
  /** The server could not be reached or the connection kept failing after all retries. */
  NETWORK: 4,
  /** A file could not be read, or changed while uploading. */
  SOURCE: 5,
  /** Interrupted (Ctrl-C / SIGTERM): the upload is paused; run the same command again to resume. */
  INTERRUPTED: 130,
} as const;

const HELP = `Usage: big-uploader send FILE|FOLDER... --url ws://HOST:PORT/upload [options]

A FOLDER is sent recursively, file by file in name order; each file carries its path inside the
folder (\`photos/2024/a.jpg\` for \`send photos\`) and the server keeps that tree under the
upload's folder. Symbolic links inside folders are skipped unless --follow. A summary line
(files, bytes, files/s, MB/s, failures) ends a run with folders or several files.

Upload each FILE in turn over bigup.1 (bigup.2 where the server speaks it: folders pipelined on
one connection, instant upload of content the server holds). Progress is remembered in a state file: if a run is
interrupted (Ctrl-C, network loss, crash), running the same command again resumes each file
where the server stopped, sending only the bytes it does not have.

Options (environment variable in brackets; the command line wins):
  --url URL              WebSocket endpoint, e.g. ws://127.0.0.1:3000/upload [BIG_UPLOADER_URL]
  --token TOKEN          server token, sent as Authorization: Bearer [BIG_UPLOADER_TOKEN]
  --upload-token TOKEN   per-upload authorization sent in OPEN/RESUME (if the app uses one)
  --chunk-size SIZE      proposed chunk size; the server may clamp it (default ${formatBytes(DEFAULTS.chunkSize)})
  --window SIZE          most unacknowledged bytes in flight; never above the server's window
                         (default ${formatBytes(DEFAULTS.maxInFlightBytes)})
  --limit-rate SIZE      cap the send rate at SIZE per second, e.g. 20MiB (default: no cap)
  --retries N            consecutive reconnect attempts without progress before giving up
                         (default ${DEFAULT_BACKOFF.maxAttempts}; backoff ${DEFAULT_BACKOFF.initial} ms doubling to ${DEFAULT_BACKOFF.max / 1000} s, with jitter)
  --state FILE           resume state file [BIG_UPLOADER_STATE]
                         (default $XDG_STATE_HOME/big-uploader/state.json, else ~/.big-uploader/state.json;
                         here: ${defaultStatePath()})
  --no-resume            neither read nor write the state file (always start new uploads)
  --follow               follow symbolic links inside folders (default: skip them, with a note)
  --no-instant           do not ask whether the server already holds the file (bigup.2 instant
                         upload, SPEC.md 16.10: the file is hashed once first when the server
                         offers it, and not sent at all when it has it); files of up to one chunk,
                         sent together over one connection, are never asked about
  --no-replace-changed   after a resume, do not check chunks sent in an earlier run against the
                         file now (bigup.2 REPLACE_CHUNK); a file edited between runs is then
                         caught at completion and uploaded again from the start
  --files-in-flight N    with several files: how many small files (at most one chunk each) are
                         in flight at once on the one connection (bigup.2; a bigup.1 server takes
                         them one by one) (default ${BATCH_DEFAULTS.maxFilesInFlight}). Larger files follow one by one,
                         resumable; a one-chunk file has nothing to resume and is sent again if cut.
  --browser-mask         mask frames with random keys like a browser (slower; default: zero mask,
                         which is safe for a non-browser client, see client/node/ws-transport.ts)
  --json                 print one JSON object per file on stdout when it finishes:
                         {"id","name","size","bytesSent","bytesSkipped","seconds","MBps","digest",...}
                         bytesSent = payload bytes sent by this run, bytesSkipped = bytes the server
                         already had, seconds = open to final result, MBps = bytesSent/seconds/1e6
  --quiet                no progress or notes; errors only
  -h, --help             show this help

SIZE accepts 1048576, 4MiB, 1.5GiB, 500MB. On a terminal a live progress bar is drawn on stderr;
otherwise progress is printed as plain lines every 10%.

Ctrl-C pauses cleanly: chunks already sent are acknowledged and recorded by the server, then the
command exits with 130. Run the same command to resume. A second Ctrl-C exits at once.

Exit codes:
  0    every file uploaded
  1    internal error (a bug; please report it)
  2    usage error: bad option, or FILE missing / not a regular file
  3    the server refused an upload (token, size, storage, protocol error...); the message names
       the error code and what to do
  4    network failure: the server stayed unreachable or the connection kept failing after retries
  5    a file could not be read or changed during the upload
  130  interrupted; the upload is paused and resumes on the next run
When several files fail differently, the first failure's code is returned.
`;

const OPTIONS = {
  url: { type: 'string' },
  token: { type: 'string' },
  'upload-token': { type: 'string' },
  'chunk-size': { type: 'string' },
  window: { type: 'string' },
  'limit-rate': { type: 'string' },
  retries: { type: 'string' },
  state: { type: 'string' },
  'no-resume': { type: 'boolean' },
  follow: { type: 'boolean' },
  'no-replace-changed': { type: 'boolean' },
  'no-instant': { type: 'boolean' },
  'files-in-flight': { type: 'string' },
  'browser-mask': { type: 'boolean' },
  json: { type: 'boolean' },
  quiet: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

interface SendOptions {
  url: string;
  token: string | undefined;
  uploadToken: string | undefined;
  chunkSize: number;
  window: number;
  limitRate: number | undefined;
  retries: number;
  statePath: string | undefined;
  json: boolean;
  quiet: boolean;
  zeroMask: boolean;
  follow: boolean;
  replaceChanged: boolean;
  instant: boolean;
  filesInFlight: number;
}

function parse(
  argv: string[],
  env: NodeJS.ProcessEnv,
): { files: string[]; options: SendOptions } | 'help' {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(`send: ${(error as Error).message}`);
  }
  const v = parsed.values;
  if (v.help) return 'help';
  const url = v.url ?? env.BIG_UPLOADER_URL;
  if (!url) throw new UsageError('send: --url is required (e.g. --url ws://127.0.0.1:3000/upload)');
  let parsedUrl: URL;
  try {
    parsedUrl = new URL(url);
  } catch {
    throw new UsageError(`send: --url "${url}" is not a URL (e.g. ws://127.0.0.1:3000/upload)`);
  }
  if (parsedUrl.protocol !== 'ws:' && parsedUrl.protocol !== 'wss:') {
    throw new UsageError(`send: --url must start with ws:// or wss://, got "${url}"`);
  }
  if (parsed.positionals.length === 0)
    throw new UsageError('send: name at least one FILE to upload');
  const chunkSize =
    v['chunk-size'] !== undefined ? parseSize(v['chunk-size'], '--chunk-size') : DEFAULTS.chunkSize;
  if (chunkSize < Limits.MIN_CHUNK_SIZE || chunkSize > Limits.MAX_CHUNK_SIZE)
    throw new UsageError('--chunk-size: must be between 64KiB and 64MiB');
  const window =
    v.window !== undefined ? parseSize(v.window, '--window') : DEFAULTS.maxInFlightBytes;
  if (window < 1) throw new UsageError('--window: must be at least 1 byte');
  const limitRate =
    v['limit-rate'] !== undefined ? parseSize(v['limit-rate'], '--limit-rate') : undefined;
  if (limitRate !== undefined && limitRate < 1)
    throw new UsageError('--limit-rate: must be at least 1 byte per second');
  let retries: number = DEFAULT_BACKOFF.maxAttempts;
  if (v.retries !== undefined) {
    if (!/^\d+$/.test(v.retries))
      throw new UsageError(`--retries: "${v.retries}" is not a whole number`);
    retries = Number(v.retries);
  }
  let filesInFlight: number = BATCH_DEFAULTS.maxFilesInFlight;
  if (v['files-in-flight'] !== undefined) {
    if (!/^\d+$/.test(v['files-in-flight']) || Number(v['files-in-flight']) < 1)
      throw new UsageError(
        `--files-in-flight: "${v['files-in-flight']}" is not a positive whole number`,
      );
    filesInFlight = Number(v['files-in-flight']);
  }
  const statePath = v['no-resume']
    ? undefined
    : (v.state ?? env.BIG_UPLOADER_STATE ?? defaultStatePath(env));
  return {
    files: parsed.positionals,
    options: {
      url,
      token: v.token ?? env.BIG_UPLOADER_TOKEN,
      uploadToken: v['upload-token'],
      chunkSize,
      window,
      limitRate,
      retries,
      statePath,
      json: v.json ?? false,
      quiet: v.quiet ?? false,
      zeroMask: !(v['browser-mask'] ?? false),
      follow: v.follow ?? false,
      replaceChanged: !(v['no-replace-changed'] ?? false),
      instant: !(v['no-instant'] ?? false),
      filesInFlight,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Output

function formatEta(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return '--:--';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const mm = String(m).padStart(2, '0');
  const ss = String(sec).padStart(2, '0');
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

/** Draws progress: a redrawn bar on a TTY, a plain line every 10% otherwise, nothing when quiet. */
class ProgressView {
  private lastDraw = 0;
  private lastDecile = -1;
  private drawn = false;

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly name: string,
    private readonly quiet: boolean,
  ) {}

  private get tty(): boolean {
    return this.out.isTTY === true;
  }

  progress(p: UploadProgress): void {
    if (this.quiet) return;
    const percent = p.total === 0 ? 100 : (p.bytesAcked / p.total) * 100;
    if (this.tty) {
      const now = Date.now();
      if (now - this.lastDraw < 100 && p.bytesAcked !== p.total) return;
      this.lastDraw = now;
      const cols = Math.max(40, this.out.columns ?? 80);
      const stats = ` ${percent.toFixed(0).padStart(3)}% ${formatBytes(p.bytesAcked)}/${formatBytes(p.total)} ${formatBytes(Math.round(p.rate))}/s ETA ${formatEta(p.eta)}`;
      const label = this.name.length > 24 ? `${this.name.slice(0, 23)}…` : this.name;
      const width = Math.max(10, cols - label.length - stats.length - 4);
      const filled = Math.round((percent / 100) * width);
      const bar = `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
      this.out.write(`\r\x1b[2K${label} ${bar}${stats}`);
      this.drawn = true;
    } else {
      const decile = Math.floor(percent / 10);
      if (decile === this.lastDecile) return;
      this.lastDecile = decile;
      this.out.write(
        `${this.name}: ${percent.toFixed(0)}% ${formatBytes(p.bytesAcked)}/${formatBytes(p.total)} ${formatBytes(Math.round(p.rate))}/s\n`,
      );
    }
  }

  /** A line of its own (notes, results), not overwritten by the bar. */
  line(text: string): void {
    if (this.drawn && this.tty) {
      this.out.write('\r\x1b[2K');
      this.drawn = false;
    }
    this.out.write(`${text}\n`);
  }

  end(): void {
    if (this.drawn && this.tty) this.out.write('\n');
    this.drawn = false;
  }
}

function exitCodeFor(error: UploadErrorInfo): number {
  if (
    error.code === ClientErrors.NETWORK.code ||
    error.code === ClientErrors.PROTOCOL_VIOLATION.code
  )
    return ExitCode.NETWORK;
  if (error.code === ClientErrors.SOURCE_ERROR.code) return ExitCode.SOURCE;
  // Retryable server errors that outlived the retries (SHUTTING_DOWN, STORAGE_ERROR...) are
  // still "the server would not take it": a refusal, not a network fault.
  return ExitCode.REFUSED;
}

function errorLine(file: string, error: UploadErrorInfo): string {
  const advice = errorAdvice(error.code);
  const code = `0x${error.code.toString(16).padStart(4, '0')}`;
  return `big-uploader send: ${file}: ${error.name} (${code}): ${error.message}${advice ? ` -> ${advice}` : ''}`;
}

interface FileReport {
  id: string | null;
  name: string;
  size: number;
  bytesSent: number;
  bytesSkipped: number;
  seconds: number;
  MBps: number;
  digest: string | null;
  state: UploadOutcome['state'];
  path: string;
  completionSeconds?: number;
  firstAckSeconds?: number;
  digestVerified?: boolean;
  error?: { code: number; name: string; message: string };
}

// ---------------------------------------------------------------------------------------------
// Main

export async function run(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv, process.env);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(
        `big-uploader ${error.message}\nRun \`big-uploader send --help\` for the options.\n`,
      );
      return ExitCode.USAGE;
    }
    throw error;
  }
  if (parsed === 'help') {
    process.stdout.write(HELP);
    return ExitCode.OK;
  }
  const { files, options } = parsed;
  // Check every argument (and walk every folder) before sending anything, so a typo in the last
  // name does not surface an hour later.
  for (const file of files) {
    try {
      const info = await stat(file);
      if (!info.isFile() && !info.isDirectory()) throw new Error('not a regular file or a folder');
    } catch (error) {
      const reason =
        (error as NodeJS.ErrnoException).code === 'ENOENT'
          ? 'no such file'
          : (error as Error).message;
      process.stderr.write(`big-uploader send: ${file}: ${reason}\n`);
      return ExitCode.USAGE;
    }
  }
  const walked: WalkResult = await collectEntries(files, options.follow);
  for (const problem of walked.problems) process.stderr.write(`big-uploader send: ${problem}\n`);
  const startedAt = Date.now();
  let filesDone = 0;
  let filesFailed = walked.problems.filter((p) => !p.includes('symbolic link skipped')).length;
  let bytesDone = 0;

  const transport = new WsTransport({ zeroMask: options.zeroMask });
  const store = options.statePath ? new JsonFileResumeStore(options.statePath) : undefined;
  let current: Uploader | undefined;
  let stopBatch: (() => void) | undefined;
  let interrupted = false;
  const onSignal = (): void => {
    if (interrupted) {
      process.stderr.write('\nbig-uploader send: interrupted again, exiting now\n');
      process.exit(ExitCode.INTERRUPTED);
    }
    interrupted = true;
    if (!options.quiet)
      process.stderr.write(
        '\nbig-uploader send: pausing (waiting for in-flight chunks to be acknowledged; Ctrl-C again to exit now)\n',
      );
    void current?.pause();
    stopBatch?.();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let exitCode: number = ExitCode.OK;
  // Several files: those of one chunk at most go over one connection, many in flight (a chunk is
  // the unit of resume, so they have nothing to resume); larger ones follow one by one, resumable.
  let entries = walked.entries;
  // --json lines come in the order of the arguments and the walk, whichever path sent the file.
  const lines = new Map<SendEntry, string | null>();
  let printed = 0;
  const emit = (entry: SendEntry, line: string | null): void => {
    lines.set(entry, line);
    for (
      let next = walked.entries[printed];
      next && lines.has(next);
      next = walked.entries[printed]
    ) {
      const ready = lines.get(next);
      if (ready) process.stdout.write(`${ready}\n`);
      printed++;
    }
  };
  if (walked.sawFolder || entries.length > 1) {
    const { small, large, problems } = splitBySize(entries, options.chunkSize);
    for (const problem of problems) {
      process.stderr.write(`big-uploader send: ${problem.message}\n`);
      emit(problem.entry, null);
    }
    filesFailed += problems.length;
    if (problems.length > 0) exitCode = ExitCode.SOURCE;
    entries = large;
    if (small.length > 0) {
      const batch = createBatchUploader({
        endpoint: options.url,
        transport,
        chunkSize: options.chunkSize,
        maxInFlightBytes: options.window,
        maxFilesInFlight: options.filesInFlight,
        backoff: { maxAttempts: options.retries },
        ...(options.token ? { token: options.token } : {}),
        ...(options.uploadToken ? { uploadToken: options.uploadToken } : {}),
        onResult: (result) => {
          const entry = small[result.index];
          const path = entry?.path ?? result.label;
          if (entry) emit(entry, options.json ? JSON.stringify(batchReport(path, result)) : null);
          if (result.state === 'done') {
            filesDone++;
            bytesDone += result.size;
          } else {
            filesFailed++;
            if (result.error) {
              process.stderr.write(`${errorLine(path, result.error)}\n`);
              if (exitCode === ExitCode.OK) exitCode = exitCodeFor(result.error);
            }
          }
        },
      });
      stopBatch = () => batch.stop();
      const summary = await batch.run(
        small.map((e) =>
          fileEntry(
            e.path,
            e.relativePath ?? basename(e.path),
            e.relativePath !== undefined ? { relativePath: e.relativePath } : undefined,
          ),
        ),
      );
      stopBatch = undefined;
      if (summary.notStarted > 0 && exitCode === ExitCode.OK) exitCode = ExitCode.INTERRUPTED;
    }
  }
  try {
    for (const entry of entries) {
      if (interrupted) break;
      const result = await sendOne(entry, options, transport, store, (u) => {
        current = u;
      });
      current = undefined;
      emit(entry, options.json ? JSON.stringify(result.report) : null);
      if (result.code === ExitCode.OK) {
        filesDone++;
        bytesDone += result.report.size;
      } else if (result.code !== ExitCode.INTERRUPTED) {
        filesFailed++;
      }
      if (result.code !== ExitCode.OK && exitCode === ExitCode.OK) exitCode = result.code;
      // The network is down or we were interrupted: the remaining files would fail the same way.
      if (result.code === ExitCode.NETWORK || result.code === ExitCode.INTERRUPTED) break;
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  if (interrupted && exitCode === ExitCode.OK) exitCode = ExitCode.INTERRUPTED;
  // A folder's files that could not be taken (unreadable, vanished) fail the run like a file would.
  if (exitCode === ExitCode.OK && filesFailed > 0) exitCode = ExitCode.SOURCE;
  if (walked.sawFolder || walked.entries.length > 1) {
    const seconds = Math.max((Date.now() - startedAt) / 1000, 1e-3);
    process.stderr.write(
      `big-uploader send: ${filesDone} files, ${formatBytes(bytesDone)} in ${seconds.toFixed(1)} s: ` +
        `${(filesDone / seconds).toFixed(1)} files/s, ${(bytesDone / seconds / 1e6).toFixed(1)} MB/s, ${filesFailed} failed\n`,
    );
  }
  return exitCode;
}

async function sendOne(
  entry: SendEntry,
  options: SendOptions,
  transport: WsTransport,
  store: JsonFileResumeStore | undefined,
  expose: (u: Uploader) => void,
): Promise<{ code: number; report: FileReport }> {
  const path = entry.path;
  const name = entry.relativePath ?? basename(path);
  const view = new ProgressView(process.stderr, name, options.quiet);
  let uploader: Uploader;
  try {
    uploader = await openUploader({
      endpoint: options.url,
      file: path,
      transport,
      resumeStore: store ?? false,
      chunkSize: options.chunkSize,
      maxInFlightBytes: options.window,
      ...(options.token ? { token: options.token } : {}),
      ...(options.uploadToken ? { uploadToken: options.uploadToken } : {}),
      ...(options.limitRate ? { limitRate: options.limitRate } : {}),
      backoff: { maxAttempts: options.retries },
      replaceChangedChunks: options.replaceChanged,
      instantUpload: options.instant,
      ...(entry.relativePath !== undefined
        ? { metadata: { relativePath: entry.relativePath } }
        : {}),
    });
  } catch (error) {
    process.stderr.write(`big-uploader send: ${path}: cannot open: ${(error as Error).message}\n`);
    return { code: ExitCode.SOURCE, report: emptyReport(path, name, 0, 'failed') };
  }
  expose(uploader);
  const startedAt = Date.now();
  let total = 0;
  uploader.on('start', (e) => {
    total = e.total;
  });
  uploader.on('progress', (p) => {
    view.progress(p);
  });
  uploader.on('info', (i) => {
    if (!options.quiet) view.line(`${name}: ${i.message}`);
  });
  uploader.on('error', (e) => {
    // Retries are noted (quietly unless --quiet); the final failure is printed once below.
    if (!e.fatal && !options.quiet) view.line(`${name}: ${e.name}: ${e.message}; retrying`);
  });
  const outcome = await uploader.start();
  view.end();
  const seconds = (Date.now() - startedAt) / 1000;
  if (outcome.state === 'done') {
    const r: CompleteEvent = outcome.result;
    const secs = r.durationMs / 1000;
    if (!options.quiet && !options.json) {
      process.stderr.write(
        `${name}: done, ${formatBytes(r.size)} (${formatBytes(r.bytesSent)} sent, ${formatBytes(r.bytesSkipped)} already on the server) in ${secs.toFixed(1)} s, digest ${r.digest}, id ${r.uploadId}\n`,
      );
    }
    // Success means the server's copy matches the file byte for byte: only a checked digest says so.
    if (!r.digestVerified)
      process.stderr.write(
        `${name}: the server stored the upload but its digest was not checked against the file\n`,
      );
    return {
      code: r.digestVerified ? ExitCode.OK : ExitCode.SOURCE,
      report: {
        id: r.uploadId,
        name,
        size: r.size,
        bytesSent: r.bytesSent,
        bytesSkipped: r.bytesSkipped,
        seconds: round(secs),
        MBps: round(secs > 0 ? r.bytesSent / secs / 1e6 : 0),
        digest: r.digest,
        state: 'done',
        path,
        completionSeconds: round(r.completionMs / 1000),
        ...(r.firstAckMs !== undefined ? { firstAckSeconds: round(r.firstAckMs / 1000) } : {}),
        digestVerified: r.digestVerified,
        ...(r.instant === true ? { instant: true } : {}),
      },
    };
  }
  // The live figures: the last progress event is throttled and can predate the final acks.
  const progress = uploader.progress;
  const partial: FileReport = {
    ...emptyReport(path, name, total || progress.total, outcome.state),
    id: uploader.uploadId ?? null,
    bytesSent: progress.bytesSent,
    seconds: round(seconds),
    MBps: round(seconds > 0 ? progress.bytesSent / seconds / 1e6 : 0),
  };
  if (outcome.state === 'paused' || outcome.state === 'cancelled') {
    const percent =
      progress.total > 0 ? Math.floor((progress.bytesAcked / progress.total) * 100) : 0;
    if (!options.quiet)
      process.stderr.write(
        `${name}: paused at ${percent}%; run the same command again to resume\n`,
      );
    return { code: ExitCode.INTERRUPTED, report: partial };
  }
  const error = outcome.error;
  process.stderr.write(`${errorLine(path, error)}\n`);
  return {
    code: exitCodeFor(error),
    report: { ...partial, error: { code: error.code, name: error.name, message: error.message } },
  };
}

/** Entries of one chunk at most (for the batch) and the others; entries that cannot be stat'ed are problems. */
function splitBySize(
  entries: readonly SendEntry[],
  chunkSize: number,
): {
  small: SendEntry[];
  large: SendEntry[];
  problems: Array<{ entry: SendEntry; message: string }>;
} {
  const small: SendEntry[] = [];
  const large: SendEntry[] = [];
  const problems: Array<{ entry: SendEntry; message: string }> = [];
  const sizes = new Array<number | Error>(entries.length);
  // Synchronous, as client/node/file-source.ts reads small files: a stat is microseconds, and an
  // async one cost the CLI a thread-pool handoff worth ten of them (issue 16).
  entries.forEach((entry, i) => {
    try {
      const info = statSync(entry.path);
      sizes[i] = info.isFile() ? info.size : new Error('not a regular file any more');
    } catch (error) {
      sizes[i] = error instanceof Error ? error : new Error(String(error));
    }
  });
  entries.forEach((entry, i) => {
    const size = sizes[i];
    if (size instanceof Error) {
      const code = (size as NodeJS.ErrnoException).code;
      problems.push({
        entry,
        message: `${entry.path}: ${code === 'ENOENT' ? 'vanished' : size.message}`,
      });
    } else if (size !== undefined && size <= chunkSize) small.push(entry);
    else large.push(entry);
  });
  return { small, large, problems };
}

function batchReport(path: string, result: BatchResult): FileReport {
  return {
    ...emptyReport(path, result.label, result.size, result.state),
    id: result.uploadId ?? null,
    bytesSent: result.state === 'done' ? result.size : 0,
    digest: result.digest ?? null,
    ...(result.state === 'done' ? { digestVerified: true } : {}),
    ...(result.error
      ? {
          error: {
            code: result.error.code,
            name: result.error.name,
            message: result.error.message,
          },
        }
      : {}),
  };
}

function emptyReport(
  path: string,
  name: string,
  size: number,
  state: UploadOutcome['state'],
): FileReport {
  return {
    id: null,
    name,
    size,
    bytesSent: 0,
    bytesSkipped: 0,
    seconds: 0,
    MBps: 0,
    digest: null,
    state,
    path,
  };
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}
