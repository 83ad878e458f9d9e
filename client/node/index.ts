/**
 * Node entry of the client (`big-uploader/client` under the "node" condition): the core plus Node
 * defaults: `ws` transport with a zero mask, a lazy file-handle FileSource, a JSON state file, and
 * the native xxHash64 when @node-rs/xxhash is installed.
 */
import { createUploader as createCoreUploader } from '../core/uploader.js';
import type {
  FileSource,
  ResumeStore,
  Transport,
  Uploader,
  UploaderOptions,
} from '../core/types.js';
import { loadNodeHasher } from '../../protocol/native-hasher.js';
import { openFileSource } from './file-source.js';
import { JsonFileResumeStore } from './state-store.js';
import { WsTransport } from './ws-transport.js';

export * from '../core/index.js';
export { WsTransport } from './ws-transport.js';
export type { WsTransportOptions } from './ws-transport.js';
export { openFileSource } from './file-source.js';
export { JsonFileResumeStore, defaultStatePath } from './state-store.js';

export interface NodeUploaderOptions extends Omit<
  UploaderOptions,
  'file' | 'transport' | 'resumeStore'
> {
  /** A path, or any FileSource. */
  readonly file: string | FileSource;
  /** Default: WsTransport with a zero mask. */
  readonly transport?: Transport;
  /** Default: JsonFileResumeStore at defaultStatePath(); `false` disables cross-run resume. */
  readonly resumeStore?: ResumeStore | false;
}

export async function createUploader(options: NodeUploaderOptions): Promise<Uploader> {
  const { file, transport, resumeStore, ...rest } = options;
  const source = typeof file === 'string' ? await openFileSource(file) : file;
  const hasher = Promise.resolve(await (rest.loadHasher ?? loadNodeHasher)());
  const core: UploaderOptions = {
    ...rest,
    file: source,
    transport: transport ?? new WsTransport(),
    // Loaded here, not at the first start(): the native module takes ~10 ms to load, which
    // would otherwise land inside the upload's time to first byte.
    loadHasher: () => hasher,
    ...(resumeStore === false ? {} : { resumeStore: resumeStore ?? new JsonFileResumeStore() }),
  };
  return createCoreUploader(core);
}
export { createBatchUploader, fileEntry } from './batch.js';
export type { NodeBatchOptions } from './batch.js';
