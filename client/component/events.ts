/**
 * The DOM events <big-uploader> dispatches. Every detail is plain data (strings and numbers), so it
 * survives structured cloning, postMessage and framework event wrappers unchanged. All events
 * bubble and are composed (they cross shadow roots), so a listener on `document` sees them.
 *
 * `id` is the component's id for the file's row: stable from the moment the file is added until
 * the row is removed, also across pauses, reconnects and retries. `uploadId` is the server's
 * upload id (32 hex digits), '' while the server has not accepted the upload yet.
 */

export interface UploadStartDetail {
  readonly id: string;
  readonly uploadId: string;
  readonly name: string;
  readonly size: number;
  /** Bytes the server already had (more than 0 after a resume across page loads). */
  readonly resumedBytes: number;
}

export interface UploadProgressDetail {
  readonly id: string;
  readonly uploadId: string;
  readonly name: string;
  readonly size: number;
  /** Bytes the server has stored and acknowledged: what the progress bar shows. */
  readonly bytesAcked: number;
  /** Bytes handed to the socket in this page (resends included). */
  readonly bytesSent: number;
  /** Smoothed acknowledged bytes per second. */
  readonly rate: number;
  /** Seconds left at the current rate; null while unknown. */
  readonly eta: number | null;
}

export interface UploadCompleteDetail {
  readonly id: string;
  readonly uploadId: string;
  readonly name: string;
  readonly size: number;
  /** Whole-file digest from the server (xxHash64 over chunk hashes), 16 hex digits. */
  readonly digest: string;
}

export interface UploadErrorDetail {
  readonly id: string;
  readonly uploadId: string;
  readonly name: string;
  /** Protocol registry code, or a client-local code (0xF0xx) for network and file faults. */
  readonly code: number;
  readonly message: string;
  /** Pressing "Retry" (or calling `retry(id)`) may succeed. */
  readonly retryable: boolean;
}

export interface UploadRefusedDetail {
  readonly name: string;
  readonly size: number;
  readonly reason: 'too-large' | 'type';
}

export interface BigUploaderEventMap {
  'upload-start': CustomEvent<UploadStartDetail>;
  'upload-progress': CustomEvent<UploadProgressDetail>;
  'upload-complete': CustomEvent<UploadCompleteDetail>;
  'upload-error': CustomEvent<UploadErrorDetail>;
  'upload-refused': CustomEvent<UploadRefusedDetail>;
}

export type BigUploaderEventName = keyof BigUploaderEventMap;
