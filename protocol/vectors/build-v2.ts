/**
 * Test vectors of bigup.2 (SPEC.md section 16): the stream id, HELLO and WELCOME. Pure, like
 * build.ts: valid vectors come from the encoder and must round-trip; invalid vectors are assembled
 * byte by byte from SPEC.md's layout, independently of the encoder. Written by generate.ts to
 * protocol/vectors/v2/bigup2.json (a folder of its own: the bigup.1 runners read every *.json
 * next to them as a bigup.1 message file).
 */
import {
  Capability,
  HeaderSizeV2,
  Limits,
  LimitsV2,
  MessageType,
  MessageTypeV2,
  OpenFlags,
} from '../constants.js';
import { Errors, type ErrorName } from '../errors.js';
import type { CapabilityEntry, Message, MessageV2 } from '../messages.js';
import { decodeFrame, encodeFrame } from '../codec.js';
import { hashFromHex, hashToHex, wholeFileDigest, type Hasher } from '../hash.js';
import { bytesToHex, hexToBytes } from '../ids.js';
import {
  SeededBytes,
  concat,
  messageFromJson,
  messageToJson,
  u16,
  u32,
  u64,
  u8,
  type Decoder,
  type JsonFields,
  type JsonValue,
} from './build.js';

export interface ValidFrameVector {
  readonly name: string;
  readonly description: string;
  readonly message: string;
  readonly hex: string;
  /** The decoded fields as in build.ts, plus `stream` for the types that carry one. */
  readonly fields: JsonFields;
}

export interface InvalidFrameVector {
  readonly name: string;
  readonly description: string;
  readonly hex: string;
  /** `client`, `server`, `any`: the bigup.2 decoder to use; `v1-client`: the bigup.1 client decoder. */
  readonly decoder: Decoder | 'v1-client';
  readonly maxDataMessage?: number;
  readonly error: { readonly name: ErrorName; readonly code: number };
}

export interface FrameVectorFile {
  readonly comment: string;
  readonly version: 'bigup.2';
  readonly valid: ValidFrameVector[];
  readonly invalid: InvalidFrameVector[];
}

const NAMES: Record<MessageV2['type'], string> = {
  open: 'OPEN',
  resume: 'RESUME',
  accept: 'ACCEPT',
  data: 'DATA',
  ack: 'ACK',
  window: 'WINDOW',
  complete: 'COMPLETE',
  result: 'RESULT',
  error: 'ERROR',
  terminate: 'TERMINATE',
  terminated: 'TERMINATED',
  hello: 'HELLO',
  welcome: 'WELCOME',
  verify: 'VERIFY',
  verified: 'VERIFIED',
  challenge: 'CHALLENGE',
  proof: 'PROOF',
};

function capabilitiesToJson(entries: readonly CapabilityEntry[]): JsonValue {
  return entries.map((c) => ({ id: c.id, value: c.value }));
}

/** A decoded bigup.2 message as JSON fields; `stream` only for the types that carry one. */
export function frameToJson(stream: number, message: MessageV2): JsonFields {
  if (message.type === 'hello' || message.type === 'welcome')
    return { capabilities: capabilitiesToJson(message.capabilities) };
  if (message.type === 'verify')
    return {
      stream,
      chunks: message.chunks.map((c) => ({ index: c.index, hash: hashToHex(c.hash) })),
    };
  if (message.type === 'verified') return { stream, withdrawn: [...message.withdrawn] };
  if (message.type === 'challenge')
    return {
      stream,
      nonce: bytesToHex(message.nonce),
      ranges: message.ranges.map((r) => ({ offset: r.offset, length: r.length })),
      ...(message.chunkSize !== undefined ? { chunkSize: message.chunkSize } : {}),
    };
  if (message.type === 'proof')
    return { stream, digest: hashToHex(message.digest), hashes: message.hashes.map(hashToHex) };
  const fields = messageToJson(message);
  return message.type === 'window' ? fields : { stream, ...fields };
}

/** The inverse of frameToJson. */
export function frameFromJson(
  type: MessageV2['type'],
  fields: JsonFields,
): { stream: number; message: MessageV2 } {
  if (type === 'hello' || type === 'welcome') {
    const list = fields.capabilities;
    if (!Array.isArray(list)) throw new TypeError('capabilities must be an array');
    const capabilities = list.map((c) => {
      if (
        c === null ||
        typeof c !== 'object' ||
        Array.isArray(c) ||
        typeof c.id !== 'number' ||
        typeof c.value !== 'number'
      ) {
        throw new TypeError('capability must be { id, value }');
      }
      return { id: c.id, value: c.value };
    });
    return { stream: 0, message: { type, capabilities } };
  }
  const { stream, ...rest } = fields;
  const on = typeof stream === 'number' ? stream : 0;
  if (type === 'verify') {
    const list = rest.chunks;
    if (!Array.isArray(list)) throw new TypeError('chunks must be an array');
    const chunks = list.map((c) => {
      if (
        c === null ||
        typeof c !== 'object' ||
        Array.isArray(c) ||
        typeof c.index !== 'number' ||
        typeof c.hash !== 'string'
      ) {
        throw new TypeError('chunk must be { index, hash }');
      }
      return { index: c.index, hash: hashFromHex(c.hash) };
    });
    return { stream: on, message: { type, chunks } };
  }
  if (type === 'challenge') {
    const list = rest.ranges;
    if (typeof rest.nonce !== 'string' || !Array.isArray(list))
      throw new TypeError('a CHALLENGE has nonce and ranges');
    const ranges = list.map((r) => {
      if (
        r === null ||
        typeof r !== 'object' ||
        Array.isArray(r) ||
        typeof r.offset !== 'number' ||
        typeof r.length !== 'number'
      )
        throw new TypeError('range must be { offset, length }');
      return { offset: r.offset, length: r.length };
    });
    const nonce = hexToBytes(rest.nonce, LimitsV2.NONCE_BYTES);
    if (!nonce) throw new TypeError('nonce must be 32 hex digits');
    if (rest.chunkSize !== undefined && typeof rest.chunkSize !== 'number')
      throw new TypeError('chunkSize must be a number');
    const chunkSize = rest.chunkSize;
    return {
      stream: on,
      message: { type, nonce, ranges, ...(chunkSize !== undefined ? { chunkSize } : {}) },
    };
  }
  if (type === 'proof') {
    const list = rest.hashes;
    if (!Array.isArray(list)) throw new TypeError('hashes must be an array');
    const hashes = list.map((h) => {
      if (typeof h !== 'string') throw new TypeError('hash must be hex');
      return hashFromHex(h);
    });
    if (typeof rest.digest !== 'string') throw new TypeError('digest must be hex');
    return { stream: on, message: { type, digest: hashFromHex(rest.digest), hashes } };
  }
  if (type === 'verified') {
    const list = rest.withdrawn;
    if (!Array.isArray(list) || !list.every((i) => typeof i === 'number'))
      throw new TypeError('withdrawn must be an array of numbers');
    return { stream: on, message: { type, withdrawn: list } };
  }
  return { stream: on, message: messageFromJson(type, rest) };
}

const COMMENT =
  'Generated by protocol/vectors/generate.ts (npm run vectors); do not edit. bigup.2 messages (SPEC.md 16): ' +
  'fields as in the bigup.1 files, plus `stream` for every type that carries one; HELLO and WELCOME list capabilities.';

function valid(
  name: string,
  description: string,
  stream: number,
  message: MessageV2,
): ValidFrameVector {
  const bytes = encodeFrame(stream, message);
  const back = decodeFrame(bytes, { maxDataMessage: Number.MAX_SAFE_INTEGER });
  const fields = frameToJson(stream, message);
  if (JSON.stringify(frameToJson(back.stream, back.message)) !== JSON.stringify(fields)) {
    throw new Error(`bigup.2 vector ${name} does not round-trip`);
  }
  return { name, description, message: NAMES[message.type], hex: bytesToHex(bytes), fields };
}

function invalid(
  name: string,
  description: string,
  bytes: Uint8Array,
  error: ErrorName,
  decoder: InvalidFrameVector['decoder'],
  maxDataMessage?: number,
): InvalidFrameVector {
  const vector: InvalidFrameVector = {
    name,
    description,
    hex: bytesToHex(bytes),
    decoder,
    error: { name: error, code: Errors[error].code },
  };
  return maxDataMessage === undefined ? vector : { ...vector, maxDataMessage };
}

export function buildFrameVectors(hasher: Hasher): FrameVectorFile {
  const rng = new SeededBytes(0x6269_6775_702e_32n); // "bigup.2"
  const id = rng.bytes(16);
  const secret = rng.bytes(32);
  const payload = rng.bytes(40);
  const hash = hasher.h64(payload);
  const none = Object.create(null) as Record<string, string>;
  const relative = Object.create(null) as Record<string, string>;
  relative.relativePath = 'photos/2026/a.jpg';
  const upload = (m: Message): Message => m;
  const HELLO = MessageTypeV2.HELLO;
  const cap = (idValue: number, value: number): number[] => [...u16(idValue), ...u32(value)];
  const validVectors: ValidFrameVector[] = [
    valid('hello-multiplex', 'HELLO asking for 16 uploads in flight.', 0, {
      type: 'hello',
      capabilities: [{ id: Capability.MULTIPLEX, value: 16 }],
    }),
    valid('hello-empty', 'HELLO with no capability: bigup.2 framing, one upload at a time.', 0, {
      type: 'hello',
      capabilities: [],
    }),
    valid(
      'hello-unknown-capability',
      'HELLO offering an id the server may not know (0x7f00): it is ignored, never an error.',
      0,
      {
        type: 'hello',
        capabilities: [
          { id: Capability.MULTIPLEX, value: 8 },
          { id: 0x7f00, value: 1 },
        ],
      },
    ),
    valid('welcome-multiplex', 'WELCOME granting 8 uploads in flight (less than asked).', 0, {
      type: 'welcome',
      capabilities: [{ id: Capability.MULTIPLEX, value: 8 }],
    }),
    valid('welcome-none', 'WELCOME granting nothing: one upload at a time.', 0, {
      type: 'welcome',
      capabilities: [],
    }),
    valid(
      'open-stream-1',
      'OPEN on stream 1 with a relativePath.',
      1,
      upload({
        type: 'open',
        fileSize: 16_384,
        chunkSize: 0,
        name: 'a.jpg',
        contentType: 'image/jpeg',
        token: '',
        metadata: relative,
      }),
    ),
    valid(
      'open-with-data',
      'OPEN on stream 3 carrying its whole 40-byte file (OPEN_WITH_DATA, 16.11): flags HAS_DIGEST | WITH_DATA, the digest of the one chunk, the bytes after the metadata.',
      3,
      upload({
        type: 'open',
        fileSize: payload.byteLength,
        chunkSize: 0,
        digest: wholeFileDigest(hasher, [hash]),
        name: 'note.txt',
        contentType: 'text/plain',
        token: '',
        metadata: relative,
        data: payload,
      }),
    ),
    valid(
      'open-with-data-empty',
      'OPEN carrying a 0-byte file: WITH_DATA and no byte after the metadata; the digest of no chunk.',
      4,
      upload({
        type: 'open',
        fileSize: 0,
        chunkSize: 0,
        digest: wholeFileDigest(hasher, []),
        name: 'empty',
        contentType: '',
        token: '',
        metadata: none,
        data: new Uint8Array(0),
      }),
    ),
    valid(
      'open-stream-max',
      'OPEN on the largest stream id.',
      LimitsV2.MAX_STREAM_ID,
      upload({
        type: 'open',
        fileSize: 1,
        chunkSize: 65_536,
        digest: 0xfedc_ba98_7654_3210n,
        name: 'x',
        contentType: '',
        token: '',
        metadata: none,
      }),
    ),
    valid(
      'resume-stream-2',
      'RESUME on stream 2.',
      2,
      upload({ type: 'resume', uploadId: id, secret, token: '' }),
    ),
    valid(
      'accept-stream-1',
      "ACCEPT of a new upload on stream 1; the window is the connection's.",
      1,
      upload({
        type: 'accept',
        created: true,
        durable: false,
        uploadId: id,
        secret,
        fileSize: 16_384,
        chunkSize: 65_536,
        window: 33_554_432,
        ranges: [],
      }),
    ),
    valid(
      'data-stream-3',
      'DATA of stream 3: a whole 40-byte file in one chunk.',
      3,
      upload({ type: 'data', offset: 0, hash, payload }),
    ),
    valid(
      'ack-stream-3',
      'ACK on stream 3.',
      3,
      upload({ type: 'ack', ranges: [{ start: 0, end: 40 }] }),
    ),
    valid(
      'window',
      "WINDOW has no stream: the window is the connection's.",
      0,
      upload({ type: 'window', window: 1_048_576 }),
    ),
    valid(
      'complete-stream-3',
      'COMPLETE with digest on stream 3.',
      3,
      upload({ type: 'complete', digest: 0x1111_2222_3333_4444n }),
    ),
    valid(
      'result-stream-3',
      'RESULT on stream 3.',
      3,
      upload({ type: 'result', uploadId: id, fileSize: 40, digest: 0x1111_2222_3333_4444n }),
    ),
    valid(
      'result-instant',
      'RESULT with flag INSTANT (16.11): completed from content the server held, no byte stored.',
      3,
      upload({
        type: 'result',
        uploadId: id,
        fileSize: 40,
        digest: 0x1111_2222_3333_4444n,
        instant: true,
      }),
    ),
    valid(
      'error-stream-0',
      'ERROR about the connection (stream 0): fatal, the connection closes.',
      0,
      upload({
        type: 'error',
        code: Errors.IDLE_TIMEOUT.code,
        fatal: true,
        retryable: true,
        offset: 0,
        length: 0,
        message: 'idle',
      }),
    ),
    valid(
      'error-stream-ends',
      'ERROR FILE_TOO_LARGE on stream 5: fatal for the upload, stream 5 ends, the connection stays.',
      5,
      upload({
        type: 'error',
        code: Errors.FILE_TOO_LARGE.code,
        fatal: true,
        retryable: false,
        offset: 0,
        length: 0,
        message: '',
      }),
    ),
    valid('terminate-stream-4', 'TERMINATE on stream 4.', 4, upload({ type: 'terminate' })),
    valid(
      'terminated-stream-4',
      'TERMINATED on stream 4.',
      4,
      upload({ type: 'terminated', uploadId: id }),
    ),
  ];
  const stream = (n: number): number[] => u32(n);
  /** OPEN on stream 1 named "x", no content type, token or metadata, then `data`. */
  const openWithData = (flags: number, fileSize: number, data: number[]): Uint8Array =>
    concat(
      u8(MessageType.OPEN),
      u8(flags),
      stream(1),
      u64(fileSize),
      u32(0),
      u64(0),
      u16(1),
      [0x78],
      u16(0),
      u16(0),
      u16(0),
      data,
    );
  const VERIFY = MessageTypeV2.VERIFY;
  const VERIFIED = MessageTypeV2.VERIFIED;
  validVectors.push(
    valid(
      'verify-two-chunks',
      'VERIFY on stream 2 (REPLACE_CHUNK): the client hashes chunks 0 and 3 as it reads them now.',
      2,
      {
        type: 'verify',
        chunks: [
          { index: 0, hash: 0x0123_4567_89ab_cdefn },
          { index: 3, hash: 0xfedc_ba98_7654_3210n },
        ],
      },
    ),
    valid('verified-one', 'VERIFIED on stream 2: chunk 3 was withdrawn, chunk 0 matched.', 2, {
      type: 'verified',
      withdrawn: [3],
    }),
    valid('verified-none', 'VERIFIED on stream 2: every listed chunk matched.', 2, {
      type: 'verified',
      withdrawn: [],
    }),
    valid('welcome-replace-chunk', 'WELCOME granting REPLACE_CHUNK (value 0: no parameter).', 0, {
      type: 'welcome',
      capabilities: [
        { id: Capability.MULTIPLEX, value: 1 },
        { id: Capability.REPLACE_CHUNK, value: 0 },
      ],
    }),
  );
  const CHALLENGE = MessageTypeV2.CHALLENGE;
  const PROOF = MessageTypeV2.PROOF;
  const nonce = rng.bytes(LimitsV2.NONCE_BYTES);
  validVectors.push(
    valid(
      'challenge-two-ranges',
      'CHALLENGE on stream 3 (PROOF_OF_POSSESSION): prove 4096 bytes at 0 and 65,536 bytes at 1 GiB.',
      3,
      {
        type: 'challenge',
        nonce,
        ranges: [
          { offset: 0, length: 4096 },
          { offset: 1_073_741_824, length: 65_536 },
        ],
      },
    ),
    valid(
      'challenge-chunk-size',
      'CHALLENGE with flag CHUNK_SIZE: the content is held at 5 MiB chunks (an object store keeps no smaller part), so the PROOF digest is taken at 5 MiB.',
      3,
      {
        type: 'challenge',
        nonce,
        ranges: [{ offset: 4096, length: 65_536 }],
        chunkSize: 5 * 1024 * 1024,
      },
    ),
    valid(
      'proof-two-hashes',
      'PROOF on stream 3: the whole-file digest, then one xxHash64(nonce || range bytes) per range.',
      3,
      {
        type: 'proof',
        digest: 0x0123_4567_89ab_cdefn,
        hashes: [0x0011_2233_4455_6677n, 0x8899_aabb_ccdd_eeffn],
      },
    ),
  );
  const range = (offset: number, length: number): number[] => [...u64(offset), ...u32(length)];
  /** A CHALLENGE on stream 3 with `flags` and one range (0, 1), then `tail`. */
  const oneRangeChallenge = (flags: number, ...tail: Parameters<typeof concat>): Uint8Array =>
    concat(u8(CHALLENGE), u8(flags), u32(3), nonce, u8(1), range(0, 1), ...tail);
  const entry = (index: number, hash: bigint): number[] => [...u32(index), ...u64(hash)];
  const invalidVectors: InvalidFrameVector[] = [
    invalid(
      'challenge-no-range',
      'A CHALLENGE names at least one range.',
      concat(u8(CHALLENGE), u8(0), u32(3), nonce, u8(0)),
      'INVALID_FIELD',
      'server',
    ),
    invalid(
      'challenge-over-limit',
      `More than LimitsV2.MAX_PROOF_RANGES (${LimitsV2.MAX_PROOF_RANGES}) ranges is refused at the count.`,
      concat(u8(CHALLENGE), u8(0), u32(3), nonce, u8(LimitsV2.MAX_PROOF_RANGES + 1)),
      'LIMIT_EXCEEDED',
      'server',
    ),
    invalid(
      'challenge-empty-range',
      'A range of length 0 proves nothing.',
      concat(u8(CHALLENGE), u8(0), u32(3), nonce, u8(1), range(0, 0)),
      'INVALID_FIELD',
      'server',
    ),
    invalid(
      'challenge-long-range',
      `A range longer than LimitsV2.MAX_PROOF_RANGE_BYTES (${LimitsV2.MAX_PROOF_RANGE_BYTES}).`,
      concat(
        u8(CHALLENGE),
        u8(0),
        u32(3),
        nonce,
        u8(1),
        range(0, LimitsV2.MAX_PROOF_RANGE_BYTES + 1),
      ),
      'INVALID_FIELD',
      'server',
    ),
    invalid(
      'challenge-chunk-size-missing',
      'Flag CHUNK_SIZE set, but the message ends after the ranges.',
      oneRangeChallenge(1),
      'MALFORMED',
      'server',
    ),
    invalid(
      'challenge-chunk-size-small',
      `A named chunk size below Limits.MIN_CHUNK_SIZE (${Limits.MIN_CHUNK_SIZE}).`,
      oneRangeChallenge(1, u32(Limits.MIN_CHUNK_SIZE - 1)),
      'INVALID_FIELD',
      'server',
    ),
    invalid(
      'challenge-chunk-size-large',
      `A named chunk size above Limits.MAX_CHUNK_SIZE (${Limits.MAX_CHUNK_SIZE}).`,
      oneRangeChallenge(1, u32(Limits.MAX_CHUNK_SIZE + 1)),
      'INVALID_FIELD',
      'server',
    ),
    invalid(
      'challenge-chunk-size-trailing',
      'A byte after the named chunk size.',
      oneRangeChallenge(1, u32(5 * 1024 * 1024), u8(0)),
      'MALFORMED',
      'server',
    ),
    invalid(
      'challenge-reserved-flag',
      'Flag bits of CHALLENGE other than CHUNK_SIZE (0x01) are reserved.',
      oneRangeChallenge(2),
      'RESERVED_BITS_SET',
      'server',
    ),
    invalid(
      'challenge-from-client',
      'CHALLENGE is sent by the server only.',
      oneRangeChallenge(0),
      'UNEXPECTED_MESSAGE',
      'client',
    ),
    invalid(
      'proof-truncated',
      'Count 2, one hash.',
      concat(u8(PROOF), u8(0), u32(3), u64(7n), u8(2), u64(1n)),
      'MALFORMED',
      'client',
    ),
    invalid(
      'proof-in-bigup1',
      'PROOF (0x16) does not exist in bigup.1.',
      concat(u8(PROOF), u8(0), u32(3), u64(7n), u8(1), u64(1n)),
      'UNKNOWN_MESSAGE_TYPE',
      'v1-client',
    ),
    invalid(
      'verify-in-bigup1',
      'VERIFY (0x13) does not exist in bigup.1.',
      concat(u8(VERIFY), u8(0), u32(1), u16(1), entry(0, 1n)),
      'UNKNOWN_MESSAGE_TYPE',
      'v1-client',
    ),
    invalid(
      'verify-empty',
      'VERIFY must list at least one chunk.',
      concat(u8(VERIFY), u8(0), u32(1), u16(0)),
      'INVALID_FIELD',
      'client',
    ),
    invalid(
      'verify-over-limit',
      `A count above LimitsV2.MAX_VERIFY_CHUNKS (${LimitsV2.MAX_VERIFY_CHUNKS}) is refused at the count, before the entries.`,
      concat(u8(VERIFY), u8(0), u32(1), u16(LimitsV2.MAX_VERIFY_CHUNKS + 1)),
      'LIMIT_EXCEEDED',
      'client',
    ),
    invalid(
      'verify-not-ascending',
      'Chunk indexes must be strictly ascending.',
      concat(u8(VERIFY), u8(0), u32(1), u16(2), entry(5, 1n), entry(5, 2n)),
      'INVALID_FIELD',
      'client',
    ),
    invalid(
      'verify-truncated',
      'Count 2, the second entry cut after its index.',
      concat(u8(VERIFY), u8(0), u32(1), u16(2), entry(0, 1n), u32(1)),
      'MALFORMED',
      'client',
    ),
    invalid(
      'verify-stream-0',
      'VERIFY concerns one upload: stream 0 is refused.',
      concat(u8(VERIFY), u8(0), u32(0), u16(1), entry(0, 1n)),
      'INVALID_FIELD',
      'client',
    ),
    invalid(
      'verify-reserved-flag',
      'VERIFY defines no flag.',
      concat(u8(VERIFY), u8(1), u32(1), u16(1), entry(0, 1n)),
      'RESERVED_BITS_SET',
      'client',
    ),
    invalid(
      'verified-from-client',
      'VERIFIED is sent by the server only.',
      concat(u8(VERIFIED), u8(0), u32(1), u16(0)),
      'UNEXPECTED_MESSAGE',
      'client',
    ),
    invalid(
      'verified-not-ascending',
      'Withdrawn indexes must be strictly ascending.',
      concat(u8(VERIFIED), u8(0), u32(1), u16(2), u32(4), u32(2)),
      'INVALID_FIELD',
      'server',
    ),
    invalid(
      'hello-in-bigup1',
      'HELLO (0x04) does not exist in bigup.1.',
      concat(u8(HELLO), u8(0), u16(0)),
      'UNKNOWN_MESSAGE_TYPE',
      'v1-client',
    ),
    invalid(
      'unknown-type',
      'Type 0x06 is not a bigup.2 message.',
      concat(u8(0x06), u8(0)),
      'UNKNOWN_MESSAGE_TYPE',
      'any',
    ),
    invalid(
      'welcome-from-client',
      'A server message decoded as one from a client.',
      concat(u8(MessageTypeV2.WELCOME), u8(0), u16(0)),
      'UNEXPECTED_MESSAGE',
      'client',
    ),
    invalid(
      'hello-reserved-flag',
      'HELLO defines no flag.',
      concat(u8(HELLO), u8(1), u16(0)),
      'RESERVED_BITS_SET',
      'client',
    ),
    invalid(
      'hello-truncated',
      'Count 1, entry cut after its id.',
      concat(u8(HELLO), u8(0), u16(1), u16(1)),
      'MALFORMED',
      'client',
    ),
    invalid(
      'hello-trailing',
      'One byte after the last entry.',
      concat(u8(HELLO), u8(0), u16(1), cap(1, 4), [0]),
      'MALFORMED',
      'client',
    ),
    invalid(
      'hello-id-zero',
      'Capability id 0 is reserved.',
      concat(u8(HELLO), u8(0), u16(1), cap(0, 4)),
      'INVALID_FIELD',
      'client',
    ),
    invalid(
      'hello-duplicate',
      'The same id twice (ids are strictly ascending).',
      concat(u8(HELLO), u8(0), u16(2), cap(1, 4), cap(1, 8)),
      'INVALID_FIELD',
      'client',
    ),
    invalid(
      'hello-descending',
      'Ids out of order.',
      concat(u8(HELLO), u8(0), u16(2), cap(3, 0), cap(1, 8)),
      'INVALID_FIELD',
      'client',
    ),
    invalid(
      'hello-too-many',
      `Count ${LimitsV2.MAX_CAPABILITIES + 1}: refused at the count, before the entries.`,
      concat(u8(HELLO), u8(0), u16(LimitsV2.MAX_CAPABILITIES + 1)),
      'LIMIT_EXCEEDED',
      'client',
    ),
    invalid(
      'open-with-data-short',
      'OPEN with data announcing 3 bytes and carrying 2.',
      openWithData(OpenFlags.HAS_DIGEST | OpenFlags.WITH_DATA, 3, [0x61, 0x62]),
      'MALFORMED',
      'client',
    ),
    invalid(
      'open-with-data-no-digest',
      'WITH_DATA without HAS_DIGEST (and a zero digest): the digest is required.',
      openWithData(OpenFlags.WITH_DATA, 2, [0x61, 0x62]),
      'INVALID_FIELD',
      'client',
    ),
    invalid(
      'open-with-data-too-large',
      `WITH_DATA and a file size of ${LimitsV2.MAX_INLINE_FILE_SIZE + 1}: refused at the size, before the strings.`,
      concat(
        u8(MessageType.OPEN),
        u8(OpenFlags.HAS_DIGEST | OpenFlags.WITH_DATA),
        stream(1),
        u64(LimitsV2.MAX_INLINE_FILE_SIZE + 1),
        u32(0),
        u64(1),
      ),
      'LIMIT_EXCEEDED',
      'client',
    ),
    invalid(
      'open-with-data-in-bigup1',
      'WITH_DATA is a reserved OPEN flag in bigup.1.',
      concat(
        u8(MessageType.OPEN),
        u8(OpenFlags.HAS_DIGEST | OpenFlags.WITH_DATA),
        u64(1),
        u32(0),
        u64(1),
        u16(1),
        [0x78],
        u16(0),
        u16(0),
        u16(0),
        [0x61],
      ),
      'RESERVED_BITS_SET',
      'v1-client',
    ),
    invalid(
      'result-reserved-flag',
      'RESULT defines only INSTANT (0x01) in bigup.2: 0x02 is reserved.',
      concat(u8(MessageType.RESULT), u8(0x02), stream(3), id, u64(40), u64(1)),
      'RESERVED_BITS_SET',
      'server',
    ),
    invalid(
      'stream-truncated',
      'OPEN that ends inside its stream id.',
      concat(u8(MessageType.OPEN), u8(0), [0, 0]),
      'MALFORMED',
      'client',
    ),
    invalid(
      'flags-before-stream',
      'Reserved flag and a truncated stream: the flags are checked first (4.4 step 5).',
      concat(u8(MessageType.TERMINATE), u8(0x80), [0]),
      'RESERVED_BITS_SET',
      'client',
    ),
    invalid(
      'terminate-stream-0',
      'TERMINATE on stream 0: stream 0 is the connection, no upload lives there.',
      concat(u8(MessageType.TERMINATE), u8(0), stream(0)),
      'INVALID_FIELD',
      'client',
    ),
    invalid(
      'ack-stream-0',
      'ACK on stream 0.',
      concat(u8(MessageType.ACK), u8(0), stream(0), u16(1), u64(0), u64(1)),
      'INVALID_FIELD',
      'server',
    ),
    invalid(
      'terminate-trailing',
      'TERMINATE with a byte after its stream.',
      concat(u8(MessageType.TERMINATE), u8(0), stream(1), [0]),
      'MALFORMED',
      'client',
    ),
    invalid(
      'data-too-large',
      'DATA of 22 + 65,537 bytes where the agreed chunk is 65,536: the header is 22 bytes in bigup.2.',
      concat(u8(MessageType.DATA), u8(0), stream(1), u64(0), u64(0), new Uint8Array(65_537)),
      'MESSAGE_TOO_LARGE',
      'client',
      65_536 + HeaderSizeV2.DATA,
    ),
    invalid(
      'data-empty',
      'DATA with a header and no payload.',
      concat(u8(MessageType.DATA), u8(0), stream(1), u64(0), u64(0)),
      'INVALID_FIELD',
      'client',
    ),
  ];
  return { comment: COMMENT, version: 'bigup.2', valid: validVectors, invalid: invalidVectors };
}
