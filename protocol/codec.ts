/**
 * The bigup.1 and bigup.2 codec: every message to and from bytes, on Uint8Array and DataView only (no Node
 * Buffer), so the same module runs in browsers and in Node. It does no I/O and keeps no state.
 *
 * Decoding trusts nothing: each field is bounds-checked before it is read, every length is
 * checked against its limit before the bytes it announces are touched, and every failure is a
 * ProtocolError carrying a registry code. Encoding DATA never copies the payload.
 */
import {
  AcceptFlags,
  ChallengeFlags,
  CLIENT_MESSAGE_TYPES,
  CompleteFlags,
  Capability,
  ErrorFlags,
  HeaderSize,
  HeaderSizeV2,
  Limits,
  LimitsV2,
  MAX_U64_VALUE,
  MessageType,
  MessageTypeV2,
  OpenFlags,
  ResultFlags,
  SERVER_MESSAGE_TYPES,
} from './constants.js';
import { Errors, ProtocolError, errorByCode } from './errors.js';
import { rangeOffGrid } from './chunk-grid.js';
import type {
  AcceptMessage,
  AckMessage,
  ByteRange,
  CapabilityEntry,
  ClientMessage,
  ClientMessageV2,
  Frame,
  MessageV2,
  VerifiedMessage,
  VerifyMessage,
  ChallengeMessage,
  ProofMessage,
  ServerMessageV2,
  CompleteMessage,
  DataMessage,
  ErrorMessage,
  Message,
  OpenMessage,
  ResultMessage,
  ResumeMessage,
  ServerMessage,
  TerminatedMessage,
  WindowMessage,
} from './messages.js';

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const TWO_POW_32 = 0x1_0000_0000;

// ---------------------------------------------------------------------------------------------
// Reading

/** A bounds-checked cursor over one message. */
class Reader {
  private readonly view: DataView;
  private position: number;

  constructor(
    private readonly bytes: Uint8Array,
    start: number,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.position = start;
  }

  get remaining(): number {
    return this.bytes.byteLength - this.position;
  }

  private need(count: number, field: string): void {
    if (this.remaining < count) {
      throw new ProtocolError(Errors.MALFORMED, `message ends inside ${field}`);
    }
  }

  u8(field: string): number {
    this.need(1, field);
    return this.view.getUint8(this.position++);
  }

  u16(field: string): number {
    this.need(2, field);
    const value = this.view.getUint16(this.position);
    this.position += 2;
    return value;
  }

  u32(field: string): number {
    this.need(4, field);
    const value = this.view.getUint32(this.position);
    this.position += 4;
    return value;
  }

  /** A u64 that must be an exact JavaScript number (at most 2^53-1). */
  u53(field: string): number {
    this.need(8, field);
    const high = this.view.getUint32(this.position);
    const low = this.view.getUint32(this.position + 4);
    this.position += 8;
    const value = high * TWO_POW_32 + low;
    if (value > MAX_U64_VALUE) {
      throw new ProtocolError(Errors.INTEGER_TOO_LARGE, `${field} exceeds 2^53-1`);
    }
    return value;
  }

  /** A u64 hash, all 64 bits significant. */
  hash64(field: string): bigint {
    this.need(8, field);
    const value = this.view.getBigUint64(this.position);
    this.position += 8;
    return value;
  }

  /** A fixed-size byte field, copied so the message buffer can be reused. */
  fixedBytes(count: number, field: string): Uint8Array {
    this.need(count, field);
    const copy = this.bytes.slice(this.position, this.position + count);
    this.position += count;
    return copy;
  }

  /** A u16-length-prefixed UTF-8 string; the length is checked against `max` before reading. */
  string(field: string, max: number, min = 0): string {
    const length = this.u16(`${field} length`);
    if (length > max) {
      throw new ProtocolError(Errors.LIMIT_EXCEEDED, `${field} is ${length} bytes, limit ${max}`);
    }
    if (length < min) {
      throw new ProtocolError(Errors.INVALID_FIELD, `${field} is empty`);
    }
    this.need(length, field);
    const slice = this.bytes.subarray(this.position, this.position + length);
    this.position += length;
    try {
      return utf8Decoder.decode(slice);
    } catch {
      throw new ProtocolError(Errors.INVALID_UTF8, `${field} is not valid UTF-8`);
    }
  }

  /** The rest of the message as a view (no copy). */
  rest(): Uint8Array {
    const view = this.bytes.subarray(this.position);
    this.position = this.bytes.byteLength;
    return view;
  }

  /** A list of `count` ranges; the count must match the remaining bytes exactly. */
  ranges(count: number, field: string): ByteRange[] {
    if (this.remaining !== count * HeaderSize.RANGE) {
      throw new ProtocolError(
        Errors.MALFORMED,
        `${field} announces ${count} ranges but ${this.remaining} bytes follow`,
      );
    }
    const ranges: ByteRange[] = [];
    let previousEnd = -1;
    for (let i = 0; i < count; i++) {
      const start = this.u53(`${field}[${i}].start`);
      const end = this.u53(`${field}[${i}].end`);
      if (end <= start) {
        throw new ProtocolError(Errors.INVALID_FIELD, `${field}[${i}] is empty or reversed`);
      }
      if (start <= previousEnd) {
        throw new ProtocolError(
          Errors.INVALID_FIELD,
          `${field}[${i}] overlaps, touches or precedes the previous range`,
        );
      }
      previousEnd = end;
      ranges.push({ start, end });
    }
    return ranges;
  }

  end(messageName: string): void {
    if (this.remaining !== 0) {
      throw new ProtocolError(
        Errors.MALFORMED,
        `${this.remaining} trailing bytes after ${messageName}`,
      );
    }
  }
}

function checkFlags(flags: number, allowed: number, messageName: string): void {
  if ((flags & ~allowed) !== 0) {
    throw new ProtocolError(Errors.RESERVED_BITS_SET, `reserved flag bits set in ${messageName}`);
  }
}

function requireZeroDigest(digest: bigint, messageName: string): void {
  if (digest !== 0n) {
    throw new ProtocolError(
      Errors.RESERVED_BITS_SET,
      `${messageName} digest is non-zero but HAS_DIGEST is clear`,
    );
  }
}

/** `definedFlags`: bigup.1 defines HAS_DIGEST, bigup.2 also WITH_DATA (SPEC.md 16.11). */
function decodeOpen(
  r: Reader,
  flags: number,
  definedFlags: number = OpenFlags.HAS_DIGEST,
): OpenMessage {
  checkFlags(flags, definedFlags, 'OPEN');
  const fileSize = r.u53('file size');
  const chunkSize = r.u32('chunk size');
  const digest = r.hash64('digest');
  const hasDigest = (flags & OpenFlags.HAS_DIGEST) !== 0;
  const withData = (flags & OpenFlags.WITH_DATA) !== 0;
  if (!hasDigest) requireZeroDigest(digest, 'OPEN');
  if (withData && !hasDigest)
    throw new ProtocolError(Errors.INVALID_FIELD, 'OPEN with data must carry the digest');
  if (withData && fileSize > LimitsV2.MAX_INLINE_FILE_SIZE)
    throw new ProtocolError(
      Errors.LIMIT_EXCEEDED,
      `OPEN carries a file of ${fileSize} bytes, limit ${LimitsV2.MAX_INLINE_FILE_SIZE}`,
    );
  const name = r.string('name', Limits.MAX_NAME_BYTES, 1);
  const contentType = r.string('content type', Limits.MAX_CONTENT_TYPE_BYTES);
  const token = r.string('token', Limits.MAX_TOKEN_BYTES);
  const count = r.u16('metadata count');
  if (count > Limits.MAX_METADATA_ENTRIES) {
    throw new ProtocolError(
      Errors.LIMIT_EXCEEDED,
      `${count} metadata entries, limit ${Limits.MAX_METADATA_ENTRIES}`,
    );
  }
  const metadata: Record<string, string> = Object.create(null) as Record<string, string>;
  let total = 0;
  for (let i = 0; i < count; i++) {
    const key = r.string(`metadata key ${i}`, Limits.MAX_METADATA_KEY_BYTES, 1);
    const value = r.string(`metadata value ${i}`, Limits.MAX_METADATA_VALUE_BYTES);
    total += utf8Encoder.encode(key).byteLength + utf8Encoder.encode(value).byteLength;
    if (total > Limits.MAX_METADATA_TOTAL_BYTES) {
      throw new ProtocolError(
        Errors.LIMIT_EXCEEDED,
        `metadata exceeds ${Limits.MAX_METADATA_TOTAL_BYTES} bytes`,
      );
    }
    if (Object.prototype.hasOwnProperty.call(metadata, key)) {
      throw new ProtocolError(Errors.INVALID_FIELD, `duplicate metadata key`);
    }
    metadata[key] = value;
  }
  let data: Uint8Array | undefined;
  if (withData) {
    data = r.rest();
    if (data.byteLength !== fileSize)
      throw new ProtocolError(
        Errors.MALFORMED,
        `OPEN carries ${data.byteLength} bytes of data for a file of ${fileSize}`,
      );
  }
  r.end('OPEN');
  const message: OpenMessage = {
    type: 'open',
    fileSize,
    chunkSize,
    name,
    contentType,
    token,
    metadata,
    ...(hasDigest ? { digest } : {}),
    ...(data ? { data } : {}),
  };
  return message;
}

function decodeResume(r: Reader, flags: number): ResumeMessage {
  checkFlags(flags, 0, 'RESUME');
  const uploadId = r.fixedBytes(Limits.UPLOAD_ID_BYTES, 'upload id');
  const secret = r.fixedBytes(Limits.SECRET_BYTES, 'resume secret');
  const token = r.string('token', Limits.MAX_TOKEN_BYTES);
  r.end('RESUME');
  return { type: 'resume', uploadId, secret, token };
}

function decodeAccept(r: Reader, flags: number): AcceptMessage {
  checkFlags(flags, AcceptFlags.CREATED | AcceptFlags.DURABLE, 'ACCEPT');
  const uploadId = r.fixedBytes(Limits.UPLOAD_ID_BYTES, 'upload id');
  const secret = r.fixedBytes(Limits.SECRET_BYTES, 'resume secret');
  const fileSize = r.u53('file size');
  const chunkSize = r.u32('chunk size');
  const window = r.u32('window');
  const count = r.u32('range count');
  if (count > Limits.MAX_ACCEPT_RANGES) {
    throw new ProtocolError(
      Errors.LIMIT_EXCEEDED,
      `${count} ranges, limit ${Limits.MAX_ACCEPT_RANGES}`,
    );
  }
  const created = (flags & AcceptFlags.CREATED) !== 0;
  if (!created && secret.some((b) => b !== 0)) {
    throw new ProtocolError(
      Errors.RESERVED_BITS_SET,
      'ACCEPT secret must be zero when CREATED is clear',
    );
  }
  checkChunkSizeField(chunkSize);
  const ranges = r.ranges(count, 'ranges');
  const last = ranges[ranges.length - 1];
  if (last !== undefined && last.end > fileSize) {
    throw new ProtocolError(Errors.INVALID_FIELD, 'acked range ends past the file size');
  }
  const offGrid = rangeOffGrid(ranges, fileSize, chunkSize);
  if (offGrid !== undefined) {
    throw new ProtocolError(
      Errors.INVALID_FIELD,
      `acked range [${offGrid.start}, ${offGrid.end}) is not on the chunk grid`,
    );
  }
  return {
    type: 'accept',
    created,
    durable: (flags & AcceptFlags.DURABLE) !== 0,
    uploadId,
    secret,
    fileSize,
    chunkSize,
    window,
    ranges,
  };
}

function decodeData(r: Reader, flags: number): DataMessage {
  checkFlags(flags, 0, 'DATA');
  const offset = r.u53('offset');
  const hash = r.hash64('hash');
  const payload = r.rest();
  if (payload.byteLength === 0) {
    throw new ProtocolError(Errors.INVALID_FIELD, 'DATA has an empty payload');
  }
  if (offset + payload.byteLength > MAX_U64_VALUE) {
    throw new ProtocolError(Errors.INTEGER_TOO_LARGE, 'DATA ends past 2^53-1');
  }
  return { type: 'data', offset, hash, payload };
}

function decodeAck(r: Reader, flags: number): AckMessage {
  checkFlags(flags, 0, 'ACK');
  const count = r.u16('range count');
  if (count === 0) {
    throw new ProtocolError(Errors.INVALID_FIELD, 'ACK carries no range');
  }
  return { type: 'ack', ranges: r.ranges(count, 'ranges') };
}

function decodeWindow(r: Reader, flags: number): WindowMessage {
  checkFlags(flags, 0, 'WINDOW');
  const window = r.u32('window');
  r.end('WINDOW');
  return { type: 'window', window };
}

function decodeComplete(r: Reader, flags: number): CompleteMessage {
  checkFlags(flags, CompleteFlags.HAS_DIGEST, 'COMPLETE');
  const digest = r.hash64('digest');
  r.end('COMPLETE');
  if ((flags & CompleteFlags.HAS_DIGEST) === 0) {
    requireZeroDigest(digest, 'COMPLETE');
    return { type: 'complete' };
  }
  return { type: 'complete', digest };
}

/** `definedFlags`: none in bigup.1, INSTANT in bigup.2 (SPEC.md 16.11). */
function decodeResult(r: Reader, flags: number, definedFlags = 0): ResultMessage {
  checkFlags(flags, definedFlags, 'RESULT');
  const uploadId = r.fixedBytes(Limits.UPLOAD_ID_BYTES, 'upload id');
  const fileSize = r.u53('file size');
  const digest = r.hash64('digest');
  r.end('RESULT');
  const message: ResultMessage = { type: 'result', uploadId, fileSize, digest };
  return (flags & ResultFlags.INSTANT) !== 0 ? { ...message, instant: true } : message;
}

function decodeError(r: Reader, flags: number): ErrorMessage {
  checkFlags(flags, ErrorFlags.FATAL | ErrorFlags.RETRYABLE, 'ERROR');
  const code = r.u16('code');
  if (code === 0) {
    throw new ProtocolError(Errors.INVALID_FIELD, 'error code 0 is reserved');
  }
  const offset = r.u53('offset');
  const length = r.u32('length');
  const message = r.string('message', Limits.MAX_ERROR_MESSAGE_BYTES);
  r.end('ERROR');
  return {
    type: 'error',
    code,
    fatal: (flags & ErrorFlags.FATAL) !== 0,
    retryable: (flags & ErrorFlags.RETRYABLE) !== 0,
    offset,
    length,
    message,
  };
}

function decodeTerminated(r: Reader, flags: number): TerminatedMessage {
  checkFlags(flags, 0, 'TERMINATED');
  const uploadId = r.fixedBytes(Limits.UPLOAD_ID_BYTES, 'upload id');
  r.end('TERMINATED');
  return { type: 'terminated', uploadId };
}

function decodeBody(type: number, r: Reader, flags: number): Message {
  switch (type) {
    case MessageType.OPEN:
      return decodeOpen(r, flags);
    case MessageType.RESUME:
      return decodeResume(r, flags);
    case MessageType.ACCEPT:
      return decodeAccept(r, flags);
    case MessageType.DATA:
      return decodeData(r, flags);
    case MessageType.ACK:
      return decodeAck(r, flags);
    case MessageType.WINDOW:
      return decodeWindow(r, flags);
    case MessageType.COMPLETE:
      return decodeComplete(r, flags);
    case MessageType.RESULT:
      return decodeResult(r, flags);
    case MessageType.ERROR:
      return decodeError(r, flags);
    case MessageType.TERMINATE:
      checkFlags(flags, 0, 'TERMINATE');
      r.end('TERMINATE');
      return { type: 'terminate' };
    case MessageType.TERMINATED:
      return decodeTerminated(r, flags);
    default:
      throw new ProtocolError(
        Errors.UNKNOWN_MESSAGE_TYPE,
        `unknown message type 0x${type.toString(16).padStart(2, '0')}`,
      );
  }
}

export interface DecodeOptions {
  /**
   * Largest DATA message accepted (header plus payload). Checked before the payload is looked at.
   * Defaults to the protocol maximum chunk size plus the DATA header.
   */
  readonly maxDataMessage?: number;
}

function decodeFrom(
  bytes: Uint8Array,
  allowed: ReadonlySet<number>,
  sender: string,
  options: DecodeOptions,
): Message {
  if (bytes.byteLength < 2) {
    throw new ProtocolError(Errors.MALFORMED, 'message shorter than its 2-byte header');
  }
  const type = bytes[0];
  const isKnown = CLIENT_MESSAGE_TYPES.has(type) || SERVER_MESSAGE_TYPES.has(type);
  if (!isKnown) {
    throw new ProtocolError(
      Errors.UNKNOWN_MESSAGE_TYPE,
      `unknown message type 0x${type.toString(16).padStart(2, '0')}`,
    );
  }
  if (!allowed.has(type)) {
    throw new ProtocolError(
      Errors.UNEXPECTED_MESSAGE,
      `message type 0x${type.toString(16).padStart(2, '0')} is not sent by the ${sender}`,
    );
  }
  if (type === MessageType.DATA) {
    const max = options.maxDataMessage ?? Limits.MAX_CHUNK_SIZE + HeaderSize.DATA;
    if (bytes.byteLength > max) {
      throw new ProtocolError(
        Errors.MESSAGE_TOO_LARGE,
        `DATA message of ${bytes.byteLength} bytes exceeds ${max}`,
      );
    }
  } else if (sender === 'client' && bytes.byteLength > Limits.MAX_CONTROL_MESSAGE) {
    throw new ProtocolError(
      Errors.MESSAGE_TOO_LARGE,
      `control message of ${bytes.byteLength} bytes exceeds ${Limits.MAX_CONTROL_MESSAGE}`,
    );
  }
  const reader = new Reader(bytes, 2);
  return decodeBody(type, reader, bytes[1]);
}

/** Decode a message a client sent (used by servers). Throws ProtocolError. */
export function decodeClientMessage(bytes: Uint8Array, options: DecodeOptions = {}): ClientMessage {
  return decodeFrom(bytes, CLIENT_MESSAGE_TYPES, 'client', options) as ClientMessage;
}

/** Decode a message a server sent (used by clients). Throws ProtocolError. */
export function decodeServerMessage(bytes: Uint8Array): ServerMessage {
  return decodeFrom(bytes, SERVER_MESSAGE_TYPES, 'server', {}) as ServerMessage;
}

/** Decode any bigup.1 message regardless of direction (tools and tests). Throws ProtocolError. */
export function decodeMessage(bytes: Uint8Array, options: DecodeOptions = {}): Message {
  const all = new Set([...CLIENT_MESSAGE_TYPES, ...SERVER_MESSAGE_TYPES]);
  return decodeFrom(
    bytes,
    all,
    bytes[0] !== undefined && SERVER_MESSAGE_TYPES.has(bytes[0]) ? 'server' : 'client',
    options,
  );
}

// ---------------------------------------------------------------------------------------------
// Writing

function invalid(message: string): ProtocolError {
  return new ProtocolError(Errors.INVALID_FIELD, message);
}

function checkU53(value: number, field: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw value > MAX_U64_VALUE
      ? new ProtocolError(Errors.INTEGER_TOO_LARGE, `${field} exceeds 2^53-1`)
      : invalid(`${field} must be a non-negative integer`);
  }
}

function checkU32(value: number, field: string): void {
  if (!Number.isInteger(value) || value < 0 || value >= TWO_POW_32) {
    throw invalid(`${field} must be an integer in 0..2^32-1`);
  }
}

function checkHash(value: bigint, field: string): void {
  if (value < 0n || value >= 1n << 64n) {
    throw invalid(`${field} must be an unsigned 64-bit value`);
  }
}

function checkFixed(bytes: Uint8Array, length: number, field: string): void {
  if (bytes.byteLength !== length) {
    throw invalid(`${field} must be ${length} bytes, got ${bytes.byteLength}`);
  }
}

/** A lone UTF-16 surrogate: has no UTF-8 form. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** `value` with every lone surrogate replaced by U+FFFD, so that it can be encoded (names). */
export function withoutLoneSurrogates(value: string): string {
  return value.replace(new RegExp(LONE_SURROGATE.source, 'g'), '\uFFFD');
}

function encodeString(value: string, field: string, max: number, min = 0): Uint8Array {
  // TextEncoder would silently turn a lone surrogate into U+FFFD: the peer would then see a
  // different name, and two distinct metadata keys could collide into a duplicate it must refuse.
  if (LONE_SURROGATE.test(value)) {
    throw new ProtocolError(Errors.INVALID_UTF8, `${field} contains a lone UTF-16 surrogate`);
  }
  const bytes = utf8Encoder.encode(value);
  if (bytes.byteLength > max) {
    throw new ProtocolError(
      Errors.LIMIT_EXCEEDED,
      `${field} is ${bytes.byteLength} bytes, limit ${max}`,
    );
  }
  if (bytes.byteLength < min) {
    throw invalid(`${field} is empty`);
  }
  return bytes;
}

/** A growable-free writer: the caller computes the exact size first. */
class Writer {
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  private position = 0;

  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
  }

  u8(value: number): void {
    this.view.setUint8(this.position++, value);
  }
  u16(value: number): void {
    this.view.setUint16(this.position, value);
    this.position += 2;
  }
  u32(value: number): void {
    this.view.setUint32(this.position, value);
    this.position += 4;
  }
  u53(value: number): void {
    this.view.setUint32(this.position, Math.floor(value / TWO_POW_32));
    this.view.setUint32(this.position + 4, value >>> 0);
    this.position += 8;
  }
  hash64(value: bigint): void {
    this.view.setBigUint64(this.position, value);
    this.position += 8;
  }
  raw(bytes: Uint8Array): void {
    this.bytes.set(bytes, this.position);
    this.position += bytes.byteLength;
  }
  string(bytes: Uint8Array): void {
    this.u16(bytes.byteLength);
    this.raw(bytes);
  }
  ranges(ranges: readonly ByteRange[]): void {
    for (const range of ranges) {
      this.u53(range.start);
      this.u53(range.end);
    }
  }
}

function checkRanges(ranges: readonly ByteRange[], field: string): void {
  let previousEnd = -1;
  for (const [i, range] of ranges.entries()) {
    checkU53(range.start, `${field}[${i}].start`);
    checkU53(range.end, `${field}[${i}].end`);
    if (range.end <= range.start) throw invalid(`${field}[${i}] is empty or reversed`);
    if (range.start <= previousEnd)
      throw invalid(`${field}[${i}] overlaps, touches or precedes the previous range`);
    previousEnd = range.end;
  }
}

export function encodeOpen(message: Omit<OpenMessage, 'type'>): Uint8Array {
  checkU53(message.fileSize, 'file size');
  checkU32(message.chunkSize, 'chunk size');
  if (message.digest !== undefined) checkHash(message.digest, 'digest');
  const data = message.data;
  if (data !== undefined) {
    if (message.digest === undefined) throw invalid('OPEN with data must carry the digest');
    if (data.byteLength !== message.fileSize)
      throw invalid(`OPEN data is ${data.byteLength} bytes for a file of ${message.fileSize}`);
    if (data.byteLength > LimitsV2.MAX_INLINE_FILE_SIZE)
      throw new ProtocolError(
        Errors.LIMIT_EXCEEDED,
        `OPEN carries a file of ${data.byteLength} bytes, limit ${LimitsV2.MAX_INLINE_FILE_SIZE}`,
      );
  }
  const name = encodeString(message.name, 'name', Limits.MAX_NAME_BYTES, 1);
  const contentType = encodeString(
    message.contentType,
    'content type',
    Limits.MAX_CONTENT_TYPE_BYTES,
  );
  const token = encodeString(message.token, 'token', Limits.MAX_TOKEN_BYTES);
  const entries = Object.entries(message.metadata);
  if (entries.length > Limits.MAX_METADATA_ENTRIES) {
    throw new ProtocolError(
      Errors.LIMIT_EXCEEDED,
      `${entries.length} metadata entries, limit ${Limits.MAX_METADATA_ENTRIES}`,
    );
  }
  let total = 0;
  const encodedEntries = entries.map(([key, value], i) => {
    const k = encodeString(key, `metadata key ${i}`, Limits.MAX_METADATA_KEY_BYTES, 1);
    const v = encodeString(value, `metadata value ${i}`, Limits.MAX_METADATA_VALUE_BYTES);
    total += k.byteLength + v.byteLength;
    return [k, v] as const;
  });
  if (total > Limits.MAX_METADATA_TOTAL_BYTES) {
    throw new ProtocolError(
      Errors.LIMIT_EXCEEDED,
      `metadata exceeds ${Limits.MAX_METADATA_TOTAL_BYTES} bytes`,
    );
  }
  const size =
    HeaderSize.OPEN_FIXED +
    2 +
    name.byteLength +
    2 +
    contentType.byteLength +
    2 +
    token.byteLength +
    2 +
    encodedEntries.reduce((sum, [k, v]) => sum + 4 + k.byteLength + v.byteLength, 0) +
    (data?.byteLength ?? 0);
  const w = new Writer(size);
  w.u8(MessageType.OPEN);
  w.u8(
    (message.digest !== undefined ? OpenFlags.HAS_DIGEST : 0) |
      (data !== undefined ? OpenFlags.WITH_DATA : 0),
  );
  w.u53(message.fileSize);
  w.u32(message.chunkSize);
  w.hash64(message.digest ?? 0n);
  w.string(name);
  w.string(contentType);
  w.string(token);
  w.u16(encodedEntries.length);
  for (const [k, v] of encodedEntries) {
    w.string(k);
    w.string(v);
  }
  if (data !== undefined) w.raw(data);
  return w.bytes;
}

export function encodeResume(message: Omit<ResumeMessage, 'type'>): Uint8Array {
  checkFixed(message.uploadId, Limits.UPLOAD_ID_BYTES, 'upload id');
  checkFixed(message.secret, Limits.SECRET_BYTES, 'resume secret');
  const token = encodeString(message.token, 'token', Limits.MAX_TOKEN_BYTES);
  const w = new Writer(HeaderSize.RESUME_FIXED + 2 + token.byteLength);
  w.u8(MessageType.RESUME);
  w.u8(0);
  w.raw(message.uploadId);
  w.raw(message.secret);
  w.string(token);
  return w.bytes;
}

export function encodeAccept(message: Omit<AcceptMessage, 'type'>): Uint8Array {
  checkFixed(message.uploadId, Limits.UPLOAD_ID_BYTES, 'upload id');
  checkFixed(message.secret, Limits.SECRET_BYTES, 'resume secret');
  if (!message.created && message.secret.some((b) => b !== 0)) {
    throw invalid('resume secret must be all zero when the upload was not created by this OPEN');
  }
  checkU53(message.fileSize, 'file size');
  checkU32(message.chunkSize, 'chunk size');
  if (message.chunkSize < Limits.MIN_CHUNK_SIZE || message.chunkSize > Limits.MAX_CHUNK_SIZE) {
    throw invalid(
      `chunk size ${message.chunkSize} outside ${Limits.MIN_CHUNK_SIZE}..${Limits.MAX_CHUNK_SIZE}`,
    );
  }
  checkU32(message.window, 'window');
  if (message.ranges.length > Limits.MAX_ACCEPT_RANGES) {
    throw new ProtocolError(
      Errors.LIMIT_EXCEEDED,
      `${message.ranges.length} ranges, limit ${Limits.MAX_ACCEPT_RANGES}`,
    );
  }
  checkRanges(message.ranges, 'ranges');
  const last = message.ranges[message.ranges.length - 1];
  if (last !== undefined && last.end > message.fileSize)
    throw invalid('acked range ends past the file size');
  const w = new Writer(HeaderSize.ACCEPT_FIXED + message.ranges.length * HeaderSize.RANGE);
  w.u8(MessageType.ACCEPT);
  w.u8((message.created ? AcceptFlags.CREATED : 0) | (message.durable ? AcceptFlags.DURABLE : 0));
  w.raw(message.uploadId);
  w.raw(message.secret);
  w.u53(message.fileSize);
  w.u32(message.chunkSize);
  w.u32(message.window);
  w.u32(message.ranges.length);
  w.ranges(message.ranges);
  return w.bytes;
}

/**
 * Write the 18-byte DATA header into `target` at `at` (default 0). Lets a sender read the payload
 * straight into the same buffer behind the header, so the message goes out without a copy.
 */
export function writeDataHeader(target: Uint8Array, offset: number, hash: bigint, at = 0): void {
  checkU53(offset, 'offset');
  checkHash(hash, 'hash');
  if (!Number.isSafeInteger(at) || at < 0 || target.byteLength - at < HeaderSize.DATA) {
    throw invalid('target too small for a DATA header at the given position');
  }
  const view = new DataView(target.buffer, target.byteOffset + at, HeaderSize.DATA);
  view.setUint8(0, MessageType.DATA);
  view.setUint8(1, 0);
  view.setUint32(2, Math.floor(offset / TWO_POW_32));
  view.setUint32(6, offset >>> 0);
  view.setBigUint64(10, hash);
}

/** The DATA header as its own 18 bytes; send it followed by the untouched payload. */
export function encodeDataHeader(offset: number, hash: bigint): Uint8Array {
  const header = new Uint8Array(HeaderSize.DATA);
  writeDataHeader(header, offset, hash);
  return header;
}

/**
 * A whole DATA message as header and payload, never copying the payload. Transports that can
 * send a message from two buffers (Blob in browsers) use both parts as they are.
 */
export function encodeData(
  offset: number,
  hash: bigint,
  payload: Uint8Array,
): { header: Uint8Array; payload: Uint8Array } {
  if (payload.byteLength === 0) throw invalid('DATA payload is empty');
  checkU53(offset + payload.byteLength, 'DATA end');
  return { header: encodeDataHeader(offset, hash), payload };
}

export function encodeAck(ranges: readonly ByteRange[]): Uint8Array {
  if (ranges.length === 0) throw invalid('ACK needs at least one range');
  if (ranges.length > Limits.MAX_ACK_RANGES) {
    throw new ProtocolError(
      Errors.LIMIT_EXCEEDED,
      `${ranges.length} ranges, limit ${Limits.MAX_ACK_RANGES}`,
    );
  }
  checkRanges(ranges, 'ranges');
  const w = new Writer(HeaderSize.ACK_FIXED + ranges.length * HeaderSize.RANGE);
  w.u8(MessageType.ACK);
  w.u8(0);
  w.u16(ranges.length);
  w.ranges(ranges);
  return w.bytes;
}

export function encodeWindow(window: number): Uint8Array {
  checkU32(window, 'window');
  const w = new Writer(HeaderSize.WINDOW);
  w.u8(MessageType.WINDOW);
  w.u8(0);
  w.u32(window);
  return w.bytes;
}

export function encodeComplete(digest?: bigint): Uint8Array {
  if (digest !== undefined) checkHash(digest, 'digest');
  const w = new Writer(HeaderSize.COMPLETE);
  w.u8(MessageType.COMPLETE);
  w.u8(digest !== undefined ? CompleteFlags.HAS_DIGEST : 0);
  w.hash64(digest ?? 0n);
  return w.bytes;
}

export function encodeResult(message: Omit<ResultMessage, 'type'>): Uint8Array {
  checkFixed(message.uploadId, Limits.UPLOAD_ID_BYTES, 'upload id');
  checkU53(message.fileSize, 'file size');
  checkHash(message.digest, 'digest');
  const w = new Writer(HeaderSize.RESULT);
  w.u8(MessageType.RESULT);
  w.u8(message.instant === true ? ResultFlags.INSTANT : 0);
  w.raw(message.uploadId);
  w.u53(message.fileSize);
  w.hash64(message.digest);
  return w.bytes;
}

/**
 * Encode an ERROR. Flags default to the registry's view of the code; the message text is cut to
 * the limit at a character boundary rather than refused, since it is for humans only.
 */
export function encodeError(message: {
  code: number;
  fatal?: boolean;
  retryable?: boolean;
  offset?: number;
  length?: number;
  message?: string;
}): Uint8Array {
  checkU32(message.code, 'code');
  if (message.code === 0 || message.code > 0xffff) throw invalid('error code must be in 1..65535');
  const known = errorByCode(message.code);
  const fatal = message.fatal ?? known?.fatal ?? true;
  const retryable = message.retryable ?? known?.retryable ?? false;
  const offset = message.offset ?? 0;
  const length = message.length ?? 0;
  checkU53(offset, 'offset');
  checkU32(length, 'length');
  let text = utf8Encoder.encode(message.message ?? known?.meaning ?? '');
  if (text.byteLength > Limits.MAX_ERROR_MESSAGE_BYTES) {
    let cut = Limits.MAX_ERROR_MESSAGE_BYTES;
    while (cut > 0 && (text[cut] & 0xc0) === 0x80) cut--;
    text = text.slice(0, cut);
  }
  const w = new Writer(HeaderSize.ERROR_FIXED + 2 + text.byteLength);
  w.u8(MessageType.ERROR);
  w.u8((fatal ? ErrorFlags.FATAL : 0) | (retryable ? ErrorFlags.RETRYABLE : 0));
  w.u16(message.code);
  w.u53(offset);
  w.u32(length);
  w.string(text);
  return w.bytes;
}

/** Encode an ERROR from a ProtocolError value. */
export function encodeProtocolError(error: ProtocolError): Uint8Array {
  return encodeError({
    code: error.code,
    fatal: error.fatal,
    retryable: error.retryable,
    offset: error.offset,
    length: error.length,
    message: error.message,
  });
}

export function encodeTerminate(): Uint8Array {
  return Uint8Array.of(MessageType.TERMINATE, 0);
}

export function encodeTerminated(uploadId: Uint8Array): Uint8Array {
  checkFixed(uploadId, Limits.UPLOAD_ID_BYTES, 'upload id');
  const w = new Writer(HeaderSize.TERMINATED);
  w.u8(MessageType.TERMINATED);
  w.u8(0);
  w.raw(uploadId);
  return w.bytes;
}

/** Encode any message from its decoded form (tests, vector generation). DATA is joined into one buffer. */
export function encodeMessage(message: Message): Uint8Array {
  switch (message.type) {
    case 'open':
      return encodeOpen(message);
    case 'resume':
      return encodeResume(message);
    case 'accept':
      return encodeAccept(message);
    case 'data': {
      const { header, payload } = encodeData(message.offset, message.hash, message.payload);
      const joined = new Uint8Array(header.byteLength + payload.byteLength);
      joined.set(header);
      joined.set(payload, header.byteLength);
      return joined;
    }
    case 'ack':
      return encodeAck(message.ranges);
    case 'window':
      return encodeWindow(message.window);
    case 'complete':
      return encodeComplete(message.digest);
    case 'result':
      return encodeResult(message);
    case 'error':
      return encodeError(message);
    case 'terminate':
      return encodeTerminate();
    case 'terminated':
      return encodeTerminated(message.uploadId);
  }
}

// ---------------------------------------------------------------------------------------------
// bigup.2 (SPEC.md section 16): every bigup.1 message about one upload carries a u32 stream id
// right after the common header, then its bigup.1 body unchanged; HELLO and WELCOME negotiate
// capabilities; WINDOW has no stream (the window is the connection's).

/** Types that carry a stream id in bigup.2. */
const STREAM_TYPES: ReadonlySet<number> = new Set([
  MessageType.OPEN,
  MessageType.RESUME,
  MessageType.ACCEPT,
  MessageType.DATA,
  MessageType.ACK,
  MessageType.COMPLETE,
  MessageType.RESULT,
  MessageType.ERROR,
  MessageType.TERMINATE,
  MessageType.TERMINATED,
  MessageTypeV2.VERIFY,
  MessageTypeV2.VERIFIED,
  MessageTypeV2.CHALLENGE,
  MessageTypeV2.PROOF,
]);

/** Flag bits each type defines; the rest are reserved (checked before the stream is read, 4.4 step 5). */
const DEFINED_FLAGS: ReadonlyMap<number, number> = new Map<number, number>([
  [MessageType.OPEN, OpenFlags.HAS_DIGEST | OpenFlags.WITH_DATA],
  [MessageType.ACCEPT, AcceptFlags.CREATED | AcceptFlags.DURABLE],
  [MessageType.COMPLETE, CompleteFlags.HAS_DIGEST],
  [MessageType.RESULT, ResultFlags.INSTANT],
  [MessageType.ERROR, ErrorFlags.FATAL | ErrorFlags.RETRYABLE],
  [MessageTypeV2.CHALLENGE, ChallengeFlags.CHUNK_SIZE],
]);

const CLIENT_TYPES_V2: ReadonlySet<number> = new Set([
  ...CLIENT_MESSAGE_TYPES,
  MessageTypeV2.HELLO,
  MessageTypeV2.VERIFY,
  MessageTypeV2.PROOF,
]);
const SERVER_TYPES_V2: ReadonlySet<number> = new Set([
  ...SERVER_MESSAGE_TYPES,
  MessageTypeV2.WELCOME,
  MessageTypeV2.VERIFIED,
  MessageTypeV2.CHALLENGE,
]);

/** Largest bigup.2 client message other than DATA: an OPEN with data may add its file (16.11). */
function controlLimitV2(type: number, flags: number): number {
  return type === MessageType.OPEN && (flags & OpenFlags.WITH_DATA) !== 0
    ? Limits.MAX_CONTROL_MESSAGE + LimitsV2.MAX_INLINE_FILE_SIZE
    : Limits.MAX_CONTROL_MESSAGE;
}

/** Whether a bigup.2 message of this type concerns one upload (and so carries a stream id). */
export function carriesStream(type: number): boolean {
  return STREAM_TYPES.has(type);
}

function decodeCapabilities(r: Reader, flags: number, name: string): CapabilityEntry[] {
  checkFlags(flags, 0, name);
  const count = r.u16('capability count');
  if (count > LimitsV2.MAX_CAPABILITIES) {
    throw new ProtocolError(
      Errors.LIMIT_EXCEEDED,
      `${count} capabilities, limit ${LimitsV2.MAX_CAPABILITIES}`,
    );
  }
  const entries: CapabilityEntry[] = [];
  let previous = 0;
  for (let i = 0; i < count; i++) {
    const id = r.u16(`capability ${i} id`);
    const value = r.u32(`capability ${i} value`);
    if (id <= previous) {
      throw new ProtocolError(
        Errors.INVALID_FIELD,
        id === 0 ? 'capability id 0 is reserved' : 'capability ids must be strictly ascending',
      );
    }
    previous = id;
    entries.push({ id, value });
  }
  r.end(name);
  return entries;
}

/** A VERIFY or VERIFIED count: at least `min`, at most MAX_VERIFY_CHUNKS. */
function verifyCount(r: Reader, min: number): number {
  const count = r.u16('count');
  if (count > LimitsV2.MAX_VERIFY_CHUNKS) {
    throw new ProtocolError(
      Errors.LIMIT_EXCEEDED,
      `${count} chunks, limit ${LimitsV2.MAX_VERIFY_CHUNKS}`,
    );
  }
  if (count < min) throw new ProtocolError(Errors.INVALID_FIELD, 'VERIFY lists no chunk');
  return count;
}

function ascending(index: number, previous: number): void {
  if (index <= previous)
    throw new ProtocolError(Errors.INVALID_FIELD, 'chunk indexes must be strictly ascending');
}

function decodeVerify(r: Reader, flags: number): VerifyMessage {
  checkFlags(flags, 0, 'VERIFY');
  const count = verifyCount(r, 1);
  const chunks: { index: number; hash: bigint }[] = [];
  let previous = -1;
  for (let i = 0; i < count; i++) {
    const index = r.u32(`chunk ${i} index`);
    const hash = r.hash64(`chunk ${i} hash`);
    ascending(index, previous);
    previous = index;
    chunks.push({ index, hash });
  }
  r.end('VERIFY');
  return { type: 'verify', chunks };
}

function decodeVerified(r: Reader, flags: number): VerifiedMessage {
  checkFlags(flags, 0, 'VERIFIED');
  const count = verifyCount(r, 0);
  const withdrawn: number[] = [];
  let previous = -1;
  for (let i = 0; i < count; i++) {
    const index = r.u32(`chunk ${i} index`);
    ascending(index, previous);
    previous = index;
    withdrawn.push(index);
  }
  r.end('VERIFIED');
  return { type: 'verified', withdrawn };
}

/** A CHALLENGE or PROOF count: 1 to MAX_PROOF_RANGES. */
function proofCount(r: Reader): number {
  const count = r.u8('count');
  if (count > LimitsV2.MAX_PROOF_RANGES)
    throw new ProtocolError(
      Errors.LIMIT_EXCEEDED,
      `${count} ranges, limit ${LimitsV2.MAX_PROOF_RANGES}`,
    );
  if (count === 0)
    throw new ProtocolError(Errors.INVALID_FIELD, 'a CHALLENGE names at least one range');
  return count;
}

/** A chunk size a message names: Limits.MIN_CHUNK_SIZE..MAX_CHUNK_SIZE, else INVALID_FIELD. */
function checkChunkSizeField(chunkSize: number): void {
  if (chunkSize < Limits.MIN_CHUNK_SIZE || chunkSize > Limits.MAX_CHUNK_SIZE) {
    throw new ProtocolError(
      Errors.INVALID_FIELD,
      `chunk size ${chunkSize} outside ${Limits.MIN_CHUNK_SIZE}..${Limits.MAX_CHUNK_SIZE}`,
    );
  }
}

function decodeChallenge(r: Reader, flags: number): ChallengeMessage {
  checkFlags(flags, ChallengeFlags.CHUNK_SIZE, 'CHALLENGE');
  const nonce = r.fixedBytes(LimitsV2.NONCE_BYTES, 'nonce');
  const count = proofCount(r);
  const ranges: { offset: number; length: number }[] = [];
  for (let i = 0; i < count; i++) {
    const offset = r.u53(`range ${i} offset`);
    const length = r.u32(`range ${i} length`);
    if (length === 0 || length > LimitsV2.MAX_PROOF_RANGE_BYTES)
      throw new ProtocolError(
        Errors.INVALID_FIELD,
        `range ${i} length ${length} is outside 1..${LimitsV2.MAX_PROOF_RANGE_BYTES}`,
      );
    ranges.push({ offset, length });
  }
  let chunkSize: number | undefined;
  if (flags & ChallengeFlags.CHUNK_SIZE) {
    chunkSize = r.u32('chunk size');
    checkChunkSizeField(chunkSize);
  }
  r.end('CHALLENGE');
  return { type: 'challenge', nonce, ranges, ...(chunkSize !== undefined ? { chunkSize } : {}) };
}

function decodeProof(r: Reader, flags: number): ProofMessage {
  checkFlags(flags, 0, 'PROOF');
  const digest = r.hash64('digest');
  const count = proofCount(r);
  const hashes: bigint[] = [];
  for (let i = 0; i < count; i++) hashes.push(r.hash64(`hash ${i}`));
  r.end('PROOF');
  return { type: 'proof', digest, hashes };
}

function decodeFrameFrom(
  bytes: Uint8Array,
  allowed: ReadonlySet<number>,
  sender: 'client' | 'server',
  options: DecodeOptions,
): Frame<MessageV2> {
  if (bytes.byteLength < 2) {
    throw new ProtocolError(Errors.MALFORMED, 'message shorter than its 2-byte header');
  }
  const type = bytes[0];
  const flags = bytes[1];
  const hex = `0x${type.toString(16).padStart(2, '0')}`;
  if (!CLIENT_TYPES_V2.has(type) && !SERVER_TYPES_V2.has(type)) {
    throw new ProtocolError(Errors.UNKNOWN_MESSAGE_TYPE, `unknown message type ${hex}`);
  }
  if (!allowed.has(type)) {
    throw new ProtocolError(
      Errors.UNEXPECTED_MESSAGE,
      `message type ${hex} is not sent by the ${sender}`,
    );
  }
  if (type === MessageType.DATA) {
    const max = options.maxDataMessage ?? Limits.MAX_CHUNK_SIZE + HeaderSizeV2.DATA;
    if (bytes.byteLength > max) {
      throw new ProtocolError(
        Errors.MESSAGE_TOO_LARGE,
        `DATA message of ${bytes.byteLength} bytes exceeds ${max}`,
      );
    }
  } else if (sender === 'client' && bytes.byteLength > controlLimitV2(type, flags)) {
    throw new ProtocolError(
      Errors.MESSAGE_TOO_LARGE,
      `control message of ${bytes.byteLength} bytes exceeds ${controlLimitV2(type, flags)}`,
    );
  }
  if (type === MessageTypeV2.HELLO || type === MessageTypeV2.WELCOME) {
    const name = type === MessageTypeV2.HELLO ? 'HELLO' : 'WELCOME';
    const capabilities = decodeCapabilities(new Reader(bytes, 2), flags, name);
    return {
      stream: 0,
      message:
        type === MessageTypeV2.HELLO
          ? { type: 'hello', capabilities }
          : { type: 'welcome', capabilities },
    };
  }
  if (!STREAM_TYPES.has(type))
    return { stream: 0, message: decodeBody(type, new Reader(bytes, 2), flags) };
  checkFlags(flags, DEFINED_FLAGS.get(type) ?? 0, `message ${hex}`);
  const reader = new Reader(bytes, 2);
  const stream = reader.u32('stream');
  if (stream === 0 && type !== MessageType.ERROR) {
    throw new ProtocolError(
      Errors.INVALID_FIELD,
      'stream 0 is the connection; an upload message needs a stream id of 1 or more',
    );
  }
  if (type === MessageType.OPEN)
    return { stream, message: decodeOpen(reader, flags, DEFINED_FLAGS.get(type)) };
  if (type === MessageType.RESULT)
    return { stream, message: decodeResult(reader, flags, DEFINED_FLAGS.get(type)) };
  if (type === MessageTypeV2.VERIFY) return { stream, message: decodeVerify(reader, flags) };
  if (type === MessageTypeV2.VERIFIED) return { stream, message: decodeVerified(reader, flags) };
  if (type === MessageTypeV2.CHALLENGE) return { stream, message: decodeChallenge(reader, flags) };
  if (type === MessageTypeV2.PROOF) return { stream, message: decodeProof(reader, flags) };
  return { stream, message: decodeBody(type, reader, flags) };
}

/** Decode a bigup.2 message a client sent (used by servers). Throws ProtocolError. */
export function decodeClientFrame(
  bytes: Uint8Array,
  options: DecodeOptions = {},
): Frame<ClientMessageV2> {
  return decodeFrameFrom(bytes, CLIENT_TYPES_V2, 'client', options) as Frame<ClientMessageV2>;
}

/** Decode a bigup.2 message a server sent (used by clients). Throws ProtocolError. */
export function decodeServerFrame(bytes: Uint8Array): Frame<ServerMessageV2> {
  return decodeFrameFrom(bytes, SERVER_TYPES_V2, 'server', {}) as Frame<ServerMessageV2>;
}

/** Decode any bigup.2 message regardless of direction (tools and tests). Throws ProtocolError. */
export function decodeFrame(bytes: Uint8Array, options: DecodeOptions = {}): Frame<MessageV2> {
  const all = new Set([...CLIENT_TYPES_V2, ...SERVER_TYPES_V2]);
  const sender = bytes[0] !== undefined && SERVER_TYPES_V2.has(bytes[0]) ? 'server' : 'client';
  return decodeFrameFrom(bytes, all, sender, options);
}

function checkCapabilities(capabilities: readonly CapabilityEntry[]): void {
  if (capabilities.length > LimitsV2.MAX_CAPABILITIES) {
    throw new ProtocolError(
      Errors.LIMIT_EXCEEDED,
      `${capabilities.length} capabilities, limit ${LimitsV2.MAX_CAPABILITIES}`,
    );
  }
  let previous = 0;
  for (const { id, value } of capabilities) {
    if (!Number.isInteger(id) || id <= previous || id > 0xffff)
      throw invalid('capability ids must be strictly ascending in 1..65535');
    checkU32(value, 'capability value');
    previous = id;
  }
}

function encodeCapabilities(type: number, capabilities: readonly CapabilityEntry[]): Uint8Array {
  checkCapabilities(capabilities);
  const w = new Writer(HeaderSizeV2.HELLO_FIXED + capabilities.length * HeaderSizeV2.CAPABILITY);
  w.u8(type);
  w.u8(0);
  w.u16(capabilities.length);
  for (const { id, value } of capabilities) {
    w.u16(id);
    w.u32(value);
  }
  return w.bytes;
}

export function encodeHello(capabilities: readonly CapabilityEntry[]): Uint8Array {
  return encodeCapabilities(MessageTypeV2.HELLO, capabilities);
}

export function encodeWelcome(capabilities: readonly CapabilityEntry[]): Uint8Array {
  return encodeCapabilities(MessageTypeV2.WELCOME, capabilities);
}

function checkStream(stream: number, type: number): void {
  if (!Number.isInteger(stream) || stream < 0 || stream > LimitsV2.MAX_STREAM_ID)
    throw invalid('stream must be a u32');
  if (stream === 0 && type !== MessageType.ERROR)
    throw invalid('only ERROR may name stream 0 (the connection)');
}

/**
 * A bigup.1 message's bytes as bigup.2 on `stream`: the stream id goes in after the common header.
 * Messages without a stream (WINDOW) are returned unchanged. Copies: for control messages only;
 * DATA goes out through `writeDataHeaderV2` without a copy.
 */
export function withStream(stream: number, v1: Uint8Array): Uint8Array {
  if (v1.byteLength < 2) throw invalid('a message has at least its 2-byte header');
  const type = v1[0];
  if (!STREAM_TYPES.has(type)) return v1;
  checkStream(stream, type);
  const out = new Uint8Array(v1.byteLength + HeaderSizeV2.STREAM);
  out[0] = type;
  out[1] = v1[1];
  new DataView(out.buffer).setUint32(2, stream);
  out.set(v1.subarray(2), 2 + HeaderSizeV2.STREAM);
  return out;
}

/** Write the 22-byte bigup.2 DATA header (type, flags, stream, offset, hash) into `target` at `at`. */
export function writeDataHeaderV2(
  target: Uint8Array,
  stream: number,
  offset: number,
  hash: bigint,
  at = 0,
): void {
  checkStream(stream, MessageType.DATA);
  checkU53(offset, 'offset');
  checkHash(hash, 'hash');
  if (!Number.isSafeInteger(at) || at < 0 || target.byteLength - at < HeaderSizeV2.DATA) {
    throw invalid('target too small for a DATA header at the given position');
  }
  const view = new DataView(target.buffer, target.byteOffset + at, HeaderSizeV2.DATA);
  view.setUint8(0, MessageType.DATA);
  view.setUint8(1, 0);
  view.setUint32(2, stream);
  view.setUint32(6, Math.floor(offset / TWO_POW_32));
  view.setUint32(10, offset >>> 0);
  view.setBigUint64(14, hash);
}

function checkIndexes(indexes: readonly number[], min: number): void {
  if (indexes.length < min || indexes.length > LimitsV2.MAX_VERIFY_CHUNKS)
    throw invalid(`a VERIFY lists ${min} to ${LimitsV2.MAX_VERIFY_CHUNKS} chunks`);
  let previous = -1;
  for (const index of indexes) {
    checkU32(index, 'chunk index');
    if (index <= previous) throw invalid('chunk indexes must be strictly ascending');
    previous = index;
  }
}

/** VERIFY on `stream` (SPEC.md 16.9): the client's hashes of chunks it believes acked. */
export function encodeVerify(stream: number, chunks: VerifyMessage['chunks']): Uint8Array {
  checkStream(stream, MessageTypeV2.VERIFY);
  checkIndexes(
    chunks.map((c) => c.index),
    1,
  );
  const w = new Writer(HeaderSizeV2.VERIFY_FIXED + chunks.length * HeaderSizeV2.VERIFY_ENTRY);
  w.u8(MessageTypeV2.VERIFY);
  w.u8(0);
  w.u32(stream);
  w.u16(chunks.length);
  for (const { index, hash } of chunks) {
    checkHash(hash, 'chunk hash');
    w.u32(index);
    w.hash64(hash);
  }
  return w.bytes;
}

/** VERIFIED on `stream` (SPEC.md 16.9): the chunks the server withdrew. */
export function encodeVerified(stream: number, withdrawn: readonly number[]): Uint8Array {
  checkStream(stream, MessageTypeV2.VERIFIED);
  checkIndexes(withdrawn, 0);
  const w = new Writer(HeaderSizeV2.VERIFY_FIXED + withdrawn.length * 4);
  w.u8(MessageTypeV2.VERIFIED);
  w.u8(0);
  w.u32(stream);
  w.u16(withdrawn.length);
  for (const index of withdrawn) w.u32(index);
  return w.bytes;
}

/** CHALLENGE on `stream` (SPEC.md 16.10); with `chunkSize`, the flag CHUNK_SIZE and that size. */
export function encodeChallenge(
  stream: number,
  nonce: Uint8Array,
  ranges: ChallengeMessage['ranges'],
  chunkSize?: number,
): Uint8Array {
  checkStream(stream, MessageTypeV2.CHALLENGE);
  if (nonce.byteLength !== LimitsV2.NONCE_BYTES)
    throw invalid(`the nonce is ${LimitsV2.NONCE_BYTES} bytes`);
  if (ranges.length < 1 || ranges.length > LimitsV2.MAX_PROOF_RANGES)
    throw invalid(`a CHALLENGE names 1 to ${LimitsV2.MAX_PROOF_RANGES} ranges`);
  if (chunkSize !== undefined) {
    checkU32(chunkSize, 'chunk size');
    if (chunkSize < Limits.MIN_CHUNK_SIZE || chunkSize > Limits.MAX_CHUNK_SIZE)
      throw invalid(
        `chunk size ${chunkSize} outside ${Limits.MIN_CHUNK_SIZE}..${Limits.MAX_CHUNK_SIZE}`,
      );
  }
  const w = new Writer(
    HeaderSizeV2.CHALLENGE_FIXED +
      ranges.length * HeaderSizeV2.CHALLENGE_RANGE +
      (chunkSize !== undefined ? HeaderSizeV2.CHALLENGE_CHUNK_SIZE : 0),
  );
  w.u8(MessageTypeV2.CHALLENGE);
  w.u8(chunkSize !== undefined ? ChallengeFlags.CHUNK_SIZE : 0);
  w.u32(stream);
  w.raw(nonce);
  w.u8(ranges.length);
  for (const { offset, length } of ranges) {
    checkU53(offset, 'range offset');
    if (!Number.isInteger(length) || length < 1 || length > LimitsV2.MAX_PROOF_RANGE_BYTES)
      throw invalid(`range length must be 1..${LimitsV2.MAX_PROOF_RANGE_BYTES}`);
    w.u53(offset);
    w.u32(length);
  }
  if (chunkSize !== undefined) w.u32(chunkSize);
  return w.bytes;
}

/** PROOF on `stream` (SPEC.md 16.10): the whole-file digest, then one hash per range. */
export function encodeProof(stream: number, digest: bigint, hashes: readonly bigint[]): Uint8Array {
  checkStream(stream, MessageTypeV2.PROOF);
  checkHash(digest, 'digest');
  if (hashes.length < 1 || hashes.length > LimitsV2.MAX_PROOF_RANGES)
    throw invalid(`a PROOF carries 1 to ${LimitsV2.MAX_PROOF_RANGES} hashes`);
  const w = new Writer(HeaderSizeV2.PROOF_FIXED + hashes.length * 8);
  w.u8(MessageTypeV2.PROOF);
  w.u8(0);
  w.u32(stream);
  w.hash64(digest);
  w.u8(hashes.length);
  for (const hash of hashes) {
    checkHash(hash, 'proof hash');
    w.hash64(hash);
  }
  return w.bytes;
}

/** Encode any bigup.2 message (tests, vector generation). `stream` is ignored for HELLO, WELCOME, WINDOW. */
export function encodeFrame(stream: number, message: MessageV2): Uint8Array {
  if (message.type === 'hello') return encodeHello(message.capabilities);
  if (message.type === 'welcome') return encodeWelcome(message.capabilities);
  if (message.type === 'verify') return encodeVerify(stream, message.chunks);
  if (message.type === 'verified') return encodeVerified(stream, message.withdrawn);
  if (message.type === 'challenge')
    return encodeChallenge(stream, message.nonce, message.ranges, message.chunkSize);
  if (message.type === 'proof') return encodeProof(stream, message.digest, message.hashes);
  return withStream(stream, encodeMessage(message));
}

/** The MULTIPLEX value of a capability list (1 when absent: one upload at a time). */
export function multiplexOf(capabilities: readonly CapabilityEntry[]): number {
  return capabilities.find((c) => c.id === Capability.MULTIPLEX)?.value ?? 1;
}

/**
 * The largest file an OPEN may carry whole under these (granted) capabilities (SPEC.md 16.11):
 * 0 without OPEN_WITH_DATA, and never above `LimitsV2.MAX_INLINE_FILE_SIZE`.
 */
export function inlineFileLimitOf(capabilities: readonly CapabilityEntry[]): number {
  const value = capabilities.find((c) => c.id === Capability.OPEN_WITH_DATA)?.value ?? 0;
  return Math.min(value, LimitsV2.MAX_INLINE_FILE_SIZE);
}
