/**
 * Many files over one connection (issue 16): a queue of files, several of them in flight at once.
 *
 * Over bigup.2 (SPEC.md 16) each file is one stream: OPENs go out without waiting for earlier
 * ACCEPTs, DATA of different files shares the connection's window, and COMPLETE follows a file's
 * last DATA at once, so the server's per-file work (create, write, fsync, rename) overlaps across
 * files instead of costing one round trip after another. Against a bigup.1-only server the same
 * queue runs one file at a time on one connection (bigup.1 allows uploads one after the other).
 *
 * A long-lived queue (the `<big-uploader>` upload worker) adds entries while it runs (`add`), drops
 * single entries (`drop`: a paused or cancelled row), and keeps its connection open for
 * `idleCloseMs` after the queue runs dry, so files added a moment later reuse it.
 *
 * With `instantUpload`, bigup.2 connections also offer PROOF_OF_POSSESSION (SPEC.md 16.10): a file
 * the server already holds in this client's scope (sent in an earlier session, before a reload)
 * completes without its bytes being sent again.
 *
 * What this does not do, on purpose: resume across runs. A file whose upload is cut (network fault,
 * server restart) is opened again as a new upload on the next connection; its partial upload on
 * the server is left to the sweeper (SPEC.md 9, unfinished-upload lifetime). That is the right
 * trade for the files a batch is for (small ones, where a re-send costs less than a resume record
 * written per file); a caller routes large files to the resumable per-file `Uploader` instead.
 *
 * Every failure is per file when it concerns one file (unreadable or vanished source, a file too
 * large for the server, a source that changed mid-upload): the file is reported failed and the
 * rest of the queue goes on. Faults of the connection re-send the files in flight on a new
 * connection, with backoff; past `backoff.maxAttempts` failed connections in a row, every file
 * left is reported failed with that error.
 */
import {
  Capability,
  CloseCode,
  Errors,
  HeaderSize,
  HeaderSizeV2,
  SUBPROTOCOL_V1,
  SUBPROTOCOL_V2,
  bytesToHex,
  chunkCount,
  decodeServerFrame,
  decodeServerMessage,
  encodeComplete,
  encodeHello,
  encodeOpen,
  encodeProof,
  encodeTerminate,
  hashToHex,
  loadHasher,
  multiplexOf,
  inlineFileLimitOf,
  LimitsV2,
  wholeFileDigest,
  withStream,
  writeDataHeader,
  writeDataHeaderV2,
  type AcceptMessage,
  type CapabilityEntry,
  type ChallengeMessage,
  type ByteRange,
  type ErrorMessage,
  type ResultMessage,
  type Frame,
  type Hasher,
  type ServerMessageV2,
} from '../../protocol/index.js';
import { backoffDelay, resolveBackoff } from './backoff.js';
import { DEFAULTS } from './uploader.js';
import { AnswerWatch, answerTimeoutOf } from './answer-watch.js';
import { challengeHashes, digestOfFile } from './proof.js';
import { ClientErrors, clientError, serverError } from './errors.js';
import {
  ABNORMAL_CLOSURE,
  type BackoffOptions,
  type Clock,
  type CloseInfo,
  type Connection,
  type FileSource,
  type Transport,
  type UploadErrorInfo,
} from './types.js';

const MiB = 1024 * 1024;

export const BATCH_DEFAULTS = Object.freeze({
  /**
   * Files in flight on the connection (the MULTIPLEX asked for; the server may grant fewer). 16
   * keeps a disk's sync pipeline and the server's thread pool busy with small files while the
   * memory held stays bounded by the window, not by this number.
   */
  maxFilesInFlight: 16,
  /** Chunk size proposed in each OPEN. */
  chunkSize: 4 * MiB,
  /** Unacked payload bytes in flight over all files; the server's window caps it too. */
  maxInFlightBytes: 32 * MiB,
  /** A chunk the server refuses as HASH_MISMATCH this often fails its file (memory or source fault). */
  maxChunkResends: 5,
  /** How long an emptied queue keeps its connection for entries added later, ms. 0: close at once. */
  idleCloseMs: 0,
});

/** One file of the queue. The source is opened only when its turn comes (10,000 entries hold no descriptor). */
export interface BatchEntry {
  /** How reports name the file (a relative path for a folder's files). */
  readonly label: string;
  open(): Promise<FileSource>;
  /** Application metadata sent in OPEN (e.g. `relativePath`). */
  readonly metadata?: Readonly<Record<string, string>>;
}

export interface BatchResult {
  /** Position of the entry in the list given to `run`. */
  readonly index: number;
  readonly label: string;
  /** 'cancelled': taken out by `drop()` (the server deleted what it had of it). */
  readonly state: 'done' | 'failed' | 'cancelled';
  readonly size: number;
  readonly uploadId?: string;
  /** Whole-file digest, 16 hex digits, checked against our own. */
  readonly digest?: string;
  readonly error?: UploadErrorInfo;
  /** The server already held the content: it completed without being sent (SPEC.md 16.10). */
  readonly instant?: boolean;
}

export interface BatchSummary {
  readonly done: number;
  readonly failed: number;
  /** Entries taken out by `drop()`. */
  readonly cancelled: number;
  /** Entries never started because `stop()` was called. */
  readonly notStarted: number;
  readonly bytes: number;
  /** The subprotocol the last connection spoke ('' if none opened). */
  readonly protocol: string;
}

export interface BatchOptions {
  readonly endpoint: string;
  readonly transport: Transport;
  /** Server token: `Authorization: Bearer` when the transport sets headers, else `?token=`. */
  readonly token?: string;
  /** Per-upload token sent in every OPEN. */
  readonly uploadToken?: string;
  readonly maxFilesInFlight?: number;
  readonly chunkSize?: number;
  readonly maxInFlightBytes?: number;
  readonly backoff?: Partial<BackoffOptions>;
  readonly loadHasher?: () => Promise<Hasher>;
  /** Called once per entry, as soon as its outcome is known. */
  readonly onResult?: (result: BatchResult) => void;
  /**
   * The server accepted the entry at `index` as upload `uploadId` (its bytes go out next); for a
   * file sent whole in its OPEN (16.11), when its RESULT names the upload, just before `onResult`.
   */
  readonly onAccept?: (index: number, uploadId: string) => void;
  /** Bytes of the entry at `index` the server has acknowledged so far. */
  readonly onProgress?: (index: number, bytesAcked: number) => void;
  /** See `BATCH_DEFAULTS.idleCloseMs`. */
  readonly idleCloseMs?: number;
  /**
   * Offer PROOF_OF_POSSESSION (bigup.2): when the server challenges an OPEN, read and hash the
   * file and let the server complete it from content it holds. Default false.
   */
  readonly instantUpload?: boolean;
  /**
   * Offer OPEN_WITH_DATA (bigup.2, SPEC.md 16.11): a file no larger than the server grants (at most
   * 64 KiB) goes whole in its OPEN and is answered by RESULT alone, one round trip per small file.
   * Default true.
   */
  readonly inlineSmallFiles?: boolean;
  /** Subprotocols to offer, most preferred first. Default bigup.2 then bigup.1. */
  readonly protocols?: readonly string[];
  /**
   * Milliseconds the server may stay silent while it owes answers (an OPEN, a PROOF, DATA,
   * COMPLETE, TERMINATE) before the connection counts as lost: the files in flight go back to the
   * queue and a new connection takes them (as UploaderOptions.answerTimeout). 0: never. Default
   * `DEFAULTS.answerTimeoutMs` (120 s).
   */
  readonly answerTimeout?: number;
  readonly clock?: Clock;
  readonly random?: () => number;
}

/** 'proving': a CHALLENGE came for the OPEN (SPEC.md 16.10); ACCEPT or RESULT answers the PROOF. */
type JobState = 'opening' | 'proving' | 'sending' | 'completing' | 'terminating';

interface Job {
  readonly index: number;
  readonly entry: BatchEntry;
  source: FileSource | undefined;
  /** Retryable refusals of this file (TOO_MANY_UPLOADS), for its backoff. */
  refusals: number;
  stream: number;
  state: JobState;
  chunkSize: number;
  chunks: number;
  uploadId: string;
  nextChunk: number;
  hashes: BigUint64Array;
  /** DATA sent and not yet answered: offset -> payload length. */
  readonly unanswered: Map<number, number>;
  /** Chunks to send again (HASH_MISMATCH), with their counts. */
  readonly resend: number[];
  readonly resends: Map<number, number>;
  /** The reason a TERMINATE was sent: reported when TERMINATED comes back. */
  failure: UploadErrorInfo | undefined;
  digest: bigint | undefined;
  /** The whole file, read for an OPEN with data (16.11) on this connection; else undefined. */
  inline: Uint8Array | undefined;
  /** Payload bytes the server acknowledged. */
  acked: number;
  /** `drop()` took it out: its outcome is 'cancelled' whatever ends it. */
  dropped: boolean;
  /** An OPEN, PROOF, COMPLETE or TERMINATE of it is sent and not answered yet. */
  awaiting: boolean;
}

interface Link {
  readonly connection: Connection;
  version: 0 | 1 | 2;
  /** Files that may be in flight: 1 until WELCOME (bigup.2) or for bigup.1. */
  limit: number;
  /** The largest file an OPEN may carry (OPEN_WITH_DATA granted in WELCOME); 0 until then. */
  inlineLimit: number;
  nextStream: number;
  readonly jobs: Map<number, Job>;
  /** Files whose source is being opened: they count against `limit` but have no stream yet. */
  starting: number;
  outstanding: number;
  window: number;
  closed: boolean;
  /** A connection-level error that must not be retried (set before the close arrives). */
  fatal: UploadErrorInfo | undefined;
  /** bigup.1: the server closes after refusing one file; that close is no network fault. */
  closesAfterRefusal: boolean;
  drainWaiters: Array<() => void>;
  /** The answer watchdog (BatchOptions.answerTimeout, answer-watch.ts). */
  answers: AnswerWatch;
}

/**
 * The failure recorded on a job `drop()` abandons, so every path that ends an abandoned job ends
 * it (none re-sends it); never reported: a dropped job's outcome is 'cancelled'.
 */
const DROPPED: UploadErrorInfo = Object.freeze({
  ...clientError(ClientErrors.SOURCE_ERROR, 'taken out of the batch'),
  fatal: true,
});

const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

function positive(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer`);
  return v;
}

/** Drives a queue of files over one connection; create one per batch. */
export class BatchUploader {
  private readonly maxFilesInFlight: number;
  private readonly chunkSize: number;
  private readonly maxInFlightBytes: number;
  private readonly backoff: BackoffOptions;
  private readonly clock: Clock;
  private hasher: Hasher | undefined;
  private queue: Job[] = [];
  private nextIndex = 0;
  /** Files waiting out a retry delay (TOO_MANY_UPLOADS), by index: `drop()` finds them here. */
  private readonly delayedJobs = new Map<number, Job>();
  private idleTimer: unknown;
  private readonly idleCloseMs: number;
  private over = false;
  private link: Link | undefined;
  private connectFailures = 0;
  private reconnectTimer: unknown;
  /** Files waiting out a retry delay (TOO_MANY_UPLOADS). */
  private delayed = 0;
  private stopping = false;
  private feeding = false;
  private finished: ((summary: BatchSummary) => void) | undefined;
  private done = 0;
  private failed = 0;
  private cancelled = 0;
  private bytes = 0;
  private protocol = '';
  /** Milliseconds the server may stay silent while it owes answers (0: never). */
  private readonly answerTimeout: number;

  constructor(private readonly options: BatchOptions) {
    this.answerTimeout = answerTimeoutOf(options.answerTimeout, DEFAULTS.answerTimeoutMs);
    this.maxFilesInFlight = positive(
      'maxFilesInFlight',
      options.maxFilesInFlight,
      BATCH_DEFAULTS.maxFilesInFlight,
    );
    this.chunkSize = positive('chunkSize', options.chunkSize, BATCH_DEFAULTS.chunkSize);
    this.maxInFlightBytes = positive(
      'maxInFlightBytes',
      options.maxInFlightBytes,
      BATCH_DEFAULTS.maxInFlightBytes,
    );
    this.idleCloseMs = options.idleCloseMs ?? BATCH_DEFAULTS.idleCloseMs;
    if (!Number.isFinite(this.idleCloseMs) || this.idleCloseMs < 0)
      throw new RangeError('idleCloseMs must be a non-negative number');
    this.backoff = resolveBackoff(options.backoff);
    this.clock = options.clock ?? realClock;
  }

  /** Upload every entry; resolves when each has an outcome (or `stop()` left it unstarted). Never rejects. */
  async run(entries: readonly BatchEntry[]): Promise<BatchSummary> {
    for (const entry of entries) this.queue.push(newJob(this.nextIndex++, entry));
    this.hasher = await (this.options.loadHasher ?? loadHasher)();
    return new Promise<BatchSummary>((resolve) => {
      this.finished = resolve;
      this.pump();
    });
  }

  /**
   * Append an entry while the batch runs (or before `run`); returns its index, which results name.
   * Throws once `run` has resolved: a finished batch has no connection left to reuse.
   */
  add(entry: BatchEntry): number {
    if (this.over) throw new Error('this batch has finished; start a new one');
    const job = newJob(this.nextIndex++, entry);
    this.queue.push(job);
    this.pump();
    return job.index;
  }

  /**
   * Take one entry out: not started yet, it is removed; in flight, its upload is terminated (the
   * server deletes it). Its result comes through `onResult` with state 'cancelled' (or 'done' when
   * it completed before the drop could act, as a file sent whole in its OPEN, 16.11, may: the
   * server completes it without a word in between). Unknown or finished indexes are ignored.
   */
  drop(index: number): void {
    const at = this.queue.findIndex((j) => j.index === index);
    const queued = at >= 0 ? this.queue.splice(at, 1)[0] : this.delayedJobs.get(index);
    if (queued) {
      queued.dropped = true;
      if (this.delayedJobs.delete(index)) this.delayed--;
      this.report(queued, { state: 'cancelled' });
      this.pump();
      return;
    }
    const link = this.link;
    if (!link) return;
    for (const job of link.jobs.values()) {
      if (job.index !== index) continue;
      // COMPLETE is out: nothing may follow it on the stream (SPEC.md 16.5); its RESULT says done.
      if (job.state === 'completing') return;
      job.dropped = true;
      this.abandon(link, job, DROPPED);
      this.pump();
      return;
    }
    // Still opening its source (no stream yet): start() sees the drop when the open returns.
    if (this.opening.has(index)) this.droppedWhileStarting.add(index);
  }

  /** Indexes of files whose source is being opened, and those of them dropped meanwhile. */
  private readonly opening = new Set<number>();
  private readonly droppedWhileStarting = new Set<number>();

  /** Start no new file; the files in flight finish (or fail), then `run` resolves. */
  stop(): void {
    this.stopping = true;
    this.pump();
  }

  // ------------------------------------------------------------------------------------------
  // Scheduling

  private pump(): void {
    if (!this.finished) return;
    const link = this.link;
    const waiting = this.stopping ? 0 : this.queue.length + this.delayed;
    if (waiting === 0 && (!link || link.jobs.size + link.starting === 0)) {
      if (this.stopping || this.idleCloseMs === 0) this.finish();
      else this.idleTimer ??= this.clock.setTimeout(() => this.finish(), this.idleCloseMs);
      return;
    }
    if (this.idleTimer !== undefined) {
      this.clock.clearTimeout(this.idleTimer);
      this.idleTimer = undefined;
    }
    if (!link) {
      if (this.reconnectTimer === undefined && this.queue.length > 0 && !this.stopping)
        this.connect();
      return;
    }
    if (link.closed || link.version === 0) return;
    while (!this.stopping && link.jobs.size + link.starting < link.limit && this.queue.length > 0) {
      const job = this.queue.shift();
      if (job) void this.start(link, job);
    }
    void this.feed(link);
  }

  private finish(): void {
    const resolve = this.finished;
    if (!resolve) return;
    this.finished = undefined;
    this.over = true;
    if (this.idleTimer !== undefined) this.clock.clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    const link = this.link;
    this.link = undefined;
    if (link && !link.closed) link.connection.close(CloseCode.NORMAL, 'batch done');
    const notStarted = this.queue.length;
    for (const job of this.queue) void job.source?.close?.();
    this.queue = [];
    resolve({
      done: this.done,
      failed: this.failed,
      cancelled: this.cancelled,
      notStarted,
      bytes: this.bytes,
      protocol: this.protocol,
    });
  }

  private report(job: Job, outcome: Omit<BatchResult, 'index' | 'label' | 'size'>): void {
    const size = job.source?.size ?? 0;
    if (outcome.state === 'done') {
      this.done++;
      this.bytes += size;
    } else if (outcome.state === 'cancelled') {
      this.cancelled++;
    } else {
      this.failed++;
    }
    void job.source?.close?.();
    job.source = undefined;
    this.options.onResult?.({ index: job.index, label: job.entry.label, size, ...outcome });
  }

  private failJob(job: Job, error: UploadErrorInfo): void {
    if (job.dropped) this.report(job, { state: 'cancelled' });
    else this.report(job, { state: 'failed', error: { ...error, fatal: true } });
  }

  // ------------------------------------------------------------------------------------------
  // Connection

  private connect(): void {
    const protocols = this.options.protocols ?? [SUBPROTOCOL_V2, SUBPROTOCOL_V1];
    const url = new URL(this.options.endpoint);
    const headers: Record<string, string> = {};
    if (this.options.token) {
      if (this.options.transport.sendsHeaders)
        headers.Authorization = `Bearer ${this.options.token}`;
      else url.searchParams.set('token', this.options.token);
    }
    let link: Link | undefined;
    const connection = this.options.transport.connect(
      url.toString(),
      protocols,
      {
        onOpen: (protocol) => {
          if (link) this.onOpen(link, protocol);
        },
        onMessage: (data) => {
          if (link) this.onMessage(link, data);
        },
        onClose: (info) => {
          if (link) this.onClose(link, info);
        },
        onDrain: () => {
          if (link) wakeAll(link);
        },
      },
      Object.keys(headers).length > 0 ? headers : undefined,
    );
    link = {
      connection,
      version: 0,
      limit: 1,
      inlineLimit: 0,
      nextStream: 1,
      jobs: new Map(),
      starting: 0,
      outstanding: 0,
      window: 0,
      closed: false,
      fatal: undefined,
      closesAfterRefusal: false,
      drainWaiters: [],
      answers: this.answerWatch(() => link),
    };
    this.link = link;
  }

  private onOpen(link: Link, protocol: string): void {
    this.protocol = protocol;
    if (protocol === SUBPROTOCOL_V2) {
      link.version = 2;
      const capabilities: CapabilityEntry[] = [
        { id: Capability.MULTIPLEX, value: this.maxFilesInFlight },
      ];
      if (this.options.instantUpload)
        // Value 1: a CHALLENGE may name the chunk size to take the digest at (SPEC.md 16.10).
        capabilities.push({ id: Capability.PROOF_OF_POSSESSION, value: 1 });
      if (this.options.inlineSmallFiles !== false)
        capabilities.push({ id: Capability.OPEN_WITH_DATA, value: LimitsV2.MAX_INLINE_FILE_SIZE });
      link.connection.send(encodeHello(capabilities));
    } else if (protocol === SUBPROTOCOL_V1) {
      link.version = 1;
    } else {
      link.fatal = clientError(
        ClientErrors.UNSUPPORTED_VERSION,
        `the server negotiated "${protocol}", which this client does not speak`,
      );
      link.connection.close(CloseCode.NO_SUPPORTED_VERSION, 'no supported version');
      return;
    }
    this.pump();
  }

  private onClose(link: Link, info: CloseInfo): void {
    link.closed = true;
    link.answers.stop();
    wakeAll(link);
    if (this.link !== link) return;
    this.link = undefined;
    // Files in flight go back to the head of the queue, in their order: opened again next time.
    const inFlight = [...link.jobs.values()].sort((a, b) => a.index - b.index);
    link.jobs.clear();
    const final = link.fatal ?? handshakeFailure(info);
    if (final) {
      for (const job of inFlight) this.failJob(job, final);
      for (const job of this.queue) this.failJob(job, final);
      this.queue = [];
      this.pump();
      return;
    }
    for (const job of inFlight) {
      if (job.state === 'terminating' && job.failure) this.failJob(job, job.failure);
      else this.queue.unshift(resetJob(job));
    }
    this.queue.sort((a, b) => a.index - b.index);
    if (link.closesAfterRefusal) {
      this.pump();
      return;
    }
    this.connectFailures++;
    if (this.connectFailures > this.backoff.maxAttempts) {
      const error = clientError(
        ClientErrors.NETWORK,
        `the connection failed ${this.connectFailures} times in a row (last: ${info.code}${info.error ? `, ${info.error}` : ''})`,
      );
      for (const job of this.queue) this.failJob(job, error);
      this.queue = [];
      this.pump();
      return;
    }
    const delay = backoffDelay(this.backoff, this.connectFailures, this.options.random);
    this.reconnectTimer = this.clock.setTimeout(() => {
      this.reconnectTimer = undefined;
      this.pump();
    }, delay);
  }

  // ------------------------------------------------------------------------------------------
  // One file

  private async start(link: Link, job: Job): Promise<void> {
    job.state = 'opening';
    // Read for the connection it was started on, whose grant may differ from this one's.
    job.inline = undefined;
    link.starting++;
    this.opening.add(job.index);
    try {
      const source = (job.source ??= await job.entry.open());
      // Small enough to go whole in its OPEN (SPEC.md 16.11): read it now, before the stream id
      // is taken, so OPENs still go out in stream order.
      if (link.version === 2 && link.inlineLimit > 0 && source.size <= link.inlineLimit) {
        const data = source.size > 0 ? await source.read(0, source.size) : new Uint8Array(0);
        if (data.byteLength !== source.size) throw new Error('the file ended early');
        if (source.changed && (await source.changed()))
          throw new Error('it changed while it was being read');
        job.inline = data;
      }
    } catch (error) {
      this.opening.delete(job.index);
      this.droppedWhileStarting.delete(job.index);
      link.starting--;
      this.failJob(job, unreadable(job, error));
      this.pump();
      return;
    }
    link.starting--;
    this.opening.delete(job.index);
    if (this.droppedWhileStarting.delete(job.index)) {
      job.dropped = true;
      this.report(job, { state: 'cancelled' });
      this.pump();
      return;
    }
    if (link.closed || this.link !== link) {
      this.queue.unshift(job);
      this.queue.sort((a, b) => a.index - b.index);
      this.pump();
      return;
    }
    // The stream id is taken only now, so OPENs go out in increasing stream order (SPEC.md 16.5)
    // whatever order the sources opened in.
    job.stream = link.version === 2 ? link.nextStream++ : 0;
    link.jobs.set(job.stream, job);
    const source = job.source;
    const data = job.inline;
    if (data) {
      const hasher = this.requireHasher();
      job.digest = wholeFileDigest(hasher, data.byteLength > 0 ? [hasher.h64(data)] : []);
    }
    this.send(
      link,
      job,
      encodeOpen({
        fileSize: source.size,
        chunkSize: this.chunkSize,
        name: source.name || job.entry.label,
        contentType: source.type,
        token: this.options.uploadToken ?? '',
        metadata: job.entry.metadata ?? {},
        ...(data ? { digest: job.digest, data } : {}),
      }),
    );
  }

  private send(link: Link, job: Job, bytes: Uint8Array): void {
    if (link.closed) return;
    const owedBefore = owesAnswers(link);
    job.awaiting = true;
    link.connection.send(link.version === 2 ? withStream(job.stream, bytes) : bytes);
    link.answers.sent(owedBefore);
  }

  /** The watchdog of a connection (`linkOf` gives it once made): see answer-watch.ts. */
  private answerWatch(linkOf: () => Link | undefined): AnswerWatch {
    return new AnswerWatch(this.clock, this.answerTimeout, DEFAULTS.answerRateFloor, {
      current: () => {
        const link = linkOf();
        return link !== undefined && !link.closed && this.link === link;
      },
      owes: () => {
        const link = linkOf();
        return link !== undefined && owesAnswers(link);
      },
      // An OPEN carrying its file is answered once the file is stored and flushed, as COMPLETE is.
      completing: () =>
        [...(linkOf()?.jobs.values() ?? [])].some(
          (job) => job.state === 'completing' || (job.awaiting && job.inline !== undefined),
        ),
      bytesInFlight: () => linkOf()?.outstanding ?? 0,
      silent: () => {
        const link = linkOf();
        if (!link) return;
        // Given up at once (a browser may take a minute to finish closing a dead socket): onClose
        // puts the files in flight back at the head of the queue, and the real close that follows
        // finds this link no longer current.
        this.onClose(link, { code: ABNORMAL_CLOSURE, reason: 'no answer from the server' });
        link.connection.close(CloseCode.NORMAL, 'no answer from the server');
      },
    });
  }

  private onAccept(link: Link, job: Job, accept: AcceptMessage): void {
    if ((job.state !== 'opening' && job.state !== 'proving') || !job.source)
      return this.violation(link, 'ACCEPT out of turn');
    job.digest = undefined; // a PROOF's digest binds nothing (16.10): COMPLETE carries its own
    job.uploadId = bytesToHex(accept.uploadId);
    job.chunkSize = accept.chunkSize;
    job.chunks = chunkCount(job.source.size, accept.chunkSize);
    job.hashes = new BigUint64Array(job.chunks);
    job.nextChunk = 0;
    // A new upload lists no range; a server that lists some already has them: skip those chunks
    // only once their hashes are ours, which a fresh upload cannot know, so send them all.
    link.window = accept.window;
    job.state = 'sending';
    this.options.onAccept?.(job.index, job.uploadId);
    if (job.chunks === 0) void this.complete(link, job);
    this.pump();
  }

  /** Send DATA of the files in flight, oldest file first, while the window allows. */
  private async feed(link: Link): Promise<void> {
    if (this.feeding) return;
    this.feeding = true;
    try {
      for (;;) {
        if (link.closed || this.link !== link) return;
        const job = nextSender(link);
        if (!job) return;
        const resend = job.resend.length > 0;
        const index = resend ? (job.resend[0] ?? 0) : job.nextChunk;
        const source = job.source;
        if (!source) return;
        const offset = index * job.chunkSize;
        const length = Math.min(job.chunkSize, source.size - offset);
        const limit = Math.min(link.window, this.maxInFlightBytes);
        if (link.window === 0 || (link.outstanding > 0 && link.outstanding + length > limit))
          return;
        if (link.connection.bufferedAmount > 2 * this.chunkSize) {
          await new Promise<void>((resolve) => link.drainWaiters.push(resolve));
          continue;
        }
        if (resend) job.resend.shift();
        else job.nextChunk++;
        const owedBefore = owesAnswers(link);
        link.outstanding += length;
        job.unanswered.set(offset, length);
        const header = link.version === 2 ? HeaderSizeV2.DATA : HeaderSize.DATA;
        const message = new Uint8Array(header + length);
        let payload: Uint8Array;
        try {
          payload = await source.read(offset, offset + length, message.subarray(header));
        } catch (error) {
          this.abandon(link, job, unreadable(job, error));
          continue;
        }
        if (link.closed || this.link !== link || job.state !== 'sending') continue;
        const hash = this.requireHasher().h64(payload);
        job.hashes[index] = hash;
        if (link.version === 2) writeDataHeaderV2(message, job.stream, offset, hash);
        else writeDataHeader(message, offset, hash);
        if (link.connection.sendChunk) link.connection.sendChunk(message, offset, offset + length);
        else link.connection.send(message);
        link.answers.sent(owedBefore);
        if (job.nextChunk >= job.chunks && job.resend.length === 0) void this.complete(link, job);
      }
    } finally {
      this.feeding = false;
    }
  }

  private async complete(link: Link, job: Job): Promise<void> {
    if (job.state !== 'sending') return;
    job.state = 'completing';
    const source = job.source;
    // A source edited while we read it must not be stored as done (the digest covers what we sent).
    const changed = source?.changed ? await source.changed().catch(() => true) : false;
    if (link.closed || this.link !== link) return;
    if (changed) {
      this.abandon(
        link,
        job,
        clientError(
          ClientErrors.SOURCE_ERROR,
          `${job.entry.label} changed while it was being sent`,
        ),
      );
      return;
    }
    job.digest = wholeFileDigest(this.requireHasher(), job.hashes);
    this.send(link, job, encodeComplete(job.digest));
  }

  /** Give up on one file whose upload is open: TERMINATE it, report `error` when TERMINATED comes. */
  private abandon(link: Link, job: Job, error: UploadErrorInfo): void {
    if (job.state === 'terminating') return;
    this.freeUnanswered(link, job);
    job.failure = error;
    if (job.state === 'opening' || job.state === 'proving') {
      // Nothing was accepted yet: the ACCEPT (or refusal, or the instant RESULT) still comes, and
      // an ACCEPT is then terminated. A TERMINATE now would cross an outstanding CHALLENGE.
      job.state = 'terminating';
      return;
    }
    job.state = 'terminating';
    this.send(link, job, encodeTerminate());
  }

  private freeUnanswered(link: Link, job: Job): void {
    for (const length of job.unanswered.values()) link.outstanding -= length;
    job.unanswered.clear();
  }

  private onAck(link: Link, job: Job, ranges: readonly ByteRange[]): void {
    const before = job.acked;
    for (const [offset, length] of job.unanswered) {
      if (ranges.some((r) => r.start <= offset && offset + length <= r.end)) {
        job.unanswered.delete(offset);
        link.outstanding -= length;
        job.acked += length;
      }
    }
    if (job.acked !== before) this.options.onProgress?.(job.index, job.acked);
    this.pump();
  }

  private onResult(link: Link, job: Job, result: ResultMessage): void {
    const { digest, uploadId } = result;
    link.jobs.delete(job.stream);
    this.connectFailures = 0;
    // After a PROOF, or an OPEN with data (16.11), no ACCEPT came: the RESULT names the upload.
    // An instant one says so (INSTANT); before that flag, a RESULT after a PROOF was always one.
    const inline = job.inline !== undefined;
    job.inline = undefined;
    const answersOpen = job.uploadId === '' && job.digest !== undefined;
    const instant = result.instant === true || (answersOpen && !inline);
    if (answersOpen) job.uploadId = bytesToHex(uploadId);
    if (
      job.digest === undefined ||
      digest !== job.digest ||
      bytesToHex(uploadId) !== job.uploadId
    ) {
      this.failJob(
        job,
        clientError(
          ClientErrors.RESULT_MISMATCH,
          `the server's digest ${hashToHex(digest)} is not ours for ${job.entry.label}`,
        ),
      );
    } else {
      // No ACCEPT came: the RESULT names the upload. Its bytes were stored with it, and progress
      // reports what the server stored.
      if (inline) this.options.onAccept?.(job.index, job.uploadId);
      if (inline && !instant && job.source && job.source.size > 0) {
        job.acked = job.source.size;
        this.options.onProgress?.(job.index, job.acked);
      }
      this.report(job, {
        state: 'done',
        uploadId: job.uploadId,
        digest: hashToHex(digest),
        ...(instant ? { instant } : {}),
      });
    }
    this.pump();
  }

  /** An ERROR about one file (its stream, or bigup.1's only upload). */
  private onFileError(link: Link, job: Job, error: ErrorMessage): void {
    const length = job.unanswered.get(error.offset);
    if (error.length > 0 && length !== undefined) {
      job.unanswered.delete(error.offset);
      link.outstanding -= length;
    }
    const info = serverError(error.code, error.retryable, error.message, error.fatal);
    // An OPEN with data has no upload to stay open: any answer but RESULT ends its stream (16.11),
    // also when the file was dropped (state 'terminating') while its OPEN was out.
    if (error.fatal || job.inline !== undefined) {
      job.inline = undefined;
      // The stream ended (bigup.2) or the connection closes after this (bigup.1): the file is out
      // of this connection either way.
      link.jobs.delete(job.stream);
      this.freeUnanswered(link, job);
      if (job.state === 'terminating' && job.failure) {
        this.failJob(job, job.failure);
      } else if (error.retryable && error.code === Errors.TOO_MANY_UPLOADS.code) {
        this.retryLater(job);
      } else if (error.retryable && link.version === 1) {
        this.queue.unshift(resetJob(job)); // the reconnect takes it again
      } else {
        this.failJob(job, info);
      }
      if (link.version === 1) {
        if ((error.code & 0xff00) === 0x0100) link.closesAfterRefusal = true;
        else if (!error.retryable) link.fatal = info;
      }
      this.pump();
      return;
    }
    if (error.code === Errors.HASH_MISMATCH.code && job.state === 'sending') {
      const index = Math.floor(error.offset / job.chunkSize);
      const count = (job.resends.get(index) ?? 0) + 1;
      job.resends.set(index, count);
      if (count <= BATCH_DEFAULTS.maxChunkResends) {
        job.resend.push(index);
        this.pump();
        return;
      }
    }
    // OUT_OF_RANGE, CONFLICT, DIGEST_MISMATCH, INCOMPLETE, a chunk refused too often: this file
    // cannot be stored as it is; the server keeps nothing of it.
    this.abandon(link, job, info);
    this.pump();
  }

  private retryLater(job: Job): void {
    job.refusals++;
    if (job.refusals > this.backoff.maxAttempts) {
      this.failJob(
        job,
        serverError(Errors.TOO_MANY_UPLOADS.code, true, 'the server stayed busy', true),
      );
      return;
    }
    this.delayed++;
    this.delayedJobs.set(job.index, job);
    const delay = backoffDelay(this.backoff, job.refusals, this.options.random);
    this.clock.setTimeout(() => {
      if (!this.delayedJobs.delete(job.index)) return; // dropped meanwhile
      this.delayed--;
      this.queue.unshift(resetJob(job));
      this.queue.sort((a, b) => a.index - b.index);
      this.pump();
    }, delay);
  }

  // ------------------------------------------------------------------------------------------
  // Messages

  private onMessage(link: Link, data: Uint8Array): void {
    if (link.closed || this.link !== link) return;
    let frame: Frame<ServerMessageV2>;
    try {
      frame =
        link.version === 2
          ? decodeServerFrame(data)
          : { stream: 0, message: decodeServerMessage(data) };
    } catch (error) {
      this.violation(link, `undecodable server message: ${errorText(error)}`);
      return;
    }
    const { stream, message } = frame;
    link.answers.heard();
    if (message.type !== 'ack' && message.type !== 'window') {
      const answered = link.jobs.get(stream);
      if (answered) answered.awaiting = false;
    }
    if (message.type === 'welcome') {
      link.limit = Math.max(1, Math.min(this.maxFilesInFlight, multiplexOf(message.capabilities)));
      link.inlineLimit = inlineFileLimitOf(message.capabilities);
      if (
        message.capabilities.some(
          (c) =>
            c.id !== Capability.MULTIPLEX &&
            !(c.id === Capability.PROOF_OF_POSSESSION && this.options.instantUpload) &&
            !(c.id === Capability.OPEN_WITH_DATA && this.options.inlineSmallFiles !== false),
        )
      )
        this.violation(link, 'WELCOME granted a capability this client did not offer');
      this.pump();
      return;
    }
    if (message.type === 'window') {
      link.window = message.window;
      this.pump();
      return;
    }
    if (message.type === 'error' && (link.version === 2 ? stream === 0 : link.jobs.size === 0)) {
      this.onConnectionError(link, message);
      return;
    }
    const job = link.jobs.get(stream);
    if (!job) {
      if (link.version === 2 && stream < link.nextStream) return; // a file we already let go
      this.violation(link, `a ${message.type.toUpperCase()} for no upload of ours`);
      return;
    }
    switch (message.type) {
      case 'accept':
        if (job.state === 'terminating') {
          // Abandoned before the ACCEPT arrived (its source could not be read): delete it now.
          job.uploadId = bytesToHex(message.uploadId);
          this.send(link, job, encodeTerminate());
          return;
        }
        this.onAccept(link, job, message);
        return;
      case 'challenge':
        if (job.state !== 'opening' && !(job.state === 'terminating' && job.uploadId === ''))
          return this.violation(link, 'CHALLENGE out of turn');
        void this.prove(link, job, message);
        return;
      case 'ack':
        this.onAck(link, job, message.ranges);
        return;
      case 'result':
        this.onResult(link, job, message);
        return;
      case 'terminated':
        link.jobs.delete(job.stream);
        this.failJob(job, job.failure ?? clientError(ClientErrors.PROTOCOL_VIOLATION));
        this.pump();
        return;
      case 'error':
        this.onFileError(link, job, message);
        return;
    }
  }

  /**
   * CHALLENGE (SPEC.md 16.10): answer with the whole-file digest at the chunk size it names (else
   * the proposed one) and the hashes of the nonce with each named range. The PROOF goes out even
   * for a file dropped meanwhile (the stream must be answered); ACCEPT then terminates it.
   */
  private async prove(link: Link, job: Job, challenge: ChallengeMessage): Promise<void> {
    if (job.state === 'opening') job.state = 'proving';
    const source = job.source;
    let proof: { digest: bigint; hashes: bigint[] };
    try {
      if (!source) throw new Error('no source');
      const hasher = this.requireHasher();
      proof = {
        digest: await digestOfFile(hasher, source, challenge.chunkSize ?? this.chunkSize),
        hashes: await challengeHashes(hasher, source, challenge),
      };
    } catch (error) {
      // The stream can only be answered with a PROOF: without the bytes, the connection goes.
      this.abandon(link, job, unreadable(job, error));
      link.fatal = undefined;
      link.connection.close(4000, 'source unreadable during a challenge');
      return;
    }
    if (link.closed || this.link !== link) return;
    job.digest = proof.digest;
    const owedBefore = owesAnswers(link);
    job.awaiting = true;
    link.connection.send(encodeProof(job.stream, proof.digest, proof.hashes));
    link.answers.sent(owedBefore);
  }

  private onConnectionError(link: Link, error: ErrorMessage): void {
    const info = serverError(error.code, error.retryable, error.message, error.fatal);
    if (error.fatal && !error.retryable) link.fatal = info;
    // The close follows; onClose requeues or fails what is in flight.
  }

  private violation(link: Link, message: string): void {
    link.fatal = clientError(ClientErrors.PROTOCOL_VIOLATION, message);
    link.connection.close(CloseCode.PROTOCOL_ERROR, 'protocol violation');
  }

  private requireHasher(): Hasher {
    if (!this.hasher) throw new Error('run() loads the hasher first');
    return this.hasher;
  }
}

function newJob(index: number, entry: BatchEntry): Job {
  return resetJob({
    index,
    entry,
    source: undefined,
    refusals: 0,
    stream: 0,
    state: 'opening',
    chunkSize: 0,
    chunks: 0,
    uploadId: '',
    nextChunk: 0,
    hashes: new BigUint64Array(0),
    unanswered: new Map(),
    resend: [],
    resends: new Map(),
    failure: undefined,
    digest: undefined,
    inline: undefined,
    acked: 0,
    dropped: false,
    awaiting: false,
  });
}

/** The server owes this connection answers: DATA unanswered, or a file's request. */
function owesAnswers(link: Link): boolean {
  if (link.outstanding > 0) return true;
  for (const job of link.jobs.values()) if (job.awaiting) return true;
  return false;
}

/** The job as before its OPEN: a new connection opens it as a new upload. */
function resetJob(job: Job): Job {
  job.state = 'opening';
  job.awaiting = false;
  job.stream = 0;
  job.uploadId = '';
  job.nextChunk = 0;
  job.unanswered.clear();
  job.resend.length = 0;
  job.resends.clear();
  job.failure = undefined;
  job.digest = undefined;
  job.inline = undefined;
  job.acked = 0;
  return job;
}

/** The oldest file with a chunk to send. */
function nextSender(link: Link): Job | undefined {
  for (const job of link.jobs.values()) {
    if (job.state !== 'sending') continue;
    if (job.resend.length > 0 || job.nextChunk < job.chunks) return job;
  }
  return undefined;
}

function wakeAll(link: Link): void {
  const waiters = link.drainWaiters;
  link.drainWaiters = [];
  for (const resume of waiters) resume();
}

/** A refused handshake that retrying will not fix, as an error; undefined for retryable closes. */
function handshakeFailure(info: CloseInfo): UploadErrorInfo | undefined {
  const status = info.httpStatus;
  if (status === 401 || status === 403) return clientError(ClientErrors.HANDSHAKE_UNAUTHORIZED);
  if (status === 426 || info.code === CloseCode.NO_SUPPORTED_VERSION)
    return clientError(ClientErrors.UNSUPPORTED_VERSION);
  if (status !== undefined && status !== 503 && status >= 400)
    return clientError(ClientErrors.HANDSHAKE_REFUSED, `the server answered HTTP ${status}`);
  return undefined;
}

/** The error of a file whose source cannot be read. */
function unreadable(job: Job, error: unknown): UploadErrorInfo {
  return clientError(
    ClientErrors.SOURCE_ERROR,
    `cannot read ${job.entry.label}: ${errorText(error)}`,
  );
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
