/**
 * Builds the bigup.1 test vectors and the generated parts of SPEC.md. Pure: no I/O, so tests can
 * rebuild everything and compare it with what is committed (generate.ts writes the files).
 *
 * Valid vectors are produced by the encoder and described by their decoded fields. Invalid vectors
 * are assembled byte by byte from the layout in SPEC.md, independently of the encoder, so an
 * encoder bug cannot hide in them. All randomness comes from a seeded generator: the output is
 * identical on every run.
 */
import { CloseCode, Limits, MessageType } from '../constants.js';
import { Errors, allErrors, type ErrorDefinition, type ErrorName } from '../errors.js';
import type { ByteRange, Message } from '../messages.js';
import { decodeMessage, encodeMessage } from '../codec.js';
import { rangeOffGrid } from '../chunk-grid.js';
import { hashToHex, hashFromHex, wholeFileDigest, type Hasher } from '../hash.js';
import { bytesToHex } from '../ids.js';

// ---------------------------------------------------------------------------------------------
// JSON form of messages: numbers stay numbers (all are <= 2^53-1), 64-bit hashes become 16 hex
// digits, byte arrays lowercase hex, metadata an ordered list of [key, value] pairs (wire order,
// and no `__proto__` surprises for any JSON consumer).

export type JsonValue =
  null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonFields = { [key: string]: JsonValue };

function rangesToJson(ranges: readonly ByteRange[]): JsonValue {
  return ranges.map((r) => ({ start: r.start, end: r.end }));
}

/** A decoded message as JSON-safe fields (without `type`). */
export function messageToJson(message: Message): JsonFields {
  switch (message.type) {
    case 'open': {
      const fields: JsonFields = {
        fileSize: message.fileSize,
        chunkSize: message.chunkSize,
        name: message.name,
        contentType: message.contentType,
        token: message.token,
        metadata: Object.entries(message.metadata).map(([k, v]) => [k, v]),
      };
      if (message.digest !== undefined) fields.digest = hashToHex(message.digest);
      if (message.data !== undefined) fields.data = bytesToHex(message.data);
      return fields;
    }
    case 'resume':
      return {
        uploadId: bytesToHex(message.uploadId),
        secret: bytesToHex(message.secret),
        token: message.token,
      };
    case 'accept':
      return {
        created: message.created,
        durable: message.durable,
        uploadId: bytesToHex(message.uploadId),
        secret: bytesToHex(message.secret),
        fileSize: message.fileSize,
        chunkSize: message.chunkSize,
        window: message.window,
        ranges: rangesToJson(message.ranges),
      };
    case 'data':
      return {
        offset: message.offset,
        hash: hashToHex(message.hash),
        payload: bytesToHex(message.payload),
      };
    case 'ack':
      return { ranges: rangesToJson(message.ranges) };
    case 'window':
      return { window: message.window };
    case 'complete':
      return message.digest === undefined ? {} : { digest: hashToHex(message.digest) };
    case 'result':
      return {
        uploadId: bytesToHex(message.uploadId),
        fileSize: message.fileSize,
        digest: hashToHex(message.digest),
        ...(message.instant === true ? { instant: true } : {}),
      };
    case 'error':
      return {
        code: message.code,
        fatal: message.fatal,
        retryable: message.retryable,
        offset: message.offset,
        length: message.length,
        message: message.message,
      };
    case 'terminate':
      return {};
    case 'terminated':
      return { uploadId: bytesToHex(message.uploadId) };
  }
}

function str(fields: JsonFields, key: string): string {
  const v = fields[key];
  if (typeof v !== 'string') throw new TypeError(`field ${key} must be a string`);
  return v;
}
function num(fields: JsonFields, key: string): number {
  const v = fields[key];
  if (typeof v !== 'number') throw new TypeError(`field ${key} must be a number`);
  return v;
}
function bool(fields: JsonFields, key: string): boolean {
  const v = fields[key];
  if (typeof v !== 'boolean') throw new TypeError(`field ${key} must be a boolean`);
  return v;
}
function hex(text: string): Uint8Array {
  if (!/^(?:[0-9a-f]{2})*$/.test(text))
    throw new TypeError(`not lowercase hex: ${text.slice(0, 20)}`);
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(text.slice(i * 2, i * 2 + 2), 16);
  return out;
}
function rangesFromJson(value: JsonValue | undefined): ByteRange[] {
  if (!Array.isArray(value)) throw new TypeError('ranges must be an array');
  return value.map((r) => {
    if (r === null || typeof r !== 'object' || Array.isArray(r))
      throw new TypeError('range must be an object');
    return { start: num(r, 'start'), end: num(r, 'end') };
  });
}

/** The inverse of messageToJson. Metadata becomes a null-prototype record. */
export function messageFromJson(type: Message['type'], fields: JsonFields): Message {
  switch (type) {
    case 'open': {
      const metadata = Object.create(null) as Record<string, string>;
      const pairs = fields.metadata;
      if (!Array.isArray(pairs)) throw new TypeError('metadata must be an array of pairs');
      for (const pair of pairs) {
        if (!Array.isArray(pair) || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') {
          throw new TypeError('metadata pair must be [string, string]');
        }
        metadata[pair[0]] = pair[1];
      }
      const base = {
        type,
        fileSize: num(fields, 'fileSize'),
        chunkSize: num(fields, 'chunkSize'),
        name: str(fields, 'name'),
        contentType: str(fields, 'contentType'),
        token: str(fields, 'token'),
        metadata,
      } as const;
      return {
        ...base,
        ...(fields.digest !== undefined ? { digest: hashFromHex(str(fields, 'digest')) } : {}),
        ...(fields.data !== undefined ? { data: hex(str(fields, 'data')) } : {}),
      };
    }
    case 'resume':
      return {
        type,
        uploadId: hex(str(fields, 'uploadId')),
        secret: hex(str(fields, 'secret')),
        token: str(fields, 'token'),
      };
    case 'accept':
      return {
        type,
        created: bool(fields, 'created'),
        durable: bool(fields, 'durable'),
        uploadId: hex(str(fields, 'uploadId')),
        secret: hex(str(fields, 'secret')),
        fileSize: num(fields, 'fileSize'),
        chunkSize: num(fields, 'chunkSize'),
        window: num(fields, 'window'),
        ranges: rangesFromJson(fields.ranges),
      };
    case 'data':
      return {
        type,
        offset: num(fields, 'offset'),
        hash: hashFromHex(str(fields, 'hash')),
        payload: hex(str(fields, 'payload')),
      };
    case 'ack':
      return { type, ranges: rangesFromJson(fields.ranges) };
    case 'window':
      return { type, window: num(fields, 'window') };
    case 'complete':
      return fields.digest === undefined
        ? { type }
        : { type, digest: hashFromHex(str(fields, 'digest')) };
    case 'result':
      return {
        type,
        uploadId: hex(str(fields, 'uploadId')),
        fileSize: num(fields, 'fileSize'),
        digest: hashFromHex(str(fields, 'digest')),
        ...(fields.instant === true ? { instant: true } : {}),
      };
    case 'error':
      return {
        type,
        code: num(fields, 'code'),
        fatal: bool(fields, 'fatal'),
        retryable: bool(fields, 'retryable'),
        offset: num(fields, 'offset'),
        length: num(fields, 'length'),
        message: str(fields, 'message'),
      };
    case 'terminate':
      return { type };
    case 'terminated':
      return { type, uploadId: hex(str(fields, 'uploadId')) };
  }
}

// ---------------------------------------------------------------------------------------------
// Deterministic randomness (splitmix64): vectors must not change between runs.

export class SeededBytes {
  private state: bigint;
  constructor(seed: bigint) {
    this.state = seed & 0xffff_ffff_ffff_ffffn;
  }
  private next64(): bigint {
    this.state = (this.state + 0x9e37_79b9_7f4a_7c15n) & 0xffff_ffff_ffff_ffffn;
    let z = this.state;
    z = ((z ^ (z >> 30n)) * 0xbf58_476d_1ce4_e5b9n) & 0xffff_ffff_ffff_ffffn;
    z = ((z ^ (z >> 27n)) * 0x94d0_49bb_1331_11ebn) & 0xffff_ffff_ffff_ffffn;
    return z ^ (z >> 31n);
  }
  bytes(count: number): Uint8Array {
    const out = new Uint8Array(count);
    for (let i = 0; i < count; i += 8) {
      let word = this.next64();
      for (let j = i; j < Math.min(i + 8, count); j++) {
        out[j] = Number(word & 0xffn);
        word >>= 8n;
      }
    }
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// A byte builder for hand-assembled (mostly invalid) messages. Big-endian, like the wire.

type Part = Uint8Array | number[];
export const u8 = (v: number): number[] => [v & 0xff];
export const u16 = (v: number): number[] => [(v >>> 8) & 0xff, v & 0xff];
export const u32 = (v: number): number[] => [
  (v >>> 24) & 0xff,
  (v >>> 16) & 0xff,
  (v >>> 8) & 0xff,
  v & 0xff,
];
export const u64 = (v: bigint | number): number[] => {
  const big = BigInt(v);
  const out: number[] = [];
  for (let shift = 56n; shift >= 0n; shift -= 8n) out.push(Number((big >> shift) & 0xffn));
  return out;
};
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
/** A u16-length-prefixed string field from raw bytes (which may be deliberately invalid UTF-8). */
export const lstr = (content: Uint8Array | string): number[] => {
  const b = typeof content === 'string' ? utf8(content) : content;
  return [...u16(b.byteLength), ...b];
};
export function concat(...parts: Part[]): Uint8Array {
  const total = parts.reduce((n, p) => n + (p instanceof Uint8Array ? p.byteLength : p.length), 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p instanceof Uint8Array ? p.byteLength : p.length;
  }
  return out;
}
const zeros = (n: number): Uint8Array => new Uint8Array(n);
const filled = (n: number, byte: number): Uint8Array => new Uint8Array(n).fill(byte);

// ---------------------------------------------------------------------------------------------
// Vector files

export type Decoder = 'client' | 'server' | 'any';

export interface ValidVector {
  readonly name: string;
  readonly description: string;
  readonly hex: string;
  readonly fields: JsonFields;
}

export interface InvalidVector {
  readonly name: string;
  readonly description: string;
  readonly hex: string;
  /** Which decode function to use: decodeClientMessage, decodeServerMessage or decodeMessage. */
  readonly decoder: Decoder;
  /** DecodeOptions.maxDataMessage to pass, when the vector is about it. */
  readonly maxDataMessage?: number;
  readonly error: { readonly name: ErrorName; readonly code: number };
}

/** SPEC.md 6.5: whether an ACK's ranges are acceptable for an upload of fileSize/chunkSize. */
export interface GridCheck {
  readonly name: string;
  readonly description: string;
  readonly fileSize: number;
  readonly chunkSize: number;
  readonly ranges: ReadonlyArray<{ readonly start: number; readonly end: number }>;
  readonly verdict: 'accept' | 'violation';
}

export interface VectorFile {
  readonly comment: string;
  /** Message name as in SPEC.md, or "common" for vectors about no single type. */
  readonly message: string;
  readonly type: number | null;
  readonly sender: 'client' | 'server' | null;
  readonly valid: ValidVector[];
  readonly invalid: InvalidVector[];
  /** ack.json only: the client's chunk-grid rule for ACK ranges (SPEC.md 6.5, 15). */
  readonly gridChecks?: GridCheck[];
}

const MESSAGE_NAMES: Record<Message['type'], keyof typeof MessageType> = {
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
};
export const MESSAGE_KINDS = Object.keys(MESSAGE_NAMES) as Message['type'][];
const CLIENT_KINDS = new Set<Message['type']>(['open', 'resume', 'data', 'complete', 'terminate']);

const COMMENT =
  'Generated by protocol/vectors/generate.ts (npm run vectors); do not edit. Hashes are 16 hex digits, ' +
  'byte fields lowercase hex, metadata [key, value] pairs in wire order. See SPEC.md, Appendix A.';

function valid(name: string, description: string, message: Message): ValidVector {
  const bytes = encodeMessage(message);
  // The generator checks its own output: a vector that does not round-trip is never written.
  const back = decodeMessage(bytes, { maxDataMessage: Number.MAX_SAFE_INTEGER });
  const fields = messageToJson(message);
  if (JSON.stringify(messageToJson(back)) !== JSON.stringify(fields)) {
    throw new Error(`vector ${name} does not round-trip`);
  }
  return { name, description, hex: bytesToHex(bytes), fields };
}

function grid(
  name: string,
  description: string,
  ranges: GridCheck['ranges'],
  verdict: GridCheck['verdict'],
): GridCheck {
  const check = { name, description, fileSize: 1_000_000, chunkSize: 262_144, ranges, verdict };
  // As valid(): the generator refuses a check whose verdict the reference rule disagrees with.
  if (
    (rangeOffGrid(ranges, check.fileSize, check.chunkSize) === undefined) !==
    (verdict === 'accept')
  ) {
    throw new Error(`grid check ${name} disagrees with rangeOffGrid`);
  }
  return check;
}

function invalid(
  name: string,
  description: string,
  bytes: Uint8Array,
  error: ErrorName,
  decoder: Decoder,
  maxDataMessage?: number,
): InvalidVector {
  const vector: InvalidVector = {
    name,
    description,
    hex: bytesToHex(bytes),
    decoder,
    error: { name: error, code: Errors[error].code },
  };
  return maxDataMessage === undefined ? vector : { ...vector, maxDataMessage };
}

/** A fresh metadata record with the given pairs (null prototype, like the decoder's). */
function meta(pairs: [string, string][]): Record<string, string> {
  const record = Object.create(null) as Record<string, string>;
  for (const [k, v] of pairs) record[k] = v;
  return record;
}

const ABOVE_2_53 = 2n ** 53n; // 2^53: the smallest u64 a peer must refuse

/** Byte sequences that are not UTF-8, each named for what is wrong with it. */
const BAD_UTF8: [string, number[]][] = [
  ['lone continuation byte', [0x61, 0x80]],
  ['overlong encoding of "/"', [0xc0, 0xaf]],
  ['UTF-16 surrogate encoded as UTF-8', [0xed, 0xa0, 0x80]],
  ['truncated 3-byte sequence', [0xe2, 0x82]],
  ['code point above U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
];

export function buildVectors(hasher: Hasher): VectorFile[] {
  const rng = new SeededBytes(0x6269_6775_702e_31n); // "bigup.1"
  const id = rng.bytes(16);
  const id2 = rng.bytes(16);
  const secret = rng.bytes(32);
  const small = rng.bytes(100);
  const one = rng.bytes(1);
  const h = (b: Uint8Array): bigint => hasher.h64(b);
  const files: VectorFile[] = [];
  const file = (
    kind: Message['type'],
    validVectors: ValidVector[],
    invalidVectors: InvalidVector[],
    gridChecks?: GridCheck[],
  ): void => {
    files.push({
      comment: COMMENT,
      message: MESSAGE_NAMES[kind],
      type: MessageType[MESSAGE_NAMES[kind]],
      sender: CLIENT_KINDS.has(kind) ? 'client' : 'server',
      valid: validVectors,
      invalid: invalidVectors,
      ...(gridChecks ? { gridChecks } : {}),
    });
  };

  // OPEN ---------------------------------------------------------------------------------------
  const openHead = (
    flags: number,
    fileSize: bigint | number,
    chunk: number,
    digest: bigint | number,
  ): number[] => [
    ...u8(MessageType.OPEN),
    ...u8(flags),
    ...u64(fileSize),
    ...u32(chunk),
    ...u64(digest),
  ];
  const openTail = (
    name: Part,
    ct: Part,
    token: Part,
    count: number,
    ...entries: Part[]
  ): Uint8Array => concat(name, ct, token, u16(count), ...entries);
  const fullOpen = (head: number[], ...rest: Part[]): Uint8Array => concat(head, ...rest);
  file(
    'open',
    [
      valid(
        'minimal',
        'Smallest OPEN: 1-byte name, server-chosen chunk size, no digest, token or metadata.',
        {
          type: 'open',
          fileSize: 1,
          chunkSize: 0,
          name: 'a',
          contentType: '',
          token: '',
          metadata: meta([]),
        },
      ),
      valid('empty-file', 'A 0-byte file is allowed.', {
        type: 'open',
        fileSize: 0,
        chunkSize: 0,
        name: 'empty.txt',
        contentType: 'text/plain',
        token: '',
        metadata: meta([]),
      }),
      valid(
        'full',
        'Every field in use: digest (HAS_DIGEST), chunk size proposal, UTF-8 name, token, metadata.',
        {
          type: 'open',
          fileSize: 10_737_418_240,
          chunkSize: 8_388_608,
          digest: 0x0123_4567_89ab_cdefn,
          name: '报告 2026.tar',
          contentType: 'application/x-tar',
          token: 'tkt.eyJmaWxlIjoxfQ',
          metadata: meta([
            ['project', 'demo'],
            ['路径', 'a/b'],
            ['empty', ''],
          ]),
        },
      ),
      valid('max-file-size', 'fileSize = 2^53-1, the largest value a u64 field may carry.', {
        type: 'open',
        fileSize: Number.MAX_SAFE_INTEGER,
        chunkSize: 0xffff_ffff,
        name: 'x',
        contentType: '',
        token: '',
        metadata: meta([]),
      }),
      valid(
        'proto-key',
        'Metadata key "__proto__" is a plain key: it must decode as an own entry, never touch a prototype.',
        {
          type: 'open',
          fileSize: 5,
          chunkSize: 0,
          name: 'p',
          contentType: '',
          token: '',
          metadata: meta([
            ['__proto__', 'x'],
            ['constructor', 'y'],
          ]),
        },
      ),
      valid(
        'zero-digest',
        'HAS_DIGEST set with digest 0: 0 is a possible hash value, the flag is what says a digest is present.',
        {
          type: 'open',
          fileSize: 7,
          chunkSize: 65_536,
          digest: 0n,
          name: 'z',
          contentType: '',
          token: '',
          metadata: meta([]),
        },
      ),
      valid('limits', 'Name, content type, token and metadata exactly at their limits.', {
        type: 'open',
        fileSize: 1,
        chunkSize: 0,
        name: 'n'.repeat(Limits.MAX_NAME_BYTES),
        contentType: 'c'.repeat(Limits.MAX_CONTENT_TYPE_BYTES),
        token: 't'.repeat(Limits.MAX_TOKEN_BYTES),
        metadata: meta([
          ['k'.repeat(Limits.MAX_METADATA_KEY_BYTES), 'v'.repeat(Limits.MAX_METADATA_VALUE_BYTES)],
          ['b', 'v'.repeat(Limits.MAX_METADATA_VALUE_BYTES)],
          ['c', 'v'.repeat(Limits.MAX_METADATA_VALUE_BYTES)],
          [
            'd',
            'v'.repeat(
              Limits.MAX_METADATA_TOTAL_BYTES -
                3 * Limits.MAX_METADATA_VALUE_BYTES -
                Limits.MAX_METADATA_KEY_BYTES -
                3,
            ),
          ],
        ]),
      }),
    ],
    [
      invalid(
        'header-only',
        'Type and flags only.',
        concat(u8(MessageType.OPEN), u8(0)),
        'MALFORMED',
        'client',
      ),
      invalid(
        'truncated-in-name',
        'Name length 5 but 2 bytes follow.',
        fullOpen(openHead(0, 1, 0, 0), u16(5), utf8('ab')),
        'MALFORMED',
        'client',
      ),
      invalid(
        'missing-metadata-count',
        'Ends after the token.',
        fullOpen(openHead(0, 1, 0, 0), lstr('a'), lstr(''), lstr('')),
        'MALFORMED',
        'client',
      ),
      invalid(
        'trailing-byte',
        'One byte after the last metadata entry.',
        fullOpen(openHead(0, 1, 0, 0), openTail(lstr('a'), lstr(''), lstr(''), 0), [0]),
        'MALFORMED',
        'client',
      ),
      invalid(
        'reserved-flag',
        'Flag bit 0x02 is reserved in OPEN.',
        fullOpen(openHead(0x02, 1, 0, 0), openTail(lstr('a'), lstr(''), lstr(''), 0)),
        'RESERVED_BITS_SET',
        'client',
      ),
      invalid(
        'reserved-flag-high',
        'Flag bit 0x80 is reserved in OPEN.',
        fullOpen(openHead(0x81, 1, 0, 0), openTail(lstr('a'), lstr(''), lstr(''), 0)),
        'RESERVED_BITS_SET',
        'client',
      ),
      invalid(
        'digest-without-flag',
        'Digest field non-zero while HAS_DIGEST is clear.',
        fullOpen(openHead(0, 1, 0, 1), openTail(lstr('a'), lstr(''), lstr(''), 0)),
        'RESERVED_BITS_SET',
        'client',
      ),
      invalid(
        'file-size-2^53',
        'fileSize = 2^53.',
        fullOpen(openHead(0, ABOVE_2_53, 0, 0), openTail(lstr('a'), lstr(''), lstr(''), 0)),
        'INTEGER_TOO_LARGE',
        'client',
      ),
      invalid(
        'file-size-max-u64',
        'fileSize = 2^64-1.',
        fullOpen(openHead(0, 2n ** 64n - 1n, 0, 0), openTail(lstr('a'), lstr(''), lstr(''), 0)),
        'INTEGER_TOO_LARGE',
        'client',
      ),
      invalid(
        'empty-name',
        'Name of 0 bytes.',
        fullOpen(openHead(0, 1, 0, 0), openTail(lstr(''), lstr(''), lstr(''), 0)),
        'INVALID_FIELD',
        'client',
      ),
      invalid(
        'name-too-long',
        'Name length field 1025: refused at the length field (no name bytes follow).',
        fullOpen(openHead(0, 1, 0, 0), u16(Limits.MAX_NAME_BYTES + 1)),
        'LIMIT_EXCEEDED',
        'client',
      ),
      invalid(
        'content-type-too-long',
        'Content type length 256.',
        fullOpen(openHead(0, 1, 0, 0), lstr('a'), u16(Limits.MAX_CONTENT_TYPE_BYTES + 1)),
        'LIMIT_EXCEEDED',
        'client',
      ),
      invalid(
        'token-too-long',
        'Token length 4097.',
        fullOpen(openHead(0, 1, 0, 0), lstr('a'), lstr(''), u16(Limits.MAX_TOKEN_BYTES + 1)),
        'LIMIT_EXCEEDED',
        'client',
      ),
      invalid(
        'too-many-metadata-entries',
        'Metadata count 65: refused at the count.',
        fullOpen(
          openHead(0, 1, 0, 0),
          lstr('a'),
          lstr(''),
          lstr(''),
          u16(Limits.MAX_METADATA_ENTRIES + 1),
        ),
        'LIMIT_EXCEEDED',
        'client',
      ),
      invalid(
        'metadata-key-too-long',
        'Metadata key length 256.',
        fullOpen(
          openHead(0, 1, 0, 0),
          openTail(lstr('a'), lstr(''), lstr(''), 1, u16(Limits.MAX_METADATA_KEY_BYTES + 1)),
        ),
        'LIMIT_EXCEEDED',
        'client',
      ),
      invalid(
        'metadata-value-too-long',
        'Metadata value length 4097.',
        fullOpen(
          openHead(0, 1, 0, 0),
          openTail(
            lstr('a'),
            lstr(''),
            lstr(''),
            1,
            lstr('k'),
            u16(Limits.MAX_METADATA_VALUE_BYTES + 1),
          ),
        ),
        'LIMIT_EXCEEDED',
        'client',
      ),
      invalid(
        'metadata-total-too-large',
        'Five entries of 1 + 4096 bytes: each within limits, 16 KiB total exceeded at the fourth.',
        fullOpen(
          openHead(0, 1, 0, 0),
          openTail(
            lstr('a'),
            lstr(''),
            lstr(''),
            5,
            ...['a', 'b', 'c', 'd', 'e'].flatMap((k) => [
              lstr(k),
              lstr(filled(Limits.MAX_METADATA_VALUE_BYTES, 0x76)),
            ]),
          ),
        ),
        'LIMIT_EXCEEDED',
        'client',
      ),
      invalid(
        'metadata-total-crossed-by-duplicate',
        'Four entries of 1 + 4096 bytes, the fourth repeating key "a": it crosses the total and repeats a key; the total is checked first (LIMIT_EXCEEDED).',
        fullOpen(
          openHead(0, 1, 0, 0),
          openTail(
            lstr('a'),
            lstr(''),
            lstr(''),
            4,
            ...['a', 'b', 'c', 'a'].flatMap((k) => [
              lstr(k),
              lstr(filled(Limits.MAX_METADATA_VALUE_BYTES, 0x76)),
            ]),
          ),
        ),
        'LIMIT_EXCEEDED',
        'client',
      ),
      invalid(
        'metadata-total-checked-after-value',
        'Entries totalling 16130 bytes, then a fifth whose 255-byte key alone crosses the 16384-byte total, and whose value is cut short: the total is checked after the whole entry, so the message ends first (MALFORMED).',
        fullOpen(
          openHead(0, 1, 0, 0),
          openTail(
            lstr('a'),
            lstr(''),
            lstr(''),
            5,
            ...['a', 'b', 'c'].flatMap((k) => [
              lstr(k),
              lstr(filled(Limits.MAX_METADATA_VALUE_BYTES, 0x76)),
            ]),
            lstr('d'),
            lstr(filled(3838, 0x76)),
            lstr(filled(Limits.MAX_METADATA_KEY_BYTES, 0x6b)),
            u16(Limits.MAX_METADATA_VALUE_BYTES),
            filled(10, 0x76),
          ),
        ),
        'MALFORMED',
        'client',
      ),
      invalid(
        'empty-metadata-key',
        'Metadata key of 0 bytes.',
        fullOpen(
          openHead(0, 1, 0, 0),
          openTail(lstr('a'), lstr(''), lstr(''), 1, lstr(''), lstr('v')),
        ),
        'INVALID_FIELD',
        'client',
      ),
      invalid(
        'duplicate-metadata-key',
        'Key "k" twice.',
        fullOpen(
          openHead(0, 1, 0, 0),
          openTail(lstr('a'), lstr(''), lstr(''), 2, lstr('k'), lstr('1'), lstr('k'), lstr('2')),
        ),
        'INVALID_FIELD',
        'client',
      ),
      invalid(
        'duplicate-proto-key',
        'Key "__proto__" twice: a plain key, so a plain duplicate.',
        fullOpen(
          openHead(0, 1, 0, 0),
          openTail(
            lstr('a'),
            lstr(''),
            lstr(''),
            2,
            lstr('__proto__'),
            lstr('1'),
            lstr('__proto__'),
            lstr('2'),
          ),
        ),
        'INVALID_FIELD',
        'client',
      ),
      ...BAD_UTF8.map(([what, b], i) =>
        invalid(
          `bad-utf8-name-${i + 1}`,
          `Name: ${what}.`,
          fullOpen(openHead(0, 1, 0, 0), openTail(lstr(Uint8Array.from(b)), lstr(''), lstr(''), 0)),
          'INVALID_UTF8',
          'client',
        ),
      ),
      invalid(
        'bad-utf8-content-type',
        'Content type: lone continuation byte.',
        fullOpen(openHead(0, 1, 0, 0), openTail(lstr('a'), lstr(Uint8Array.of(0x80)), lstr(''), 0)),
        'INVALID_UTF8',
        'client',
      ),
      invalid(
        'bad-utf8-token',
        'Token: overlong encoding.',
        fullOpen(
          openHead(0, 1, 0, 0),
          openTail(lstr('a'), lstr(''), lstr(Uint8Array.of(0xc1, 0x81)), 0),
        ),
        'INVALID_UTF8',
        'client',
      ),
      invalid(
        'bad-utf8-metadata-key',
        'Metadata key: encoded surrogate.',
        fullOpen(
          openHead(0, 1, 0, 0),
          openTail(
            lstr('a'),
            lstr(''),
            lstr(''),
            1,
            lstr(Uint8Array.of(0xed, 0xb0, 0x80)),
            lstr('v'),
          ),
        ),
        'INVALID_UTF8',
        'client',
      ),
      invalid(
        'bad-utf8-metadata-value',
        'Metadata value: 0xff.',
        fullOpen(
          openHead(0, 1, 0, 0),
          openTail(lstr('a'), lstr(''), lstr(''), 1, lstr('k'), lstr(Uint8Array.of(0xff))),
        ),
        'INVALID_UTF8',
        'client',
      ),
      invalid(
        'control-message-too-large',
        `An OPEN of ${Limits.MAX_CONTROL_MESSAGE + 1} bytes (MAX_CONTROL_MESSAGE + 1): refused on its size before any field is read.`,
        concat(openHead(0, 1, 0, 0), zeros(Limits.MAX_CONTROL_MESSAGE + 1 - 22)),
        'MESSAGE_TOO_LARGE',
        'client',
      ),
      invalid(
        'wrong-direction',
        'OPEN given to the decoder of server messages.',
        fullOpen(openHead(0, 1, 0, 0), openTail(lstr('a'), lstr(''), lstr(''), 0)),
        'UNEXPECTED_MESSAGE',
        'server',
      ),
    ],
  );

  // RESUME -------------------------------------------------------------------------------------
  const resumeHead = (flags: number): Uint8Array =>
    concat(u8(MessageType.RESUME), u8(flags), id, secret);
  file(
    'resume',
    [
      valid('no-token', 'Upload id and resume secret, no token.', {
        type: 'resume',
        uploadId: id,
        secret,
        token: '',
      }),
      valid('token', 'With a per-upload token.', {
        type: 'resume',
        uploadId: id,
        secret,
        token: 'tkt.resume',
      }),
    ],
    [
      invalid(
        'truncated-in-secret',
        'Ends inside the secret.',
        concat(u8(MessageType.RESUME), u8(0), id, secret.subarray(0, 10)),
        'MALFORMED',
        'client',
      ),
      invalid(
        'missing-token-length',
        'Ends after the secret.',
        resumeHead(0),
        'MALFORMED',
        'client',
      ),
      invalid(
        'trailing-byte',
        'One byte after the token.',
        concat(resumeHead(0), lstr(''), [0]),
        'MALFORMED',
        'client',
      ),
      invalid(
        'reserved-flag',
        'Flags 0x01 (RESUME has no flags).',
        concat(resumeHead(0x01), lstr('')),
        'RESERVED_BITS_SET',
        'client',
      ),
      invalid(
        'token-too-long',
        'Token length 4097.',
        concat(resumeHead(0), u16(Limits.MAX_TOKEN_BYTES + 1)),
        'LIMIT_EXCEEDED',
        'client',
      ),
      invalid(
        'bad-utf8-token',
        'Token with a lone continuation byte.',
        concat(resumeHead(0), lstr(Uint8Array.of(0x80))),
        'INVALID_UTF8',
        'client',
      ),
      invalid(
        'wrong-direction',
        'RESUME given to the decoder of server messages.',
        concat(resumeHead(0), lstr('')),
        'UNEXPECTED_MESSAGE',
        'server',
      ),
    ],
  );

  // ACCEPT -------------------------------------------------------------------------------------
  const acceptBytes = (
    flags: number,
    sec: Uint8Array,
    fileSize: bigint | number,
    chunk: number,
    window: number,
    count: number,
    ...ranges: Part[]
  ): Uint8Array =>
    concat(
      u8(MessageType.ACCEPT),
      u8(flags),
      id,
      sec,
      u64(fileSize),
      u32(chunk),
      u32(window),
      u32(count),
      ...ranges,
    );
  const range = (s: bigint | number, e: bigint | number): number[] => [...u64(s), ...u64(e)];
  file(
    'accept',
    [
      valid('created', 'A new upload: CREATED, fresh secret, no ranges.', {
        type: 'accept',
        created: true,
        durable: false,
        uploadId: id,
        secret,
        fileSize: 1_000_000,
        chunkSize: 262_144,
        window: 8_388_608,
        ranges: [],
      }),
      valid('resumed', 'A resumed upload in durable mode: secret zero, two acked ranges.', {
        type: 'accept',
        created: false,
        durable: true,
        uploadId: id,
        secret: zeros(32),
        fileSize: 1_000_000,
        chunkSize: 262_144,
        window: 4_194_304,
        ranges: [
          { start: 0, end: 262_144 },
          { start: 524_288, end: 786_432 },
        ],
      }),
      valid(
        'completed',
        'A completed upload the server still remembers: one range [0, fileSize).',
        {
          type: 'accept',
          created: false,
          durable: false,
          uploadId: id,
          secret: zeros(32),
          fileSize: 1_000_000,
          chunkSize: 262_144,
          window: 0,
          ranges: [{ start: 0, end: 1_000_000 }],
        },
      ),
      valid(
        'empty-file',
        'A 0-byte upload, minimum and maximum chunk sizes are both allowed; here the maximum.',
        {
          type: 'accept',
          created: true,
          durable: false,
          uploadId: id2,
          secret,
          fileSize: 0,
          chunkSize: Limits.MAX_CHUNK_SIZE,
          window: 0xffff_ffff,
          ranges: [],
        },
      ),
      valid(
        'short-last-chunk',
        'A range that ends at fileSize, inside the last (short) chunk: on the chunk grid.',
        {
          type: 'accept',
          created: false,
          durable: false,
          uploadId: id,
          secret: zeros(32),
          fileSize: 1_000_000,
          chunkSize: 262_144,
          window: 8_388_608,
          ranges: [{ start: 786_432, end: 1_000_000 }],
        },
      ),
    ],
    [
      invalid(
        'range-start-off-grid',
        'Range [100, 262144) with chunk size 262144: it starts inside chunk 0 (SPEC 6.3, the chunk grid).',
        acceptBytes(0x00, zeros(32), 1_000_000, 262_144, 1, 1, range(100, 262_144)),
        'INVALID_FIELD',
        'server',
      ),
      invalid(
        'range-end-off-grid',
        'Range [0, 300000) with chunk size 262144 in a 1000000-byte file: it ends inside chunk 1, not at fileSize.',
        acceptBytes(0x00, zeros(32), 1_000_000, 262_144, 1, 1, range(0, 300_000)),
        'INVALID_FIELD',
        'server',
      ),
      invalid(
        'truncated-list-after-bad-range',
        'Count 3, an empty first range, and only 40 range bytes: the count is checked against the bytes left before any range is read (MALFORMED, not INVALID_FIELD).',
        concat(
          acceptBytes(
            0x00,
            zeros(32),
            1_000_000,
            262_144,
            1,
            3,
            range(5, 5),
            range(262_144, 524_288),
          ),
          u64(786_432),
        ),
        'MALFORMED',
        'server',
      ),
      invalid(
        'first-failure-in-wire-order',
        'Two ranges: the first ends at 2^53, the second is empty: ranges are checked in wire order, so INTEGER_TOO_LARGE.',
        acceptBytes(0x00, zeros(32), 1_000_000, 262_144, 1, 2, range(0, ABOVE_2_53), range(7, 7)),
        'INTEGER_TOO_LARGE',
        'server',
      ),
      invalid(
        'truncated-fixed-part',
        'Ends where the window field starts.',
        acceptBytes(0x01, secret, 10, 65_536, 0, 0).subarray(0, 62),
        'MALFORMED',
        'server',
      ),
      invalid(
        'missing-range',
        'Range count 1, no range bytes.',
        acceptBytes(0x01, secret, 100_000, 65_536, 1, 1),
        'MALFORMED',
        'server',
      ),
      invalid(
        'trailing-bytes',
        'Range count 0 followed by 16 bytes.',
        acceptBytes(0x01, secret, 100_000, 65_536, 1, 0, range(0, 10)),
        'MALFORMED',
        'server',
      ),
      invalid(
        'reserved-flag',
        'Flag 0x04 is reserved in ACCEPT.',
        acceptBytes(0x05, secret, 100_000, 65_536, 1, 0),
        'RESERVED_BITS_SET',
        'server',
      ),
      invalid(
        'secret-without-created',
        'CREATED clear but the secret is not all zero.',
        acceptBytes(0x00, secret, 100_000, 65_536, 1, 0),
        'RESERVED_BITS_SET',
        'server',
      ),
      invalid(
        'file-size-2^53',
        'fileSize = 2^53.',
        acceptBytes(0x01, secret, ABOVE_2_53, 65_536, 1, 0),
        'INTEGER_TOO_LARGE',
        'server',
      ),
      invalid(
        'chunk-size-too-small',
        'chunkSize = MIN_CHUNK_SIZE - 1.',
        acceptBytes(0x01, secret, 100_000, Limits.MIN_CHUNK_SIZE - 1, 1, 0),
        'INVALID_FIELD',
        'server',
      ),
      invalid(
        'chunk-size-too-large',
        'chunkSize = MAX_CHUNK_SIZE + 1.',
        acceptBytes(0x01, secret, 100_000, Limits.MAX_CHUNK_SIZE + 1, 1, 0),
        'INVALID_FIELD',
        'server',
      ),
      invalid(
        'too-many-ranges',
        'Range count MAX_ACCEPT_RANGES + 1: refused at the count, no range bytes needed.',
        acceptBytes(0x00, zeros(32), 100_000, 65_536, 1, Limits.MAX_ACCEPT_RANGES + 1),
        'LIMIT_EXCEEDED',
        'server',
      ),
      invalid(
        'too-many-ranges-before-secret-and-chunk-size',
        'Range count MAX_ACCEPT_RANGES + 1, a non-zero secret without CREATED and chunkSize 0: the count is checked first.',
        acceptBytes(0x00, secret, 100_000, 0, 1, Limits.MAX_ACCEPT_RANGES + 1),
        'LIMIT_EXCEEDED',
        'server',
      ),
      invalid(
        'secret-rule-before-chunk-size',
        'A non-zero secret without CREATED and chunkSize 0: the secret rule is checked before chunkSize.',
        acceptBytes(0x00, secret, 100_000, 0, 1, 0),
        'RESERVED_BITS_SET',
        'server',
      ),
      invalid(
        'empty-range',
        'Range [5, 5).',
        acceptBytes(0x00, zeros(32), 100_000, 65_536, 1, 1, range(5, 5)),
        'INVALID_FIELD',
        'server',
      ),
      invalid(
        'reversed-range',
        'Range [10, 5).',
        acceptBytes(0x00, zeros(32), 100_000, 65_536, 1, 1, range(10, 5)),
        'INVALID_FIELD',
        'server',
      ),
      invalid(
        'overlapping-ranges',
        '[0, 10) then [5, 20).',
        acceptBytes(0x00, zeros(32), 100_000, 65_536, 1, 2, range(0, 10), range(5, 20)),
        'INVALID_FIELD',
        'server',
      ),
      invalid(
        'adjacent-ranges',
        '[0, 10) then [10, 20): adjacent ranges must be merged.',
        acceptBytes(0x00, zeros(32), 100_000, 65_536, 1, 2, range(0, 10), range(10, 20)),
        'INVALID_FIELD',
        'server',
      ),
      invalid(
        'unsorted-ranges',
        '[20, 30) then [0, 10).',
        acceptBytes(0x00, zeros(32), 100_000, 65_536, 1, 2, range(20, 30), range(0, 10)),
        'INVALID_FIELD',
        'server',
      ),
      invalid(
        'range-past-file-size',
        'Range ends at 100001 in a 100000-byte file.',
        acceptBytes(0x00, zeros(32), 100_000, 65_536, 1, 1, range(0, 100_001)),
        'INVALID_FIELD',
        'server',
      ),
      invalid(
        'range-end-2^53',
        'Range end 2^53.',
        acceptBytes(0x00, zeros(32), 100_000, 65_536, 1, 1, range(0, ABOVE_2_53)),
        'INTEGER_TOO_LARGE',
        'server',
      ),
      invalid(
        'wrong-direction',
        'ACCEPT given to the decoder of client messages.',
        acceptBytes(0x01, secret, 100_000, 65_536, 1, 0),
        'UNEXPECTED_MESSAGE',
        'client',
      ),
    ],
  );

  // DATA ---------------------------------------------------------------------------------------
  const dataBytes = (
    flags: number,
    offset: bigint | number,
    hash: bigint,
    payload: Uint8Array,
  ): Uint8Array => concat(u8(MessageType.DATA), u8(flags), u64(offset), u64(hash), payload);
  file(
    'data',
    [
      valid('one-byte', 'Offset 0, 1-byte payload.', {
        type: 'data',
        offset: 0,
        hash: h(one),
        payload: one,
      }),
      valid('chunk', 'Offset 3 * 65536, 100-byte payload (a short last chunk).', {
        type: 'data',
        offset: 196_608,
        hash: h(small),
        payload: small,
      }),
      valid('high-offset', 'The last byte a u64 field can address: offset 2^53-2, 1 byte.', {
        type: 'data',
        offset: Number.MAX_SAFE_INTEGER - 1,
        hash: h(one),
        payload: one,
      }),
      valid(
        'wrong-hash',
        'The codec does not verify the hash (the server does, HASH_MISMATCH): this decodes.',
        { type: 'data', offset: 0, hash: 0n, payload: one },
      ),
    ],
    [
      invalid(
        'truncated-header',
        'Ends inside the hash.',
        dataBytes(0, 0, h(one), one).subarray(0, 15),
        'MALFORMED',
        'client',
      ),
      invalid(
        'zero-length',
        'Header only, no payload.',
        dataBytes(0, 0, h(new Uint8Array(0)), new Uint8Array(0)),
        'INVALID_FIELD',
        'client',
      ),
      invalid(
        'reserved-flag',
        'Flags 0x01 (DATA has no flags).',
        dataBytes(0x01, 0, h(one), one),
        'RESERVED_BITS_SET',
        'client',
      ),
      invalid(
        'offset-2^53',
        'Offset 2^53.',
        dataBytes(0, ABOVE_2_53, h(one), one),
        'INTEGER_TOO_LARGE',
        'client',
      ),
      invalid(
        'end-past-2^53-1',
        'Offset 2^53-1 with 1 byte: its end is 2^53.',
        dataBytes(0, Number.MAX_SAFE_INTEGER, h(one), one),
        'INTEGER_TOO_LARGE',
        'client',
      ),
      invalid(
        'oversize-vs-max-data-message',
        'A 35-byte DATA when the agreed chunk size allows 34 (maxDataMessage = 16 + 18).',
        dataBytes(0, 0, h(small.subarray(0, 17)), small.subarray(0, 17)),
        'MESSAGE_TOO_LARGE',
        'client',
        16 + 18,
      ),
      invalid(
        'wrong-direction',
        'DATA given to the decoder of server messages.',
        dataBytes(0, 0, h(one), one),
        'UNEXPECTED_MESSAGE',
        'server',
      ),
    ],
  );

  // ACK ----------------------------------------------------------------------------------------
  const ackBytes = (flags: number, count: number, ...ranges: Part[]): Uint8Array =>
    concat(u8(MessageType.ACK), u8(flags), u16(count), ...ranges);
  file(
    'ack',
    [
      valid('one-range', 'One chunk acked.', { type: 'ack', ranges: [{ start: 0, end: 262_144 }] }),
      valid(
        'coalesced',
        'Several chunks, merged where adjacent, out of order with respect to sending.',
        {
          type: 'ack',
          ranges: [
            { start: 262_144, end: 786_432 },
            { start: 1_048_576, end: 1_310_720 },
            { start: 9_000_000, end: 9_000_100 },
          ],
        },
      ),
      valid('high-range', 'A range ending at 2^53-1.', {
        type: 'ack',
        ranges: [{ start: Number.MAX_SAFE_INTEGER - 100, end: Number.MAX_SAFE_INTEGER }],
      }),
    ],
    [
      invalid(
        'truncated-count',
        'Ends inside the range count.',
        ackBytes(0, 1).subarray(0, 3),
        'MALFORMED',
        'server',
      ),
      invalid(
        'truncated-range',
        'Ends inside the first range.',
        concat(ackBytes(0, 1), u64(0)),
        'MALFORMED',
        'server',
      ),
      invalid(
        'truncated-list-after-bad-range',
        'Count 2, a reversed first range, and 8 bytes of the second: MALFORMED (the count is checked against the bytes left first).',
        concat(ackBytes(0, 2, range(10, 0)), u64(262_144)),
        'MALFORMED',
        'server',
      ),
      invalid(
        'trailing-bytes',
        'Count 1 followed by 17 bytes.',
        ackBytes(0, 1, range(0, 10), [0]),
        'MALFORMED',
        'server',
      ),
      invalid('no-ranges', 'Count 0.', ackBytes(0, 0), 'INVALID_FIELD', 'server'),
      invalid(
        'reserved-flag',
        'Flags 0x01 (ACK has no flags).',
        ackBytes(0x01, 1, range(0, 10)),
        'RESERVED_BITS_SET',
        'server',
      ),
      invalid(
        'empty-range',
        'Range [7, 7).',
        ackBytes(0, 1, range(7, 7)),
        'INVALID_FIELD',
        'server',
      ),
      invalid(
        'reversed-range',
        'Range [10, 0).',
        ackBytes(0, 1, range(10, 0)),
        'INVALID_FIELD',
        'server',
      ),
      invalid(
        'overlapping-ranges',
        '[0, 10) then [9, 20).',
        ackBytes(0, 2, range(0, 10), range(9, 20)),
        'INVALID_FIELD',
        'server',
      ),
      invalid(
        'adjacent-ranges',
        '[0, 10) then [10, 20).',
        ackBytes(0, 2, range(0, 10), range(10, 20)),
        'INVALID_FIELD',
        'server',
      ),
      invalid(
        'unsorted-ranges',
        '[20, 30) then [0, 10).',
        ackBytes(0, 2, range(20, 30), range(0, 10)),
        'INVALID_FIELD',
        'server',
      ),
      invalid(
        'range-start-2^53',
        'Range start 2^53.',
        ackBytes(0, 1, range(ABOVE_2_53, ABOVE_2_53 + 1n)),
        'INTEGER_TOO_LARGE',
        'server',
      ),
      invalid(
        'wrong-direction',
        'ACK given to the decoder of client messages.',
        ackBytes(0, 1, range(0, 10)),
        'UNEXPECTED_MESSAGE',
        'client',
      ),
    ],
    [
      grid(
        'whole-chunks',
        'Chunks 0 and 1 of a 1000000-byte upload in 262144-byte chunks.',
        [{ start: 0, end: 524_288 }],
        'accept',
      ),
      grid(
        'last-chunk-to-file-size',
        'The short last chunk, ending at fileSize.',
        [{ start: 786_432, end: 1_000_000 }],
        'accept',
      ),
      grid(
        'never-sent-in-grid',
        'A chunk this connection never sent (or one acked before): a re-ack, added to the acked view.',
        [{ start: 262_144, end: 524_288 }],
        'accept',
      ),
      grid(
        'past-file-size',
        'A range ending past fileSize.',
        [{ start: 786_432, end: 1_048_576 }],
        'violation',
      ),
      grid(
        'start-off-grid',
        'A range starting inside chunk 0.',
        [{ start: 1, end: 262_144 }],
        'violation',
      ),
      grid(
        'end-off-grid',
        'A range ending inside chunk 1, not at fileSize.',
        [{ start: 0, end: 300_000 }],
        'violation',
      ),
      grid(
        'second-range-bad',
        'A good range, then one past the file: the ACK as a whole is a violation.',
        [
          { start: 0, end: 262_144 },
          { start: 786_432, end: 1_000_001 },
        ],
        'violation',
      ),
    ],
  );

  // WINDOW -------------------------------------------------------------------------------------
  const windowBytes = (flags: number, w: number): Uint8Array =>
    concat(u8(MessageType.WINDOW), u8(flags), u32(w));
  file(
    'window',
    [
      valid('grow', 'Window 16 MiB.', { type: 'window', window: 16_777_216 }),
      valid('pause', 'Window 0: the client sends nothing more until the window grows.', {
        type: 'window',
        window: 0,
      }),
      valid('max', 'Window 2^32-1.', { type: 'window', window: 0xffff_ffff }),
    ],
    [
      invalid(
        'truncated',
        'Ends inside the window.',
        windowBytes(0, 1).subarray(0, 4),
        'MALFORMED',
        'server',
      ),
      invalid(
        'trailing-byte',
        'One byte after the window.',
        concat(windowBytes(0, 1), [0]),
        'MALFORMED',
        'server',
      ),
      invalid('reserved-flag', 'Flags 0x01.', windowBytes(0x01, 1), 'RESERVED_BITS_SET', 'server'),
      invalid(
        'wrong-direction',
        'WINDOW given to the decoder of client messages.',
        windowBytes(0, 1),
        'UNEXPECTED_MESSAGE',
        'client',
      ),
    ],
  );

  // COMPLETE -----------------------------------------------------------------------------------
  const completeBytes = (flags: number, digest: bigint | number): Uint8Array =>
    concat(u8(MessageType.COMPLETE), u8(flags), u64(digest));
  file(
    'complete',
    [
      valid(
        'no-digest',
        'No digest: the server checks only that every byte is acked (and the OPEN digest, if any).',
        { type: 'complete' },
      ),
      valid('digest', 'With a whole-file digest.', {
        type: 'complete',
        digest: 0xfedc_ba98_7654_3210n,
      }),
    ],
    [
      invalid(
        'truncated',
        'Ends inside the digest.',
        completeBytes(0, 0).subarray(0, 9),
        'MALFORMED',
        'client',
      ),
      invalid(
        'header-only',
        'The digest field is not optional on the wire.',
        completeBytes(0, 0).subarray(0, 2),
        'MALFORMED',
        'client',
      ),
      invalid(
        'trailing-byte',
        'One byte after the digest.',
        concat(completeBytes(0, 0), [0]),
        'MALFORMED',
        'client',
      ),
      invalid(
        'reserved-flag',
        'Flag 0x02 is reserved in COMPLETE.',
        completeBytes(0x02, 0),
        'RESERVED_BITS_SET',
        'client',
      ),
      invalid(
        'digest-without-flag',
        'Digest non-zero while HAS_DIGEST is clear.',
        completeBytes(0, 5),
        'RESERVED_BITS_SET',
        'client',
      ),
      invalid(
        'wrong-direction',
        'COMPLETE given to the decoder of server messages.',
        completeBytes(0, 0),
        'UNEXPECTED_MESSAGE',
        'server',
      ),
    ],
  );

  // RESULT -------------------------------------------------------------------------------------
  const resultBytes = (flags: number, fileSize: bigint | number): Uint8Array =>
    concat(u8(MessageType.RESULT), u8(flags), id, u64(fileSize), u64(0x1122_3344_5566_7788n));
  file(
    'result',
    [
      valid('result', 'Upload finished.', {
        type: 'result',
        uploadId: id,
        fileSize: 1_000_000,
        digest: 0x1122_3344_5566_7788n,
      }),
      valid('empty-file', 'A 0-byte upload: the digest is xxHash64 of no bytes.', {
        type: 'result',
        uploadId: id2,
        fileSize: 0,
        digest: wholeFileDigest(hasher, []),
      }),
    ],
    [
      invalid(
        'truncated',
        'Ends inside the digest.',
        resultBytes(0, 1).subarray(0, 30),
        'MALFORMED',
        'server',
      ),
      invalid(
        'trailing-byte',
        'One byte after the digest.',
        concat(resultBytes(0, 1), [0]),
        'MALFORMED',
        'server',
      ),
      invalid('reserved-flag', 'Flags 0x01.', resultBytes(0x01, 1), 'RESERVED_BITS_SET', 'server'),
      invalid(
        'file-size-2^53',
        'fileSize = 2^53.',
        resultBytes(0, ABOVE_2_53),
        'INTEGER_TOO_LARGE',
        'server',
      ),
      invalid(
        'wrong-direction',
        'RESULT given to the decoder of client messages.',
        resultBytes(0, 1),
        'UNEXPECTED_MESSAGE',
        'client',
      ),
    ],
  );

  // ERROR --------------------------------------------------------------------------------------
  const errorBytes = (
    flags: number,
    code: number,
    offset: bigint | number,
    length: number,
    text: Part,
  ): Uint8Array =>
    concat(u8(MessageType.ERROR), u8(flags), u16(code), u64(offset), u32(length), text);
  file(
    'error',
    [
      valid('fatal', 'NOT_FOUND: fatal, no range.', {
        type: 'error',
        code: Errors.NOT_FOUND.code,
        fatal: true,
        retryable: false,
        offset: 0,
        length: 0,
        message: 'no such upload',
      }),
      valid(
        'data-range',
        'HASH_MISMATCH for the chunk at 262144 of 262144 bytes: not fatal, retryable.',
        {
          type: 'error',
          code: Errors.HASH_MISMATCH.code,
          fatal: false,
          retryable: true,
          offset: 262_144,
          length: 262_144,
          message: '',
        },
      ),
      valid('unknown-code', 'A code this version does not know: the receiver goes by the flags.', {
        type: 'error',
        code: 0xbeef,
        fatal: false,
        retryable: true,
        offset: 0,
        length: 0,
        message: 'from the future',
      }),
      valid(
        'max-message',
        'Message text exactly 1024 bytes (341 three-byte characters and one byte).',
        {
          type: 'error',
          code: Errors.INTERNAL_ERROR.code,
          fatal: true,
          retryable: true,
          offset: 0,
          length: 0,
          message: '错'.repeat(341) + '!',
        },
      ),
    ],
    [
      invalid(
        'truncated',
        'Ends inside the offset.',
        errorBytes(0, 1, 0, 0, lstr('')).subarray(0, 8),
        'MALFORMED',
        'server',
      ),
      invalid(
        'missing-message-length',
        'Ends after the length field.',
        errorBytes(0, 1, 0, 0, []),
        'MALFORMED',
        'server',
      ),
      invalid(
        'trailing-byte',
        'One byte after the message text.',
        errorBytes(0, 1, 0, 0, concat(lstr('x'), [0])),
        'MALFORMED',
        'server',
      ),
      invalid(
        'reserved-flag',
        'Flag 0x04 is reserved in ERROR.',
        errorBytes(0x05, 1, 0, 0, lstr('')),
        'RESERVED_BITS_SET',
        'server',
      ),
      invalid(
        'code-zero',
        'Code 0 is reserved.',
        errorBytes(0x01, 0, 0, 0, lstr('')),
        'INVALID_FIELD',
        'server',
      ),
      invalid(
        'offset-2^53',
        'Offset 2^53.',
        errorBytes(0x01, 0x0201, ABOVE_2_53, 1, lstr('')),
        'INTEGER_TOO_LARGE',
        'server',
      ),
      invalid(
        'message-too-long',
        'Message length 1025: refused at the length field.',
        errorBytes(0x01, 1, 0, 0, u16(Limits.MAX_ERROR_MESSAGE_BYTES + 1)),
        'LIMIT_EXCEEDED',
        'server',
      ),
      invalid(
        'bad-utf8-message',
        'Message text: truncated sequence.',
        errorBytes(0x01, 1, 0, 0, lstr(Uint8Array.of(0x41, 0xe2, 0x82))),
        'INVALID_UTF8',
        'server',
      ),
      invalid(
        'wrong-direction',
        'ERROR given to the decoder of client messages (a client never sends ERROR).',
        errorBytes(0x01, 1, 0, 0, lstr('')),
        'UNEXPECTED_MESSAGE',
        'client',
      ),
    ],
  );

  // TERMINATE ----------------------------------------------------------------------------------
  file(
    'terminate',
    [valid('terminate', 'Type and flags only.', { type: 'terminate' })],
    [
      invalid(
        'truncated',
        'Type byte only.',
        Uint8Array.of(MessageType.TERMINATE),
        'MALFORMED',
        'client',
      ),
      invalid(
        'trailing-byte',
        'One byte after the flags.',
        Uint8Array.of(MessageType.TERMINATE, 0, 0),
        'MALFORMED',
        'client',
      ),
      invalid(
        'reserved-flag',
        'Flags 0x01.',
        Uint8Array.of(MessageType.TERMINATE, 1),
        'RESERVED_BITS_SET',
        'client',
      ),
      invalid(
        'wrong-direction',
        'TERMINATE given to the decoder of server messages.',
        Uint8Array.of(MessageType.TERMINATE, 0),
        'UNEXPECTED_MESSAGE',
        'server',
      ),
    ],
  );

  // TERMINATED ---------------------------------------------------------------------------------
  file(
    'terminated',
    [valid('terminated', 'The upload is gone.', { type: 'terminated', uploadId: id })],
    [
      invalid(
        'truncated',
        'Ends inside the upload id.',
        concat(u8(MessageType.TERMINATED), u8(0), id.subarray(0, 15)),
        'MALFORMED',
        'server',
      ),
      invalid(
        'trailing-byte',
        'One byte after the upload id.',
        concat(u8(MessageType.TERMINATED), u8(0), id, [0]),
        'MALFORMED',
        'server',
      ),
      invalid(
        'reserved-flag',
        'Flags 0x80.',
        concat(u8(MessageType.TERMINATED), u8(0x80), id),
        'RESERVED_BITS_SET',
        'server',
      ),
      invalid(
        'wrong-direction',
        'TERMINATED given to the decoder of client messages.',
        concat(u8(MessageType.TERMINATED), u8(0), id),
        'UNEXPECTED_MESSAGE',
        'client',
      ),
    ],
  );

  // Vectors about no single message type -------------------------------------------------------
  const known = new Set<number>(Object.values(MessageType));
  const unknownTypes = [0x00, 0x04, 0x13, 0x22, 0x31, 0x42, 0x7f, 0xff].filter(
    (t) => !known.has(t),
  );
  files.push({
    comment: COMMENT,
    message: 'common',
    type: null,
    sender: null,
    valid: [],
    invalid: [
      invalid('empty', 'A 0-byte message.', new Uint8Array(0), 'MALFORMED', 'any'),
      invalid(
        'one-byte',
        'A message shorter than the 2-byte header.',
        Uint8Array.of(MessageType.TERMINATE),
        'MALFORMED',
        'any',
      ),
      invalid(
        'one-byte-unknown',
        'One byte of an unknown type: too short comes first.',
        Uint8Array.of(0xff),
        'MALFORMED',
        'any',
      ),
      ...unknownTypes.flatMap((t) =>
        (['client', 'server', 'any'] as const).map((d) =>
          invalid(
            `unknown-type-0x${t.toString(16).padStart(2, '0')}-${d}`,
            `Type 0x${t.toString(16).padStart(2, '0')} is not defined in bigup.1.`,
            Uint8Array.of(t, 0, 0, 0),
            'UNKNOWN_MESSAGE_TYPE',
            d,
          ),
        ),
      ),
    ],
  });
  return files;
}

// ---------------------------------------------------------------------------------------------
// Worked examples (SPEC.md Appendix A)

export interface ExampleStep {
  /** "c2s": client to server; "s2c": server to client. */
  readonly direction: 'c2s' | 's2c';
  readonly message: string;
  readonly note: string;
  readonly hex: string;
  readonly fields: JsonFields;
  /** Set on a DATA step whose payload deliberately differs from the file (its hash is the file's). */
  readonly corrupted?: true;
}

export interface Example {
  readonly name: string;
  readonly title: string;
  readonly description: string;
  readonly steps: ExampleStep[];
}

export interface ExamplesFile {
  readonly comment: string;
  /** How the example file's bytes are made, so the payload can be rebuilt without the hex. */
  readonly file: {
    readonly size: number;
    readonly rule: string;
    readonly chunkSize: number;
    readonly chunkHashes: string[];
    readonly digest: string;
  };
  readonly examples: Example[];
}

const EXAMPLE_CHUNK = Limits.MIN_CHUNK_SIZE;
const EXAMPLE_SIZE = EXAMPLE_CHUNK + 100;

/** The example file: byte i is (i * 7 + 3) mod 256. */
export function exampleFileBytes(): Uint8Array {
  const out = new Uint8Array(EXAMPLE_SIZE);
  for (let i = 0; i < out.length; i++) out[i] = (i * 7 + 3) & 0xff;
  return out;
}

export function buildExamples(hasher: Hasher): ExamplesFile {
  const rng = new SeededBytes(0x6578_616d_706c_65n); // "example"
  const content = exampleFileBytes();
  const chunk0 = content.subarray(0, EXAMPLE_CHUNK);
  const chunk1 = content.subarray(EXAMPLE_CHUNK);
  const hashes = [hasher.h64(chunk0), hasher.h64(chunk1)];
  const digest = wholeFileDigest(hasher, hashes);
  const step = (direction: 'c2s' | 's2c', note: string, message: Message): ExampleStep => {
    const fields = messageToJson(message);
    // The payload is already in `hex`; repeating 64 KiB of it in `fields` would only double the file.
    if (message.type === 'data') {
      delete fields.payload;
      fields.payloadLength = message.payload.byteLength;
    }
    return {
      direction,
      message: MESSAGE_NAMES[message.type],
      note,
      hex: bytesToHex(encodeMessage(message)),
      fields,
    };
  };
  const open: Message = {
    type: 'open',
    fileSize: EXAMPLE_SIZE,
    chunkSize: 0,
    name: 'report.bin',
    contentType: 'application/octet-stream',
    token: '',
    metadata: meta([['project', 'demo']]),
  };

  const idA = rng.bytes(16);
  const secretA = rng.bytes(32);
  const whole: Example = {
    name: 'whole-upload',
    title: 'A whole small upload',
    description: `A ${EXAMPLE_SIZE}-byte file in two chunks of the agreed ${EXAMPLE_CHUNK}-byte chunk size; the server acks both with one coalesced ACK.`,
    steps: [
      step(
        'c2s',
        'OPEN: no digest up front, chunk size left to the server (0), one metadata entry.',
        open,
      ),
      step(
        's2c',
        'ACCEPT: CREATED, fresh id and secret, agreed chunk size 65536, window 8 MiB, no ranges.',
        {
          type: 'accept',
          created: true,
          durable: false,
          uploadId: idA,
          secret: secretA,
          fileSize: EXAMPLE_SIZE,
          chunkSize: EXAMPLE_CHUNK,
          window: 8_388_608,
          ranges: [],
        },
      ),
      step('c2s', 'DATA chunk 0: offset 0, 65536 bytes.', {
        type: 'data',
        offset: 0,
        hash: hashes[0],
        payload: chunk0,
      }),
      step(
        'c2s',
        'DATA chunk 1 (the short last chunk): offset 65536, 100 bytes. Sent without waiting: both fit the window.',
        { type: 'data', offset: EXAMPLE_CHUNK, hash: hashes[1], payload: chunk1 },
      ),
      step('s2c', 'ACK: both chunks, merged into one range.', {
        type: 'ack',
        ranges: [{ start: 0, end: EXAMPLE_SIZE }],
      }),
      step('c2s', 'COMPLETE with the whole-file digest (HAS_DIGEST).', {
        type: 'complete',
        digest,
      }),
      step('s2c', 'RESULT: id, size, digest.', {
        type: 'result',
        uploadId: idA,
        fileSize: EXAMPLE_SIZE,
        digest,
      }),
    ],
  };

  const idB = rng.bytes(16);
  const secretB = rng.bytes(32);
  const resume: Example = {
    name: 'resume',
    title: 'A resume',
    description:
      'The first connection gets chunk 0 acked and is then cut. The client reconnects, sends RESUME, learns the acked ranges from ACCEPT and sends only chunk 1.',
    steps: [
      step('c2s', 'Connection 1. OPEN (as in A.1).', open),
      step('s2c', 'ACCEPT: CREATED; the client stores id and secret before sending any DATA.', {
        type: 'accept',
        created: true,
        durable: false,
        uploadId: idB,
        secret: secretB,
        fileSize: EXAMPLE_SIZE,
        chunkSize: EXAMPLE_CHUNK,
        window: 8_388_608,
        ranges: [],
      }),
      step('c2s', 'DATA chunk 0.', { type: 'data', offset: 0, hash: hashes[0], payload: chunk0 }),
      step('s2c', 'ACK chunk 0. The network is then cut (chunk 1 was never sent).', {
        type: 'ack',
        ranges: [{ start: 0, end: EXAMPLE_CHUNK }],
      }),
      step('c2s', 'Connection 2. RESUME with the stored id and secret.', {
        type: 'resume',
        uploadId: idB,
        secret: secretB,
        token: '',
      }),
      step('s2c', 'ACCEPT: CREATED clear, secret all zero, the acked range [0, 65536).', {
        type: 'accept',
        created: false,
        durable: false,
        uploadId: idB,
        secret: new Uint8Array(32),
        fileSize: EXAMPLE_SIZE,
        chunkSize: EXAMPLE_CHUNK,
        window: 8_388_608,
        ranges: [{ start: 0, end: EXAMPLE_CHUNK }],
      }),
      step('c2s', 'DATA chunk 1 only.', {
        type: 'data',
        offset: EXAMPLE_CHUNK,
        hash: hashes[1],
        payload: chunk1,
      }),
      step('s2c', 'ACK chunk 1.', {
        type: 'ack',
        ranges: [{ start: EXAMPLE_CHUNK, end: EXAMPLE_SIZE }],
      }),
      step('c2s', 'COMPLETE without a digest.', { type: 'complete' }),
      step(
        's2c',
        'RESULT: the digest covers both chunks, including the one sent on connection 1.',
        { type: 'result', uploadId: idB, fileSize: EXAMPLE_SIZE, digest },
      ),
    ],
  };

  const unknownId = rng.bytes(16);
  const corrupted = chunk1.slice();
  corrupted[0] ^= 0x01;
  const errors: Example = {
    name: 'errors',
    title: 'Errors',
    description:
      'A corrupted chunk is refused and resent on the same connection (not fatal); then a RESUME with an unknown id is refused (fatal; the server closes with 1000).',
    steps: [
      {
        ...step(
          'c2s',
          'A variant of the second connection of A.2: chunk 1 arrives with one bit flipped (the hash is of the true bytes).',
          { type: 'data', offset: EXAMPLE_CHUNK, hash: hashes[1], payload: corrupted },
        ),
        corrupted: true,
      },
      step(
        's2c',
        'ERROR HASH_MISMATCH: not fatal, retryable, naming the DATA range; nothing was written.',
        {
          type: 'error',
          code: Errors.HASH_MISMATCH.code,
          fatal: false,
          retryable: true,
          offset: EXAMPLE_CHUNK,
          length: 100,
          message: 'hash mismatch',
        },
      ),
      step('c2s', 'The client re-reads the chunk and resends it.', {
        type: 'data',
        offset: EXAMPLE_CHUNK,
        hash: hashes[1],
        payload: chunk1,
      }),
      step('s2c', 'ACK.', { type: 'ack', ranges: [{ start: EXAMPLE_CHUNK, end: EXAMPLE_SIZE }] }),
      step('c2s', 'Another connection: RESUME of an id the server does not know.', {
        type: 'resume',
        uploadId: unknownId,
        secret: secretB,
        token: '',
      }),
      step(
        's2c',
        'ERROR NOT_FOUND: fatal, not retryable; the server then closes the WebSocket with code 1000.',
        {
          type: 'error',
          code: Errors.NOT_FOUND.code,
          fatal: true,
          retryable: false,
          offset: 0,
          length: 0,
          message: 'not found',
        },
      ),
    ],
  };

  return {
    comment: COMMENT,
    file: {
      size: EXAMPLE_SIZE,
      rule: 'byte i = (i * 7 + 3) mod 256',
      chunkSize: EXAMPLE_CHUNK,
      chunkHashes: hashes.map(hashToHex),
      digest: hashToHex(digest),
    },
    examples: [whole, resume, errors],
  };
}

// ---------------------------------------------------------------------------------------------
// Generated parts of SPEC.md

/** Field-by-field breakdown of a message, from the layout in SPEC.md (a second, independent reading). */
export function dissect(bytes: Uint8Array): { field: string; hex: string }[] {
  const out: { field: string; hex: string }[] = [];
  let at = 0;
  const take = (field: string, n: number): Uint8Array => {
    const b = bytes.subarray(at, at + n);
    out.push({ field, hex: bytesToHex(b) });
    at += n;
    return b;
  };
  const takeU16 = (field: string): number => {
    const b = take(field, 2);
    return (b[0] << 8) | b[1];
  };
  const takeU32 = (field: string): number => {
    const b = take(field, 4);
    return ((b[0] << 24) >>> 0) + (b[1] << 16) + (b[2] << 8) + b[3];
  };
  const takeString = (field: string): void => {
    const n = takeU16(`${field} length`);
    if (n > 0) take(field, n);
  };
  const type = take('type', 1)[0];
  take('flags', 1);
  switch (type) {
    case MessageType.OPEN: {
      take('file size', 8);
      take('chunk size', 4);
      take('digest', 8);
      takeString('name');
      takeString('content type');
      takeString('token');
      const count = takeU16('metadata count');
      for (let i = 0; i < count; i++) {
        takeString(`key ${i}`);
        takeString(`value ${i}`);
      }
      break;
    }
    case MessageType.RESUME:
      take('upload id', 16);
      take('resume secret', 32);
      takeString('token');
      break;
    case MessageType.ACCEPT: {
      take('upload id', 16);
      take('resume secret', 32);
      take('file size', 8);
      take('chunk size', 4);
      take('window', 4);
      const count = takeU32('range count');
      for (let i = 0; i < count; i++) {
        take(`range ${i} start`, 8);
        take(`range ${i} end`, 8);
      }
      break;
    }
    case MessageType.DATA:
      take('offset', 8);
      take('hash', 8);
      take('payload', bytes.byteLength - at);
      break;
    case MessageType.ACK: {
      const count = takeU16('range count');
      for (let i = 0; i < count; i++) {
        take(`range ${i} start`, 8);
        take(`range ${i} end`, 8);
      }
      break;
    }
    case MessageType.WINDOW:
      take('window', 4);
      break;
    case MessageType.COMPLETE:
      take('digest', 8);
      break;
    case MessageType.RESULT:
      take('upload id', 16);
      take('file size', 8);
      take('digest', 8);
      break;
    case MessageType.ERROR:
      take('code', 2);
      take('offset', 8);
      take('length', 4);
      takeString('message');
      break;
    case MessageType.TERMINATE:
      break;
    case MessageType.TERMINATED:
      take('upload id', 16);
      break;
    default:
      throw new Error(`cannot dissect type ${type}`);
  }
  if (at !== bytes.byteLength) throw new Error(`dissect: ${bytes.byteLength - at} bytes left over`);
  return out;
}

function hexGroups(hexText: string, max = 32): string {
  const shown = hexText.length > max * 2 ? hexText.slice(0, max * 2) : hexText;
  const groups = shown.match(/.{1,2}/g)?.join(' ') ?? '';
  return hexText.length > max * 2 ? `${groups} ... (${hexText.length / 2} bytes)` : groups;
}

export function renderExamples(examples: ExamplesFile): string {
  const lines: string[] = [];
  lines.push(
    `The file used in every example has ${examples.file.size} bytes, ${examples.file.rule}. At chunk size ` +
      `${examples.file.chunkSize} its chunk hashes are ${examples.file.chunkHashes.map((x) => `\`${x}\``).join(' and ')}, ` +
      `and its whole-file digest is \`${examples.file.digest}\`. Ids and secrets come from a seeded generator ` +
      '(a real server uses a CSPRNG). The full hex of every message, payloads included, is in `protocol/vectors/examples.json`; ' +
      'below, fields longer than 32 bytes are shortened.',
    '',
  );
  examples.examples.forEach((example, i) => {
    lines.push(`### A.${i + 1}. ${example.title}`, '', example.description, '');
    for (const s of example.steps) {
      const arrow = s.direction === 'c2s' ? 'C -> S' : 'S -> C';
      lines.push(`${arrow} **${s.message}** (${s.hex.length / 2} bytes): ${s.note}`, '', '```');
      const bytes = new Uint8Array(s.hex.length / 2);
      for (let j = 0; j < bytes.length; j++)
        bytes[j] = Number.parseInt(s.hex.slice(j * 2, j * 2 + 2), 16);
      const parts = dissect(bytes);
      const width = Math.max(...parts.map((p) => p.field.length));
      for (const p of parts) lines.push(`${p.field.padEnd(width)}  ${hexGroups(p.hex)}`);
      lines.push('```', '');
    }
  });
  return lines.join('\n').trimEnd();
}

function yesNo(v: boolean): string {
  return v ? 'yes' : 'no';
}

function closeCodeName(code: number): string {
  const entry = Object.entries(CloseCode).find(([, v]) => v === code);
  return entry ? `${code} (${entry[0]})` : String(code);
}

/** The error registry as a Markdown table: one row per entry of protocol/errors.ts, in code order. */
export function renderErrorTable(errors: readonly ErrorDefinition[] = allErrors()): string {
  const rows = [
    '| Code | Name | Fatal | Retryable | Close code | Meaning | Client action |',
    '|------|------|-------|-----------|------------|---------|---------------|',
  ];
  for (const e of errors) {
    const close = e.fatal ? closeCodeName(e.closeCode) : '-';
    rows.push(
      `| 0x${e.code.toString(16).padStart(4, '0')} | ${e.name} | ${yesNo(e.fatal)} | ${yesNo(e.retryable)} | ${close} | ${e.meaning.replaceAll('|', '\\|')} | ${e.clientAction.replaceAll('|', '\\|')} |`,
    );
  }
  return rows.join('\n');
}

/** Replace the text between `<!-- BEGIN GENERATED: name -->` and `<!-- END GENERATED: name -->`. */
export function replaceGenerated(document: string, name: string, content: string): string {
  const begin = `<!-- BEGIN GENERATED: ${name} -->`;
  const end = `<!-- END GENERATED: ${name} -->`;
  const i = document.indexOf(begin);
  const j = document.indexOf(end);
  if (i < 0 || j < i) throw new Error(`SPEC.md has no generated section "${name}"`);
  return `${document.slice(0, i + begin.length)}\n${content}\n${document.slice(j)}`;
}

/** The text currently between the markers of a generated section. */
export function extractGenerated(document: string, name: string): string {
  const begin = `<!-- BEGIN GENERATED: ${name} -->`;
  const end = `<!-- END GENERATED: ${name} -->`;
  const i = document.indexOf(begin);
  const j = document.indexOf(end);
  if (i < 0 || j < i) throw new Error(`SPEC.md has no generated section "${name}"`);
  return document
    .slice(i + begin.length, j)
    .replace(/^\n/, '')
    .replace(/\n$/, '');
}
