/**
 * A core `Uploader` whose work happens in a Web Worker (upload-worker.ts): the page keeps a mirror
 * of state/progress/uploadId updated from the worker's messages, so the synchronous getters of the
 * interface still work. `workerUploaderFactory` falls back to the in-page uploader where module
 * workers are unavailable (or blocked by a CSP).
 */
import {
  createUploader as createPageUploader,
  type BrowserUploaderOptions,
} from '../browser/index.js';
import { Emitter } from '../core/emitter.js';
import { ClientErrors, clientError } from '../core/errors.js';
import type {
  UploadProgress,
  UploadErrorInfo,
  UploadOutcome,
  UploadState,
  Uploader,
  UploaderEventMap,
  UploaderEventName,
} from '../core/types.js';
import { createBatchFileUploader, type BatchFileOptions } from '../browser/batch.js';
import type { BatchFactory, UploaderFactory } from './controller.js';
import type {
  FromWorker,
  Snapshot,
  ToWorker,
  UploadRoute,
  WorkerUploadOptions,
} from './worker-protocol.js';
import { startUploadWorker } from './worker-factory.js';
import { batchedPost } from './batched-post.js';

let shared: Worker | undefined;
/** Posts to the shared worker, batched (batched-post.ts); made with the worker. */
let toWorker: (message: ToWorker) => void = () => undefined;
let broken = false;
let nextId = 1;
let nextReq = 1;
const live = new Map<number, WorkerUploader>();

function worker(): Worker | undefined {
  if (broken) return undefined;
  if (shared) return shared;
  try {
    const started = startUploadWorker();
    shared = started;
    toWorker = batchedPost<ToWorker>((messages) => started.postMessage(messages));
  } catch {
    broken = true;
    return undefined;
  }
  shared.onmessage = (event: MessageEvent<FromWorker[]>) => {
    for (const message of event.data) live.get(message.id)?.receive(message);
  };
  shared.onerror = (event) => {
    // The worker script failed to load or crashed: every upload in it is lost (its resume records
    // are not: picking the files again resumes them in the page).
    broken = true;
    event.preventDefault?.();
    for (const u of live.values()) u.lost(event.message || 'the upload worker stopped');
    live.clear();
    shared = undefined;
  };
  return shared;
}

class WorkerUploader implements Uploader {
  private readonly emitter = new Emitter<UploaderEventMap>();
  private snap: Snapshot;
  private readonly waiting = new Map<number, (outcome: UploadOutcome | undefined) => void>();

  constructor(
    private readonly id: number,
    size: number,
  ) {
    this.snap = {
      state: 'idle',
      progress: { bytesAcked: 0, bytesSent: 0, total: size, rate: 0, eta: null },
      uploadId: undefined,
    };
  }

  get state(): UploadState {
    return this.snap.state;
  }

  get progress(): UploadProgress {
    return this.snap.progress;
  }

  get uploadId(): string | undefined {
    return this.snap.uploadId;
  }

  on<K extends UploaderEventName>(
    event: K,
    handler: (payload: UploaderEventMap[K]) => void,
  ): () => void {
    return this.emitter.on(event, handler);
  }

  private request(op: 'start' | 'pause' | 'cancel'): Promise<UploadOutcome | undefined> {
    if (broken) {
      // The worker is gone: answer at once (a failed row the user can see) instead of waiting forever.
      if (op === 'start') this.lost('the upload worker stopped; pick the file again to resume');
      return Promise.resolve(undefined);
    }
    const req = nextReq++;
    const message: ToWorker = { op, id: this.id, req };
    return new Promise((resolve) => {
      this.waiting.set(req, resolve);
      toWorker(message);
    });
  }

  async start(): Promise<UploadOutcome> {
    const outcome = await this.request('start');
    return outcome ?? { state: 'failed', error: lostError('the upload worker stopped') };
  }

  resume(): Promise<UploadOutcome> {
    return this.start();
  }

  async pause(): Promise<void> {
    await this.request('pause');
  }

  async cancel(): Promise<void> {
    this.emitter.mute(); // same contract as the core: no events after cancel()
    await this.request('cancel');
    live.delete(this.id);
  }

  receive(message: FromWorker): void {
    if (message.op === 'failed') {
      this.lost(message.message);
      return;
    }
    this.snap = message.snapshot;
    if (message.op === 'event') {
      this.emitter.emit(message.event, message.payload);
    } else {
      const resolve = this.waiting.get(message.req);
      this.waiting.delete(message.req);
      resolve?.(message.outcome);
      if (message.outcome?.state === 'done' || message.outcome?.state === 'cancelled')
        live.delete(this.id);
    }
  }

  lost(reason: string): void {
    const error = lostError(reason);
    this.snap = { ...this.snap, state: 'failed' };
    this.emitter.emit('error', error);
    for (const resolve of this.waiting.values()) resolve({ state: 'failed', error });
    this.waiting.clear();
  }
}

function lostError(message: string): UploadErrorInfo {
  // Fatal for this uploader (its worker is gone), retryable as an upload (the controller resumes).
  return clientError(ClientErrors.WORKER_LOST, message, true);
}

/** Start `file`'s upload in the shared worker; undefined when there is no worker to use. */
function inWorker(
  file: Blob,
  options: WorkerUploadOptions,
  route: UploadRoute,
): Uploader | undefined {
  const w = typeof Worker !== 'undefined' ? worker() : undefined;
  if (!w) return undefined;
  // Validate the URL here, like the core does, so a bad endpoint fails on the row at once.
  new URL(options.endpoint);
  const id = nextId++;
  const u = new WorkerUploader(id, file.size);
  live.set(id, u);
  const message: ToWorker = { op: 'create', id, file: file as File, options, route };
  toWorker(message);
  return u;
}

/** Uploaders that run in the shared upload worker, or in the page where workers are unavailable. */
export const workerUploaderFactory: UploaderFactory = (
  options: BrowserUploaderOptions,
): Uploader => {
  const file = options.file;
  const usable =
    file instanceof Blob &&
    (options.transport === undefined || typeof options.transport === 'string') &&
    !options.resumeStore;
  if (!usable) return createPageUploader(options);
  const workerOptions: WorkerUploadOptions = {
    endpoint: options.endpoint,
    ...(options.chunkSize !== undefined ? { chunkSize: options.chunkSize } : {}),
    ...(options.maxInFlightBytes !== undefined
      ? { maxInFlightBytes: options.maxInFlightBytes }
      : {}),
    ...(options.token !== undefined ? { token: options.token } : {}),
    ...(options.limitRate !== undefined ? { limitRate: options.limitRate } : {}),
    ...(options.metadata !== undefined ? { metadata: options.metadata } : {}),
    ...(typeof options.transport === 'string' ? { transport: options.transport } : {}),
  };
  return inWorker(file, workerOptions, 'single') ?? createPageUploader(options);
};

/** Small files sharing one connection (client/browser/batch.ts), in the worker or else in the page. */
export const workerBatchUploaderFactory: BatchFactory = ({
  file,
  ...options
}: BatchFileOptions): Uploader =>
  inWorker(file, options, 'batch') ?? createBatchFileUploader({ file, ...options });
