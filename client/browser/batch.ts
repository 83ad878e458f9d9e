/**
 * Small browser files over one shared bigup.2 connection (issue 16): each file gets an object with
 * the per-file `Uploader` interface, so a UI drives it like any other upload (start, pause, resume,
 * cancel, the same events), but its bytes go through a `BatchUploader` shared by every such file
 * with the same endpoint and options: one WebSocket, `filesInFlight` files open on it at once,
 * OPENs pipelined, completions group-committed by the server.
 *
 * What changes against the per-file path, and why that suits small files:
 * - Pause takes the file out of the batch and the server deletes what it had of it (TERMINATE);
 *   resume sends it again from its first byte. A file of one chunk has nothing to resume from.
 * - No resume record per file. A file done in an earlier session (before a reload) is not sent
 *   again: a small IndexedDB record says which files were done (`DoneRecords`), and those go
 *   through a batch that offers instant upload (SPEC.md 16.10), so the server completes them from
 *   the copy it holds once the client proves it has the same bytes (the record only decides to
 *   ask; the server decides, and by default remembers no file under 64 KiB, which is then sent
 *   again: `instantUploadMinSize`). Fresh files go through a batch without it: offered on every
 *   connection, the server would challenge every OPEN of a size it already holds (all files of a
 *   folder of equal sizes), which halved the file rate measured with 16-byte files.
 * - The payload is read into JavaScript (no Blob-slice sending, which needs one file per
 *   connection): irrelevant for small files, a cost for big ones, which keep the per-file path.
 *
 * Transport: the batch speaks the WebSocket binding only (the HTTP binding carries one upload per
 * lease, SPEC.md 3.6). With `transport: 'auto'`, a WebSocket that cannot be opened at all (closed
 * before any answer) moves every file of the batch, and every later one for that endpoint, to a
 * per-file uploader over HTTP, as `FallbackTransport` does for single files.
 */
import { BATCH_DEFAULTS, BatchUploader, type BatchResult } from '../core/batch-uploader.js';
import { Emitter } from '../core/emitter.js';
import { endpointKey } from '../core/fingerprint.js';
import type {
  CompleteEvent,
  Connection,
  ConnectionHandlers,
  Transport,
  UploadOutcome,
  UploadProgress,
  UploadState,
  Uploader,
  UploaderEventMap,
  UploaderEventName,
} from '../core/types.js';
import { UPLOADER_EVENTS } from '../core/types.js';
import { blobSource } from './blob-source.js';
import { createUploader } from './index.js';
import { BrowserWebSocketTransport } from './websocket-transport.js';

/**
 * How long a batch keeps its idle connection for files added later, ms: long enough to bridge a
 * page <-> worker round trip or a quick resume, short enough not to hold a server slot for nothing.
 */
export const BATCH_IDLE_CLOSE_MS = 2000;

export interface BatchFileOptions {
  readonly endpoint: string;
  readonly file: Blob;
  readonly token?: string;
  /** Chunk size proposed in each OPEN (and for the instant-upload digest). */
  readonly chunkSize?: number;
  readonly maxInFlightBytes?: number;
  readonly metadata?: Readonly<Record<string, string>>;
  /** Files open at once on the shared connection. Default `BATCH_DEFAULTS.maxFilesInFlight`. */
  readonly filesInFlight?: number;
  /** 'websocket', or 'auto': WebSocket, per-file HTTP when no WebSocket can be opened. */
  readonly transport?: 'auto' | 'websocket';
}

interface Session {
  readonly key: string;
  readonly endpoint: string;
  batch: BatchUploader;
  readonly members: Map<number, BatchFileUploader>;
}

const sessions = new Map<string, Session>();
/** Endpoints whose WebSocket could not be opened under 'auto': their files go per file over HTTP. */
const websocketUnreachable = new Set<string>();

/** How long a done record is kept, ms: a re-pick within a week finds its files on the server. */
export const DONE_RECORD_TTL_MS = 7 * 24 * 3600 * 1000;
/** Done records are written together, at most this long after the first of them, ms. */
const DONE_FLUSH_MS = 20;

/**
 * Which files this browser uploaded through a batch (IndexedDB database `big-uploader-batch`,
 * object store `done`, key: endpoint, path or name, size, lastModified; value: the time saved).
 * Records are written in one transaction per `DONE_FLUSH_MS`, and records older than
 * `DONE_RECORD_TTL_MS` are deleted when the database is first opened. The keys are read once into
 * memory then (one transaction, not one per file of a 10k-file folder). Without IndexedDB nothing
 * is remembered (every file is sent as new).
 */
class DoneRecords {
  private db: Promise<IDBDatabase | undefined> | undefined;
  private known: Promise<Set<string>> | undefined;
  private pending: string[] = [];
  private flushed: Promise<void> | undefined;

  private open(): Promise<IDBDatabase | undefined> {
    this.db ??= new Promise((resolve) => {
      if (typeof indexedDB === 'undefined') return resolve(undefined);
      const req = indexedDB.open('big-uploader-batch', 1);
      req.onupgradeneeded = () => {
        if (!req.result.objectStoreNames.contains('done')) req.result.createObjectStore('done');
      };
      req.onsuccess = () => {
        const db = req.result;
        const cutoff = Date.now() - DONE_RECORD_TTL_MS;
        const cursor = db.transaction('done', 'readwrite').objectStore('done').openCursor();
        cursor.onsuccess = () => {
          const at = cursor.result;
          if (!at) return;
          if (typeof at.value !== 'number' || at.value < cutoff) at.delete();
          at.continue();
        };
        resolve(db);
      };
      req.onerror = () => resolve(undefined); // private mode or quota: remember nothing
    });
    return this.db;
  }

  async has(key: string): Promise<boolean> {
    this.known ??= this.open().then(
      (db) =>
        new Promise<Set<string>>((resolve) => {
          if (!db) return resolve(new Set());
          const req = db.transaction('done', 'readonly').objectStore('done').getAllKeys();
          req.onsuccess = () => resolve(new Set(req.result.map(String)));
          req.onerror = () => resolve(new Set());
        }),
    );
    return (await this.known).has(key);
  }

  /** Resolves once the record is stored (or could not be: uploads never wait on a failure). */
  add(key: string): Promise<void> {
    void this.known?.then((known) => known.add(key));
    this.pending.push(key);
    this.flushed ??= new Promise<void>((resolve) => setTimeout(resolve, DONE_FLUSH_MS)).then(() =>
      this.flush(),
    );
    return this.flushed;
  }

  private async flush(): Promise<void> {
    const keys = this.pending;
    this.pending = [];
    this.flushed = undefined;
    const db = await this.open();
    if (!db || keys.length === 0) return;
    await new Promise<void>((resolve) => {
      const tx = db.transaction('done', 'readwrite');
      const store = tx.objectStore('done');
      const now = Date.now();
      for (const key of keys) store.put(now, key);
      tx.oncomplete = () => resolve();
      tx.onerror = () => resolve();
      tx.onabort = () => resolve();
    });
  }
}

const doneRecords = new DoneRecords();

function doneKey(o: BatchFileOptions): string {
  const file = o.file as Partial<File>;
  return JSON.stringify([
    endpointKey(o.endpoint),
    o.metadata?.relativePath ?? file.name ?? '',
    o.file.size,
    file.lastModified ?? 0,
  ]);
}

function sessionKey(o: BatchFileOptions, instant: boolean): string {
  return JSON.stringify([
    instant,
    o.endpoint,
    o.token ?? '',
    o.chunkSize ?? 0,
    o.maxInFlightBytes ?? 0,
    o.filesInFlight ?? 0,
    o.transport ?? 'websocket',
  ]);
}

function newSession(key: string, o: BatchFileOptions, instant: boolean): Session {
  const members = new Map<number, BatchFileUploader>();
  const endpoint = endpointKey(o.endpoint);
  const socket = new BrowserWebSocketTransport();
  const session: Session = { key, endpoint, members, batch: undefined as unknown as BatchUploader };
  const transport =
    o.transport === 'auto' ? new ProbeTransport(socket, () => unreachable(session)) : socket;
  session.batch = new BatchUploader({
    endpoint: o.endpoint,
    transport,
    ...(o.token ? { token: o.token } : {}),
    ...(o.chunkSize ? { chunkSize: o.chunkSize } : {}),
    ...(o.maxInFlightBytes ? { maxInFlightBytes: o.maxInFlightBytes } : {}),
    ...(o.filesInFlight ? { maxFilesInFlight: o.filesInFlight } : {}),
    idleCloseMs: BATCH_IDLE_CLOSE_MS,
    instantUpload: instant,
    onAccept: (index, uploadId) => members.get(index)?.accepted(uploadId),
    onProgress: (index, bytes) => members.get(index)?.acked(bytes),
    onResult: (result) => {
      const member = members.get(result.index);
      members.delete(result.index);
      member?.settle(result);
    },
  });
  sessions.set(key, session);
  void session.batch.run([]).then(() => {
    if (sessions.get(key) === session) sessions.delete(key);
  });
  return session;
}

/** The WebSocket of an 'auto' batch could not be opened: its files go per file over HTTP. */
function unreachable(session: Session): void {
  websocketUnreachable.add(session.endpoint);
  if (sessions.get(session.key) === session) sessions.delete(session.key);
  session.batch.stop();
  const members = [...session.members.values()];
  session.members.clear();
  for (const member of members) member.fallBack();
}

/**
 * Passes connections through and calls `onUnreachable` once when one closes with 1006 before any
 * message ever came through this transport (the rule of `FallbackTransport`); that close is not
 * passed on, so the batch does not count it as a fault to retry.
 */
class ProbeTransport implements Transport {
  private answered = false;
  private given = false;

  constructor(
    private readonly inner: Transport,
    private readonly onUnreachable: () => void,
  ) {}

  connect(url: string, protocols: readonly string[], handlers: ConnectionHandlers): Connection {
    return this.inner.connect(url, protocols, {
      ...handlers,
      onMessage: (data) => {
        this.answered = true;
        handlers.onMessage(data);
      },
      onClose: (info) => {
        if (info.code === 1006 && !this.answered && !this.given) {
          this.given = true;
          this.onUnreachable();
        }
        handlers.onClose(info);
      },
    });
  }
}

/** An Uploader for one small file whose bytes go through the shared batch of its options. */
export function createBatchFileUploader(options: BatchFileOptions): Uploader {
  return new BatchFileUploader(options);
}

class BatchFileUploader implements Uploader {
  private readonly emitter = new Emitter<UploaderEventMap>();
  private current: UploadState = 'idle';
  private snap: UploadProgress;
  private id: string | undefined;
  private session: Session | undefined;
  private index = -1;
  private running: Promise<UploadOutcome> | undefined;
  private settleRun: ((outcome: UploadOutcome) => void) | undefined;
  private last: UploadOutcome | undefined;
  /** What a pending drop() is for. */
  private dropping: 'pause' | 'cancel' | undefined;
  private startedAt = 0;
  /** The per-file uploader that took over (WebSocket unreachable under 'auto'). */
  private fallback: Uploader | undefined;

  constructor(private readonly options: BatchFileOptions) {
    new URL(options.endpoint); // a bad endpoint fails at creation, as the core's does
    this.snap = { bytesAcked: 0, bytesSent: 0, total: options.file.size, rate: 0, eta: null };
  }

  get state(): UploadState {
    return this.fallback?.state ?? this.current;
  }

  get progress(): UploadProgress {
    return this.fallback?.progress ?? this.snap;
  }

  get uploadId(): string | undefined {
    return this.fallback?.uploadId ?? this.id;
  }

  on<K extends UploaderEventName>(
    event: K,
    handler: (payload: UploaderEventMap[K]) => void,
  ): () => void {
    return this.emitter.on(event, handler);
  }

  start(): Promise<UploadOutcome> {
    if (this.fallback) return this.fallback.start();
    if (this.running) return this.running;
    if (this.current === 'done' || this.current === 'cancelled')
      return Promise.resolve(this.last ?? { state: 'cancelled' });
    this.running = new Promise((resolve) => (this.settleRun = resolve));
    this.startedAt = Date.now();
    this.setProgress(0);
    this.setState('connecting');
    void this.enqueue();
    return this.running;
  }

  resume(): Promise<UploadOutcome> {
    return this.start();
  }

  async pause(): Promise<void> {
    if (this.fallback) return this.fallback.pause();
    if (!this.running) return;
    const running = this.running;
    this.dropping ??= 'pause';
    if (!this.session) return this.finish(NOT_ADDED);
    this.session.batch.drop(this.index);
    await running;
  }

  async cancel(): Promise<void> {
    this.emitter.mute(); // same contract as the core: no events after cancel()
    if (this.fallback) return this.fallback.cancel();
    if (!this.running) {
      this.current = 'cancelled';
      return;
    }
    const running = this.running;
    this.dropping = 'cancel';
    if (!this.session) return this.finish(NOT_ADDED);
    this.session.batch.drop(this.index);
    await running;
  }

  private async enqueue(): Promise<void> {
    const running = this.running;
    const instant = await doneRecords.has(doneKey(this.options));
    if (this.running !== running || this.fallback) return; // paused or cancelled meanwhile
    if (
      this.options.transport === 'auto' &&
      websocketUnreachable.has(endpointKey(this.options.endpoint))
    ) {
      this.fallBack();
      return;
    }
    const key = sessionKey(this.options, instant);
    const file = this.options.file;
    const entry = {
      label: this.options.metadata?.relativePath ?? (file as Partial<File>).name ?? 'blob',
      open: () => Promise.resolve(blobSource(file)),
      ...(this.options.metadata ? { metadata: this.options.metadata } : {}),
    };
    for (;;) {
      const session = sessions.get(key) ?? newSession(key, this.options, instant);
      try {
        this.index = session.batch.add(entry);
      } catch {
        // That batch closed its connection a moment ago (idle): start a new one.
        sessions.delete(key);
        continue;
      }
      this.session = session;
      session.members.set(this.index, this);
      return;
    }
  }

  /** The server accepted the file: its bytes go out now. */
  accepted(uploadId: string): void {
    this.id = uploadId;
    this.announce(uploadId);
    this.setState('uploading');
  }

  acked(bytes: number): void {
    this.setProgress(bytes);
    this.emitter.emit('progress', this.snap);
    if (bytes >= this.snap.total) this.setState('completing');
  }

  settle(result: BatchResult): void {
    if (result.state === 'done') {
      // Remembered before it is reported, so a reload right after the report still finds it.
      void doneRecords.add(doneKey(this.options)).then(() => this.finish(result));
    } else {
      this.finish(result);
    }
  }

  private finish(result: BatchResult): void {
    this.session = undefined;
    const dropping = this.dropping;
    this.dropping = undefined;
    let outcome: UploadOutcome;
    if (result.state === 'done') {
      const uploadId = result.uploadId ?? '';
      if (this.id === undefined) this.announce(uploadId);
      this.id = uploadId;
      if (result.instant)
        this.emitter.emit('info', {
          code: 'ALREADY_ON_SERVER',
          message: 'the server already held this file: it was stored without sending it',
        });
      this.setProgress(this.snap.total);
      const complete: CompleteEvent = {
        uploadId,
        digest: result.digest ?? '',
        size: this.snap.total,
        durationMs: Date.now() - this.startedAt,
        bytesSent: result.instant ? 0 : this.snap.total,
        bytesSkipped: result.instant ? this.snap.total : 0,
        completionMs: 0,
        digestVerified: true,
        ...(result.instant ? { instant: true } : {}),
      };
      this.setState('done');
      this.emitter.emit('complete', complete);
      outcome = { state: 'done', result: complete };
    } else if (result.state === 'failed' && result.error) {
      this.setState('failed');
      this.emitter.emit('error', result.error);
      outcome = { state: 'failed', error: result.error };
    } else if (dropping === 'pause') {
      // The server deleted the partial upload: a resume starts the file again from byte 0.
      this.id = undefined;
      this.setProgress(0);
      this.setState('paused');
      outcome = { state: 'paused' };
    } else {
      this.current = 'cancelled';
      outcome = { state: 'cancelled' };
    }
    this.last = outcome;
    const resolve = this.settleRun;
    this.running = undefined;
    this.settleRun = undefined;
    resolve?.(outcome);
  }

  /** Hand this file to a per-file uploader over HTTP (the batch's WebSocket is unreachable). */
  fallBack(): void {
    if (this.fallback) return;
    const o = this.options;
    const uploader = createUploader({
      endpoint: o.endpoint,
      file: o.file,
      transport: 'http',
      ...(o.token ? { token: o.token } : {}),
      ...(o.chunkSize ? { chunkSize: o.chunkSize } : {}),
      ...(o.maxInFlightBytes ? { maxInFlightBytes: o.maxInFlightBytes } : {}),
      ...(o.metadata ? { metadata: o.metadata } : {}),
    });
    this.fallback = uploader;
    this.session = undefined;
    for (const name of UPLOADER_EVENTS)
      uploader.on(name, (payload) => this.emitter.emit(name, payload as never));
    const resolve = this.settleRun;
    this.running = undefined;
    this.settleRun = undefined;
    if (resolve) void uploader.start().then(resolve);
  }

  private announce(uploadId: string): void {
    this.emitter.emit('start', {
      uploadId,
      resumed: false,
      resumedBytes: 0,
      total: this.snap.total,
      chunkSize: this.options.chunkSize ?? BATCH_DEFAULTS.chunkSize,
      window: this.options.maxInFlightBytes ?? BATCH_DEFAULTS.maxInFlightBytes,
    });
  }

  private setProgress(bytesAcked: number): void {
    this.snap = { ...this.snap, bytesAcked, bytesSent: bytesAcked, eta: null, rate: 0 };
  }

  private setState(state: UploadState): void {
    const previous = this.current;
    if (previous === state) return;
    this.current = state;
    this.emitter.emit('state', { state, previous });
  }
}

/** The outcome of a file taken back before it was added to a batch. */
const NOT_ADDED: BatchResult = { index: -1, label: '', state: 'cancelled', size: 0 };
