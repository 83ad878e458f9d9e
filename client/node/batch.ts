/**
 * Node defaults for the batch uploader (many files over one connection): the `ws` transport with a
 * zero mask, the native xxHash64 when installed, and entries that open a local file lazily.
 */
import { BatchUploader, type BatchEntry, type BatchOptions } from '../core/batch-uploader.js';
import { loadNodeHasher } from '../../protocol/native-hasher.js';
import { openFileSource } from './file-source.js';
import { WsTransport } from './ws-transport.js';

export interface NodeBatchOptions extends Omit<BatchOptions, 'transport'> {
  /** Default: WsTransport with a zero mask. */
  readonly transport?: BatchOptions['transport'];
}

export function createBatchUploader(options: NodeBatchOptions): BatchUploader {
  return new BatchUploader({
    ...options,
    transport: options.transport ?? new WsTransport(),
    loadHasher: options.loadHasher ?? loadNodeHasher,
  });
}

/**
 * A queue entry for the file at `path`, opened when its turn comes. `label` names it in reports
 * and is sent as its name when no other is given; `metadata` goes in its OPEN.
 */
export function fileEntry(
  path: string,
  label: string,
  metadata?: Readonly<Record<string, string>>,
): BatchEntry {
  const name = label.split('/').pop() ?? label;
  return {
    label,
    open: () => openFileSource(path, { name }),
    ...(metadata ? { metadata } : {}),
  };
}
