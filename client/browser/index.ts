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
import { defaultChunkSize } from './chunk-size.js';
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
export {
  BYOB_STALL_MS,
  READ_TIMEOUT_MS,
  blobSource,
  type BlobSourceOptions,
} from './blob-source.js';
export { IndexedDbResumeStore } from './idb-store.js';
export { BYTES_READ_CHUNK_SIZE, HTTP_CHUNK_SIZE } from './chunk-size.js';

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

export function createUploader(options: BrowserUploaderOptions): Uploader {
  const { file, transport, resumeStore, ...rest } = options;
  const store =
    resumeStore === false
      ? undefined
      : (resumeStore ?? (globalThis.indexedDB ? new IndexedDbResumeStore() : undefined));
  const chunkSize = rest.chunkSize ?? defaultChunkSize(transport, isBlob(file), sendsBytesRead());
  const core: UploaderOptions = {
    ...rest,
    ...(chunkSize !== undefined ? { chunkSize } : {}),
    file: isBlob(file) ? blobSource(file) : file,
    transport: isTransportChoice(transport)
      ? chooseTransport(transport, isBlob(file) ? file : undefined)
      : (transport ?? chooseTransport('websocket', isBlob(file) ? file : undefined)),
    ...(store ? { resumeStore: store } : {}),
  };
  return createCoreUploader(core);
}
