/**
 * Browser entry of the client (`big-uploader/client` under the "browser" condition): the core plus
 * browser defaults: the page's WebSocket, File/Blob sources, IndexedDB resume records (keyed by
 * name, size, lastModified and a hash of a content sample, so picking the same file again after a
 * reload resumes it).
 */
import { createUploader as createCoreUploader } from '../core/uploader.js';
import type {
  FileSource,
  ResumeStore,
  Transport,
  Uploader,
  UploaderOptions,
} from '../core/types.js';
import { blobSource } from './blob-source.js';
import { IndexedDbResumeStore } from './idb-store.js';
import {
  chooseTransport,
  isTransportChoice,
  sendsBytesRead,
  type TransportChoice,
} from './transports.js';

export * from '../core/index.js';
export { BrowserWebSocketTransport } from './websocket-transport.js';
export { HTTP_PUTS_IN_FLIGHT, HttpTransport } from './http-transport.js';
export {
  FallbackTransport,
  chooseTransport,
  isTransportChoice,
  sendsBytesRead,
  type TransportChoice,
} from './transports.js';
export { blobSource } from './blob-source.js';
export { IndexedDbResumeStore } from './idb-store.js';

export interface BrowserUploaderOptions extends Omit<
  UploaderOptions,
  'file' | 'transport' | 'resumeStore'
> {
  /** A File, a Blob, or any FileSource. */
  readonly file: Blob | FileSource;
  /**
   * A Transport, or which binding to use: 'websocket', 'http' (SPEC.md 3.6) or 'auto' (the
   * WebSocket, falling back to HTTP when a WebSocket cannot be opened). Default 'websocket'.
   */
  readonly transport?: Transport | TransportChoice;
  /** Default: IndexedDB when available; `false` disables cross-reload resume. */
  readonly resumeStore?: ResumeStore | false;
}

function isBlob(value: unknown): value is Blob {
  return typeof Blob !== 'undefined' && value instanceof Blob;
}

/**
 * Chunk size proposed over the HTTP binding when the caller names none (the server still decides,
 * up to its `maxChunkSize`, 16 MiB by default): each chunk is one PUT whose Blob slice Chromium
 * reads from disk once more after the read for its hash, so fewer, larger chunks cost less per
 * byte. Measured in one headless Chromium (256 MiB, `<big-uploader transport="http">`, 3-4 rounds
 * alternated, medians): 4 MiB 60-70 MB/s at 5.0-5.6 s of Chromium CPU, 8 MiB 73-98 MB/s at
 * 4.3-4.9 s (docs/measurements.md, "Where `<big-uploader transport="http">` spends its time").
 * The WebSocket keeps the core's default (DEFAULTS.chunkSize).
 */
export const HTTP_CHUNK_SIZE = 8 * 2 ** 20;

/**
 * Chunk size proposed over a WebSocket that sends the bytes read (Chromium, `sendsBytesRead`) when
 * the caller names none: per GiB, each chunk costs a read, a hash and a message on both sides, so
 * larger chunks cost less. One bare Chromium, 512 MiB, 3 rounds alternated (bench/RESULTS.md):
 * 2 MiB 159 MB/s at 8.0 s of Chromium and 2.7 s of server CPU per GiB, 4 MiB (the core's default)
 * 179 at 6.9 and 2.2, 8 MiB 216 at 6.0 and 1.8. Elsewhere (Blob slices) the core's default stays:
 * unmeasured there.
 */
export const BYTES_READ_CHUNK_SIZE = 8 * 2 ** 20;

export function createUploader(options: BrowserUploaderOptions): Uploader {
  const { file, transport, resumeStore, ...rest } = options;
  const store =
    resumeStore === false
      ? undefined
      : (resumeStore ?? (globalThis.indexedDB ? new IndexedDbResumeStore() : undefined));
  const core: UploaderOptions = {
    ...rest,
    ...(rest.chunkSize === undefined && transport === 'http' ? { chunkSize: HTTP_CHUNK_SIZE } : {}),
    ...(rest.chunkSize === undefined &&
    (transport === undefined || transport === 'websocket' || transport === 'auto') &&
    isBlob(file) &&
    sendsBytesRead()
      ? { chunkSize: BYTES_READ_CHUNK_SIZE }
      : {}),
    file: isBlob(file) ? blobSource(file) : file,
    transport: isTransportChoice(transport)
      ? chooseTransport(transport, isBlob(file) ? file : undefined)
      : (transport ?? chooseTransport('websocket')),
    ...(store ? { resumeStore: store } : {}),
  };
  return createCoreUploader(core);
}
