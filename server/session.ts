/**
 * One WebSocket connection: the server side of the protocol (protocol/SPEC.md).
 *
 * bigup.1 carries one upload at a time (section 5: IDLE -> OPEN|RESUME -> ACTIVE -> COMPLETE ->
 * IDLE). bigup.2 (section 16) carries several at once, each on its own *stream* with the same
 * per-upload states, after a HELLO / WELCOME handshake. Both run on the same code: an `UploadStream`
 * holds one upload's state on this connection (bigup.1 has at most one, on the invisible stream 0),
 * and the Session holds what belongs to the connection: the window and the bytes outstanding over
 * all streams, refusals, idle and throughput timers, liveness, the socket's pause state.
 *
 * Per DATA message the work is O(1) besides the hash: bounds checks, one xxHash64 over the view the
 * socket handed us, a state lookup and a positional write of that same view.
 */
import { randomBytes, randomInt } from 'node:crypto';
import type { FastifyBaseLogger, FastifyRequest } from 'fastify';
import type { RawData, WebSocket } from 'ws';
import {
  Capability,
  Errors,
  HeaderSize,
  HeaderSizeV2,
  ProtocolError,
  RangeSet,
  SUBPROTOCOL_V2,
  bytesToHex,
  decodeClientFrame,
  decodeClientMessage,
  LimitsV2,
  encodeAccept,
  encodeAck,
  encodeChallenge,
  encodeProtocolError,
  encodeResult,
  encodeTerminated,
  encodeVerified,
  encodeWelcome,
  Limits,
  multiplexOf,
  wholeFileDigest,
  withStream,
  type CapabilityEntry,
  type ClientMessageV2,
  type CompleteMessage,
  type DataMessage,
  type Hasher,
  type HelloMessage,
  type OpenMessage,
  type ResumeMessage,
  type VerifyMessage,
  type ProofMessage,
} from '../protocol/index.js';
import type { ContentRef } from './store/types.js';
import type { ServerMetrics } from './metrics.js';
import { ticketOf } from './handshake.js';
import { clientAddress } from './client-address.js';
import type { OpenRateLimiter } from './quota.js';
import { storageErrorFor } from './storage-errors.js';
import { sameBytes } from './constant-time.js';
import type { ResolvedOptions } from './options.js';
import type { OpenUpload, UploadOwner } from './upload.js';
import type { UploadRegistry } from './uploads.js';

/** What a session needs from the plugin. */
export interface SessionContext {
  readonly options: ResolvedOptions;
  readonly registry: UploadRegistry;
  readonly hasher: Hasher;
  readonly metrics: ServerMetrics;
  /** OPENs per client address (a shared bucket across its connections). */
  readonly openRate: OpenRateLimiter;
  /**
   * OPENs per client address on bigup.2 connections with several streams granted
   * (`multiplexedOpensPerSecond`): a folder pipelined at disk speed is not the flood the first
   * bucket is sized for, but it still has a bound.
   */
  readonly multiplexedOpenRate?: OpenRateLimiter;
  readonly shuttingDown: () => boolean;
  /** A fresh completion (RESULT already sent). */
  readonly completed: (upload: OpenUpload) => void;
}

/**
 * Per stream: OPENING from OPEN/RESUME to ACCEPT, ACTIVE after ACCEPT, BUSY while a COMPLETE or
 * TERMINATE is being answered (SPEC.md 5's COMPLETING; nothing else is allowed on the stream then).
 */
type StreamState = 'opening' | 'active' | 'busy';

const ZERO_SECRET = new Uint8Array(Limits.SECRET_BYTES);
/**
 * The slowest read of a whole file a client answering CHALLENGE is given time for: its PROOF must
 * arrive within `idleTimeout` plus the file size at this rate (SPEC.md 16.10).
 */
export const PROOF_READ_BYTES_PER_SECOND = 32 * 1024 * 1024;
/** Length of each range a proof of possession asks for (SPEC.md 16.10). */
const INSTANT_RANGE_BYTES = 65_536;

/**
 * The largest OPEN a client can send (every string and the metadata at their limits, with their
 * u16 length prefixes), which also covers RESUME: until ACCEPT no larger message is valid, so
 * nothing larger is buffered from a client that has not opened an upload. bigup.2 adds the stream.
 */
export const MAX_MESSAGE_BEFORE_ACCEPT =
  HeaderSize.OPEN_FIXED +
  4 * 2 +
  Limits.MAX_NAME_BYTES +
  Limits.MAX_CONTENT_TYPE_BYTES +
  Limits.MAX_TOKEN_BYTES +
  Limits.MAX_METADATA_ENTRIES * 4 +
  Limits.MAX_METADATA_TOTAL_BYTES;

/** ws reads `_maxPayload` at each frame header; lowering or raising it applies to the next frame. */
function setMaxPayload(ws: WebSocket, bytes: number): void {
  const receiver = (ws as unknown as { _receiver?: { _maxPayload?: number } })._receiver;
  if (receiver) receiver._maxPayload = bytes;
}

/** Faults of OPEN, RESUME and COMPLETE (writes are mapped by the upload, see storage-errors.ts). */
function asProtocolError(error: unknown): ProtocolError {
  return storageErrorFor(error, 'other');
}

/**
 * bigup.2 (SPEC.md 16.6): errors about one upload (0x01xx, and 0x02xx but WINDOW_EXCEEDED) go on
 * its stream, and FATAL there ends the stream only; every other error is the connection's.
 */
export function endsStreamOnly(error: ProtocolError): boolean {
  const group = error.code & 0xff00;
  return group === 0x0100 || (group === 0x0200 && error.code !== Errors.WINDOW_EXCEEDED.code);
}

/** Uploads one connection remembers having accepted (Session.accepted). */
const ACCEPTED_UPLOADS_KEPT = 4096;

/** One upload's state on this connection. It is the upload's owner (takeover evicts the stream). */
class UploadStream implements UploadOwner {
  state: StreamState = 'opening';
  upload: OpenUpload | undefined;
  /** Bumped when the stream leaves its upload: answers for older DATA are dropped. */
  generation = 0;
  /** Payload bytes of this stream received and not yet answered. */
  outstanding = 0;
  answerWaiters: Array<() => void> = [];
  pendingAcks = new RangeSet();
  ended = false;
  /**
   * Highest chunk index a VERIFY listed on this stream (-1: none yet). Each VERIFY lists indexes
   * above it, so a stream verifies every chunk at most once (SPEC.md 16.9).
   */
  verifiedThrough = -1;
  /** A CHALLENGE is out (SPEC.md 16.10): the PROOF (or the stream's end) settles it. */
  proof: { readonly count: number; readonly settle: (proof?: ProofMessage) => void } | undefined;

  constructor(
    private readonly session: Session,
    readonly id: number,
    readonly address: string,
  ) {}

  evict(error: ProtocolError): void {
    this.session.evictStream(this, error);
  }
}

export class Session {
  /** The client as the per-address bounds count it (client-address.ts). */
  private addressKey: string | undefined;
  private get address(): string {
    this.addressKey ??= clientAddress(this.request.ip);
    return this.addressKey;
  }
  /** 1 or 2, from the negotiated subprotocol. */
  private readonly version: 1 | 2;
  private closedFlag = false;
  /** bigup.2: HELLO received (it must come first) and the MULTIPLEX number granted. */
  private helloDone = false;
  private granted = 1;
  /** bigup.2: REPLACE_CHUNK granted in WELCOME (VERIFY allowed, SPEC.md 16.9). */
  private replaceChunk = false;
  /** bigup.2: PROOF_OF_POSSESSION granted (instant upload, SPEC.md 16.10). */
  private proofOfPossession = false;
  /** bigup.2: the client offered PROOF_OF_POSSESSION with value 1 (CHALLENGE flag CHUNK_SIZE). */
  private challengeNamesChunkSize = false;
  /** bigup.2: the largest file an OPEN may carry whole (OPEN_WITH_DATA granted, SPEC.md 16.11). */
  private inlineFileLimit = 0;
  /** ACCEPT was sent on this connection: DATA up to the largest chunk may come since. */
  private dataAllowed = false;
  /**
   * bigup.2 with several streams granted: the batch of this connection's uploads with a relative
   * path (UploadInfo.batch), chosen at the first one.
   */
  private batch: string | undefined;
  /** Open streams by id (bigup.1: at most one, id 0). */
  private readonly streams = new Map<number, UploadStream>();
  /** bigup.2: the largest stream id opened so far; ids only grow (SPEC.md 16.5). */
  private highestStream = 0;
  /** Payload bytes received and not yet answered (ACK or ERROR), over all streams. */
  private outstanding = 0;
  /** Largest window advertised on this connection: the one enforced. */
  private maxWindow = 0;
  private paused = false;
  /** Set by shutdown: the socket stays paused whatever the answers do. */
  private stopping = false;
  private answerWaiters: Array<() => void> = [];
  /** Last time the connection moved an upload forward (see `idleTimeout`); refusals do not count. */
  private lastProgressAt = Date.now();
  private periodStart = Date.now();
  /** Bytes newly stored in the current throughput period. */
  private periodBytes = 0;
  /**
   * Uploads accepted on this connection: a RESUME of one on a new stream is not progress, so
   * re-accepting uploads cannot hold off the idle timeout (a reviewer kept four uploads without a
   * byte by re-RESUMEing them). Entries go when the upload completes or is terminated; at most
   * ACCEPTED_UPLOADS_KEPT, oldest forgotten first.
   */
  private readonly accepted = new Set<string>();
  /**
   * Uploads held (active) when the throughput period began: the ones `minThroughput` judges at
   * its end if still held, whatever streams they moved between (re-accepting is no fresh start).
   */
  private heldAtPeriodStart = new Set<string>();
  /** Non-fatal refusals sent on this connection (bounded by `maxRefusedMessages`). */
  private refusals = 0;
  private alive = true;
  /** The socket is corked until the end of this turn of the event loop (`holdWritesForThisTurn`). */
  private writesHeld = false;
  /** Streams with ranges to ACK at the end of this turn (`answerAck`). */
  private readonly acksDue = new Set<UploadStream>();
  private acksScheduled = false;
  private readonly log: FastifyBaseLogger;

  constructor(
    private readonly ws: WebSocket,
    /** The upgrade request: address, ticket and the authorization hook's context. */
    private readonly request: FastifyRequest,
    private readonly ctx: SessionContext,
  ) {
    this.log = request.log;
    this.version = ws.protocol === SUBPROTOCOL_V2 ? 2 : 1;
    ws.binaryType = 'nodebuffer';
    setMaxPayload(ws, MAX_MESSAGE_BEFORE_ACCEPT + (this.version === 2 ? HeaderSizeV2.STREAM : 0));
    ws.on('message', (data: RawData, isBinary: boolean) =>
      this.onMessage(data as Buffer, isBinary),
    );
    ws.on('pong', () => {
      this.alive = true;
    });
    ws.on('close', () => this.onClose());
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  private get dataHeader(): number {
    return this.version === 2 ? HeaderSizeV2.DATA : HeaderSize.DATA;
  }

  // ------------------------------------------------------------------------------------------
  // Sending

  private send(bytes: Uint8Array): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    if (this.ws.bufferedAmount + bytes.byteLength > this.ctx.options.maxQueuedBytes) {
      this.cutUnreadSocket();
      return;
    }
    this.holdWritesForThisTurn();
    this.ws.send(bytes);
  }

  /**
   * Answers produced in one turn of the event loop (ACCEPTs, ACKs, RESULTs of many streams) leave
   * in one socket write: the socket is corked until the loop's check phase. One write per message
   * was a writev system call each, three per small file (issue 16). ws's own cork around a frame
   * nests inside this one; `end()` and `destroy()` (close, terminate) release it themselves.
   */
  private holdWritesForThisTurn(): void {
    if (this.writesHeld) return;
    const socket = this.socket();
    if (!socket) return;
    this.writesHeld = true;
    socket.cork();
    setImmediate(() => {
      this.writesHeld = false;
      socket.uncork();
    });
  }

  /** Run `send`, its messages leaving in one socket write when it returns (or with the turn's). */
  private withWritesHeld(send: () => void): void {
    const socket = this.writesHeld ? undefined : this.socket();
    if (!socket) {
      send();
      return;
    }
    this.writesHeld = true;
    socket.cork();
    try {
      send();
    } finally {
      this.writesHeld = false;
      socket.uncork();
    }
  }

  private socket(): { cork(): void; uncork(): void } | undefined {
    // ws keeps its socket private; it is a net.Socket (or tls) in every version we run on.
    return (this.ws as unknown as { _socket?: { cork(): void; uncork(): void } })._socket;
  }

  /** A message about `stream`'s upload: bigup.2 puts the stream id in. */
  private sendOn(stream: UploadStream, bytes: Uint8Array): void {
    this.send(this.version === 2 ? withStream(stream.id, bytes) : bytes);
  }

  /**
   * The client stopped reading while we still have answers for it: stop reading its messages, say
   * why (1008) and drop the connection without waiting for a close frame it will never read.
   */
  private cutUnreadSocket(): void {
    if (this.closedFlag) return;
    this.log.warn(
      { queued: this.ws.bufferedAmount, limit: this.ctx.options.maxQueuedBytes },
      'closing bigup connection: the client does not read its answers',
    );
    this.ctx.metrics.errors.inc({ code: Errors.LIMIT_EXCEEDED.name });
    this.leaveAll();
    this.closedFlag = true;
    this.ws.pause();
    this.ws.close(Errors.LIMIT_EXCEEDED.closeCode, 'send queue full: the client does not read');
    const ws = this.ws;
    setTimeout(() => ws.terminate(), 1000).unref();
  }

  /** Send an ERROR (on `stream` when bigup.2 puts it there); false when it became the refusal past the limit. */
  private sendError(error: ProtocolError, stream?: UploadStream): boolean {
    // A refused authorization counts even where it ends only a stream (bigup.2): otherwise one
    // connection could try tokens without end, where bigup.1 spends a connection on each.
    const counted = !error.fatal || error.code === Errors.UNAUTHORIZED.code;
    // The refusal past the limit becomes the fatal one.
    if (counted && !this.countRefusal()) return false;
    this.ctx.metrics.errors.inc({ code: error.codeName });
    const bytes = encodeProtocolError(error);
    if (this.version === 2)
      this.send(withStream(stream && endsStreamOnly(error) ? stream.id : 0, bytes));
    else this.send(bytes);
    return true;
  }

  /** The connection moved an upload forward: it is neither idle nor dead. */
  private progressed(): void {
    this.lastProgressAt = Date.now();
    this.alive = true;
  }

  /** Send a connection-level error; fatal ones close the connection with the registry's code. */
  private fail(error: ProtocolError): void {
    if (this.closedFlag) return;
    this.sendError(error);
    if (error.fatal) {
      this.log.debug({ code: error.codeName }, 'closing bigup connection after fatal error');
      this.closeWith(error.closeCode, error.codeName);
    }
  }

  /**
   * An error about `stream`'s upload. bigup.1: as `fail` (the connection is the stream). bigup.2:
   * an upload-level error goes on the stream and, when fatal, ends the stream only (SPEC.md 16.6).
   */
  private failStream(stream: UploadStream, error: ProtocolError): void {
    if (this.closedFlag) return;
    if (this.version === 1 || !endsStreamOnly(error)) {
      this.fail(error);
      return;
    }
    if (!this.sendError(error, stream)) return;
    if (error.fatal) this.endStream(stream);
  }

  /** Close with `code`; the reason names the error (SPEC.md 7.10), as the ERROR just sent did. */
  private closeWith(code: number, reason: string): void {
    this.leaveAll();
    this.closedFlag = true;
    this.ws.close(code, reason);
  }

  private leaveAll(): void {
    for (const stream of [...this.streams.values()]) this.endStream(stream);
  }

  /**
   * The stream is over: let go of its upload (its writes continue and are journaled; answers are
   * dropped) and forget its unanswered bytes (SPEC.md 16.7: the ending answers them).
   */
  private endStream(stream: UploadStream): void {
    if (stream.ended) return;
    stream.ended = true;
    stream.proof?.settle();
    this.streams.delete(stream.id);
    const upload = stream.upload;
    stream.upload = undefined;
    stream.generation++;
    this.outstanding -= stream.outstanding;
    stream.outstanding = 0;
    stream.pendingAcks = new RangeSet();
    wake(stream.answerWaiters);
    stream.answerWaiters = [];
    if (this.outstanding === 0) this.wakeAnswerWaiters();
    this.updatePause();
    if (upload) {
      this.ctx.registry.release(upload, stream);
      this.ctx.metrics.uploadsActive.set(this.ctx.registry.ownedCount);
    }
  }

  // ------------------------------------------------------------------------------------------
  // Receiving

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (this.closedFlag) return;
    if (!isBinary) {
      this.fail(new ProtocolError(Errors.TEXT_MESSAGE, 'text messages are not part of bigup'));
      return;
    }
    let message: ClientMessageV2;
    let streamId = 0;
    try {
      if (this.version === 2) {
        ({ stream: streamId, message } = decodeClientFrame(data, {
          maxDataMessage: this.ctx.options.maxChunkSize + HeaderSizeV2.DATA,
        }));
      } else {
        const chunkSize =
          this.streams.get(0)?.upload?.info.chunkSize ?? this.ctx.options.maxChunkSize;
        message = decodeClientMessage(data, { maxDataMessage: chunkSize + HeaderSize.DATA });
      }
    } catch (error) {
      this.fail(asProtocolError(error));
      return;
    }
    if (this.version === 2) {
      if (message.type === 'hello') {
        this.onHello(message);
        return;
      }
      if (!this.helloDone) {
        this.fail(
          new ProtocolError(
            Errors.UNEXPECTED_MESSAGE,
            'the first message of a bigup.2 connection must be HELLO',
          ),
        );
        return;
      }
    }
    if (message.type === 'hello') return; // bigup.1 decoders never produce it
    if (
      message.type === 'open' &&
      message.data &&
      (this.inlineFileLimit === 0 || message.fileSize > this.inlineFileLimit)
    ) {
      this.fail(
        new ProtocolError(
          Errors.LIMIT_EXCEEDED,
          this.inlineFileLimit === 0
            ? 'OPEN_WITH_DATA was not granted on this connection'
            : `an OPEN may carry a file of up to ${this.inlineFileLimit} bytes`,
        ),
      );
      return;
    }
    if (message.type === 'open' || message.type === 'resume') {
      const stream = this.openStream(streamId);
      if (!stream) return;
      const work =
        message.type === 'open' ? this.onOpen(stream, message) : this.onResume(stream, message);
      this.guard(work);
      return;
    }
    const stream = this.streams.get(streamId);
    if (!stream) {
      // bigup.2: a message that crossed the end of its stream is dropped (SPEC.md 16.5).
      if (this.version === 2 && streamId <= this.highestStream) return;
      this.fail(
        new ProtocolError(
          Errors.UNEXPECTED_MESSAGE,
          `${message.type.toUpperCase()} is only allowed after ACCEPT`,
        ),
      );
      return;
    }
    if (message.type === 'proof') {
      this.onProof(stream, message);
      return;
    }
    if (message.type === 'data') {
      this.onData(stream, message, data.byteLength);
      return;
    }
    if (stream.state !== 'active') {
      this.fail(
        new ProtocolError(
          Errors.UNEXPECTED_MESSAGE,
          `${message.type.toUpperCase()} is not allowed now`,
        ),
      );
      return;
    }
    if (message.type === 'verify') {
      this.guard(this.onVerify(stream, message));
      return;
    }
    this.guard(
      message.type === 'complete' ? this.onComplete(stream, message) : this.onTerminate(stream),
    );
  }

  private guard(work: Promise<void>): void {
    work.catch((error: unknown) => {
      this.log.error({ err: error }, 'bigup session fault');
      this.fail(asProtocolError(error));
    });
  }

  private onHello(message: HelloMessage): void {
    if (this.helloDone) {
      this.fail(
        new ProtocolError(
          Errors.UNEXPECTED_MESSAGE,
          'HELLO was already received on this connection',
        ),
      );
      return;
    }
    this.helloDone = true;
    const wanted = message.capabilities.find((c) => c.id === Capability.MULTIPLEX);
    // Unknown capabilities (and the reserved ones, not defined yet) are simply not granted.
    this.granted = wanted
      ? Math.max(1, Math.min(wanted.value, this.ctx.options.maxStreamsPerConnection))
      : 1;
    const granted: CapabilityEntry[] = wanted
      ? [{ id: Capability.MULTIPLEX, value: this.granted }]
      : [];
    // REPLACE_CHUNK needs a store that can withdraw records (the disk store can).
    this.replaceChunk =
      this.ctx.registry.retractsChunks &&
      message.capabilities.some((c) => c.id === Capability.REPLACE_CHUNK);
    this.proofOfPossession =
      this.ctx.registry.instantUploads &&
      message.capabilities.some((c) => c.id === Capability.PROOF_OF_POSSESSION);
    // Value 1: the client takes a CHALLENGE that names the chunk size its digest is taken at.
    this.challengeNamesChunkSize = message.capabilities.some(
      (c) => c.id === Capability.PROOF_OF_POSSESSION && c.value === 1,
    );
    if (this.proofOfPossession) granted.push({ id: Capability.PROOF_OF_POSSESSION, value: 0 });
    if (this.replaceChunk) granted.push({ id: Capability.REPLACE_CHUNK, value: 0 });
    const inline = message.capabilities.find((c) => c.id === Capability.OPEN_WITH_DATA);
    this.inlineFileLimit = Math.min(inline?.value ?? 0, this.ctx.options.maxInlineFileSize);
    if (this.inlineFileLimit > 0) {
      granted.push({ id: Capability.OPEN_WITH_DATA, value: this.inlineFileLimit });
      this.raiseMaxPayload();
    }
    this.send(encodeWelcome(granted));
    this.log.debug({ streams: multiplexOf(granted) }, 'bigup.2 connection');
  }

  /** OPEN or RESUME: a new stream, or a refusal (then undefined). */
  private openStream(id: number): UploadStream | undefined {
    if (this.version === 1) {
      if (this.streams.size > 0) {
        this.fail(
          new ProtocolError(
            Errors.UNEXPECTED_MESSAGE,
            'OPEN and RESUME are only allowed when no upload is open',
          ),
        );
        return undefined;
      }
    } else {
      if (id <= this.highestStream) {
        this.fail(
          new ProtocolError(
            Errors.UNEXPECTED_MESSAGE,
            `stream ${id} is not above ${this.highestStream}: stream ids only grow`,
          ),
        );
        return undefined;
      }
      if (this.streams.size >= this.granted) {
        this.fail(
          new ProtocolError(
            Errors.LIMIT_EXCEEDED,
            `more than ${this.granted} uploads open on one connection`,
          ),
        );
        return undefined;
      }
      this.highestStream = id;
    }
    const stream = new UploadStream(this, id, this.address);
    this.streams.set(id, stream);
    return stream;
  }

  /** Shutdown and the authorization hook; returns the client the upload counts against. */
  private async admit(
    kind: 'open' | 'resume',
    token: string,
    extra: { uploadId?: string; fileSize?: number; name?: string; contentType?: string },
  ): Promise<string> {
    if (this.ctx.shuttingDown())
      throw new ProtocolError(Errors.SHUTTING_DOWN, 'the server is shutting down');
    const ticket = ticketOf.get(this.request.raw);
    if (ticket && kind === 'open') {
      // The ticket's claims bound what this connection may open.
      if (ticket.maxSize !== undefined && (extra.fileSize ?? 0) > ticket.maxSize) {
        throw new ProtocolError(
          Errors.FILE_TOO_LARGE,
          `the upload ticket allows files up to ${ticket.maxSize} bytes`,
        );
      }
      if (ticket.name !== undefined && extra.name !== ticket.name)
        throw new ProtocolError(Errors.UNAUTHORIZED, 'the upload ticket is for another file name');
      if (ticket.type !== undefined && extra.contentType !== ticket.type)
        throw new ProtocolError(
          Errors.UNAUTHORIZED,
          'the upload ticket is for another content type',
        );
    }
    const hook = this.ctx.options.authorizeUpload;
    const address = ticket?.sub !== undefined ? `subject:${ticket.sub}` : `address:${this.address}`;
    if (!hook) return address;
    const verdict = await hook({ kind, token, ...extra, request: this.request });
    if (!verdict) throw new ProtocolError(Errors.UNAUTHORIZED, 'the upload token was refused');
    return typeof verdict === 'object' &&
      typeof verdict.subject === 'string' &&
      verdict.subject !== ''
      ? `subject:${verdict.subject}`
      : address;
  }

  private accept(stream: UploadStream, upload: OpenUpload, secret: Uint8Array | undefined): void {
    if (this.closedFlag || stream.ended) {
      this.ctx.registry.release(upload, stream);
      return;
    }
    stream.upload = upload;
    stream.generation++;
    stream.state = 'active';
    if (!this.accepted.has(upload.id)) {
      this.accepted.add(upload.id);
      if (this.accepted.size > ACCEPTED_UPLOADS_KEPT) {
        const oldest = this.accepted.values().next();
        if (!oldest.done) this.accepted.delete(oldest.value);
      }
      this.progressed();
    }
    this.dataAllowed = true;
    this.raiseMaxPayload();
    this.maxWindow = Math.max(this.maxWindow, this.ctx.options.window);
    this.ctx.metrics.uploadsActive.set(this.ctx.registry.ownedCount);
    this.sendOn(
      stream,
      encodeAccept({
        created: secret !== undefined,
        durable: this.ctx.options.durable,
        uploadId: upload.idBytes,
        secret: secret ?? ZERO_SECRET,
        fileSize: upload.info.fileSize,
        chunkSize: upload.info.chunkSize,
        window: this.ctx.options.window,
        ranges: upload.ranges(),
      }),
    );
  }

  /**
   * The largest message this connection may send now (SPEC.md 4.3): an OPEN until an ACCEPT was
   * sent (with a whole file if OPEN_WITH_DATA was granted), a DATA of the largest chunk since.
   */
  private raiseMaxPayload(): void {
    const open =
      MAX_MESSAGE_BEFORE_ACCEPT +
      (this.version === 2 ? HeaderSizeV2.STREAM : 0) +
      this.inlineFileLimit;
    const data = this.dataAllowed ? this.ctx.options.maxChunkSize + this.dataHeader : 0;
    setMaxPayload(this.ws, Math.max(open, data));
  }

  /** This connection's batch for an upload of a folder (see `batch`); undefined otherwise. */
  private batchFor(message: OpenMessage): string | undefined {
    if (this.granted <= 1 || message.metadata.relativePath === undefined) return undefined;
    this.batch ??= bytesToHex(randomBytes(Limits.UPLOAD_ID_BYTES));
    return this.batch;
  }

  private async onOpen(stream: UploadStream, message: OpenMessage): Promise<void> {
    // The slot is decided before the first await, so racing OPENs cannot all pass; the refusal is
    // reported in SPEC.md 7.1's order: authorization, size, space, then capacity.
    const slotRefusal = this.ctx.registry.reserveSlot(this.address);
    const reserved = slotRefusal === undefined;
    try {
      const client = await this.admit('open', message.token, {
        fileSize: message.fileSize,
        name: message.name,
        contentType: message.contentType,
      });
      await this.ctx.registry.checkSizeAndSpace(message.fileSize);
      if (slotRefusal !== undefined) throw new ProtocolError(Errors.TOO_MANY_UPLOADS, slotRefusal);
      this.takeOpenToken();
      if (message.data) {
        await this.openWithData(stream, message, message.data, client);
        return;
      }
      if (
        this.proofOfPossession &&
        (await this.ctx.registry.mayHoldContent(message, client, this.challengeNamesChunkSize))
      ) {
        if (await this.instantUpload(stream, message, client)) return;
      }
      // The connection ended meanwhile (or while the client hashed): create nothing it cannot
      // learn about, which would only hold a reservation until emptyUploadTtl.
      if (this.closedFlag || stream.ended) return;
      const { upload, secret } = await this.ctx.registry.create(
        message,
        stream,
        client,
        undefined,
        this.batchFor(message),
      );
      this.log.info(
        { upload: upload.id, size: upload.info.fileSize, chunkSize: upload.info.chunkSize },
        'upload created',
      );
      this.accept(stream, upload, secret);
    } catch (error) {
      this.refuseOpening(stream, error);
    } finally {
      if (reserved) this.ctx.registry.releaseSlot(this.address);
    }
  }

  /**
   * SPEC.md 16.11, once the OPEN passed 7.1's checks: verify the digest, store the file, complete
   * it and answer RESULT alone. Nothing is acked before, so a failure discards the upload (the
   * client never learned its id) and is answered as a refused OPEN.
   */
  private async openWithData(
    stream: UploadStream,
    message: OpenMessage,
    data: Uint8Array,
    client: string,
  ): Promise<void> {
    const hasher = this.ctx.hasher;
    const hash = data.byteLength > 0 ? hasher.h64(data) : undefined;
    const digest = wholeFileDigest(hasher, hash === undefined ? [] : [hash]);
    if (digest !== message.digest)
      throw new ProtocolError(
        Errors.DIGEST_MISMATCH,
        'the data of this OPEN does not match its digest; nothing was stored',
      );
    if (this.closedFlag || stream.ended) return;
    if (
      this.proofOfPossession &&
      data.byteLength > 0 &&
      (await this.adoptSameBytes(stream, message, data, digest, client))
    )
      return;
    if (this.closedFlag || stream.ended) return;
    const { upload } = await this.ctx.registry.create(
      message,
      stream,
      client,
      undefined,
      this.batchFor(message),
      { completesAtOnce: true },
    );
    const discard = (): Promise<void> =>
      this.ctx.registry
        .remove(upload.id, stream, false, true)
        .then(() => undefined)
        .catch((failure: unknown) => {
          this.log.warn({ err: failure, upload: upload.id }, 'discarding an OPEN with data failed');
        });
    // The connection ended while the upload was created: the client will open the file again.
    if (this.closedFlag || stream.ended) return discard();
    stream.upload = upload;
    let result: { digest: bigint; fresh: boolean };
    try {
      if (hash !== undefined) await upload.write(0, hash, data);
      // Cut meanwhile: completing now would store a file whose RESULT cannot arrive, and the
      // client, which never learnt its id, would store it again.
      if (this.closedFlag || stream.ended)
        throw new ProtocolError(Errors.SHUTTING_DOWN, 'the connection ended before completion');
      result = await upload.complete(digest);
    } catch (error) {
      stream.upload = undefined;
      await discard();
      throw error;
    }
    if (result.fresh) this.ctx.completed(upload);
    // Cut during the completion: the file is stored and its RESULT lost. The client, which never
    // learnt the id, opens the file again (SPEC.md 16.11 says so); with PROOF_OF_POSSESSION
    // granted that second OPEN is adopted from this file rather than stored twice.
    if (this.closedFlag || stream.ended) return;
    this.periodBytes += data.byteLength;
    this.log.info(
      { upload: upload.id, size: upload.info.fileSize },
      'upload completed with its OPEN',
    );
    this.answerResult(stream, upload, result.digest);
  }

  /**
   * SPEC.md 16.10, once content of this size may exist in the client's scope: CHALLENGE, wait for
   * PROOF, and if content with the PROOF's digest in the client's scope matches every range,
   * complete at once (RESULT). False: go on as an OPEN.
   */
  private async instantUpload(
    stream: UploadStream,
    message: OpenMessage,
    client: string,
  ): Promise<boolean> {
    const fileSize = message.fileSize;
    const length = Math.min(INSTANT_RANGE_BYTES, fileSize);
    const ranges = Array.from({ length: this.ctx.options.instantUploadRanges }, () => ({
      offset: randomInt(0, fileSize - length + 1),
      length,
    }));
    const nonce = new Uint8Array(randomBytes(LimitsV2.NONCE_BYTES));
    // Content is held at the chunk size this OPEN would get; named when it is not the proposal.
    const agreed = this.ctx.registry.chunkSizeFor(message);
    const named = agreed !== message.chunkSize ? agreed : undefined;
    // The wait holds an upload slot, and a stream waiting on its client keeps the connection from
    // counting as idle (tick), so the PROOF has a deadline of its own (SPEC.md 16.10): the idle
    // bound, plus the time to read the whole file for its digest at a slow disk's pace.
    const deadline =
      this.ctx.options.idleTimeout + Math.ceil((fileSize / PROOF_READ_BYTES_PER_SECOND) * 1000);
    let timedOut = false;
    const proof = await new Promise<ProofMessage | undefined>((settle) => {
      const timer = setTimeout(() => {
        timedOut = true;
        settle(undefined);
      }, deadline);
      stream.proof = {
        count: ranges.length,
        settle: (answer) => {
          clearTimeout(timer);
          settle(answer);
        },
      };
      this.send(encodeChallenge(stream.id, nonce, ranges, named));
    });
    stream.proof = undefined;
    if (timedOut && !this.closedFlag && !stream.ended)
      throw new ProtocolError(
        Errors.IDLE_TIMEOUT,
        `no PROOF within ${deadline} ms of the CHALLENGE; open the file again`,
      );
    if (!proof || this.closedFlag || stream.ended) return false;
    // A digest the OPEN gave binds the upload (7.8): content with another one cannot be it.
    if (named === undefined && message.digest !== undefined && message.digest !== proof.digest)
      return false;
    const found = await this.ctx.registry.findContent(
      message,
      client,
      proof.digest,
      this.challengeNamesChunkSize,
    );
    let wrong = false;
    for (const ref of found) {
      const verdict = await this.proves(ref, nonce, ranges, proof.hashes);
      wrong ||= verdict === 'wrong';
      if (verdict !== 'proven') continue;
      const upload = await this.ctx.registry.adopt(
        message,
        client,
        ref,
        proof.digest,
        this.batchFor(message),
      );
      // Not shareable here (no hard link: the store does not copy for a proof): an ordinary OPEN.
      if (!upload) return false;
      this.log.info(
        { upload: upload.id, size: fileSize, from: ref.id },
        'instant upload: content proven and adopted',
      );
      this.answerInstant(stream, upload, proof.digest);
      return true;
    }
    // Content with that digest was read and the proof did not match it: each such OPEN made the
    // server read ranges for an answer a client that holds the file never gets wrong, so it
    // counts as a refusal (maxRefusedMessages), though the wire shows an ordinary upload (16.10).
    // A copy the store could not read (moved, a failed GET) is the server's matter, not counted.
    if (wrong) this.countRefusal();
    return false;
  }

  /**
   * Count one refusal (told or not); past `maxRefusedMessages` the connection ends with
   * LIMIT_EXCEEDED and false is returned.
   */
  private countRefusal(): boolean {
    if (this.refusals++ < this.ctx.options.maxRefusedMessages) return true;
    this.fail(
      new ProtocolError(
        Errors.LIMIT_EXCEEDED,
        `more than ${this.ctx.options.maxRefusedMessages} refused messages on one connection`,
      ),
    );
    return false;
  }

  /** RESULT (flag INSTANT) for an upload completed from content the server held. */
  private answerInstant(stream: UploadStream, upload: OpenUpload, digest: bigint): void {
    // INSTANT only where OPEN_WITH_DATA was granted: a peer that predates 16.11 reads the flag as
    // a reserved bit (SPEC.md 16.4: a capability's additions reach only peers granted it).
    if (!this.closedFlag && !stream.ended)
      this.answerResult(stream, upload, digest, this.inlineFileLimit > 0);
    this.ctx.completed(upload);
  }

  /** The stream's last answer: its pending ACKs, then RESULT for the completed upload. */
  private answerResult(
    stream: UploadStream,
    upload: OpenUpload,
    digest: bigint,
    instant = false,
  ): void {
    this.progressed();
    this.accepted.delete(upload.id);
    this.flushAcks(stream);
    this.sendOn(
      stream,
      encodeResult({
        uploadId: upload.idBytes,
        fileSize: upload.info.fileSize,
        digest,
        ...(instant ? { instant } : {}),
      }),
    );
    this.endStream(stream);
  }

  /**
   * An OPEN with data whose bytes equal completed content in the client's scope (SPEC.md 16.11):
   * the bytes themselves are the proof. Adopts it and answers; false when none matches.
   */
  private async adoptSameBytes(
    stream: UploadStream,
    message: OpenMessage,
    data: Uint8Array,
    digest: bigint,
    client: string,
  ): Promise<boolean> {
    // The digest does not depend on the chunk size for a one-chunk file: any size matches.
    const found = await this.ctx.registry.findContent(message, client, digest, true);
    for (const ref of found) {
      const held = await this.ctx.registry
        .readContent(ref, 0, data.byteLength)
        .catch(() => undefined);
      if (!held || !sameBytes(held, data)) continue;
      const upload = await this.ctx.registry.adopt(
        message,
        client,
        ref,
        digest,
        this.batchFor(message),
      );
      if (!upload) return false;
      this.log.info(
        { upload: upload.id, size: data.byteLength, from: ref.id },
        'instant upload: an OPEN with data matched held content',
      );
      this.answerInstant(stream, upload, digest);
      return true;
    }
    return false;
  }

  /** Every hash is xxHash64(nonce || the content's bytes of that range). */
  private async proves(
    ref: ContentRef,
    nonce: Uint8Array,
    ranges: readonly { offset: number; length: number }[],
    hashes: readonly bigint[],
  ): Promise<'proven' | 'wrong' | 'unreadable'> {
    for (let i = 0; i < ranges.length; i++) {
      const { offset, length } = ranges[i];
      const bytes = await this.ctx.registry.readContent(ref, offset, length).catch(() => undefined);
      if (!bytes || bytes.byteLength !== length) return 'unreadable';
      const joined = new Uint8Array(nonce.byteLength + length);
      joined.set(nonce);
      joined.set(bytes, nonce.byteLength);
      if (this.ctx.hasher.h64(joined) !== hashes[i]) return 'wrong';
    }
    return 'proven';
  }

  /** PROOF: only as the answer to this stream's CHALLENGE, with one hash per range. */
  private onProof(stream: UploadStream, message: ProofMessage): void {
    const proof = stream.proof;
    if (!proof || message.hashes.length !== proof.count) {
      this.fail(
        new ProtocolError(
          Errors.UNEXPECTED_MESSAGE,
          proof
            ? `PROOF has ${message.hashes.length} hashes for ${proof.count} ranges`
            : 'PROOF without a CHALLENGE on this stream',
        ),
      );
      return;
    }
    proof.settle(message);
  }

  /** An OPEN or RESUME failed: the stream ends (bigup.1: the connection, since these are fatal). */
  private refuseOpening(stream: UploadStream, error: unknown): void {
    if (!(error instanceof ProtocolError))
      this.log.error({ err: error }, 'bigup open/resume failed');
    const failure = asProtocolError(error);
    this.failStream(stream, failure);
    this.endStream(stream);
  }

  /**
   * One OPEN or RESUME from this address (`opensPerSecond`, or `multiplexedOpensPerSecond` on a
   * bigup.2 connection granted several streams); TOO_MANY_UPLOADS when its bucket is empty.
   */
  private takeOpenToken(): void {
    const multiplexed = this.granted > 1 ? this.ctx.multiplexedOpenRate : undefined;
    const bucket = multiplexed ?? this.ctx.openRate;
    if (bucket.take(this.address)) return;
    const rate =
      multiplexed !== undefined
        ? this.ctx.options.multiplexedOpensPerSecond
        : this.ctx.options.opensPerSecond;
    throw new ProtocolError(
      Errors.TOO_MANY_UPLOADS,
      `more than ${rate} new or resumed uploads per second from this address; retry shortly`,
    );
  }

  private async onResume(stream: UploadStream, message: ResumeMessage): Promise<void> {
    const id = Buffer.from(message.uploadId).toString('hex');
    // Taking over an upload that has a connection needs no new slot; otherwise reserve one now,
    // before the first await, as OPEN does.
    const takeover = this.ctx.registry.peek(id)?.owner !== undefined;
    const slotRefusal = takeover ? undefined : this.ctx.registry.reserveSlot(this.address);
    const reserved = !takeover && slotRefusal === undefined;
    try {
      if (slotRefusal !== undefined) {
        // A takeover's probe takes a token before its answer: so does this one, so the two give
        // the same answers in the same order once the bucket runs dry (no existence oracle, 7.2).
        this.takeOpenToken();
        throw new ProtocolError(Errors.TOO_MANY_UPLOADS, slotRefusal);
      }
      await this.admit('resume', message.token, { uploadId: id });
      // A RESUME loads the upload (its metadata and journal read, its files opened) as an OPEN
      // creates one: it takes from the same per-address bucket, so a client cannot loop RESUME
      // and close on an upload of its own to keep the server reading its journal.
      this.takeOpenToken();
      let upload: OpenUpload;
      try {
        upload = await this.ctx.registry.resume(message.uploadId, message.secret, stream);
      } catch (error) {
        // With every slot taken (in all, or this address's maxUploadsPerAddress), an unknown id
        // gets TOO_MANY_UPLOADS before its secret is looked at; a wrong secret for a connected
        // upload (a takeover takes no slot) must get the same answer (no existence oracle, 7.2).
        const refusal = takeover ? this.ctx.registry.slotRefusal(this.address) : undefined;
        if (
          refusal !== undefined &&
          error instanceof ProtocolError &&
          error.code === Errors.NOT_FOUND.code
        ) {
          throw new ProtocolError(Errors.TOO_MANY_UPLOADS, refusal);
        }
        throw error;
      }
      this.log.info({ upload: upload.id, acked: upload.acked.total }, 'upload resumed');
      this.accept(stream, upload, undefined);
    } catch (error) {
      this.refuseOpening(stream, error);
    } finally {
      if (reserved) this.ctx.registry.releaseSlot(this.address);
    }
  }

  private onData(stream: UploadStream, message: DataMessage, messageBytes: number): void {
    const upload = stream.upload;
    if (stream.state !== 'active' || !upload) {
      this.fail(new ProtocolError(Errors.UNEXPECTED_MESSAGE, 'DATA is only allowed after ACCEPT'));
      return;
    }
    const { offset, payload } = message;
    const length = payload.byteLength;
    if (this.version === 2 && messageBytes > upload.info.chunkSize + HeaderSizeV2.DATA) {
      // bigup.1 decodes with this limit; bigup.2 learns the stream (and its chunk size) first.
      this.fail(
        new ProtocolError(
          Errors.MESSAGE_TOO_LARGE,
          `DATA message of ${messageBytes} bytes exceeds the chunk size plus its header`,
        ),
      );
      return;
    }
    if (this.outstanding > 0 && this.outstanding + length > this.maxWindow) {
      this.fail(
        new ProtocolError(
          Errors.WINDOW_EXCEEDED,
          `${this.outstanding + length} bytes in flight, window ${this.maxWindow}`,
          { offset, length },
        ),
      );
      return;
    }
    this.outstanding += length;
    stream.outstanding += length;
    this.updatePause();
    const { chunkSize, fileSize } = upload.info;
    if (
      offset % chunkSize !== 0 ||
      offset >= fileSize ||
      length !== Math.min(chunkSize, fileSize - offset)
    ) {
      this.answerError(
        stream,
        new ProtocolError(
          Errors.OUT_OF_RANGE,
          `DATA [${offset}, +${length}) is not a whole chunk of this upload`,
          { offset, length },
        ),
      );
      return;
    }
    // SPEC.md 7.4: the payload's own hash (step 5) before what the upload holds (step 6).
    const hash = this.ctx.hasher.h64(payload);
    if (hash !== message.hash) {
      this.answerError(
        stream,
        new ProtocolError(Errors.HASH_MISMATCH, 'payload does not match its xxHash64', {
          offset,
          length,
        }),
      );
      return;
    }
    if (upload.completed) {
      this.answerError(
        stream,
        new ProtocolError(Errors.CONFLICT, 'the upload is already complete', { offset, length }),
      );
      return;
    }
    const index = offset / chunkSize;
    const status = upload.chunkStatus(index);
    if (status && status.hash !== hash) {
      this.answerError(
        stream,
        new ProtocolError(
          Errors.CONFLICT,
          'this chunk was already received with different content',
          { offset, length },
        ),
      );
      return;
    }
    if (status?.status === 'acked') {
      this.answerAck(stream, offset, length);
      return;
    }
    // Only bytes this message newly stores are progress; a duplicate of a chunk being written is not.
    const fresh = status?.status !== 'writing';
    const done = fresh ? upload.write(index, hash, payload) : status.done;
    const generation = stream.generation;
    done.then(
      () => {
        if (generation !== stream.generation) return;
        if (fresh) {
          this.periodBytes += length;
          this.progressed();
        }
        this.answerAck(stream, offset, length);
      },
      (error: unknown) => {
        if (generation === stream.generation) this.fail(asProtocolError(error));
      },
    );
  }

  private answered(stream: UploadStream, length: number): void {
    this.outstanding -= length;
    stream.outstanding -= length;
    this.updatePause();
    if (stream.outstanding === 0) {
      wake(stream.answerWaiters);
      stream.answerWaiters = [];
    }
    if (this.outstanding === 0) this.wakeAnswerWaiters();
  }

  private wakeAnswerWaiters(): void {
    const waiters = this.answerWaiters;
    this.answerWaiters = [];
    wake(waiters);
  }

  /** Resolves when every DATA received so far (on every stream) has been answered. */
  private allAnswered(): Promise<void> {
    if (this.outstanding === 0) return Promise.resolve();
    return new Promise((resolve) => this.answerWaiters.push(resolve));
  }

  /** Resolves when every DATA of `stream` received so far has been answered (or the stream ended). */
  private streamAnswered(stream: UploadStream): Promise<void> {
    if (stream.outstanding === 0) return Promise.resolve();
    return new Promise((resolve) => stream.answerWaiters.push(resolve));
  }

  private answerError(stream: UploadStream, error: ProtocolError): void {
    this.answered(stream, error.length);
    this.failStream(stream, error);
  }

  /**
   * Acks that complete in the same turn of the event loop go out as one ACK per stream (merged
   * ranges), and the ACKs of every stream in one socket write: sent from the check phase, they
   * would otherwise wait for the next turn's `holdWritesForThisTurn` release.
   */
  private answerAck(stream: UploadStream, offset: number, length: number): void {
    this.answered(stream, length);
    stream.pendingAcks.add(offset, offset + length);
    this.acksDue.add(stream);
    if (this.acksScheduled) return;
    this.acksScheduled = true;
    setImmediate(() => {
      this.acksScheduled = false;
      const due = [...this.acksDue];
      this.acksDue.clear();
      this.withWritesHeld(() => {
        for (const each of due) this.flushAcks(each);
      });
    });
  }

  /**
   * Stop reading the socket while pending writes exceed the window (bounded memory). A compliant
   * client never has more than the window outstanding, so this only bites for the one-chunk
   * exception (window < chunk) and for a client that overshoots, whose next message is then
   * refused with WINDOW_EXCEEDED rather than silently throttled.
   */
  private updatePause(): void {
    const full = this.outstanding > this.ctx.options.window;
    if (full && !this.paused) {
      this.paused = true;
      this.ws.pause();
    } else if (!full && this.paused && !this.stopping) {
      this.paused = false;
      this.ws.resume();
    }
  }

  /** Flush the stream's coalesced ACK before an answer that must come after it (RESULT, SPEC.md 5). */
  private flushAcks(stream: UploadStream): void {
    const ranges = stream.pendingAcks.toArray();
    if (ranges.length === 0) return;
    stream.pendingAcks = new RangeSet();
    for (let i = 0; i < ranges.length; i += Limits.MAX_ACK_RANGES) {
      this.sendOn(stream, encodeAck(ranges.slice(i, i + Limits.MAX_ACK_RANGES)));
    }
  }

  private async onComplete(stream: UploadStream, message: CompleteMessage): Promise<void> {
    const upload = requireUpload(stream);
    const generation = stream.generation;
    stream.state = 'busy';
    // Every DATA received before COMPLETE is answered first, so COMPLETE may follow the last DATA at once.
    await this.streamAnswered(stream);
    if (generation !== stream.generation) return;
    let result: { digest: bigint; fresh: boolean };
    try {
      result = await upload.complete(message.digest);
    } catch (error) {
      if (generation !== stream.generation) return;
      const failure = asProtocolError(error);
      if (!failure.fatal) stream.state = 'active';
      this.failStream(stream, failure);
      return;
    }
    this.log.info(
      { upload: upload.id, size: upload.info.fileSize, fresh: result.fresh },
      'upload completed',
    );
    // The file is delivered whether or not this stream still holds the upload: a connection that
    // closed, a lease released or a takeover during the completion must not keep the client's
    // reservation held or the application uninformed (no later COMPLETE is fresh again).
    if (generation === stream.generation) this.answerResult(stream, upload, result.digest);
    if (result.fresh) this.ctx.completed(upload);
  }

  /**
   * VERIFY (SPEC.md 16.9): withdraw the acked chunks whose stored hash differs from the client's,
   * durably, then answer VERIFIED with them. Nothing else is allowed on the stream meanwhile.
   */
  private async onVerify(stream: UploadStream, message: VerifyMessage): Promise<void> {
    const upload = requireUpload(stream);
    const first = message.chunks[0]?.index ?? 0;
    if (!this.replaceChunk || first <= stream.verifiedThrough) {
      this.fail(
        new ProtocolError(
          Errors.UNEXPECTED_MESSAGE,
          this.replaceChunk
            ? `VERIFY lists chunk ${first}, not above chunk ${stream.verifiedThrough} listed before on this stream`
            : 'VERIFY needs the REPLACE_CHUNK capability',
        ),
      );
      return;
    }
    stream.verifiedThrough = message.chunks[message.chunks.length - 1]?.index ?? first;
    const beyond = message.chunks.find((c) => c.index >= upload.chunks);
    if (beyond) {
      this.failStream(
        stream,
        new ProtocolError(
          Errors.OUT_OF_RANGE,
          `chunk ${beyond.index} is beyond the upload's ${upload.chunks} chunks`,
        ),
      );
      return;
    }
    const generation = stream.generation;
    stream.state = 'busy';
    await this.streamAnswered(stream);
    if (generation !== stream.generation) return;
    let withdrawn: number[];
    try {
      withdrawn = await upload.retract(message.chunks);
    } catch (error) {
      if (generation !== stream.generation) return;
      const failure = asProtocolError(error);
      // A refusal that leaves the stream open (CONFLICT past the withdrawal bound) leaves it
      // able to take what follows: the client's TERMINATE.
      if (!failure.fatal) stream.state = 'active';
      this.failStream(stream, failure);
      return;
    }
    if (generation !== stream.generation || stream.ended) return;
    stream.state = 'active';
    this.progressed();
    this.flushAcks(stream);
    this.send(encodeVerified(stream.id, withdrawn));
    if (withdrawn.length > 0)
      this.log.info(
        { upload: upload.id, withdrawn: withdrawn.length },
        'chunks the client changed were withdrawn',
      );
  }

  private async onTerminate(stream: UploadStream): Promise<void> {
    const upload = requireUpload(stream);
    stream.state = 'busy';
    // Answers to DATA still in flight are dropped, never acked.
    stream.generation++;
    this.outstanding -= stream.outstanding;
    stream.outstanding = 0;
    stream.pendingAcks = new RangeSet();
    this.updatePause();
    if (this.outstanding === 0) this.wakeAnswerWaiters();
    stream.upload = undefined;
    await this.ctx.registry.remove(upload.id, stream);
    this.ctx.metrics.uploadsActive.set(this.ctx.registry.ownedCount);
    if (this.closedFlag || stream.ended) return;
    this.progressed();
    this.accepted.delete(upload.id);
    this.sendOn(stream, encodeTerminated(upload.idBytes));
    this.endStream(stream);
  }

  // ------------------------------------------------------------------------------------------
  // Driven from outside

  /** The registry took the stream's upload away (takeover, DELETE, TTL, storage failure). */
  evictStream(stream: UploadStream, error: ProtocolError): void {
    if (stream.ended) return;
    this.failStream(
      stream,
      error.fatal ? error : new ProtocolError(Errors.UPLOAD_GONE, error.message),
    );
  }

  /** Periodic checks: idle timeout and minimum throughput. */
  tick(now: number): void {
    if (this.closedFlag) return;
    const { idleTimeout, minThroughput, throughputWindow } = this.ctx.options;
    const streams = [...this.streams.values()];
    const busy = streams.some((s) => s.state !== 'active');
    // A client waiting for our answers is not idle.
    if (this.outstanding === 0 && !busy && now - this.lastProgressAt > idleTimeout) {
      this.fail(new ProtocolError(Errors.IDLE_TIMEOUT, `no progress for ${idleTimeout} ms`));
      return;
    }
    if (now - this.periodStart >= throughputWindow) {
      const rate = (this.periodBytes * 1000) / (now - this.periodStart);
      // Judged when an upload was held (active) at the period's start and is at its end, by upload
      // id whatever streams it moved between: fresh streams and re-RESUMEs start nothing anew.
      // The minimum is the connection's, not multiplied by the uploads it holds: a client that
      // feeds its files oldest first (the batch uploader holds up to 16) on a slow link would
      // otherwise be cut for the files still waiting (a reviewer's 32 KiB/s link never finished
      // a batch). Uploads held without bytes are bounded by maxStreamsPerConnection and
      // maxUploadsPerAddress instead (README).
      const heldNow = streams.flatMap((s) =>
        s.state === 'active' && s.upload !== undefined ? [s.upload.id] : [],
      );
      const judged = heldNow.some((id) => this.heldAtPeriodStart.has(id));
      this.heldAtPeriodStart = new Set(heldNow);
      this.periodStart = now;
      this.periodBytes = 0;
      if (minThroughput > 0 && judged && rate < minThroughput) {
        this.fail(
          new ProtocolError(
            Errors.TOO_SLOW,
            `${Math.round(rate)} B/s is below the minimum of ${minThroughput} B/s`,
          ),
        );
      }
    }
  }

  /**
   * Ping; a connection that neither answered the previous ping nor stored a chunk since is dropped
   * (a busy sender's pong may queue behind a window of DATA; its acked chunks prove it alive).
   */
  heartbeat(): void {
    if (this.closedFlag) return;
    if (!this.alive) {
      this.leaveAll();
      this.closedFlag = true;
      this.ws.terminate();
      return;
    }
    this.alive = false;
    this.ws.ping();
  }

  /** Graceful shutdown: stop reading, let in-flight writes finish and be acked, then say goodbye. */
  async shutdown(): Promise<void> {
    if (this.closedFlag) return;
    this.stopping = true;
    this.paused = true;
    this.ws.pause();
    await this.allAnswered();
    // Let the coalesced ACK go out before the ERROR.
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.fail(
      new ProtocolError(Errors.SHUTTING_DOWN, 'the server is shutting down; acked bytes are safe'),
    );
  }

  private onClose(): void {
    if (!this.closedFlag) {
      this.leaveAll();
      this.closedFlag = true;
    }
  }
}

/** The stream's upload; the dispatcher routes COMPLETE/TERMINATE only to ACTIVE streams, which have one. */
function requireUpload(stream: UploadStream): OpenUpload {
  if (!stream.upload) throw new ProtocolError(Errors.INTERNAL_ERROR, 'no upload on this stream');
  return stream.upload;
}

function wake(waiters: ReadonlyArray<() => void>): void {
  for (const resume of waiters) resume();
}
