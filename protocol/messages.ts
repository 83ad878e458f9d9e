/**
 * Decoded forms of every bigup.1 message (SPEC.md, "Messages"). Plain data: no methods, no I/O.
 * 64-bit sizes and offsets are numbers (the codec refuses values above 2^53-1); 64-bit hashes are
 * bigints because every bit of them matters.
 */

/** A half-open byte range [start, end). */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

export interface OpenMessage {
  readonly type: 'open';
  readonly fileSize: number;
  /** Proposed chunk size in bytes; 0 lets the server choose. */
  readonly chunkSize: number;
  /** Whole-file digest the server must verify at completion, if the client knows it up front. */
  readonly digest?: bigint;
  readonly name: string;
  readonly contentType: string;
  /** Per-upload authorization token; empty when none. */
  readonly token: string;
  /** Application metadata. A null-prototype record: keys like `__proto__` are plain keys. */
  readonly metadata: Readonly<Record<string, string>>;
  /**
   * bigup.2 with OPEN_WITH_DATA (SPEC.md 16.11): the whole file, `fileSize` bytes, sent with the
   * OPEN (flag WITH_DATA; `digest` is then required).
   */
  readonly data?: Uint8Array;
}

export interface ResumeMessage {
  readonly type: 'resume';
  readonly uploadId: Uint8Array;
  readonly secret: Uint8Array;
  readonly token: string;
}

export interface AcceptMessage {
  readonly type: 'accept';
  /** True when OPEN created the upload (and `secret` is meaningful). */
  readonly created: boolean;
  /** True when the server fdatasyncs before every ACK. */
  readonly durable: boolean;
  readonly uploadId: Uint8Array;
  /** The resume secret; all zero bytes when the upload was resumed. */
  readonly secret: Uint8Array;
  readonly fileSize: number;
  readonly chunkSize: number;
  readonly window: number;
  /** Byte ranges already acked, sorted, non-overlapping, non-adjacent. */
  readonly ranges: readonly ByteRange[];
}

/** DATA as decoded: the payload is a view into the received message, never a copy. */
export interface DataMessage {
  readonly type: 'data';
  readonly offset: number;
  readonly hash: bigint;
  readonly payload: Uint8Array;
}

export interface AckMessage {
  readonly type: 'ack';
  readonly ranges: readonly ByteRange[];
}

export interface WindowMessage {
  readonly type: 'window';
  readonly window: number;
}

export interface CompleteMessage {
  readonly type: 'complete';
  readonly digest?: bigint;
}

export interface ResultMessage {
  readonly type: 'result';
  readonly uploadId: Uint8Array;
  readonly fileSize: number;
  readonly digest: bigint;
  /**
   * bigup.2 (flag INSTANT, SPEC.md 16.11): the server completed the upload from content it already
   * held, storing no byte of this client's. Absent in bigup.1.
   */
  readonly instant?: boolean;
}

export interface ErrorMessage {
  readonly type: 'error';
  readonly code: number;
  readonly fatal: boolean;
  readonly retryable: boolean;
  /** Start of the DATA range the error concerns; 0 with length 0 when it concerns no range. */
  readonly offset: number;
  readonly length: number;
  readonly message: string;
}

export interface TerminateMessage {
  readonly type: 'terminate';
}

export interface TerminatedMessage {
  readonly type: 'terminated';
  readonly uploadId: Uint8Array;
}

export type ClientMessage =
  OpenMessage | ResumeMessage | DataMessage | CompleteMessage | TerminateMessage;
export type ServerMessage =
  AcceptMessage | AckMessage | WindowMessage | ResultMessage | ErrorMessage | TerminatedMessage;
export type Message = ClientMessage | ServerMessage;

// ---------------------------------------------------------------------------------------------
// bigup.2 (SPEC.md section 16)

/** One capability of the bigup.2 handshake: an id and a u32 value whose meaning the id defines. */
export interface CapabilityEntry {
  readonly id: number;
  readonly value: number;
}

/** HELLO (client, first message of a bigup.2 connection): the capabilities the client wants. */
export interface HelloMessage {
  readonly type: 'hello';
  /** Strictly ascending ids. */
  readonly capabilities: readonly CapabilityEntry[];
}

/** WELCOME (server, answers HELLO): the capabilities granted, a subset of those offered. */
export interface WelcomeMessage {
  readonly type: 'welcome';
  readonly capabilities: readonly CapabilityEntry[];
}

/**
 * A bigup.2 message with its stream: the upload on the connection it concerns. Stream 0 is the
 * connection itself (HELLO, WELCOME, WINDOW, and an ERROR about no single upload).
 */
export interface Frame<M> {
  readonly stream: number;
  readonly message: M;
}

/** A chunk the client believes acked, with the hash of its bytes in the client's file now. */
export interface ChunkClaim {
  readonly index: number;
  readonly hash: bigint;
}

/** VERIFY (client, REPLACE_CHUNK granted): the client's hashes of chunks it believes acked. */
export interface VerifyMessage {
  readonly type: 'verify';
  /** 1 to LimitsV2.MAX_VERIFY_CHUNKS entries, strictly ascending by index. */
  readonly chunks: readonly ChunkClaim[];
}

/** VERIFIED (server, answers VERIFY): the listed chunks the server withdrew from the acked set. */
export interface VerifiedMessage {
  readonly type: 'verified';
  /** Strictly ascending chunk indexes, each one listed in the VERIFY. */
  readonly withdrawn: readonly number[];
}

/** One byte range of a CHALLENGE: [offset, offset + length) of the file. */
export interface ProofRange {
  readonly offset: number;
  readonly length: number;
}

/** CHALLENGE (server, PROOF_OF_POSSESSION granted): prove you hold these bytes (SPEC.md 16.10). */
export interface ChallengeMessage {
  readonly type: 'challenge';
  /** LimitsV2.NONCE_BYTES random bytes. */
  readonly nonce: Uint8Array;
  /** 1 to LimitsV2.MAX_PROOF_RANGES ranges. */
  readonly ranges: readonly ProofRange[];
  /**
   * The chunk size the PROOF's digest is taken at, when the server names one (flag CHUNK_SIZE:
   * the content it holds is at the chunk size it would agree, not the one proposed); absent: the
   * OPEN's proposed chunk size.
   */
  readonly chunkSize?: number;
}

/**
 * PROOF (client, answers CHALLENGE): the whole-file digest the content is looked up by, and
 * xxHash64(nonce || bytes of range i) for each range, in order.
 */
export interface ProofMessage {
  readonly type: 'proof';
  readonly digest: bigint;
  readonly hashes: readonly bigint[];
}

export type ClientMessageV2 = ClientMessage | HelloMessage | VerifyMessage | ProofMessage;
export type ServerMessageV2 = ServerMessage | WelcomeMessage | VerifiedMessage | ChallengeMessage;
export type MessageV2 = ClientMessageV2 | ServerMessageV2;
