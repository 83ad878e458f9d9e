/**
 * S3's multipart rules, and the chunk size that fits them. Each chunk is one part (part number =
 * chunk index + 1), so the chunk size must make every part but the last at least
 * MIN_PART_BYTES and the file at most MAX_PARTS parts. These are the AWS limits; MinIO, R2, Ceph
 * RGW and s3rver accept the same or looser ones.
 */
import { Errors, ProtocolError } from '../../../protocol/index.js';

/** Smallest part S3 accepts, except the last one (5 MiB). */
export const MIN_PART_BYTES = 5 * 1024 * 1024;
/** Most parts in one multipart upload. */
export const MAX_PARTS = 10_000;
/** Chunk sizes are rounded up to this (the protocol's smallest chunk, 64 KiB). */
const GRAIN = 65_536;

/**
 * The chunk size to agree for a file of `fileSize` when the session would pick `proposed`:
 * `proposed` when the file fits in one chunk of it; else at least MIN_PART_BYTES, at least
 * fileSize / MAX_PARTS (rounded up to 64 KiB), otherwise `proposed`. Throws FILE_TOO_LARGE when that exceeds `maxChunkSize` (the largest message the
 * server reads), e.g. a file over 10,000 x 16 MiB = 156 GiB at the default maxChunkSize.
 */
export function chunkSizeForParts(
  fileSize: number,
  proposed: number,
  maxChunkSize: number,
): number {
  const roundUp = (n: number): number => Math.max(GRAIN, Math.ceil(n / GRAIN) * GRAIN);
  // A file that fits in one proposed chunk is one part of any size: the proposal stands, so the
  // client's digest at that chunk size stays comparable (instant upload, SPEC.md 16.10).
  if (fileSize <= proposed && proposed <= maxChunkSize) return proposed;
  const size = Math.max(proposed, MIN_PART_BYTES, roundUp(fileSize / MAX_PARTS));
  if (size <= maxChunkSize) return size;
  // A file that fits in one chunk is one part, which may be of any size.
  if (fileSize <= maxChunkSize) return Math.min(maxChunkSize, roundUp(fileSize));
  throw new ProtocolError(
    Errors.FILE_TOO_LARGE,
    `a file of ${fileSize} bytes cannot be cut into at most ${MAX_PARTS} parts of ${MIN_PART_BYTES} to ${maxChunkSize} bytes (maxChunkSize)`,
  );
}
