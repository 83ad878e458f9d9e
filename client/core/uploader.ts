/**
 * The platform-free Uploader: drives one file through bigup.1 (protocol/SPEC.md) over any
 * `Transport`, reading from any `FileSource`, remembering progress in any `ResumeStore`.
 *
 * Shape of the work:
 * - A *session* is one WebSocket connection. It opens with OPEN (new upload) or RESUME (id and
 *   secret from this process or from the resume store); the server's ACCEPT lists every acked
 *   range, and the session queues exactly the chunks not covered by it.
 * - The pump sends chunks while outstanding bytes (sent, neither acked nor refused) plus bytes
 *   being read stay within min(server window, maxInFlightBytes), the socket's bufferedAmount is
 *   below its cap, and the rate limiter allows. Each chunk is read into a pooled buffer of
 *   18 + chunkSize bytes behind room for the DATA header, hashed, the header written in front,
 *   and the whole buffer handed to the socket: no copy of the payload.
 * - ACK/ERROR free window space and buffers; HASH_MISMATCH re-reads and resends the chunk.
 *   COMPLETE goes out right after the last DATA (the server answers it after all earlier DATA).
 * - A dropped connection or retryable error schedules a new session after an exponential,
 *   jittered backoff; the attempt counter resets whenever an ACK moves progress forward.
 *
 * Digest decision: COMPLETE always carries our whole-file digest, computed from the file as it is
 * now, and the server checks it against what it stored. After a cross-session resume the chunks
 * acked earlier are re-read and hashed in the background while the missing ones are sent.
 * Persisted hashes would be cheaper but would vouch for bytes as they were when sent: a file
 * edited between sessions (with its mtime put back, so the fingerprint matches) would complete
 * with the old bytes. A DIGEST_MISMATCH (or CONFLICT) after such a resume means the file changed:
 * the stale upload is terminated and the file uploaded afresh, once. A file that changes while
 * this Uploader has it open (`FileSource.changed`) fails with SOURCE_ERROR before COMPLETE.
 */
import {
  Errors,
  HeaderSize,
  CloseCode,
  Limits,
  RangeSet,
  SUBPROTOCOL_V1,
  SUBPROTOCOL_V2,
  Capability,
  HeaderSizeV2,
  LimitsV2,
  decodeServerFrame,
  encodeHello,
  encodeVerify,
  withStream,
  writeDataHeaderV2,
  encodeProof,
  type ChallengeMessage,
  type CapabilityEntry,
  bytesToHex,
  chunkBounds,
  chunkCount,
  decodeServerMessage,
  encodeComplete,
  encodeOpen,
  encodeResume,
  encodeTerminate,
  errorByCode,
  hashToHex,
  parseSecret,
  parseUploadId,
  isProtocolError,
  loadHasher,
  rangeOffGrid,
  wholeFileDigest,
  withoutLoneSurrogates,
  writeDataHeader,
} from '../../protocol/index.js';
import type {
  AcceptMessage,
  ErrorMessage,
  Hasher,
  ResultMessage,
  ServerMessage,
} from '../../protocol/index.js';
import { challengeHashes, digestOfFile } from './proof.js';
import { backoffDelay, resolveBackoff } from './backoff.js';
import { ChunksInFlight } from './chunks-in-flight.js';
import { Emitter } from './emitter.js';
import { ClientErrors, clientError, serverError } from './errors.js';
import { AnswerWatch, answerTimeoutOf } from './answer-watch.js';
import { defaultFingerprint, endpointKey } from './fingerprint.js';
import { Lifecycle } from './lifecycle.js';
import { RateMeter, TokenBucket } from './rate.js';
import type {
  BackoffOptions,
  Clock,
  CloseInfo,
  CompleteEvent,
  Connection,
  InfoCode,
  UploadProgress,
  ResumeRecord,
  UploadErrorInfo,
  UploadOutcome,
  UploadState,
  Transport,
  Uploader,
  UploaderEventMap,
  UploaderEventName,
  UploaderOptions,
} from './types.js';
import { ABNORMAL_CLOSURE } from './types.js';

const MiB = 1024 * 1024;

/**
 * Bytes an accepted upload must still have to send before it moves to `dataTransport`
 * (UploaderOptions): the move costs one more connection and round trip (a RESUME), which a
 * file of a few chunks would not win back.
 */
export const DATA_TRANSPORT_MIN_BYTES = 16 * MiB;

/** How a transport's refusals end a session (client/core/errors.ts): the transport's, not the upload's. */
const TRANSPORT_REFUSALS: ReadonlySet<number> = new Set(
  [
    ClientErrors.NETWORK,
    ClientErrors.HANDSHAKE_UNAUTHORIZED,
    ClientErrors.UNSUPPORTED_VERSION,
    ClientErrors.HANDSHAKE_REFUSED,
    ClientErrors.PROTOCOL_VIOLATION,
  ].map((e) => e.code),
);

/**
 * Defaults, chosen from a loopback sweep of the bench harness against `big-uploader serve` (window
 * 64 MiB so the client's window is what varies; 1 GiB, 2 runs each, median; client/README.md,
 * "Defaults"): 4 MiB chunks with 32 MiB in flight gave ~820-840 MB/s at ~1.2 server CPU s/GiB;
 * 1 MiB chunks stayed near 570-615 at any window (four times the messages and journal records),
 * 8 MiB chunks near 700, and a 64 MiB window added little (871) for twice the memory.
 * The server's default window is 32 MiB to match.
 */
export const DEFAULTS = Object.freeze({
  chunkSize: 4 * MiB,
  maxInFlightBytes: 32 * MiB,
  /** Most chunks being read from the source at once: overlap disk and network, keep reads sequential-ish. */
  maxConcurrentReads: 2,
  /** Waiting for in-flight ACKs when pausing, and for TERMINATED when cancelling. */
  pauseTimeoutMs: 10_000,
  cancelTimeoutMs: 5_000,
  /** No ACCEPT within this time after the socket opened: treat as a network fault. */
  acceptTimeoutMs: 30_000,
  /**
   * Chunks or a VERIFY sent and nothing heard from the server for this long, plus the time the
   * bytes in flight take at `answerRateFloor`: treat the connection as lost (a server whose
   * storage hangs, a path that silently drops). COMPLETE waits ten times as long: a completion
   * flushes and moves the file (an object store assembles the parts).
   */
  answerTimeoutMs: 120_000,
  /**
   * Bytes per second the slowest uplink is assumed to carry: a full window over HTTP is several
   * chunk requests at once, none answered before its whole body is sent (32 MiB at this rate is
   * 17 minutes more).
   */
  answerRateFloor: 32 * 1024,
  /** Progress events at most this often (the last one always goes out). */
  progressIntervalMs: 100,
  /** Poll interval for bufferedAmount on transports that do not report drain. */
  drainPollMs: 10,
  /** Give up on a chunk the server keeps refusing as HASH_MISMATCH (memory or source corruption). */
  maxHashMismatches: 5,
});

const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** One WebSocket connection and everything that only makes sense while it lives. */
interface Session {
  readonly conn: Connection;
  /** When this connection attempt began (for firstAckMs). */
  readonly connectedAt: number;
  phase: 'connecting' | 'handshake' | 'active' | 'closed';
  opened: 'open' | 'resume' | undefined;
  window: number;
  /** Chunks being read or sent on this connection and not answered; each holds its pooled buffer. */
  readonly inFlight: ChunksInFlight<Uint8Array>;
  /** Chunk indices still to send, ascending, consumed from `queuePos`. */
  queue: number[];
  queuePos: number;
  /** Chunks to send before the queue (refused with HASH_MISMATCH, or read while pausing). */
  readonly resend: number[];
  completeSent: boolean;
  /** Hashing acked chunks or checking the source before COMPLETE. */
  completePreparing: boolean;
  /** The digest COMPLETE carried, if any. */
  sentDigest: bigint | undefined;
  /** Error that ends this session, recorded before the close arrives. */
  error: UploadErrorInfo | undefined;
  /** The session ends because of pause/cancel/done, not a fault. */
  ending: boolean;
  waitTimer: unknown;
  acceptTimer: unknown;
  /** Watches for answers owed by the server (answer-watch.ts). */
  readonly answers: AnswerWatch;
  /** bigup.2 negotiated: control messages go on stream 1 (SPEC.md 16), HELLO first. */
  v2: boolean;
  /** The server granted REPLACE_CHUNK in WELCOME (SPEC.md 16.9). */
  replaceChunk: boolean;
  /**
   * Checking chunks acked in an earlier run against the file as it is now (VERIFY, 16.9):
   * 'hashing' while they are re-read (DATA of missing chunks goes on), 'draining' until the reads
   * in flight are sent, 'waiting' for VERIFIED (nothing else goes on the stream), then the next
   * page, until 'done'. Undefined when there is nothing to check or the server cannot.
   */
  verify: { stage: 'hashing' | 'draining' | 'waiting' | 'done'; through: number } | undefined;
  /**
   * An instant upload attempt (SPEC.md 16.10): offered in HELLO with the OPEN sent (the server
   * answers ACCEPT, or CHALLENGE when it may hold the file), hashing for the PROOF, PROOF sent.
   * An ACCEPT ends it (the server goes on as an ordinary upload).
   */
  instant: 'offered' | 'hashing' | 'proved' | undefined;
}

/** Bytes before a DATA payload in the send buffers: room for either version's header. */
const DATA_PREFIX = HeaderSizeV2.DATA;
/** The one stream this uploader uses on a bigup.2 connection. */
const STREAM = 1;

/** Uploads one file: the `Uploader` every entry creates. */
export class FileUploader implements Uploader {
  private readonly options: UploaderOptions;
  /** The transport the next connection uses: `options.transport`, or its `dataTransport`. */
  private transport: Transport;
  /** The data transport could not reach the server: the upload stays on `options.transport`. */
  private dataTransportFailed = false;
  /** The ACCEPT before the move to the data transport created the upload (until the next ACCEPT). */
  private createdBeforeMove = false;
  /** The upload moved to the data transport right after this Uploader created it. */
  private movedNewUpload = false;
  /** An ACK came in this session over the data transport (UploaderOptions.dataTransport). */
  private dataTransportProven = false;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly backoff: BackoffOptions;
  private readonly emitter = new Emitter<UploaderEventMap>();
  private readonly chunkSizeProposal: number;
  private readonly maxInFlight: number;
  private readonly meter = new RateMeter();
  private readonly bucket: TokenBucket | undefined;

  private readonly life = new Lifecycle((change) => this.emitter.emit('state', change));
  private hasher: Hasher | undefined;
  private fingerprint: string | undefined;
  private prepared = false;

  private uploadIdBytes: Uint8Array | undefined;
  private secret: Uint8Array | undefined;
  private chunkSize = 0;
  private acked = new RangeSet();
  private hashes: BigUint64Array | undefined;
  private hashKnown: Uint8Array | undefined;
  private readonly pool: Uint8Array[] = [];
  private readonly mismatches = new Map<number, number>();
  private incompletes = 0;
  /** Re-hashing chunks acked in an earlier session (see the digest decision above). */
  private hashingAcked: Promise<void> | undefined;
  private hashingAckedDone = false;
  /** Whole-file digest at the proposed chunk size, once hashed for an instant upload. */
  private instantDigest: bigint | undefined;
  /** The whole-file digest at one chunk size, computed or being computed (wholeFileDigestNow). */
  private instantDigestRun: { chunkSize: number; digest: Promise<bigint> } | undefined;
  /** Chunks acked in an earlier run were re-hashed and not yet checked against the server's (VERIFY). */
  private verifyPending = false;
  /** The upload was restarted once because the file no longer matched the server's copy. */
  private restartedAfterChange = false;

  private bytesSent = 0;
  private bytesSkipped: number | undefined;
  private startedAt: number | undefined;
  /** From the start of the connection that got the first ACK of new bytes to that ACK. */
  private firstAckMs: number | undefined;
  private attempt = 0;
  /** Milliseconds the server may stay silent while it owes answers (0: never). */
  private readonly answerTimeout: number;
  /** The upload failed with TAKEN_OVER: another session holds it, and cancel must not touch it. */
  private takenOver = false;
  private lastProgressAt = -Infinity;
  /** When the last byte was acked or COMPLETE went out, whichever came later. */
  private finishingSince: number | undefined;
  private result: CompleteEvent | undefined;
  private lastError: UploadErrorInfo | undefined;

  private session: Session | undefined;
  private retryTimer: unknown;
  private pumpTimer: unknown;
  /** pump() is running: a drain or read completing inside it must not start a second loop. */
  private pumping = false;

  constructor(options: UploaderOptions) {
    this.options = options;
    this.transport = options.transport;
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
    this.backoff = resolveBackoff(options.backoff);
    this.chunkSizeProposal = options.chunkSize ?? DEFAULTS.chunkSize;
    this.maxInFlight = options.maxInFlightBytes ?? DEFAULTS.maxInFlightBytes;
    if (!Number.isSafeInteger(this.chunkSizeProposal) || this.chunkSizeProposal < 0)
      throw new RangeError('chunkSize must be a non-negative integer');
    if (!(this.maxInFlight > 0)) throw new RangeError('maxInFlightBytes must be positive');
    this.answerTimeout = answerTimeoutOf(options.answerTimeout, DEFAULTS.answerTimeoutMs);
    this.bucket = options.limitRate
      ? new TokenBucket(options.limitRate, this.clock.now())
      : undefined;
    // Fail at construction, not at the first connect, on an unusable URL.
    new URL(options.endpoint);
  }

  // -------------------------------------------------------------------------------------------
  // Public API

  get state(): UploadState {
    return this.life.state;
  }

  get uploadId(): string | undefined {
    return this.uploadIdBytes ? bytesToHex(this.uploadIdBytes) : undefined;
  }

  get progress(): UploadProgress {
    const total = this.options.file.size;
    const rate = this.meter.bytesPerSecond;
    const remaining = total - this.acked.total;
    return {
      bytesAcked: this.acked.total,
      bytesSent: this.bytesSent,
      total,
      rate,
      eta: remaining === 0 ? 0 : rate > 0 ? remaining / rate : null,
    };
  }

  on<K extends UploaderEventName>(
    event: K,
    handler: (payload: UploaderEventMap[K]) => void,
  ): () => void {
    return this.emitter.on(event, handler);
  }

  start(): Promise<UploadOutcome> {
    const life = this.life;
    switch (life.state) {
      case 'done':
        return this.result
          ? Promise.resolve({ state: 'done', result: this.result })
          : Promise.reject(new Error('internal: done without a result'));
      case 'cancelled':
        return Promise.resolve({ state: 'cancelled' });
      case 'connecting':
      case 'uploading':
      case 'retrying':
      case 'completing': {
        const running = life.running;
        if (!life.pausing && running) return running;
        // A pause is under way: let it finish, then go again.
        return this.pause().then(() => this.start());
      }
      case 'idle':
      case 'paused':
      case 'failed':
        break;
    }
    this.attempt = 0;
    // Started again by the user after a TAKEN_OVER: taking the upload back is what they asked.
    this.takenOver = false;
    this.startedAt ??= this.clock.now();
    this.meter.restart();
    const running = life.beginRun();
    life.go('start');
    void this.prepareAndConnect();
    return running;
  }

  resume(): Promise<UploadOutcome> {
    return this.start();
  }

  pause(): Promise<void> {
    if (!this.life.moving) return Promise.resolve();
    const { first, rested } = this.life.requestPause();
    if (!first) return rested;
    const s = this.session;
    if (this.life.state === 'retrying') {
      this.clock.clearTimeout(this.retryTimer);
      this.toPaused();
    } else if (s && s.phase !== 'active') {
      this.endSession();
      this.toPaused();
    } else if (s) {
      s.waitTimer = this.clock.setTimeout(() => {
        if (this.session === s) {
          this.endSession();
          this.toPaused();
        }
      }, DEFAULTS.pauseTimeoutMs);
      this.checkPauseDone();
    } else {
      // Still preparing (loading the hasher / resume record): prepareAndConnect sees the request.
    }
    return rested;
  }

  async cancel(): Promise<void> {
    const life = this.life;
    if (life.state === 'done' || life.state === 'cancelled') return;
    this.emitter.mute();
    this.clock.clearTimeout(this.retryTimer);
    this.clock.clearTimeout(this.pumpTimer);
    const wasRunning = life.hasRun;
    life.go('cancel');
    // After TAKEN_OVER the record (shared by two tabs, or two runs) is the other session's.
    const removal = this.takenOver ? Promise.resolve() : this.removeRecord();
    // Another session took the upload over (another tab, another run): it is theirs now, and a
    // RESUME to terminate it would take it from them and destroy their upload (SPEC.md 7.10).
    if (this.uploadIdBytes && this.secret && !this.takenOver) {
      const confirmed = life.awaitTerminated();
      const timer = this.clock.setTimeout(() => life.confirmTerminated(), DEFAULTS.cancelTimeoutMs);
      const s = this.session;
      if (s && s.phase === 'active') {
        s.ending = true;
        this.sendControl(s, encodeTerminate());
      } else if (!s || s.phase === 'closed') {
        // Paused, retrying or failed: open a connection only to terminate (RESUME, then TERMINATE).
        this.connect();
      }
      // A session still in its handshake sends TERMINATE when ACCEPT arrives.
      await confirmed;
      this.clock.clearTimeout(timer);
    }
    this.endSession();
    await removal;
    await this.closeFile();
    if (wasRunning) life.settle({ state: 'cancelled' });
    life.releasePauseWaiters();
  }

  // -------------------------------------------------------------------------------------------
  // Connecting

  private async prepareAndConnect(): Promise<void> {
    try {
      if (!this.prepared) {
        this.hasher = await (this.options.loadHasher ?? loadHasher)();
        // Read a byte before asking the server for anything: an unreadable file leaves no upload behind.
        const file = this.options.file;
        if (file.size > 0) await file.read(0, 1);
        const store = this.options.resumeStore;
        // A file no larger than the smallest chunk is one chunk whatever the server agrees: there
        // is nothing to resume, so it costs no fingerprint and no record writes (small-file folders).
        if (store && file.size > Limits.MIN_CHUNK_SIZE) {
          const fp = this.options.fingerprint ?? defaultFingerprint;
          this.fingerprint = await fp(this.options.file, this.options.endpoint);
          const record = await store.get(this.fingerprint).catch(() => undefined);
          if (record && this.usable(record)) {
            this.uploadIdBytes = parseUploadId(record.uploadId);
            this.secret = parseSecret(record.secret);
            this.chunkSize = record.chunkSize;
          }
        }
        this.prepared = true;
      }
    } catch (error) {
      this.fail(clientError(ClientErrors.SOURCE_ERROR, `cannot read the file: ${describe(error)}`));
      return;
    }
    if (this.life.cancelled) return;
    if (this.life.pausing) {
      this.toPaused();
      return;
    }
    this.connect();
  }

  private usable(record: ResumeRecord): boolean {
    return (
      record.version === 1 &&
      record.size === this.options.file.size &&
      endpointKey(record.endpoint) === endpointKey(this.options.endpoint) &&
      parseUploadId(record.uploadId) !== undefined &&
      parseSecret(record.secret) !== undefined
    );
  }

  private connect(): void {
    const url = new URL(this.options.endpoint);
    // SPEC.md 3.3: a client that can set headers sends the token in Authorization, not the URL.
    const transport = this.transport;
    // Proven per session: an earlier session's ACKs say nothing about this network or proxy.
    if (transport === this.options.dataTransport) this.dataTransportProven = false;
    const headerAuth = this.options.token && transport.sendsHeaders === true;
    if (this.options.token && !headerAuth) url.searchParams.set('token', this.options.token);
    this.life.go('reconnect');
    let session: Session | undefined;
    const current = (): Session | undefined =>
      session !== undefined && this.session === session ? session : undefined;
    const isCurrent = () => current() !== undefined;
    let conn: Connection;
    try {
      conn = transport.connect(
        url.toString(),
        this.options.replaceChangedChunks === false
          ? [SUBPROTOCOL_V1]
          : [SUBPROTOCOL_V2, SUBPROTOCOL_V1],
        {
          onOpen: (protocol) => {
            const s = current();
            if (s) this.onOpen(s, protocol);
          },
          onMessage: (data) => {
            const s = current();
            if (s) this.onMessage(s, data);
          },
          onClose: (info) => {
            const s = current();
            if (s) this.onClose(s, info);
          },
          onDrain: () => {
            if (isCurrent()) this.pump();
          },
        },
        headerAuth ? { Authorization: `Bearer ${this.options.token}` } : undefined,
      );
    } catch (error) {
      // A transport that cannot even start (a browser refusing ws:// from an https page, a
      // blocked port: SecurityError) would otherwise leave the run waiting for an onClose that
      // never comes. The data transport's failure is a refusal of it: back to the main one.
      if (transport !== this.options.transport && !this.life.cancelled) {
        this.dataTransportFailed = true;
        this.transport = this.options.transport;
        this.connect();
        return;
      }
      if (this.life.cancelled) this.life.confirmTerminated();
      else
        this.fail(
          clientError(
            ClientErrors.BAD_ENDPOINT,
            `could not connect to ${this.options.endpoint}: ${describe(error)}`,
            true,
          ),
        );
      return;
    }
    session = {
      conn,
      connectedAt: this.clock.now(),
      phase: 'connecting',
      opened: undefined,
      window: 0,
      inFlight: new ChunksInFlight(),
      queue: [],
      queuePos: 0,
      resend: [],
      completeSent: false,
      completePreparing: false,
      sentDigest: undefined,
      error: undefined,
      ending: false,
      waitTimer: undefined,
      acceptTimer: undefined,
      answers: new AnswerWatch(this.clock, this.answerTimeout, DEFAULTS.answerRateFloor, {
        current: () =>
          session !== undefined && this.session === session && session.phase === 'active',
        owes: () => session !== undefined && this.owesAnswers(session),
        completing: () => session?.completeSent === true,
        bytesInFlight: () => session?.inFlight.outstanding ?? 0,
        silent: (quiet) => {
          if (session)
            this.abortSession(
              session,
              clientError(
                ClientErrors.NETWORK,
                `no answer from the server for ${Math.round(quiet / 1000)} s while it owed one; reconnecting`,
              ),
            );
        },
      }),
      v2: false,
      replaceChunk: false,
      verify: undefined,
      instant: undefined,
    };
    this.session = session;
  }

  private onOpen(s: Session, protocol: string): void {
    const offeredV2 = this.options.replaceChangedChunks !== false;
    if (protocol !== SUBPROTOCOL_V1 && !(offeredV2 && protocol === SUBPROTOCOL_V2)) {
      this.abortSession(
        s,
        clientError(
          ClientErrors.UNSUPPORTED_VERSION,
          `the server negotiated "${protocol}" instead of ${SUBPROTOCOL_V1}`,
        ),
      );
      return;
    }
    s.phase = 'handshake';
    if (protocol === SUBPROTOCOL_V2) {
      // One stream (no MULTIPLEX); the OPEN/RESUME follows HELLO without waiting (16.3). With
      // instant upload offered, the server may answer the OPEN with CHALLENGE (16.10).
      s.v2 = true;
      const instant =
        !this.uploadIdBytes &&
        this.options.instantUpload !== false &&
        this.options.file.size > 0 &&
        this.result === undefined;
      const capabilities: CapabilityEntry[] = [{ id: Capability.REPLACE_CHUNK, value: 0 }];
      // Value 1: a CHALLENGE may name the chunk size to take the digest at (SPEC.md 16.10).
      if (instant) capabilities.unshift({ id: Capability.PROOF_OF_POSSESSION, value: 1 });
      s.conn.send(encodeHello(capabilities));
      if (instant) s.instant = 'offered';
    }
    this.sendOpenOrResume(s);
  }

  /** OPEN or RESUME, and its answer's timer. */
  private sendOpenOrResume(s: Session): void {
    this.awaitAnswer(s);
    const file = this.options.file;
    const token = this.options.uploadToken ?? '';
    if (this.uploadIdBytes && this.secret) {
      s.opened = 'resume';
      this.sendControl(
        s,
        encodeResume({ uploadId: this.uploadIdBytes, secret: this.secret, token }),
      );
    } else {
      s.opened = 'open';
      this.sendControl(
        s,
        encodeOpen({
          fileSize: file.size,
          chunkSize: this.chunkSizeProposal,
          name: wellFormedName(file.name),
          contentType: file.type,
          token,
          metadata: this.options.metadata ?? {},
        }),
      );
    }
  }

  /** The answer to OPEN/RESUME (or PROOF) must come within the accept timeout. */
  private awaitAnswer(s: Session): void {
    this.clock.clearTimeout(s.acceptTimer);
    s.acceptTimer = this.clock.setTimeout(() => {
      if (this.session === s && s.phase === 'handshake') {
        this.abortSession(
          s,
          clientError(ClientErrors.NETWORK, 'the server did not answer OPEN/RESUME in time'),
        );
      }
    }, DEFAULTS.acceptTimeoutMs);
  }

  /** The server owes this session answers: chunks sent, COMPLETE, a VERIFY. */
  private owesAnswers(s: Session): boolean {
    return s.completeSent || s.inFlight.count > 0 || s.verify?.stage === 'waiting';
  }

  /**
   * The whole-file digest (SPEC.md 7.8) at `chunkSize`, from one read of the file; computed once
   * per Uploader and chunk size (a reconnect during an instant upload does not hash again).
   */
  private wholeFileDigestNow(chunkSize: number): Promise<bigint> {
    // The one being computed too: a server that gave up waiting for the PROOF of a big file
    // (SPEC.md 16.10) challenges the next OPEN, which must not start reading the file again.
    if (this.instantDigestRun?.chunkSize === chunkSize) return this.instantDigestRun.digest;
    this.info(
      'CHECKING_SERVER_COPY',
      'the server may already hold this file: hashing it to prove the copy is ours (instant upload)',
    );
    const digest = (async () => {
      const hasher = this.hasher ?? (await (this.options.loadHasher ?? loadHasher)());
      const value = await digestOfFile(hasher, this.options.file, chunkSize);
      this.instantDigest = value;
      return value;
    })();
    const run = { chunkSize, digest };
    this.instantDigestRun = run;
    // A failed read is not remembered: the next challenge reads again.
    digest.catch(() => {
      if (this.instantDigestRun === run) this.instantDigestRun = undefined;
    });
    return digest;
  }

  /**
   * CHALLENGE (SPEC.md 16.10): hash the whole file (once per Uploader) and the nonce with each
   * named range, answer PROOF. Reading the file takes as long as it takes: no timer meanwhile.
   */
  private async answerChallenge(s: Session, challenge: ChallengeMessage): Promise<void> {
    this.clock.clearTimeout(s.acceptTimer);
    // At the chunk size the server names (its store keeps another than proposed), else proposed.
    const digest = await this.wholeFileDigestNow(challenge.chunkSize ?? this.chunkSizeProposal);
    const hasher = this.hasher ?? (await (this.options.loadHasher ?? loadHasher)());
    const hashes = await challengeHashes(hasher, this.options.file, challenge);
    if (this.session !== s || s.instant !== 'hashing') return;
    s.instant = 'proved';
    s.conn.send(encodeProof(STREAM, digest, hashes));
    this.awaitAnswer(s);
  }

  /** RESULT right after PROOF: the server had the file; nothing was sent. */
  private onInstantResult(s: Session, m: ResultMessage): void {
    const file = this.options.file;
    if (m.fileSize !== file.size || m.digest !== this.instantDigest) {
      this.abortSession(
        s,
        clientError(
          ClientErrors.RESULT_MISMATCH,
          `the server reports ${m.fileSize} bytes with digest ${hashToHex(m.digest)} for an instant upload`,
        ),
        true,
      );
      return;
    }
    this.clock.clearTimeout(s.acceptTimer);
    this.acked = new RangeSet([{ start: 0, end: file.size }]);
    this.result = {
      uploadId: bytesToHex(m.uploadId),
      digest: hashToHex(m.digest),
      size: m.fileSize,
      durationMs: this.clock.now() - (this.startedAt ?? this.clock.now()),
      bytesSent: 0,
      bytesSkipped: file.size,
      completionMs: 0,
      digestVerified: true,
      instant: true,
    };
    this.info('ALREADY_ON_SERVER', 'the server already holds this file: stored without sending it');
    s.ending = true;
    this.endSession();
    void this.removeRecord();
    void this.closeFile();
    this.emitProgress(true);
    this.life.go('succeedAtOnce');
    this.emitter.emit('complete', this.result);
    this.life.settle({ state: 'done', result: this.result });
  }

  // -------------------------------------------------------------------------------------------
  // Messages

  /** A control message on this session: on stream 1 when bigup.2 was negotiated. */
  private sendControl(s: Session, bytes: Uint8Array): void {
    s.conn.send(s.v2 ? withStream(STREAM, bytes) : bytes);
  }

  private onMessage(s: Session, data: Uint8Array): void {
    s.answers.heard();
    let message: ServerMessage;
    try {
      if (s.v2) {
        const frame = decodeServerFrame(data);
        if (frame.message.type === 'welcome') {
          const granted = frame.message.capabilities;
          s.replaceChunk = granted.some((c) => c.id === Capability.REPLACE_CHUNK);
          // Not granted: no CHALLENGE can come, the OPEN is answered with ACCEPT.
          if (!granted.some((c) => c.id === Capability.PROOF_OF_POSSESSION)) s.instant = undefined;
          return;
        }
        if (frame.message.type === 'verified') {
          this.onVerified(s, frame.message.withdrawn);
          return;
        }
        if (frame.message.type === 'challenge') {
          if (s.instant !== 'offered' || s.phase !== 'handshake' || s.opened !== 'open')
            return this.unexpected(s, 'CHALLENGE');
          s.instant = 'hashing';
          const challenge = frame.message;
          void this.answerChallenge(s, challenge).catch((error: unknown) => {
            if (this.session === s)
              this.abandon(
                s,
                clientError(ClientErrors.SOURCE_ERROR, `cannot read the file: ${describe(error)}`),
              );
          });
          return;
        }
        message = frame.message;
      } else {
        message = decodeServerMessage(data);
      }
    } catch (error) {
      const text = isProtocolError(error) ? `${error.codeName}: ${error.message}` : describe(error);
      this.abortSession(
        s,
        clientError(ClientErrors.PROTOCOL_VIOLATION, `invalid message from the server (${text})`),
      );
      return;
    }
    switch (message.type) {
      case 'accept':
        this.onAccept(s, message);
        break;
      case 'ack':
        if (s.phase !== 'active') return this.unexpected(s, 'ACK');
        if (this.transport === this.options.dataTransport) this.dataTransportProven = true;
        this.onAck(s, message.ranges);
        break;
      case 'window':
        if (s.phase !== 'active') return this.unexpected(s, 'WINDOW');
        s.window = message.window;
        this.pump();
        break;
      case 'result':
        if (s.phase === 'handshake' && s.instant === 'proved')
          return this.onInstantResult(s, message);
        if (s.phase !== 'active' || !s.completeSent) return this.unexpected(s, 'RESULT');
        this.onResult(s, message);
        break;
      case 'error':
        this.onError(s, message);
        break;
      case 'terminated':
        this.life.confirmTerminated();
        break;
    }
  }

  private unexpected(s: Session, what: string): void {
    this.abortSession(
      s,
      clientError(
        ClientErrors.PROTOCOL_VIOLATION,
        `the server sent ${what} when it was not expected`,
      ),
    );
  }

  private onAccept(s: Session, m: AcceptMessage): void {
    if (s.phase !== 'handshake' || s.instant === 'hashing') return this.unexpected(s, 'ACCEPT');
    // An instant upload the server could not do goes on as an ordinary one (SPEC.md 16.10).
    s.instant = undefined;
    this.clock.clearTimeout(s.acceptTimer);
    const file = this.options.file;
    if (this.life.cancelled) {
      s.phase = 'active';
      s.ending = true;
      this.sendControl(s, encodeTerminate());
      return;
    }
    if (m.fileSize !== file.size) {
      void this.removeRecord();
      this.forgetUpload();
      this.abortSession(
        s,
        clientError(
          ClientErrors.RESUME_MISMATCH,
          `the server's upload is ${m.fileSize} bytes, the file ${file.size}`,
        ),
        true,
      );
      return;
    }
    if (m.created) {
      this.uploadIdBytes = m.uploadId;
      this.secret = m.secret;
    }
    if (m.chunkSize !== this.chunkSize || !this.hashes) {
      // New upload, or chunk size unknown (resume record from an older version): hashes start empty.
      const count = chunkCount(file.size, m.chunkSize);
      this.hashes = new BigUint64Array(count);
      this.hashKnown = new Uint8Array(count);
      this.hashingAcked = undefined;
      this.pool.length = 0;
    }
    this.chunkSize = m.chunkSize;
    if (m.created) void this.saveRecord();
    // The server's list is authoritative: after an OS crash it may hold less than we saw acked.
    this.acked = new RangeSet(m.ranges);
    if (this.moveToDataTransport(s, m)) return;
    // An upload this Uploader created and then moved to the data transport is not a resume.
    const createdHere = m.created || this.createdBeforeMove;
    this.createdBeforeMove = false;
    this.bytesSkipped ??= this.acked.total;
    s.phase = 'active';
    s.window = m.window;
    s.queue = this.missingChunks(s);
    s.queuePos = 0;
    this.incompletes = 0;
    const total = file.size;
    this.emitter.emit('start', {
      uploadId: bytesToHex(m.uploadId),
      resumed: !createdHere,
      resumedBytes: this.acked.total,
      total,
      chunkSize: m.chunkSize,
      window: Math.min(m.window, this.maxInFlight),
    });
    if (!createdHere && total > 0) {
      const percent = Math.floor((this.acked.total / total) * 100);
      if (this.acked.total === total)
        this.info('ALREADY_COMPLETE', 'the server already has every byte; completing');
      else
        this.info(
          'RESUMING',
          `resuming at ${percent}% (${this.acked.total} of ${total} bytes on the server)`,
        );
    }
    this.emitProgress(true);
    if (this.life.pausing) {
      this.checkPauseDone();
      return;
    }
    this.life.go('accept');
    if (!m.created && this.acked.total > 0 && !this.allHashesKnown()) this.startHashingAcked(s);
    if (!m.created && this.acked.total > 0 && this.verifyPending && s.replaceChunk)
      s.verify = { stage: this.hashingAckedDone ? 'draining' : 'hashing', through: -1 };
    this.pump();
  }

  /**
   * After an ACCEPT over `options.transport`, resume over `options.dataTransport` when it is
   * worth it (UploaderOptions.dataTransport): the session is dropped without an event and a
   * connection over the data transport opens at once. True when the move began.
   */
  private moveToDataTransport(s: Session, m: AcceptMessage): boolean {
    const data = this.options.dataTransport;
    if (
      !data ||
      this.transport === data ||
      this.dataTransportFailed ||
      !s.v2 ||
      this.life.pausing ||
      this.options.file.size - this.acked.total < DATA_TRANSPORT_MIN_BYTES ||
      // A resumed upload's acked chunks are checked against the file over bigup.2 (VERIFY,
      // 16.9), which the HTTP binding does not carry: it stays where it opened.
      (!m.created && this.acked.total > 0 && s.replaceChunk)
    )
      return false;
    this.transport = data;
    this.createdBeforeMove = this.movedNewUpload = m.created;
    this.endSession();
    this.connect();
    return true;
  }

  /** The chunk hash table, set up at the first ACCEPT (the hasher is loaded before connecting). */
  private chunkHashes(): { hasher: Hasher; hashes: BigUint64Array; known: Uint8Array } {
    if (!this.hasher || !this.hashes || !this.hashKnown)
      throw new Error('internal: chunk hashes used before the upload was accepted');
    return { hasher: this.hasher, hashes: this.hashes, known: this.hashKnown };
  }

  /** Hash the chunks acked before this Uploader saw them, alongside the upload (once per ACCEPT). */
  private startHashingAcked(s: Session): void {
    if (this.hashingAcked) return;
    const { hasher, hashes, known } = this.chunkHashes();
    const acked = this.acked;
    this.info(
      'VERIFYING_SENT_CHUNKS',
      `re-reading the ${acked.total} bytes sent in an earlier session to check them against the server's copy`,
    );
    this.verifyPending = true;
    const work = (async () => {
      const size = this.options.file.size;
      const buffer = new Uint8Array(this.chunkSize);
      for (let index = 0; index < known.length; index++) {
        if (known[index] === 1 || this.hashes !== hashes) continue;
        const { start, end } = chunkBounds(index, size, this.chunkSize);
        if (!acked.covers(start, end)) continue;
        const bytes = await this.options.file.read(start, end, buffer.subarray(0, end - start));
        if (bytes.byteLength !== end - start)
          throw new Error(
            `read ${bytes.byteLength} bytes at ${start}, expected ${end - start} (file changed?)`,
          );
        if (this.hashes !== hashes || known[index] === 1) continue;
        hashes[index] = hasher.h64(bytes);
        known[index] = 1;
      }
    })();
    this.hashingAcked = work;
    work.then(
      () => {
        this.hashingAckedDone = true;
        const current = this.session;
        if (current?.verify?.stage === 'hashing') {
          current.verify.stage = 'draining';
          this.pump();
        }
      },
      () => undefined,
    );
    work.catch((error: unknown) => {
      if (this.session === s)
        this.abandon(
          s,
          clientError(ClientErrors.SOURCE_ERROR, `cannot read the file: ${describe(error)}`),
        );
    });
  }

  /** Chunk indices not fully covered by the acked set and not in flight on this session. */
  private missingChunks(s: Session): number[] {
    const size = this.options.file.size;
    const out: number[] = [];
    for (const gap of this.acked.missing(size)) {
      const first = Math.floor(gap.start / this.chunkSize);
      const last = Math.ceil(gap.end / this.chunkSize);
      for (let i = first; i < last; i++) {
        if (out[out.length - 1] !== i && !s.inFlight.has(i * this.chunkSize)) out.push(i);
      }
    }
    return out;
  }

  private onAck(s: Session, ranges: readonly { start: number; end: number }[]): void {
    // SPEC.md 6.5: bytes past the file or off the chunk grid are a server violation (close 1002).
    // In-grid bytes this connection never sent are taken as acked: an idempotent re-ack (7.7).
    const offGrid = rangeOffGrid(ranges, this.options.file.size, this.chunkSize);
    if (offGrid !== undefined) {
      this.abortSession(
        s,
        clientError(
          ClientErrors.PROTOCOL_VIOLATION,
          `the server acked [${offGrid.start}, ${offGrid.end}), off the chunk grid or past the end of the file`,
        ),
      );
      return;
    }
    let gained = 0;
    const now = this.clock.now();
    for (const range of ranges) {
      gained += this.acked.add(range.start, range.end);
      if (gained > 0) this.firstAckMs ??= now - s.connectedAt;
      for (const chunk of s.inFlight.acked(range, this.chunkSize)) this.release(chunk.payload);
    }
    if (gained > 0) {
      if (this.acked.total === this.options.file.size) this.finishingSince = now;
      this.attempt = 0;
      this.incompletes = 0;
      this.meter.add(gained, now);
      this.emitProgress(false);
    }
    if (this.life.pausing) this.checkPauseDone();
    else this.pump();
  }

  private onResult(s: Session, m: ResultMessage): void {
    const file = this.options.file;
    const ours = this.allHashesKnown() ? this.wholeFileDigest() : undefined;
    if (m.fileSize !== file.size || (ours !== undefined && ours !== m.digest)) {
      this.abortSession(
        s,
        clientError(
          ClientErrors.RESULT_MISMATCH,
          `the server reports ${m.fileSize} bytes with digest ${hashToHex(m.digest)}; we sent ${file.size} bytes${ours !== undefined ? ` with digest ${hashToHex(ours)}` : ''}`,
        ),
        true,
      );
      return;
    }
    this.acked = new RangeSet(file.size > 0 ? [{ start: 0, end: file.size }] : []);
    this.result = {
      uploadId: bytesToHex(m.uploadId),
      digest: hashToHex(m.digest),
      size: m.fileSize,
      durationMs: this.clock.now() - (this.startedAt ?? this.clock.now()),
      bytesSent: this.bytesSent,
      bytesSkipped: this.bytesSkipped ?? 0,
      completionMs: this.clock.now() - (this.finishingSince ?? this.clock.now()),
      ...(this.firstAckMs !== undefined ? { firstAckMs: this.firstAckMs } : {}),
      digestVerified: s.sentDigest !== undefined,
    };
    s.ending = true;
    this.endSession();
    void this.removeRecord();
    void this.closeFile();
    this.emitProgress(true);
    this.life.go('succeed');
    this.emitter.emit('complete', this.result);
    this.life.settle({ state: 'done', result: this.result });
  }

  private onError(s: Session, m: ErrorMessage): void {
    const name = errorByCode(m.code)?.name;
    const err = (fatal: boolean) => serverError(m.code, m.retryable, m.message, fatal);
    switch (name) {
      case 'HASH_MISMATCH': {
        const index = Math.floor(m.offset / this.chunkSize);
        const refused = s.inFlight.refused(m.offset);
        if (refused) this.release(refused.payload);
        const count = (this.mismatches.get(index) ?? 0) + 1;
        this.mismatches.set(index, count);
        if (count > DEFAULTS.maxHashMismatches) {
          this.abortSession(s, err(true), true);
          return;
        }
        this.chunkHashes().known[index] = 0;
        s.resend.push(index);
        this.emitter.emit('error', err(false));
        this.info('CHUNK_RESENT', `the server received chunk at ${m.offset} damaged; resending it`);
        // If COMPLETE is already out, the server answers it with INCOMPLETE after this error;
        // that answer (not this one) re-arms COMPLETE, so at most one COMPLETE is ever pending.
        this.pump();
        return;
      }
      case 'INCOMPLETE': {
        // SPEC.md 6.2: INCOMPLETE only answers a COMPLETE.
        if (s.phase !== 'active' || !s.completeSent) return this.unexpected(s, 'INCOMPLETE');
        this.incompletes++;
        if (this.incompletes > 3) {
          this.abortSession(s, err(true), true);
          return;
        }
        // Expected after a pipelined COMPLETE when some DATA was refused (HASH_MISMATCH): not an
        // error for the user. Queue whatever is still missing and COMPLETE again when it is acked.
        s.completeSent = false;
        s.queue = this.missingChunks(s).filter((i) => !s.resend.includes(i));
        s.queuePos = 0;
        if (s.queue.length === 0 && s.resend.length === 0 && s.inFlight.settled) {
          // We believe every byte is acked but the server disagrees: only a fresh ACCEPT tells us
          // its real list, so reconnect and RESUME rather than repeat COMPLETE.
          this.abortSession(s, err(false));
          return;
        }
        this.life.go('sendAgain');
        this.pump();
        return;
      }
      case 'NOT_FOUND':
        if (
          s.opened === 'resume' &&
          !this.life.cancelled &&
          this.transport !== this.options.transport &&
          !this.dataTransportProven
        ) {
          // The data transport reaches a server that does not know an upload the main transport
          // just created or resumed (a pool whose HTTP and WebSocket routes lead to different
          // nodes or stores): its refusal, not the upload's end. Back to the main transport for
          // good, resuming there; starting fresh would create an upload per round.
          this.dataTransportFailed = true;
          this.transport = this.options.transport;
          this.createdBeforeMove = this.movedNewUpload && this.acked.total === 0;
          s.ending = true;
          this.endSession();
          this.connect();
          return;
        }
        if (s.opened === 'resume' && !this.life.cancelled) {
          // The server lost or expired the upload: forget it and open a new one on a new connection.
          void this.removeRecord();
          this.forgetUpload();
          this.info(
            'UPLOAD_NOT_FOUND_STARTING_FRESH',
            'the upload no longer exists on the server; starting fresh',
          );
          s.ending = true;
          this.endSession();
          this.connect();
          return;
        }
        if (this.life.cancelled) {
          this.life.confirmTerminated();
          return;
        }
        break;
      case 'UPLOAD_GONE':
      case 'UPLOAD_DAMAGED':
        void this.removeRecord();
        this.forgetUpload();
        break;
      case 'CONFLICT':
      case 'DIGEST_MISMATCH': {
        // The source no longer matches what the server holds: this upload can never complete.
        // Free the server's space and forget it.
        s.ending = true;
        this.sendControl(s, encodeTerminate());
        void this.removeRecord();
        const skippedEarlierBytes = (this.bytesSkipped ?? 0) > 0;
        this.forgetUpload();
        if (skippedEarlierBytes && !this.restartedAfterChange && !this.life.cancelled) {
          // Bytes from an earlier session differ from the file now: it was edited in between.
          // Upload the file as it is, from scratch, once.
          this.restartedAfterChange = true;
          this.info(
            'SOURCE_CHANGED_STARTING_FRESH',
            'the file changed since the earlier session sent part of it; uploading it again from the start',
          );
          this.endSession();
          this.connect();
          return;
        }
        break;
      }
      default:
        break;
    }
    if (this.life.cancelled) return;
    if (m.retryable) {
      // Retryable: reconnect and resume. If the server did not close (non-fatal), we close.
      this.abortSession(s, err(false));
      return;
    }
    this.abortSession(s, err(true), true);
  }

  // -------------------------------------------------------------------------------------------
  // Sending

  private effectiveWindow(s: Session): number {
    return Math.min(s.window, this.maxInFlight);
  }

  private maxBuffered(): number {
    return this.options.maxBufferedBytes ?? Math.max(2 * this.chunkSize, 8 * MiB);
  }

  /** The next chunk to send, resends first; skips (consumes) chunks acked or in flight meanwhile. */
  private nextIndex(s: Session): number | undefined {
    for (;;) {
      const index = s.resend.length > 0 ? s.resend[0] : s.queue.at(s.queuePos);
      if (index === undefined) return undefined;
      const { start, end } = chunkBounds(index, this.options.file.size, this.chunkSize);
      if (!this.acked.covers(start, end) && !s.inFlight.has(start)) return index;
      this.consumeIndex(s);
    }
  }

  /** Take the chunk nextIndex() returned off its list. */
  private consumeIndex(s: Session): void {
    if (s.resend.length > 0) s.resend.shift();
    else s.queuePos++;
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      this.pumpLoop();
    } finally {
      this.pumping = false;
    }
  }

  private pumpLoop(): void {
    const s = this.session;
    if (!s || !this.sending(s)) return;
    if (s.verify && (s.verify.stage === 'draining' || s.verify.stage === 'waiting')) {
      // Nothing else on the stream between VERIFY and VERIFIED (SPEC.md 16.9).
      const finished =
        s.verify.stage === 'draining' && s.inFlight.reading === 0 && this.sendNextVerify(s);
      if (!finished) return;
    }
    const size = this.options.file.size;
    for (;;) {
      const index = this.nextIndex(s);
      if (index === undefined) {
        this.maybeComplete(s);
        return;
      }
      const { start, end } = chunkBounds(index, size, this.chunkSize);
      const length = end - start;
      // Window 0 pauses the sender; otherwise a whole chunk always fits when nothing is in flight.
      if (s.window === 0) return;
      if (!s.inFlight.fits(length, this.effectiveWindow(s))) return; // an ACK re-pumps
      if (s.inFlight.reading >= DEFAULTS.maxConcurrentReads) return; // the read's completion re-pumps
      if (s.conn.bufferedAmount > this.maxBuffered()) {
        if (!s.conn.reportsDrain) this.schedulePump(DEFAULTS.drainPollMs);
        return;
      }
      if (this.bucket) {
        const wait = this.bucket.delay(this.clock.now());
        if (wait > 0) {
          this.schedulePump(wait);
          return;
        }
        this.bucket.take(length, this.clock.now());
      }
      this.consumeIndex(s);
      s.inFlight.readStarted(length);
      void this.readAndSend(s, index, start, end);
    }
  }

  private schedulePump(ms: number): void {
    this.clock.clearTimeout(this.pumpTimer);
    this.pumpTimer = this.clock.setTimeout(() => this.pump(), ms);
  }

  private async readAndSend(s: Session, index: number, start: number, end: number): Promise<void> {
    const length = end - start;
    const buffer = this.pool.pop() ?? new Uint8Array(DATA_PREFIX + this.chunkSize);
    let payload: Uint8Array;
    try {
      payload = await this.options.file.read(
        start,
        end,
        buffer.subarray(DATA_PREFIX, DATA_PREFIX + length),
      );
      if (payload.byteLength !== length)
        throw new Error(
          `read ${payload.byteLength} bytes at ${start}, expected ${length} (file changed?)`,
        );
    } catch (error) {
      s.inFlight.readEnded(length);
      if (this.session === s)
        this.abandon(
          s,
          clientError(ClientErrors.SOURCE_ERROR, `cannot read the file: ${describe(error)}`),
        );
      return;
    }
    s.inFlight.readEnded(length);
    if (!this.sending(s)) {
      // Read during a pause or after the session ended: keep it for later, send nothing now.
      this.release(buffer);
      if (this.session === s) {
        s.resend.unshift(index);
        this.checkPauseDone();
      }
      return;
    }
    if (
      payload.buffer !== buffer.buffer ||
      payload.byteOffset !== buffer.byteOffset + DATA_PREFIX
    ) {
      buffer.set(payload, DATA_PREFIX); // a FileSource that ignored `target`
    }
    const body = buffer.subarray(DATA_PREFIX, DATA_PREFIX + length);
    const { hasher, hashes, known } = this.chunkHashes();
    const hash = hasher.h64(body);
    hashes[index] = hash;
    known[index] = 1;
    // The header goes right before the payload: 22 bytes (bigup.2) or 18 (bigup.1).
    const headerAt = s.v2 ? 0 : DATA_PREFIX - HeaderSize.DATA;
    if (s.v2) writeDataHeaderV2(buffer, STREAM, start, hash);
    else writeDataHeader(buffer, start, hash, headerAt);
    const owedBefore = this.owesAnswers(s);
    s.inFlight.sent(start, length, buffer);
    s.answers.sent(owedBefore);
    this.bytesSent += length;
    const message = buffer.subarray(headerAt, DATA_PREFIX + length);
    if (s.conn.sendChunk) s.conn.sendChunk(message, start, end);
    else s.conn.send(message);
    this.pump();
  }

  private maybeComplete(s: Session): void {
    if (s.completeSent || s.completePreparing || s.inFlight.reading > 0 || s.resend.length > 0)
      return;
    s.completePreparing = true;
    void this.prepareComplete(s);
  }

  /**
   * COMPLETE with the digest of the file as it is now: wait for the re-hash of earlier sessions'
   * chunks, and refuse to complete a file that changed while it was being sent.
   */
  private async prepareComplete(s: Session): Promise<void> {
    let changed: boolean;
    try {
      if (this.hashingAcked) await this.hashingAcked;
      changed = (await this.options.file.changed?.()) ?? false;
    } catch (error) {
      s.completePreparing = false;
      if (this.session === s)
        this.abandon(
          s,
          clientError(ClientErrors.SOURCE_ERROR, `cannot read the file: ${describe(error)}`),
        );
      return;
    }
    s.completePreparing = false;
    if (this.session !== s || s.phase !== 'active' || s.ending || s.completeSent) return;
    if (s.verify && s.verify.stage !== 'done') {
      // The acked chunks are being checked (VERIFY): the pump completes once that is done.
      this.pump();
      return;
    }
    if (this.life.stopping) {
      this.checkPauseDone();
      return;
    }
    if (changed) {
      this.abandon(
        s,
        clientError(
          ClientErrors.SOURCE_ERROR,
          'the file changed during the upload; nothing was stored (run again to upload the new content)',
        ),
      );
      return;
    }
    if (!this.allHashesKnown()) {
      if (s.resend.length > 0 || !s.inFlight.settled) {
        // A chunk went back to the queue meanwhile (HASH_MISMATCH): the pump completes after it.
        this.pump();
        return;
      }
      // Every chunk is acked yet one was never hashed: a bug, never a silent COMPLETE without it.
      this.abortSession(
        s,
        clientError(
          ClientErrors.SOURCE_ERROR,
          'internal: a chunk of the file was never hashed; not completing',
        ),
        true,
      );
      return;
    }
    const digest = this.wholeFileDigest();
    const owedBefore = this.owesAnswers(s);
    s.completeSent = true;
    s.sentDigest = digest;
    this.sendControl(s, encodeComplete(digest));
    s.answers.sent(owedBefore);
    this.finishingSince = Math.max(this.finishingSince ?? 0, this.clock.now());
    this.life.go('complete');
  }

  private wholeFileDigest(): bigint {
    const { hasher, hashes } = this.chunkHashes();
    return wholeFileDigest(hasher, hashes);
  }

  private allHashesKnown(): boolean {
    const known = this.hashKnown;
    if (!known) return false;
    for (let i = 0; i < known.length; i++) if (known[i] === 0) return false;
    return true;
  }

  private release(buffer: Uint8Array): void {
    const cap =
      Math.ceil(this.maxInFlight / Math.max(1, this.chunkSize)) + DEFAULTS.maxConcurrentReads;
    if (buffer.byteLength === DATA_PREFIX + this.chunkSize && this.pool.length < cap)
      this.pool.push(buffer);
  }

  // -------------------------------------------------------------------------------------------
  // Endings

  /** Whether `s` is the live, accepted session and nothing asks to stop sending. */
  private sending(s: Session): boolean {
    return this.session === s && s.phase === 'active' && !s.ending && !this.life.stopping;
  }

  private checkPauseDone(): void {
    const s = this.session;
    if (!s || !this.life.pausing) return;
    if (s.completeSent) return; // COMPLETE is out: RESULT (done) or an error settles it
    if (s.inFlight.settled) {
      s.ending = true;
      this.endSession();
      this.toPaused();
    }
  }

  private toPaused(): void {
    this.meter.restart();
    this.life.go('pause');
    this.life.settle({ state: 'paused' });
  }

  /**
   * The one teardown of a session: detach it (later callbacks from its connection are ignored)
   * and stop its timers. Its chunks in flight are left unanswered; the next ACCEPT says what landed.
   */
  private detach(s: Session): void {
    if (this.session === s) this.session = undefined;
    s.phase = 'closed';
    this.clock.clearTimeout(s.waitTimer);
    this.clock.clearTimeout(s.acceptTimer);
    s.answers.stop();
    this.clock.clearTimeout(this.pumpTimer);
  }

  /** Detach the current session and close its connection. */
  private endSession(closeCode: number = CloseCode.NORMAL): void {
    const s = this.session;
    if (!s) return;
    this.detach(s);
    try {
      s.conn.close(
        closeCode,
        closeCode === CloseCode.PROTOCOL_ERROR
          ? 'PROTOCOL_ERROR'
          : s.ending
            ? 'done'
            : 'client closing',
      );
    } catch {
      // Already closed.
    }
  }

  /**
   * A local fault ends the upload for good (the file cannot be read, or it changed): what the
   * server holds can never complete, so free its space (TERMINATE) and forget the upload.
   */
  private abandon(s: Session, error: UploadErrorInfo): void {
    if (this.session !== s) return;
    if (s.phase === 'active' && !s.ending) {
      s.ending = true;
      this.sendControl(s, encodeTerminate());
    }
    void this.removeRecord();
    this.forgetUpload();
    this.abortSession(s, error, true);
  }

  /** End the session because of `error`: retry if it allows, else fail. `final` forces failure. */
  private abortSession(s: Session, error: UploadErrorInfo, final = false): void {
    if (this.session !== s) return;
    s.error = error;
    // SPEC.md 7.10: a server found in violation is told so with 1002.
    this.endSession(
      error.code === ClientErrors.PROTOCOL_VIOLATION.code
        ? CloseCode.PROTOCOL_ERROR
        : CloseCode.NORMAL,
    );
    if (!final && this.reconnectWhileHashing(s, error)) return;
    this.afterSession(error, final);
  }

  /**
   * The server stopped waiting for the PROOF of a file this client is still hashing (SPEC.md
   * 16.10: its wait is bounded; a slow disk can take longer): not a fault of either side, and no
   * attempt counted against the upload. Open again at once; the next CHALLENGE is answered from
   * the digest being computed, so each round takes the server's whole wait off the hashing.
   */
  private reconnectWhileHashing(s: Session, error: UploadErrorInfo): boolean {
    // The server's end of its wait, and nothing else: a connection that keeps failing otherwise
    // goes through the backoff like any other.
    if (
      s.instant !== 'hashing' ||
      error.code !== Errors.IDLE_TIMEOUT.code ||
      this.instantDigestRun === undefined
    )
      return false;
    if (this.life.cancelled || this.life.pausing) return false;
    this.info(
      'CHECKING_SERVER_COPY',
      'still hashing the file for the proof the server asked for; opening again',
    );
    this.connect();
    return true;
  }

  private onClose(s: Session, info: CloseInfo): void {
    const phase = s.phase;
    this.detach(s);
    if (this.life.cancelled) {
      this.life.confirmTerminated();
      return;
    }
    if (this.life.pausing) {
      this.toPaused();
      return;
    }
    const error = s.error ?? closeError(info, phase);
    if (this.reconnectWhileHashing(s, error)) return;
    this.afterSession(error, !error.retryable);
  }

  private afterSession(error: UploadErrorInfo, final: boolean): void {
    if (this.life.cancelled) {
      this.life.confirmTerminated();
      return;
    }
    if (this.life.pausing && !final) {
      this.toPaused();
      return;
    }
    // A data transport that acked in this session and then lost its connection (a blip, a 5xx
    // from something in between) is retried as the main transport would be: it carried bytes,
    // and the main one is slower for them. If the retry acks nothing before it ends, the branch
    // below takes the upload back. What the server says over it (a lease another node of a
    // round-robin pool does not know: IDLE_TIMEOUT) is not a loss: that node would say it again.
    const lostAfterAcks =
      this.dataTransportProven &&
      !final &&
      error.retryable &&
      error.code === ClientErrors.NETWORK.code;
    if (
      this.transport !== this.options.transport &&
      !lostAfterAcks &&
      (error.retryable || TRANSPORT_REFUSALS.has(error.code))
    ) {
      // A session over the data transport that ended for its own reasons before any ACK (a loss,
      // a timeout, a refusal: a proxy's 405 or 413 on PUTs, a WAF's 403, a lease another node of
      // a round-robin pool does not know), or was refused after ACKs, sends the upload back to the
      // transport that opened it, for good: it must not cost the upload what the main transport
      // would carry. A fatal answer about the upload itself (TAKEN_OVER, a quota) stays fatal:
      // the main transport would only steal it back or hear the same.
      this.dataTransportFailed = true;
      this.transport = this.options.transport;
      if (this.life.pausing) {
        this.toPaused();
        return;
      }
      if (!this.dataTransportProven) {
        // It acked nothing in this session: nothing the user needs to hear about; the main one at
        // once, and its ACCEPT is still that of a new upload where the move followed its creation
        // and nothing was acked since (a pause and resume over HTTP may have acked some).
        this.createdBeforeMove = this.movedNewUpload && this.acked.total === 0;
        this.connect();
        return;
      }
      final = false;
      error = { ...error, retryable: true };
    }
    if (final || !error.retryable) {
      this.fail({ ...error, fatal: true });
      return;
    }
    this.attempt++;
    const allowed =
      this.attempt <= this.backoff.maxAttempts &&
      (this.options.onShouldRetry
        ? this.options.onShouldRetry({ ...error, fatal: false }, this.attempt)
        : true);
    if (!allowed) {
      const attempts = this.attempt - 1;
      this.fail({
        ...error,
        fatal: true,
        message: `${error.message} (gave up after ${attempts} ${attempts === 1 ? 'retry' : 'retries'})`,
      });
      return;
    }
    const delay = backoffDelay(this.backoff, this.attempt, this.random);
    this.lastError = { ...error, fatal: false };
    this.emitter.emit('error', this.lastError);
    this.life.go('retry', delay);
    this.retryTimer = this.clock.setTimeout(() => {
      if (this.life.state !== 'retrying') return;
      this.info('RECONNECTING', `reconnecting (attempt ${this.attempt})`);
      this.connect();
    }, delay);
  }

  private fail(error: UploadErrorInfo): void {
    if (error.code === Errors.TAKEN_OVER.code) this.takenOver = true;
    this.endSession();
    this.clock.clearTimeout(this.retryTimer);
    this.lastError = error;
    void this.closeFile();
    this.life.go('fail');
    this.emitter.emit('error', error);
    this.life.settle({ state: 'failed', error });
  }

  // -------------------------------------------------------------------------------------------
  // Small helpers

  /**
   * The next VERIFY page (SPEC.md 16.9): acked chunks above the last one listed, with the hashes
   * of the file as it is now. Returns true (and the check is 'done') when none is left.
   */
  private sendNextVerify(s: Session): boolean {
    const verify = s.verify;
    if (!verify) return true;
    const { hashes, known } = this.chunkHashes();
    const size = this.options.file.size;
    const chunks: { index: number; hash: bigint }[] = [];
    for (
      let index = verify.through + 1;
      index < known.length && chunks.length < LimitsV2.MAX_VERIFY_CHUNKS;
      index++
    ) {
      const { start, end } = chunkBounds(index, size, this.chunkSize);
      if (known[index] === 1 && this.acked.covers(start, end))
        chunks.push({ index, hash: hashes[index] });
    }
    if (chunks.length === 0) {
      verify.stage = 'done';
      this.verifyPending = false;
      return true;
    }
    const owedBefore = this.owesAnswers(s);
    verify.stage = 'waiting';
    verify.through = chunks[chunks.length - 1].index;
    s.conn.send(encodeVerify(STREAM, chunks));
    s.answers.sent(owedBefore);
    return false;
  }

  /** VERIFIED: the withdrawn chunks are missing again and go out before anything else. */
  private onVerified(s: Session, withdrawn: readonly number[]): void {
    if (s.phase !== 'active' || s.verify?.stage !== 'waiting')
      return this.unexpected(s, 'VERIFIED');
    const size = this.options.file.size;
    let bytes = 0;
    for (const index of withdrawn) {
      const { start, end } = chunkBounds(index, size, this.chunkSize);
      if (end <= start || index > s.verify.through) return this.unexpected(s, 'VERIFIED');
      bytes += this.acked.remove(start, end);
      s.resend.push(index);
    }
    if (withdrawn.length > 0) {
      this.info(
        'CHANGED_CHUNKS_RESENT',
        `${withdrawn.length} chunk(s) (${bytes} bytes) changed since they were sent; sending only those again`,
      );
      this.emitProgress(true);
    }
    s.verify.stage = 'draining';
    this.pump();
  }

  private info(code: InfoCode, message: string): void {
    this.emitter.emit('info', { code, message });
  }

  private emitProgress(force: boolean): void {
    const now = this.clock.now();
    const done = this.acked.total === this.options.file.size;
    if (!force && !done && now - this.lastProgressAt < DEFAULTS.progressIntervalMs) return;
    this.lastProgressAt = now;
    this.emitter.emit('progress', this.progress);
  }

  private forgetUpload(): void {
    // A new OPEN goes where instant upload and the chunk check are (UploaderOptions.dataTransport),
    // and the new upload may move again: what failed was about the old one's route or node.
    this.transport = this.options.transport;
    this.dataTransportFailed = false;
    this.uploadIdBytes = undefined;
    this.secret = undefined;
    this.acked = new RangeSet();
    this.hashes = undefined;
    this.hashKnown = undefined;
    this.hashingAcked = undefined;
    this.hashingAckedDone = false;
    this.verifyPending = false;
    this.chunkSize = 0;
    // What the forgotten upload counted: the new one starts from nothing.
    this.mismatches.clear();
    this.incompletes = 0;
    this.bytesSkipped = undefined;
    this.firstAckMs = undefined;
    this.finishingSince = undefined;
  }

  private async saveRecord(): Promise<void> {
    const store = this.options.resumeStore;
    if (!store || !this.fingerprint || !this.uploadIdBytes || !this.secret) return;
    const file = this.options.file;
    const record: ResumeRecord = {
      version: 1,
      endpoint: endpointKey(this.options.endpoint),
      uploadId: bytesToHex(this.uploadIdBytes),
      secret: bytesToHex(this.secret),
      name: file.name,
      size: file.size,
      lastModified: file.lastModified,
      chunkSize: this.chunkSize,
      createdAt: this.clock.now(),
      ...(file.source !== undefined ? { source: file.source } : {}),
    };
    try {
      await store.set(this.fingerprint, record);
    } catch (error) {
      this.info('RESUME_STORE_FAILED', `could not save the resume record: ${describe(error)}`);
      return;
    }
    await this.pruneStaleRecords(record);
  }

  /**
   * A new upload of a source supersedes the partial uploads of its earlier versions (the file
   * changed, so their fingerprints no longer match): remove their records and terminate them on
   * the server, so neither the state file nor the server keeps them until some TTL.
   */
  private async pruneStaleRecords(current: ResumeRecord): Promise<void> {
    const store = this.options.resumeStore;
    if (!store || !store.entries || current.source === undefined) return;
    let stale: Array<readonly [string, ResumeRecord]>;
    try {
      stale = (await store.entries()).filter(
        ([key, r]) =>
          key !== this.fingerprint &&
          r.source === current.source &&
          r.endpoint === current.endpoint,
      );
    } catch {
      return;
    }
    for (const [key, record] of stale) {
      await store.remove(key).catch(() => undefined);
      const terminated = await this.terminateElsewhere(record);
      this.info(
        'STALE_UPLOAD_REMOVED',
        `an earlier upload of this file (${record.uploadId}) was ${terminated ? 'terminated on the server' : 'forgotten; the server removes it after its TTL'}`,
      );
    }
  }

  /** RESUME + TERMINATE on a connection of its own; resolves whether the server confirmed. */
  private terminateElsewhere(record: ResumeRecord): Promise<boolean> {
    const id = parseUploadId(record.uploadId);
    const secret = parseSecret(record.secret);
    if (!id || !secret) return Promise.resolve(false);
    const url = new URL(this.options.endpoint);
    const headerAuth = this.options.token && this.options.transport.sendsHeaders === true;
    if (this.options.token && !headerAuth) url.searchParams.set('token', this.options.token);
    return new Promise((resolve) => {
      let done = false;
      const finish = (ok: boolean): void => {
        if (done) return;
        done = true;
        this.clock.clearTimeout(timer);
        try {
          conn?.close(CloseCode.NORMAL, 'done');
        } catch {
          // Already closed.
        }
        resolve(ok);
      };
      const timer = this.clock.setTimeout(() => finish(false), DEFAULTS.acceptTimeoutMs);
      let conn: Connection | undefined;
      try {
        conn = this.options.transport.connect(
          url.toString(),
          [SUBPROTOCOL_V1],
          {
            onOpen: () =>
              conn?.send(
                encodeResume({ uploadId: id, secret, token: this.options.uploadToken ?? '' }),
              ),
            onMessage: (data) => {
              let message: ServerMessage;
              try {
                message = decodeServerMessage(data);
              } catch {
                finish(false);
                return;
              }
              if (message.type === 'accept') conn?.send(encodeTerminate());
              else finish(message.type === 'terminated');
            },
            onClose: () => finish(false),
            onDrain: () => undefined,
          },
          headerAuth ? { Authorization: `Bearer ${this.options.token}` } : undefined,
        );
      } catch {
        // A transport that cannot start (see connect): the record stays for another time.
        finish(false);
      }
    });
  }

  private async removeRecord(): Promise<void> {
    const store = this.options.resumeStore;
    if (!store || !this.fingerprint) return;
    try {
      await store.remove(this.fingerprint);
    } catch (error) {
      this.info('RESUME_STORE_FAILED', `could not remove the resume record: ${describe(error)}`);
    }
  }

  private async closeFile(): Promise<void> {
    try {
      await this.options.file.close?.();
    } catch {
      // Nothing useful to do: the upload's outcome is already decided.
    }
  }
}

/** Map a close without a preceding ERROR to an error value. */
function closeError(info: CloseInfo, phase: Session['phase']): UploadErrorInfo {
  const status = info.httpStatus;
  if (status !== undefined) {
    if (status === 401 || status === 403) {
      return clientError(
        ClientErrors.HANDSHAKE_UNAUTHORIZED,
        `HTTP ${status}: ${ClientErrors.HANDSHAKE_UNAUTHORIZED.meaning}`,
      );
    }
    if (status === 426)
      return clientError(
        ClientErrors.UNSUPPORTED_VERSION,
        `HTTP 426: ${ClientErrors.UNSUPPORTED_VERSION.meaning}`,
      );
    if (status >= 500 || status === 429 || status === 408) {
      return clientError(
        ClientErrors.NETWORK,
        `the server answered HTTP ${status}${phase === 'connecting' ? ' to the upgrade' : ''}`,
      );
    }
    if (status >= 200 && status < 300 && info.error === undefined)
      return clientError(
        ClientErrors.HANDSHAKE_REFUSED,
        `HTTP ${status} with an answer that is not the protocol's (is the endpoint URL the upload path, not a page?)`,
      );
    return clientError(
      ClientErrors.HANDSHAKE_REFUSED,
      `HTTP ${status}: ${info.error ?? ClientErrors.HANDSHAKE_REFUSED.meaning}`,
    );
  }
  // Close codes that carry a decision even when the ERROR before them was lost.
  if (info.code === CloseCode.TAKEN_OVER)
    return serverError(Errors.TAKEN_OVER.code, false, Errors.TAKEN_OVER.meaning, true);
  if (info.code === CloseCode.UPLOAD_GONE)
    return serverError(Errors.UPLOAD_GONE.code, false, Errors.UPLOAD_GONE.meaning, true);
  if (phase === 'connecting' && info.error !== undefined && /\bENOTFOUND\b/.test(info.error)) {
    // The name does not exist (not a temporary DNS failure, EAI_AGAIN): retrying cannot help.
    return {
      ...clientError(
        ClientErrors.NETWORK,
        `could not connect: ${info.error} (no such host; check the URL)`,
        true,
      ),
      retryable: false,
    };
  }
  const where = phase === 'connecting' ? 'could not connect' : 'the connection was lost';
  const detail = info.error
    ? `: ${info.error}`
    : info.code !== ABNORMAL_CLOSURE && info.code !== CloseCode.NORMAL
      ? ` (close ${info.code}${info.reason ? ` ${info.reason}` : ''})`
      : '';
  return clientError(ClientErrors.NETWORK, `${where}${detail}`, false);
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

/** Create an Uploader over explicit platform pieces. The node/browser entries wrap this with defaults. */
export function createUploader(options: UploaderOptions): Uploader {
  return new FileUploader(options);
}

/** @deprecated Renamed `FileUploader` (`bigUploader` is the server plugin). */
export const BigUploader = FileUploader;
/** @deprecated Renamed `FileUploader`. */
export type BigUploader = FileUploader;

/**
 * OPEN refuses names that are not valid UTF-8 (a lone surrogate from a Windows file system would
 * otherwise turn into U+FFFD on one side only). Replace lone surrogates here so such a file still
 * uploads under a readable name.
 */
function wellFormedName(name: string): string {
  const fixed = withoutLoneSurrogates(name);
  return fixed === '' ? 'unnamed' : fixed;
}
