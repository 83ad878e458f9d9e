/**
 * The chunk grid rule for acked ranges (SPEC.md 6.3, 6.5): the server acks whole chunks only, so
 * every range it names starts on a chunk boundary and ends on one or at the end of the file. A
 * receiver checks this for ACCEPT while decoding (the message carries file size and chunk size)
 * and for ACK against the upload's ACCEPT.
 */
import type { ByteRange } from './messages.js';

/** The first range of `ranges` that is off the chunk grid or past `fileSize`, or undefined. */
export function rangeOffGrid(
  ranges: readonly ByteRange[],
  fileSize: number,
  chunkSize: number,
): ByteRange | undefined {
  return ranges.find(
    (r) =>
      r.end > fileSize ||
      r.start % chunkSize !== 0 ||
      (r.end % chunkSize !== 0 && r.end !== fileSize),
  );
}
