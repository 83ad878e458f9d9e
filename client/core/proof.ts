/**
 * The client's side of instant upload (SPEC.md 16.10), shared by the per-file Uploader and the
 * BatchUploader: the whole-file digest a PROOF carries, and the hashes of the nonce with each
 * byte range a CHALLENGE names.
 */
import { wholeFileDigest, type ChallengeMessage, type Hasher } from '../../protocol/index.js';
import type { FileSource } from './types.js';

/** The whole-file digest (SPEC.md 7.8) of `file` at `chunkSize`, from one read of the file. */
export async function digestOfFile(
  hasher: Hasher,
  file: FileSource,
  chunkSize: number,
): Promise<bigint> {
  const size = file.size;
  const buffer = new Uint8Array(Math.min(chunkSize, size));
  const hashes: bigint[] = [];
  for (let start = 0; start < size; start += chunkSize) {
    const end = Math.min(start + chunkSize, size);
    const bytes = await file.read(start, end, buffer.subarray(0, end - start));
    if (bytes.byteLength !== end - start)
      throw new Error(`read ${bytes.byteLength} bytes at ${start}, expected ${end - start}`);
    hashes.push(hasher.h64(bytes));
  }
  return wholeFileDigest(hasher, hashes);
}

/** One hash per CHALLENGE range: xxHash64 of the nonce followed by the file's bytes of the range. */
export async function challengeHashes(
  hasher: Hasher,
  file: FileSource,
  challenge: ChallengeMessage,
): Promise<bigint[]> {
  const hashes: bigint[] = [];
  const nonceLength = challenge.nonce.byteLength;
  for (const { offset, length } of challenge.ranges) {
    const joined = new Uint8Array(nonceLength + length);
    joined.set(challenge.nonce);
    const end = Math.min(offset + length, file.size);
    const bytes = await file.read(
      offset,
      end,
      joined.subarray(nonceLength, nonceLength + (end - offset)),
    );
    if (bytes.buffer !== joined.buffer) joined.set(bytes, nonceLength);
    hashes.push(hasher.h64(joined.subarray(0, nonceLength + bytes.byteLength)));
  }
  return hashes;
}
