/**
 * The error registry of bigup.1 (SPEC.md, "Error codes"). Every refusal a peer can see is one of
 * these codes; code numbers and names are stable forever, messages are for humans only.
 */
import { CloseCode } from './constants.js';

export interface ErrorDefinition {
  readonly code: number;
  readonly name: string;
  /** The server closes the connection after sending this error. */
  readonly fatal: boolean;
  /** A client may retry the same operation (reconnect and resume, or resend the chunk). */
  readonly retryable: boolean;
  /** Close code used when the error is fatal. */
  readonly closeCode: number;
  readonly meaning: string;
  readonly clientAction: string;
}

function def(
  code: number,
  name: string,
  fatal: boolean,
  retryable: boolean,
  closeCode: number,
  meaning: string,
  clientAction: string,
): ErrorDefinition {
  return Object.freeze({ code, name, fatal, retryable, closeCode, meaning, clientAction });
}

/** The registry, keyed by name. */
export const Errors = {
  // 0x00xx: the message itself is bad. A correct client never sees these.
  MALFORMED: def(
    0x0001,
    'MALFORMED',
    true,
    false,
    CloseCode.PROTOCOL_ERROR,
    'The message is truncated, has trailing bytes, or a length field disagrees with the message length.',
    'Fix the client; do not retry.',
  ),
  UNKNOWN_MESSAGE_TYPE: def(
    0x0002,
    'UNKNOWN_MESSAGE_TYPE',
    true,
    false,
    CloseCode.PROTOCOL_ERROR,
    'The first byte is not a message type of the negotiated version.',
    'Fix the client or negotiate a version that has the message.',
  ),
  UNEXPECTED_MESSAGE: def(
    0x0003,
    'UNEXPECTED_MESSAGE',
    true,
    false,
    CloseCode.PROTOCOL_ERROR,
    'The message is valid but not allowed in the current state or from this side (e.g. DATA before OPEN).',
    'Fix the client; do not retry.',
  ),
  TEXT_MESSAGE: def(
    0x0004,
    'TEXT_MESSAGE',
    true,
    false,
    CloseCode.UNSUPPORTED_DATA,
    'A WebSocket text message was received; bigup.1 uses binary messages only.',
    'Send binary messages.',
  ),
  MESSAGE_TOO_LARGE: def(
    0x0005,
    'MESSAGE_TOO_LARGE',
    true,
    false,
    CloseCode.MESSAGE_TOO_BIG,
    'The message exceeds the control message limit or the agreed chunk size plus the DATA header.',
    'Send chunks no larger than the agreed chunk size.',
  ),
  RESERVED_BITS_SET: def(
    0x0006,
    'RESERVED_BITS_SET',
    true,
    false,
    CloseCode.PROTOCOL_ERROR,
    'A reserved flag bit or a field that must be zero is not zero.',
    'Fix the client; do not retry.',
  ),
  INVALID_UTF8: def(
    0x0007,
    'INVALID_UTF8',
    true,
    false,
    CloseCode.PROTOCOL_ERROR,
    'A string field is not valid UTF-8.',
    'Encode strings as UTF-8.',
  ),
  LIMIT_EXCEEDED: def(
    0x0008,
    'LIMIT_EXCEEDED',
    true,
    false,
    CloseCode.POLICY_VIOLATION,
    'A name, content type, token, metadata or range list exceeds its limit, or the connection collected more refusals than the server allows.',
    'Shorten the field (see the limits table); stop sending what the server refuses.',
  ),
  INTEGER_TOO_LARGE: def(
    0x0009,
    'INTEGER_TOO_LARGE',
    true,
    false,
    CloseCode.PROTOCOL_ERROR,
    'A 64-bit field holds a value above 2^53-1.',
    'Fix the client; do not retry.',
  ),
  INVALID_FIELD: def(
    0x000a,
    'INVALID_FIELD',
    true,
    false,
    CloseCode.PROTOCOL_ERROR,
    'A field holds a value outside its domain (empty name, duplicate metadata key, empty range, zero-length DATA).',
    'Fix the client; do not retry.',
  ),

  // 0x01xx: the upload as a whole.
  UNAUTHORIZED: def(
    0x0101,
    'UNAUTHORIZED',
    true,
    false,
    CloseCode.POLICY_VIOLATION,
    'The auth token is missing, wrong or expired.',
    'Obtain a valid token, then open again.',
  ),
  NOT_FOUND: def(
    0x0102,
    'NOT_FOUND',
    true,
    false,
    CloseCode.NORMAL,
    'No upload has this id, or the resume secret does not match (the two are indistinguishable on purpose).',
    'Forget the resume record and start a new upload.',
  ),
  FILE_TOO_LARGE: def(
    0x0103,
    'FILE_TOO_LARGE',
    true,
    false,
    CloseCode.NORMAL,
    "The file size exceeds the server's maximum upload size.",
    'Do not retry; the file cannot be uploaded to this server.',
  ),
  INSUFFICIENT_STORAGE: def(
    0x0104,
    'INSUFFICIENT_STORAGE',
    true,
    false,
    CloseCode.NORMAL,
    'The server has less free space than the file needs.',
    'Retry later or ask the operator for space.',
  ),
  TOO_MANY_UPLOADS: def(
    0x0105,
    'TOO_MANY_UPLOADS',
    true,
    true,
    CloseCode.NORMAL,
    'The server, this token or this client address has reached its limit of concurrent, unfinished or new uploads per second.',
    'Retry after a delay.',
  ),
  TAKEN_OVER: def(
    0x0106,
    'TAKEN_OVER',
    true,
    false,
    CloseCode.TAKEN_OVER,
    'Another connection opened this upload; the newer connection owns it now.',
    'Stop; another client is uploading this file.',
  ),
  DIGEST_MISMATCH: def(
    0x0107,
    'DIGEST_MISMATCH',
    false,
    false,
    0,
    'The whole-file digest the client gave does not match the digest of the acked chunks.',
    'The source changed during the upload; start a new upload.',
  ),
  INCOMPLETE: def(
    0x0108,
    'INCOMPLETE',
    false,
    true,
    0,
    'COMPLETE was sent while some bytes are not acked.',
    'Send the missing ranges, then COMPLETE again.',
  ),
  UPLOAD_GONE: def(
    0x0109,
    'UPLOAD_GONE',
    true,
    false,
    CloseCode.UPLOAD_GONE,
    'The upload was deleted or expired while this connection had it open.',
    'Forget the resume record; start a new upload if still wanted.',
  ),
  UPLOAD_DAMAGED: def(
    0x010a,
    'UPLOAD_DAMAGED',
    true,
    false,
    CloseCode.NORMAL,
    'The server found its record of this upload damaged and deactivated the upload instead of guessing.',
    'Start a new upload; report to the operator.',
  ),

  // 0x02xx: one DATA message. The connection stays open unless marked fatal.
  HASH_MISMATCH: def(
    0x0201,
    'HASH_MISMATCH',
    false,
    true,
    0,
    'The payload does not hash to the xxHash64 in the DATA header; nothing was written.',
    'Re-read and resend the chunk.',
  ),
  OUT_OF_RANGE: def(
    0x0202,
    'OUT_OF_RANGE',
    false,
    false,
    0,
    "The DATA offset is not a multiple of the chunk size, lies past the end of the file, or the payload length is not the chunk's length.",
    'Fix the client: send whole chunks at chunk-aligned offsets.',
  ),
  CONFLICT: def(
    0x0203,
    'CONFLICT',
    false,
    false,
    0,
    'The chunk was already acked with different content; the stored bytes are kept.',
    'The source changed; start a new upload.',
  ),
  WINDOW_EXCEEDED: def(
    0x0204,
    'WINDOW_EXCEEDED',
    true,
    false,
    CloseCode.POLICY_VIOLATION,
    'The client has more unacknowledged payload bytes in flight than the granted window.',
    'Fix the client: never exceed the window.',
  ),

  // 0x03xx: the server cannot do it now.
  STORAGE_ERROR: def(
    0x0301,
    'STORAGE_ERROR',
    true,
    true,
    CloseCode.INTERNAL_ERROR,
    'A write or sync failed on the server (e.g. EIO); unacked bytes were not stored.',
    'Reconnect with backoff and resume.',
  ),
  STORAGE_FULL: def(
    0x0302,
    'STORAGE_FULL',
    true,
    true,
    CloseCode.INTERNAL_ERROR,
    'The server ran out of space while writing.',
    'Reconnect later and resume.',
  ),
  INTERNAL_ERROR: def(
    0x0303,
    'INTERNAL_ERROR',
    true,
    true,
    CloseCode.INTERNAL_ERROR,
    'An unexpected server fault.',
    'Reconnect with backoff and resume.',
  ),
  SHUTTING_DOWN: def(
    0x0304,
    'SHUTTING_DOWN',
    true,
    true,
    CloseCode.GOING_AWAY,
    'The server is shutting down; acked bytes are safe.',
    'Reconnect with backoff and resume.',
  ),
  IDLE_TIMEOUT: def(
    0x0305,
    'IDLE_TIMEOUT',
    true,
    true,
    CloseCode.IDLE_TIMEOUT,
    'No progress (section 7.10) within the idle timeout.',
    'Reconnect and resume.',
  ),
  TOO_SLOW: def(
    0x0306,
    'TOO_SLOW',
    true,
    true,
    CloseCode.TOO_SLOW,
    "Throughput stayed below the server's minimum rate.",
    'Reconnect and resume, ideally on a better link.',
  ),
} as const satisfies Record<string, ErrorDefinition>;

export type ErrorName = keyof typeof Errors;

const byCode = new Map<number, ErrorDefinition>(Object.values(Errors).map((e) => [e.code, e]));

/** The registry entry for a code, or undefined for a code this version does not know. */
export function errorByCode(code: number): ErrorDefinition | undefined {
  return byCode.get(code);
}

/** All registry entries in code order (for docs and tests). */
export function allErrors(): ErrorDefinition[] {
  return [...byCode.values()].sort((a, b) => a.code - b.code);
}

/**
 * A protocol error as a value: stable numeric code and name from the registry, plus optional context
 * (the byte range of the DATA message it concerns). Thrown by the decoder, sent in ERROR messages.
 */
export class ProtocolError extends Error {
  readonly code: number;
  readonly codeName: string;
  readonly fatal: boolean;
  readonly retryable: boolean;
  readonly closeCode: number;
  readonly offset: number;
  readonly length: number;

  constructor(
    definition: ErrorDefinition,
    message: string = definition.meaning,
    context: { offset?: number; length?: number } = {},
  ) {
    super(message);
    this.name = 'ProtocolError';
    this.code = definition.code;
    this.codeName = definition.name;
    this.fatal = definition.fatal;
    this.retryable = definition.retryable;
    this.closeCode = definition.closeCode;
    this.offset = context.offset ?? 0;
    this.length = context.length ?? 0;
  }
}

export function isProtocolError(value: unknown): value is ProtocolError {
  return value instanceof ProtocolError;
}
