/**
 * Wire constants of protocol bigup.1 (see SPEC.md, sections "Transport" and "Limits").
 * Every number a peer must agree on lives here, so the spec and the code can be compared line by line.
 */

/** WebSocket subprotocol token that carries protocol version 1. */
export const SUBPROTOCOL_V1 = 'bigup.1';
/**
 * WebSocket subprotocol token of version 2: the bigup.1 messages with a stream id, several uploads
 * on one connection, and a capability handshake (HELLO / WELCOME) for later extensions (SPEC.md 16).
 */
export const SUBPROTOCOL_V2 = 'bigup.2';
/** All subprotocols this implementation speaks, most preferred first. */
export const SUPPORTED_SUBPROTOCOLS: readonly string[] = [SUBPROTOCOL_V2, SUBPROTOCOL_V1];

/** Message type codes (first byte of every message). */
export const MessageType = {
  OPEN: 0x01,
  RESUME: 0x02,
  ACCEPT: 0x03,
  DATA: 0x10,
  ACK: 0x11,
  WINDOW: 0x12,
  COMPLETE: 0x20,
  RESULT: 0x21,
  ERROR: 0x30,
  TERMINATE: 0x40,
  TERMINATED: 0x41,
} as const;
export type MessageTypeCode = (typeof MessageType)[keyof typeof MessageType];

/** Which side may send each message type. */
export const CLIENT_MESSAGE_TYPES: ReadonlySet<number> = new Set([
  MessageType.OPEN,
  MessageType.RESUME,
  MessageType.DATA,
  MessageType.COMPLETE,
  MessageType.TERMINATE,
]);
export const SERVER_MESSAGE_TYPES: ReadonlySet<number> = new Set([
  MessageType.ACCEPT,
  MessageType.ACK,
  MessageType.WINDOW,
  MessageType.RESULT,
  MessageType.ERROR,
  MessageType.TERMINATED,
]);

/** Message types that exist in bigup.2 only (SPEC.md 16.3); in bigup.1 they are UNKNOWN_MESSAGE_TYPE. */
export const MessageTypeV2 = {
  HELLO: 0x04,
  WELCOME: 0x05,
  /** Client's hashes of chunks it believes acked (REPLACE_CHUNK, SPEC.md 16.9). */
  VERIFY: 0x13,
  /** Server's answer to VERIFY: the chunks it withdrew. */
  VERIFIED: 0x14,
  /** Server asks for proof of possession before an instant upload (SPEC.md 16.10). */
  CHALLENGE: 0x15,
  /** Client's answer to CHALLENGE: one hash per byte range. */
  PROOF: 0x16,
} as const;

/**
 * Capability ids of the bigup.2 handshake (SPEC.md 16.4). A peer ignores ids it does not know, so
 * adding one needs no new version. PROOF_OF_POSSESSION (16.10) lets an OPEN that
 * carries a digest complete at once from content the server holds (CHALLENGE / PROOF). REPLACE_CHUNK (16.9)
 * lets a resuming client withdraw acked chunks whose bytes changed (VERIFY / VERIFIED).
 * OPEN_WITH_DATA (16.11) lets a small file travel whole in its OPEN, answered by RESULT alone.
 */
export const Capability = {
  /** Value: most uploads (streams) open at once on the connection. Without it: 1. */
  MULTIPLEX: 0x0001,
  PROOF_OF_POSSESSION: 0x0002,
  REPLACE_CHUNK: 0x0003,
  /** Value: the largest file size an OPEN may carry whole (16.11). */
  OPEN_WITH_DATA: 0x0004,
} as const;

/** bigup.2 limits (SPEC.md 16.7), in addition to `Limits`. */
export const LimitsV2 = {
  /** Most capability entries in one HELLO or WELCOME. */
  MAX_CAPABILITIES: 64,
  /** Largest stream id (u32). 0 means "the connection", never an upload. */
  MAX_STREAM_ID: 0xffff_ffff,
  /** Most chunks one VERIFY lists (12 bytes each: the message stays under MAX_CONTROL_MESSAGE). */
  MAX_VERIFY_CHUNKS: 4096,
  /** Byte ranges in one CHALLENGE (and hashes in its PROOF). */
  MAX_PROOF_RANGES: 16,
  /** Longest byte range a CHALLENGE may ask for. */
  MAX_PROOF_RANGE_BYTES: 1_048_576,
  /** Nonce of a CHALLENGE, bytes. */
  NONCE_BYTES: 16,
  /**
   * Largest file an OPEN may carry whole (16.11): `Limits.MIN_CHUNK_SIZE`, so such a file is one
   * chunk at any agreed chunk size, and its digest does not depend on the chunk size.
   */
  MAX_INLINE_FILE_SIZE: 65_536,
} as const;

/** bigup.2 header sizes: the stream id (u32) sits right after the 2-byte common header. */
export const HeaderSizeV2 = {
  STREAM: 4,
  DATA: 22,
  HELLO_FIXED: 4,
  CAPABILITY: 6,
  /** Type, flags, stream, count. */
  VERIFY_FIXED: 8,
  /** Chunk index (u32) and its hash (u64). */
  VERIFY_ENTRY: 12,
  /** Type, flags, stream, nonce (16), count (u8). */
  CHALLENGE_FIXED: 23,
  /** Offset (u64) and length (u32). */
  CHALLENGE_RANGE: 12,
  /** The chunk size (u32) after the ranges, with flag CHUNK_SIZE. */
  CHALLENGE_CHUNK_SIZE: 4,
  /** Type, flags, stream, count (u8). */
  PROOF_FIXED: 15,
} as const;

/** Flag bits (second byte of every message). Bits not listed for a type are reserved and MUST be zero. */
/** OPEN: WITH_DATA (bigup.2 with OPEN_WITH_DATA granted, 16.11) the file's bytes follow the metadata. */
export const OpenFlags = { HAS_DIGEST: 0x01, WITH_DATA: 0x02 } as const;
export const AcceptFlags = { CREATED: 0x01, DURABLE: 0x02 } as const;
export const CompleteFlags = { HAS_DIGEST: 0x01 } as const;
/** RESULT: INSTANT (bigup.2, 16.11) the upload was completed from content the server held. */
export const ResultFlags = { INSTANT: 0x01 } as const;
export const ErrorFlags = { FATAL: 0x01, RETRYABLE: 0x02 } as const;
/** bigup.2 CHALLENGE (16.10): CHUNK_SIZE, a u32 chunk size follows the ranges. */
export const ChallengeFlags = { CHUNK_SIZE: 0x01 } as const;

/** Largest integer a u64 field may carry: 2^53 - 1, so every value is exact in an IEEE double. */
export const MAX_U64_VALUE = Number.MAX_SAFE_INTEGER;

/** Protocol limits. A message that exceeds one is refused at its length field, before its bytes are used. */
export const Limits = {
  /** Largest non-DATA message a client may send. */
  MAX_CONTROL_MESSAGE: 65_536,
  /** Byte length of an upload id. */
  UPLOAD_ID_BYTES: 16,
  /** Byte length of a resume secret. */
  SECRET_BYTES: 32,
  /** File name: 1 to 1024 bytes of UTF-8. */
  MAX_NAME_BYTES: 1024,
  /** Content type: 0 to 255 bytes of UTF-8. */
  MAX_CONTENT_TYPE_BYTES: 255,
  /** Auth token: 0 to 4096 bytes of UTF-8. */
  MAX_TOKEN_BYTES: 4096,
  /** Metadata: at most 64 entries... */
  MAX_METADATA_ENTRIES: 64,
  /** ...keys of 1 to 255 bytes... */
  MAX_METADATA_KEY_BYTES: 255,
  /** ...values of 0 to 4096 bytes... */
  MAX_METADATA_VALUE_BYTES: 4096,
  /** ...and at most 16 KiB of keys and values together. */
  MAX_METADATA_TOTAL_BYTES: 16_384,
  /** Error message text: 0 to 1024 bytes of UTF-8. */
  MAX_ERROR_MESSAGE_BYTES: 1024,
  /** Smallest chunk size a server may agree to. */
  MIN_CHUNK_SIZE: 65_536,
  /** Largest chunk size a server may agree to (64 MiB). */
  MAX_CHUNK_SIZE: 67_108_864,
  /** Most ranges in one ACK message. */
  MAX_ACK_RANGES: 65_535,
  /** Most ranges in one ACCEPT message (16 MiB of ranges). */
  MAX_ACCEPT_RANGES: 1_048_576,
} as const;

/** Fixed header sizes in bytes. */
export const HeaderSize = {
  OPEN_FIXED: 22,
  RESUME_FIXED: 50,
  ACCEPT_FIXED: 70,
  DATA: 18,
  ACK_FIXED: 4,
  WINDOW: 6,
  COMPLETE: 10,
  RESULT: 34,
  ERROR_FIXED: 16,
  TERMINATE: 2,
  TERMINATED: 18,
  RANGE: 16,
} as const;

/** WebSocket close codes used by bigup.1 (RFC 6455 section 7.4 plus the private range 4000-4999). */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  UNSUPPORTED_DATA: 1003,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  /** Another connection opened the same upload and took it over. */
  TAKEN_OVER: 4001,
  /** No message within the idle timeout, or no pong to a ping. */
  IDLE_TIMEOUT: 4002,
  /** Sustained throughput below the server's minimum. */
  TOO_SLOW: 4003,
  /** The upload was deleted or expired while this connection had it open. */
  UPLOAD_GONE: 4004,
  /** The handshake carried no supported subprotocol. */
  NO_SUPPORTED_VERSION: 4005,
} as const;
