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
import { BrowserWebSocketTransport } from './websocket-transport.js';

export * from '../core/index.js';
export { BrowserWebSocketTransport } from './websocket-transport.js';
export { blobSource } from './blob-source.js';
export { IndexedDbResumeStore } from './idb-store.js';

export interface BrowserUploaderOptions extends Omit<
  UploaderOptions,
  'file' | 'transport' | 'resumeStore'
> {
  /** A File, a Blob, or any FileSource. */
  readonly file: Blob | FileSource;
  /** Default: the page's WebSocket. */
  readonly transport?: Transport;
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
  const core: UploaderOptions = {
    ...rest,
    file: isBlob(file) ? blobSource(file) : file,
    transport: transport ?? new BrowserWebSocketTransport(),
    ...(store ? { resumeStore: store } : {}),
  };
  return createCoreUploader(core);
}
