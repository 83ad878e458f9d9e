/**
 * The public API of the big-uploader client core. Everything here is plain TypeScript types: no
 * Node-only or DOM-only imports, so the same core runs in browsers, Node and workers.
 *
 * The core (`uploader.ts`) depends only on the three platform seams below (Transport, FileSource,
 * ResumeStore); `client/node` and `client/browser` are thin entries that plug in defaults for them.
 * UI layers (the CLI, the <big-uploader> component) drive an `Uploader` and listen to its events;
 * every event payload is plain data (JSON-serialisable, no class instances, no bigints).
 */

import type { Hasher } from '../../protocol/index.js';

// ---------------------------------------------------------------------------------------------
// Transport: a WebSocket, abstracted so the core never touches `ws` or the DOM.

/**
 * The close code a connection reports when it ended without a close frame (RFC 6455 7.1.5): the
 * network dropped, a browser's upgrade was refused, an HTTP request failed. No peer sends it.
 */
export const ABNORMAL_CLOSURE = 1006;

/** How a connection ended. */
export interface CloseInfo {
  /** WebSocket close code (1006 when the connection dropped without a close frame). */
  readonly code: number;
  readonly reason: string;
  /**
   * HTTP status when the server refused the upgrade (401, 403, 426...). Only transports that can
   * see it set it (Node `ws` can; a browser WebSocket cannot and reports 1006).
   */
  readonly httpStatus?: number;
  /** Text of a transport-level error that preceded the close, if any (for messages only). */
  readonly error?: string;
}

/** Callbacks the core hands to `Transport.connect`. Passing them up front avoids set-after-open races. */
export interface ConnectionHandlers {
  /** The WebSocket is open; `protocol` is the negotiated subprotocol ('' if none). */
  onOpen(protocol: string): void;
  /** One binary message. The view may be reused by the transport after the call returns. */
  onMessage(data: Uint8Array): void;
  /** Called exactly once, whether the connection was refused, dropped or closed by either side. */
  onClose(info: CloseInfo): void;
  /**
   * The send buffer drained below the transport's low-water mark. Transports that cannot tell
   * (browser WebSocket) never call it; the core then polls `bufferedAmount` on a short timer.
   */
  onDrain?(): void;
}

/** One open (or opening) WebSocket. */
export interface Connection {
  /** Queue one binary message. The core does not touch `data` again until the message is acked. */
  send(data: Uint8Array): void;
  /**
   * Queue one DATA message: `message` is the whole encoded message (header, then the payload the
   * core read and hashed), and the payload is bytes [start, end) of the file being uploaded. A
   * transport may send the payload from its own copy of the file (a Blob slice, so the browser
   * never copies it into JavaScript); it never needs to parse `message`. Optional: without it the
   * core calls `send(message)`.
   */
  sendChunk?(message: Uint8Array, start: number, end: number): void;
  /** Bytes queued by `send` but not yet handed to the network (WebSocket.bufferedAmount). */
  readonly bufferedAmount: number;
  /** True when this transport calls `onDrain`, so the core need not poll. */
  readonly reportsDrain: boolean;
  /** Close politely (code 1000 by default). `onClose` still fires once. */
  close(code?: number, reason?: string): void;
}

/** Opens WebSocket connections. `protocols` is the list of subprotocols to offer. */
export interface Transport {
  /**
   * True when this transport can set headers on the upgrade request (any non-browser client):
   * the core then sends the server token as `Authorization: Bearer`, which stays out of URLs and
   * logs (SPEC.md 3.3); otherwise as the `token` query parameter. Default false.
   */
  readonly sendsHeaders?: boolean;
  connect(
    url: string,
    protocols: readonly string[],
    handlers: ConnectionHandlers,
    headers?: Readonly<Record<string, string>>,
  ): Connection;
}

// ---------------------------------------------------------------------------------------------
// FileSource: the bytes to upload, read lazily so memory is bounded by the window, not the file.

export interface FileSource {
  /** File name sent in OPEN (metadata only; the server sanitises it). */
  readonly name: string;
  readonly size: number;
  /** MIME type, '' when unknown. */
  readonly type: string;
  /** Modification time in ms since the epoch (0 when unknown); part of the resume fingerprint. */
  readonly lastModified: number;
  /**
   * Bytes [start, end). When `target` is given (at least end - start bytes) the bytes are written
   * into it and a view of exactly end - start bytes of `target` is returned, so the core can read
   * straight behind a DATA header. Rejects on I/O errors or when the source shrank.
   */
  read(start: number, end: number, target?: Uint8Array): Promise<Uint8Array>;
  /**
   * Whether the file changed since the source was opened (Node: inode, size, mtime or ctime;
   * ctime cannot be set back by `touch -r`). Checked before COMPLETE; a changed source fails the
   * upload with SOURCE_ERROR rather than storing bytes that differ. Optional (a browser File
   * cannot tell; its reads fail instead when the file on disk changed).
   */
  changed?(): Promise<boolean>;
  /**
   * Where the file lives (Node: its absolute path). A new upload of a source makes the resume
   * records of its earlier versions stale: they are removed and their server uploads terminated.
   * Optional (a browser File has no stable identity).
   */
  readonly source?: string;
  /** Release handles (Node file descriptor). Optional; the core calls it when it is done. */
  close?(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// ResumeStore: "remember progress" across page reloads and process restarts.

/**
 * What a client keeps to resume an upload in a later session. Acked ranges are NOT stored: the
 * server's ACCEPT carries the authoritative list. Chunk hashes are not stored either: after a
 * cross-session resume the client re-reads and hashes the acked chunks (alongside sending the
 * missing ones), so COMPLETE always carries a digest of the file as it is now, and a file edited
 * between sessions is caught by the server's DIGEST_MISMATCH instead of being stored as done.
 */
export interface ResumeRecord {
  readonly version: 1;
  /** Endpoint the upload lives on (without the `token` query parameter). */
  readonly endpoint: string;
  /** Upload id, 32 lowercase hex digits. */
  readonly uploadId: string;
  /** Resume secret, 64 lowercase hex digits. Treat like a password. */
  readonly secret: string;
  readonly name: string;
  readonly size: number;
  readonly lastModified: number;
  /** Agreed chunk size. */
  readonly chunkSize: number;
  /** ms since the epoch. */
  readonly createdAt: number;
  /** FileSource.source of the file, when it has one. */
  readonly source?: string;
}

/** Async key-value store of resume records keyed by a file fingerprint. */
export interface ResumeStore {
  get(fingerprint: string): Promise<ResumeRecord | undefined>;
  set(fingerprint: string, record: ResumeRecord): Promise<void>;
  remove(fingerprint: string): Promise<void>;
  /** Every record (optional): lets the Uploader prune records of a source's earlier versions. */
  entries?(): Promise<ReadonlyArray<readonly [string, ResumeRecord]>>;
}

// ---------------------------------------------------------------------------------------------
// Options

/** Reconnect backoff: delay(n) = min(max, initial * factor^(n-1)) * (1 - jitter * random()). */
export interface BackoffOptions {
  /** Delay before the first retry, ms. Default 500. */
  readonly initial: number;
  /** Cap on any delay, ms. Default 30_000. */
  readonly max: number;
  /** Growth per attempt. Default 2. */
  readonly factor: number;
  /** Fraction of the delay that is randomised away, 0..1. Default 0.5 ("equal jitter"). */
  readonly jitter: number;
  /**
   * Consecutive failed attempts (no byte acked in between) before giving up. Default 10.
   * Infinity retries forever. The counter resets whenever an ACK moves progress forward.
   */
  readonly maxAttempts: number;
}

/** Time source and timers; injectable so tests can run backoff schedules without waiting. */
export interface Clock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface UploaderOptions {
  /** WebSocket URL of the upload endpoint, e.g. `ws://127.0.0.1:3000/upload`. */
  readonly endpoint: string;
  readonly file: FileSource;
  readonly transport: Transport;
  /**
   * Where the file's bytes go once the upload is accepted (the browser's `auto` in Chromium: the
   * HTTP binding, client/browser/transports.ts). The upload opens over `transport`, where bigup.2
   * gives it instant upload and the check of a re-picked file's acked chunks; after an ACCEPT of a
   * bigup.2 session that leaves at least `DATA_TRANSPORT_MIN_BYTES` to send and has no acked chunk
   * to check (a new upload, or one resumed with nothing acked), it resumes over this one (RESUME,
   * the acked ranges from its ACCEPT). A session over it that acked chunks and then lost its
   * connection (NETWORK) is retried over it, as any lost connection is. Any other end of a session
   * over it (a refusal, a timeout, an answer of the server's, or a retry that acked nothing) sends
   * the upload back to `transport` for good: at once and without an `error` event if that session
   * never acked a chunk, else as any lost connection is retried. A new OPEN (after the upload was
   * forgotten) goes over `transport` again.
   */
  readonly dataTransport?: Transport;
  /** Where resume records live. Without one, only in-session reconnects resume. */
  readonly resumeStore?: ResumeStore;
  /** Key for the resume store. Default: `defaultFingerprint` (endpoint, name, size, lastModified, content sample hash). */
  readonly fingerprint?: (file: FileSource, endpoint: string) => Promise<string>;
  /** Proposed chunk size in bytes; the server's ACCEPT decides. Default `DEFAULTS.chunkSize`. */
  readonly chunkSize?: number;
  /**
   * Cap on unacked payload bytes in flight. The effective limit is min(this, server window);
   * a whole chunk is always allowed when nothing is outstanding. Default `DEFAULTS.maxInFlightBytes`.
   */
  readonly maxInFlightBytes?: number;
  /** Cap on bytes queued in the socket (bufferedAmount) before the core waits. Default: 2 chunks. */
  readonly maxBufferedBytes?: number;
  /**
   * Milliseconds the server may stay silent while it owes answers (chunks sent, a VERIFY) before
   * the connection counts as lost and the upload resumes over a new one, plus the time the bytes
   * in flight take at 32 KiB/s (a slow uplink); ten times this for COMPLETE. Counted from the
   * later of the server's last message and the moment it began to owe answers. 0: never. Default
   * `DEFAULTS.answerTimeoutMs` (120 s). The batch path (small files on one connection) has the
   * same option (BatchOptions.answerTimeout).
   */
  readonly answerTimeout?: number;
  /** Server auth token for the handshake: `Authorization: Bearer` when the transport can set headers (Node), else the `token` query parameter (browsers). */
  readonly token?: string;
  /** Per-upload authorization sent in the OPEN/RESUME `token` field (checked by an app hook). */
  readonly uploadToken?: string;
  /** Application metadata sent in OPEN. */
  readonly metadata?: Readonly<Record<string, string>>;
  /**
   * Offer bigup.2 with REPLACE_CHUNK (SPEC.md 16.9): after resuming, check the chunks sent in an
   * earlier run against the file as it is now and send again only those that changed. Default
   * true; false offers bigup.1 only (a changed file is then caught by the digest at COMPLETE and
   * uploaded again from the start).
   */
  readonly replaceChangedChunks?: boolean;
  /**
   * When the server offers instant upload (bigup.2 PROOF_OF_POSSESSION, SPEC.md 16.10), hash the
   * whole file first and ask whether the server already holds it; if it does, the upload completes
   * without sending the file (`CompleteEvent.instant`). Costs one read of the file when the server
   * does not have it. Default true; needs `replaceChangedChunks` not false (bigup.2).
   */
  readonly instantUpload?: boolean;
  /** Reconnect schedule; partial values are merged over the defaults. */
  readonly backoff?: Partial<BackoffOptions>;
  /**
   * Decide whether to retry after a retryable error or network drop. Called with the error and
   * the 1-based attempt number; return false to fail instead. Not called for non-retryable errors.
   */
  readonly onShouldRetry?: (error: UploadErrorInfo, attempt: number) => boolean;
  /** Send-rate cap in bytes per second (token bucket). 0 or undefined: unlimited. */
  readonly limitRate?: number;
  /**
   * xxHash64 implementation (seed 0). Default: the protocol's xxhash-wasm, which runs everywhere;
   * the Node entry passes the native one when it is installed (it hashes in place, ~2x faster).
   */
  readonly loadHasher?: () => Promise<Hasher>;
  /** Test seams. */
  readonly clock?: Clock;
  readonly random?: () => number;
}

// ---------------------------------------------------------------------------------------------
// States and events

export type UploadState =
  | 'idle'
  | 'connecting'
  | 'uploading'
  | 'paused'
  | 'retrying'
  | 'completing'
  | 'done'
  | 'failed'
  | 'cancelled';

/** States from which the uploader moves on by itself only when asked (start/resume). */
export const TERMINAL_STATES: readonly UploadState[] = ['done', 'failed', 'cancelled'];

export interface StartEvent {
  /** Upload id, 32 lowercase hex digits. */
  readonly uploadId: string;
  /** True when this ACCEPT continued an existing upload (RESUME), false when OPEN created it. */
  readonly resumed: boolean;
  /** Bytes the server already had when this connection was accepted. */
  readonly resumedBytes: number;
  readonly total: number;
  readonly chunkSize: number;
  /** Effective in-flight limit: min(server window, maxInFlightBytes). */
  readonly window: number;
}

/** Progress of one upload (the `progress` event and `Uploader.progress`). */
export interface UploadProgress {
  /** Bytes of the file the server has acknowledged (including those acked in earlier sessions). */
  readonly bytesAcked: number;
  /** Payload bytes this Uploader has sent (resends included). */
  readonly bytesSent: number;
  readonly total: number;
  /** Smoothed acknowledged bytes per second. */
  readonly rate: number;
  /** Seconds to completion at the smoothed rate; null while the rate is unknown or zero. */
  readonly eta: number | null;
}

/** @deprecated Renamed `UploadProgress`: `ProgressEvent` is also the DOM's type. */
export type ProgressEvent = UploadProgress;

export interface StateEvent {
  readonly state: UploadState;
  readonly previous: UploadState;
  /** Set with state 'retrying': ms until the next attempt. */
  readonly retryInMs?: number;
}

export interface CompleteEvent {
  readonly uploadId: string;
  /** Whole-file digest from the server's RESULT, 16 lowercase hex digits. */
  readonly digest: string;
  readonly size: number;
  /** From start() to RESULT, including pauses and retries. */
  readonly durationMs: number;
  /** Payload bytes sent by this Uploader. */
  readonly bytesSent: number;
  /** Bytes the server already had at the first ACCEPT of this Uploader (not sent again). */
  readonly bytesSkipped: number;
  /** From the moment every byte was acked (or COMPLETE was sent, if later) to RESULT: the server's finishing cost. */
  readonly completionMs: number;
  /**
   * From the start of the connection on which the first new bytes were acked to that ACK: after a
   * resume, the cost of reconnecting, RESUME/ACCEPT and the first chunk. Absent when nothing new
   * was sent (everything was already on the server).
   */
  readonly firstAckMs?: number;
  /** True when COMPLETE carried our own digest and the server agreed with it. */
  readonly digestVerified: boolean;
  /** The server already held the file (instant upload, SPEC.md 16.10): nothing was sent. */
  readonly instant?: boolean;
}

/** An error as a value. `code`/`name` come from the protocol registry, or `ClientErrors` for local faults. */
export interface UploadErrorInfo {
  readonly code: number;
  readonly name: string;
  readonly message: string;
  /** The registry says the operation may be retried (reconnect and resume, or resend). */
  readonly retryable: boolean;
  /** This error ended the upload: the state is now 'failed'. */
  readonly fatal: boolean;
}

/** Human-readable notes for the user; `code` is stable for programs. */
export type InfoCode =
  | 'RESUMING'
  | 'UPLOAD_NOT_FOUND_STARTING_FRESH'
  | 'RECONNECTING'
  | 'ALREADY_COMPLETE'
  | 'CHUNK_RESENT'
  | 'RESUME_STORE_FAILED'
  | 'VERIFYING_SENT_CHUNKS'
  | 'SOURCE_CHANGED_STARTING_FRESH'
  | 'STALE_UPLOAD_REMOVED'
  /** Chunks sent in an earlier run differ from the file now: only they are sent again (SPEC 16.9). */
  | 'CHANGED_CHUNKS_RESENT'
  /** Hashing the whole file to ask for an instant upload (the server offers it). */
  | 'CHECKING_SERVER_COPY'
  /** The server already held the file: it was stored without sending it. */
  | 'ALREADY_ON_SERVER';

export interface InfoEvent {
  readonly code: InfoCode;
  readonly message: string;
}

export interface UploaderEventMap {
  start: StartEvent;
  progress: UploadProgress;
  state: StateEvent;
  complete: CompleteEvent;
  error: UploadErrorInfo;
  info: InfoEvent;
}

export type UploaderEventName = keyof UploaderEventMap;
/** Every event an Uploader emits (for relays: the upload worker, the batch's per-file uploader). */
export const UPLOADER_EVENTS: readonly UploaderEventName[] = [
  'start',
  'progress',
  'state',
  'complete',
  'error',
  'info',
];

/** How `start()`/`resume()` settled: the upload finished, failed, was paused or cancelled. */
export type UploadOutcome =
  | { readonly state: 'done'; readonly result: CompleteEvent }
  | { readonly state: 'failed'; readonly error: UploadErrorInfo }
  | { readonly state: 'paused' }
  | { readonly state: 'cancelled' };

/**
 * The uploader every UI drives. Create one per file: `createUploader(options)` (core and browser
 * entry, synchronous) or `await openUploader(options)` (Node entry: it opens the file first).
 */
export interface Uploader {
  readonly state: UploadState;
  /** Latest progress snapshot (same shape as the progress event). */
  readonly progress: UploadProgress;
  /** Upload id once known (after the first ACCEPT or from the resume record). */
  readonly uploadId: string | undefined;
  /**
   * Begin (or continue after pause/failure). Resolves when the uploader comes to rest: done,
   * failed, paused or cancelled. Never rejects: failures are values.
   */
  start(): Promise<UploadOutcome>;
  /**
   * Stop sending, wait for the ACKs of chunks already in flight (so the server records them),
   * then close the connection. Resolves once the state is 'paused'.
   */
  pause(): Promise<void>;
  /** Same as start() from 'paused'. */
  resume(): Promise<UploadOutcome>;
  /**
   * Abandon the upload: sends TERMINATE so the server deletes it, removes the resume record,
   * closes. No events are emitted after cancel() is called (the state becomes 'cancelled'
   * silently). Resolves when the server confirmed or after a short timeout.
   */
  cancel(): Promise<void>;
  /** Subscribe; returns the unsubscribe function. */
  on<K extends UploaderEventName>(
    event: K,
    handler: (payload: UploaderEventMap[K]) => void,
  ): () => void;
}
