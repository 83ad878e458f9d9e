/**
 * Messages between the page and the upload worker (upload-worker.ts). The worker runs the client
 * core's Uploader so reading, hashing and sending never run on the page's main thread: measured in
 * headless Chromium, the same upload on the main thread produced long tasks of 50-160 ms.
 * Each postMessage carries an array of them, those queued until the next task (batched-post.ts).
 */
import type {
  UploadProgress,
  UploadOutcome,
  UploadState,
  UploaderEventMap,
  UploaderEventName,
} from '../core/types.js';

/** The Uploader options that can cross postMessage (no functions, no transport). */
export interface WorkerUploadOptions {
  readonly endpoint: string;
  readonly chunkSize?: number;
  readonly maxInFlightBytes?: number;
  readonly token?: string;
  readonly limitRate?: number;
  readonly metadata?: Readonly<Record<string, string>>;
  /** Which binding carries the upload (client/browser/transports.ts). */
  readonly transport?: 'auto' | 'websocket' | 'http';
  /** Files open at once on a batch's shared connection (route 'batch'). */
  readonly filesInFlight?: number;
}

/**
 * How a file is uploaded: 'single' is a per-file Uploader with its own connection and resume
 * record; 'batch' shares one bigup.2 connection with the other small files (client/browser/batch.ts).
 */
export type UploadRoute = 'single' | 'batch';

export type ToWorker =
  | {
      readonly op: 'create';
      readonly id: number;
      readonly file: File;
      readonly options: WorkerUploadOptions;
      /** Default 'single'. */
      readonly route?: UploadRoute;
    }
  | { readonly op: 'start' | 'pause' | 'cancel'; readonly id: number; readonly req: number };

export interface Snapshot {
  readonly state: UploadState;
  readonly progress: UploadProgress;
  readonly uploadId: string | undefined;
}

export type FromWorker =
  | {
      readonly op: 'event';
      readonly id: number;
      readonly event: UploaderEventName;
      readonly payload: UploaderEventMap[UploaderEventName];
      readonly snapshot: Snapshot;
    }
  | {
      readonly op: 'settled';
      readonly id: number;
      readonly req: number;
      readonly outcome?: UploadOutcome;
      readonly snapshot: Snapshot;
    }
  | { readonly op: 'failed'; readonly id: number; readonly message: string };
