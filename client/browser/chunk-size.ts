/**
 * The chunk size a browser upload proposes when the caller names none (the server still decides,
 * up to its `maxChunkSize`).
 */
import type { Transport } from '../core/types.js';
import type { TransportChoice } from './transports.js';

/**
 * Chunk size proposed over the HTTP binding when the caller names none (the server still decides,
 * up to its `maxChunkSize`, 16 MiB by default): each chunk is one PUT whose Blob slice Chromium
 * reads from disk once more after the read for its hash, so fewer, larger chunks cost less per
 * byte. Measured in one headless Chromium (256 MiB, `<big-uploader transport="http">`, 3-4 rounds
 * alternated, medians): 4 MiB 60-70 MB/s at 5.0-5.6 s of Chromium CPU, 8 MiB 73-98 MB/s at
 * 4.3-4.9 s (docs/measurements.md, "Where `<big-uploader transport="http">` spends its time").
 * A WebSocket proposes BYTES_READ_CHUNK_SIZE where it sends the bytes read, else the core's
 * default.
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

/**
 * HTTP_CHUNK_SIZE over the HTTP binding; BYTES_READ_CHUNK_SIZE over a WebSocket (chosen or tried
 * first by 'auto', or the default) that sends the bytes read of a Blob; undefined (the core's
 * default) otherwise, and for a Transport object, whose binding is not known here.
 */
export function defaultChunkSize(
  transport: Transport | TransportChoice | undefined,
  fileIsBlob: boolean,
  bytesRead: boolean,
): number | undefined {
  if (transport === 'http') return HTTP_CHUNK_SIZE;
  const websocket = transport === undefined || transport === 'websocket' || transport === 'auto';
  return websocket && fileIsBlob && bytesRead ? BYTES_READ_CHUNK_SIZE : undefined;
}
