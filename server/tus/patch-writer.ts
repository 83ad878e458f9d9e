/**
 * One PATCH body into the store: the body is cut at our chunk boundaries, each whole chunk is
 * hashed (xxHash64) and written positionally and recorded like a WebSocket chunk (OpenUpload.write,
 * so the durability order of SPEC.md 8 is the same), and what is left of the last chunk when the
 * body ends becomes the upload's partial tail (tail.ts). A chunk an earlier PATCH began is read
 * back from the data so its hash covers all of it, but only once this PATCH stores something of it
 * (the chunk completes, or the body's end leaves a longer tail): a PATCH that stores nothing (a
 * checksum that does not match, a body cut before its first byte) reads nothing back, so a client
 * cannot make the server read a chunk's kept bytes again and again for a byte of its own, and at
 * most `tusPartialWritesPerChunk` PATCHes end inside one chunk (progress.ts).
 *
 * Memory: one chunk buffer being filled and at most one being written per PATCH (2 x chunkSize),
 * plus, for a checked body that starts inside a chunk, that first chunk until the checksum matched
 * (its kept bytes are read back and hashed only then), and on a store that keeps a partial chunk
 * apart those kept bytes while they are copied in (4 x chunkSize at most).
 *
 * With Upload-Checksum the chunks are written but not recorded until the whole body has arrived
 * and matched: a mismatch, or a body cut short, stores nothing the offset would count (tus: "the
 * Server MUST NOT append the data"), so a retry sends the same bytes again. Without it, every chunk
 * is recorded as it completes and a body cut short keeps everything that arrived.
 */
import { createHash } from 'node:crypto';
import { Errors, ProtocolError, type Hasher } from '../../protocol/index.js';
import type { OpenUpload } from '../upload.js';
import type { ChecksumHeader } from './headers.js';
import { PartialWritesExceeded, type TusProgress } from './progress.js';
import type { TailRecord } from './tail.js';

export interface PatchInput {
  readonly upload: OpenUpload;
  /** Where the body starts (the upload's offset, already checked against Upload-Offset). */
  readonly offset: number;
  /** The upload's verified tail, if any (its bytes are on disk: they are not written again). */
  readonly tail: TailRecord | undefined;
  readonly body: AsyncIterable<Buffer>;
  readonly checksum: ChecksumHeader | undefined;
  /** Flush the tail's bytes and record before answering (the `durable` option). */
  readonly durable: boolean;
  readonly hasher: Hasher;
  readonly progress: TusProgress;
  /** The PATCH still owns the upload (a DELETE or a takeover evicts it: then no tail is recorded). */
  readonly owned: () => boolean;
  /** Told the size of every piece read (the stall guard). */
  readonly onBytes: (length: number) => void;
}

export type PatchOutcome =
  /** The whole body arrived and is stored. */
  | { readonly kind: 'stored' }
  /** The body ended early (the client went away, or the stall guard cut it). */
  | { readonly kind: 'cut' }
  | { readonly kind: 'checksum-mismatch' }
  /** The body goes past the upload's length; what came before the excess is kept. */
  | { readonly kind: 'too-large' }
  /** A chunk differs from the one the upload already holds there (a WebSocket client sent it). */
  | { readonly kind: 'conflict' }
  /**
   * The chunk's bytes kept apart by an earlier PATCH failed their check and were dropped: nothing
   * of this body is stored, the offset is now the chunk's start (HEAD tells the client).
   */
  | { readonly kind: 'tail-lost' }
  /** tusPartialWritesPerChunk: too many PATCHes ended inside this chunk; its tail is kept as it was. */
  | { readonly kind: 'partial-writes-exceeded'; readonly message: string }
  | { readonly kind: 'storage'; readonly error: ProtocolError };

/** A failure of our side while a body is read (as opposed to the body failing). */
class WriteFailure extends Error {
  constructor(readonly outcome: PatchOutcome) {
    super(outcome.kind);
  }
}

function asStorage(error: unknown): WriteFailure {
  if (error instanceof WriteFailure) return error;
  const failure =
    error instanceof ProtocolError
      ? error
      : new ProtocolError(Errors.INTERNAL_ERROR, 'unexpected server fault');
  return new WriteFailure({ kind: 'storage', error: failure });
}

export async function writePatch(input: PatchInput): Promise<PatchOutcome> {
  const { upload, hasher } = input;
  const { fileSize: size, chunkSize } = upload.info;
  let position = input.offset;
  let chunk = Math.floor(position / chunkSize);
  let buffer: Buffer | undefined;
  /** Bytes of `buffer` filled, and how many of them were already on disk. */
  let filled = 0;
  let onDisk = 0;
  /** The first bytes of `buffer` are the tail's, not read back yet (see the header). */
  let headUnread = 0;
  const digest = input.checksum ? createHash(input.checksum.algorithm) : undefined;
  const held: Array<{ index: number; hash: bigint; length: number }> = [];
  /** A checked body's first chunk, whose kept bytes are read back once the checksum matched. */
  let unhashed: { index: number; full: Buffer; head: number } | undefined;
  let pending: Promise<void> = Promise.resolve();

  const startChunk = (): void => {
    const start = chunk * chunkSize;
    buffer = Buffer.allocUnsafe(Math.min(start + chunkSize, size) - start);
    filled = position - start;
    onDisk = 0;
    headUnread = 0;
    if (filled > 0) {
      // Only the verified tail puts the offset inside a chunk (progress.ts).
      const tail = input.tail;
      if (!tail || tail.chunk !== chunk || tail.length !== filled)
        throw asStorage(new ProtocolError(Errors.INTERNAL_ERROR, 'the offset is not at the tail'));
      headUnread = filled;
    }
  };

  /**
   * The tail's `length` bytes into the start of `into`, once this PATCH stores something of the
   * chunk; how many of them are in the data already.
   */
  const readTail = async (into: Buffer, length: number): Promise<number> => {
    const tail = input.tail;
    if (length === 0 || !tail) return 0;
    const head = await input.progress.tailBytes(upload, tail).catch((error: unknown) => {
      throw asStorage(error);
    });
    if (!head) throw new WriteFailure({ kind: 'tail-lost' });
    if (head.bytes.byteLength !== length)
      throw asStorage(
        new ProtocolError(Errors.STORAGE_ERROR, 'the start of the chunk could not be read back'),
      );
    into.set(head.bytes);
    return head.inData;
  };

  /** The open chunk's kept bytes, read back into `buffer` (see readTail). */
  const readHead = async (into: Buffer): Promise<void> => {
    if (headUnread === 0) return;
    onDisk = await readTail(into, headUnread);
    headUnread = 0;
  };

  const completeChunk = async (full: Buffer): Promise<void> => {
    const index = chunk;
    if (digest && headUnread > 0 && !upload.chunkStatus(index)) {
      // The kept bytes before this body's are read back to hash the chunk only if the checksum
      // matches (a mismatch stores nothing, so it reads nothing). In place, this body's bytes go
      // in now, unrecorded; kept apart, the chunk is one part written whole, after the match.
      const head = headUnread;
      headUnread = 0;
      if (upload.keepsPartialApart) {
        unhashed = { index, full, head };
        return;
      }
      try {
        await pending;
      } catch (error) {
        throw asStorage(error);
      }
      pending = upload
        .writeUnrecorded(full.subarray(head), index * chunkSize + head, false)
        .then(() => {
          unhashed = { index, full, head };
        });
      pending.catch(() => undefined);
      return;
    }
    await readHead(full);
    const hash = hasher.h64(full);
    const status = upload.chunkStatus(index);
    if (status) {
      if (status.hash !== hash) throw new WriteFailure({ kind: 'conflict' });
      return; // already stored, byte for byte
    }
    try {
      await pending;
    } catch (error) {
      throw asStorage(error);
    }
    const from = onDisk;
    pending = digest
      ? upload.writeUnrecorded(full.subarray(from), index * chunkSize + from, false).then(() => {
          held.push({ index, hash, length: full.byteLength });
        })
      : upload.write(index, hash, full);
    // Unhandled until awaited: the next chunk or the end awaits it.
    pending.catch(() => undefined);
  };

  let outcome: PatchOutcome | undefined;
  try {
    for await (const piece of input.body) {
      input.onBytes(piece.byteLength);
      if (position + piece.byteLength > size) {
        outcome = { kind: 'too-large' };
        break;
      }
      // The chunk is opened at the first byte: a PATCH without a body reads nothing back.
      if (!buffer && position < size && piece.byteLength > 0) startChunk();
      digest?.update(piece);
      let at = 0;
      while (at < piece.byteLength) {
        const target = buffer;
        // Unreachable: a piece past the length was refused above, so a chunk is always open here.
        if (!target) throw new WriteFailure({ kind: 'too-large' });
        const n = Math.min(piece.byteLength - at, target.byteLength - filled);
        piece.copy(target, filled, at, at + n);
        filled += n;
        at += n;
        position += n;
        if (filled === target.byteLength) {
          await completeChunk(target);
          chunk++;
          buffer = undefined;
          filled = 0;
          onDisk = 0;
          if (position < size) startChunk();
        }
      }
    }
    outcome ??= { kind: 'stored' };
  } catch (error) {
    outcome = error instanceof WriteFailure ? error.outcome : { kind: 'cut' };
  }
  try {
    await pending;
  } catch (error) {
    return asStorage(error).outcome;
  }
  if (outcome.kind === 'conflict' || outcome.kind === 'storage' || outcome.kind === 'tail-lost')
    return outcome;
  if (digest) {
    // Nothing of a checked body counts unless all of it arrived and matched.
    if (outcome.kind !== 'stored') return outcome;
    if (!input.checksum || !digest.digest().equals(input.checksum.digest))
      return { kind: 'checksum-mismatch' };
    try {
      if (unhashed) {
        const { index, full } = unhashed;
        const inData = await readTail(full, unhashed.head);
        if (upload.keepsPartialApart)
          await upload.writeUnrecorded(full.subarray(inData), index * chunkSize + inData, false);
        const hash = hasher.h64(full);
        const status = upload.chunkStatus(index);
        if (status && status.hash !== hash) return { kind: 'conflict' };
        if (!status) held.push({ index, hash, length: full.byteLength });
      }
      await Promise.all(held.map((h) => upload.recordWritten(h.index, h.hash, h.length)));
    } catch (error) {
      return asStorage(error).outcome;
    }
  }
  // The rest of the body, short of a whole chunk, becomes the tail.
  if (
    buffer &&
    filled > 0 &&
    input.owned() &&
    (input.tail?.chunk !== chunk || filled > input.tail.length)
  ) {
    try {
      // Refused before the read back: past the bound a PATCH costs nothing but its own bytes.
      input.progress.partialWrites(chunk, input.tail);
      await readHead(buffer);
      const bytes = buffer.subarray(0, filled);
      await input.progress.keep(
        upload,
        { chunk, length: filled, hash: hasher.h64(bytes) },
        input.tail,
        bytes,
        onDisk,
        input.durable,
      );
      // Removed or completed meanwhile (its record's removal may have run before this write):
      // the record goes with it, as UploadRegistry.onGone would have taken it.
      if (!input.owned()) await input.progress.forget(upload.id);
    } catch (error) {
      if (error instanceof PartialWritesExceeded)
        return { kind: 'partial-writes-exceeded', message: error.message };
      return asStorage(error).outcome;
    }
  }
  return outcome;
}
