/**
 * One WebSocket connection: the server side of the bigup.1 state machine (protocol/SPEC.md,
 * "Connection states"): IDLE -> (OPEN | RESUME) -> ACTIVE -> COMPLETE -> IDLE, with BUSY while an
 * OPEN/RESUME/COMPLETE/TERMINATE is being answered (nothing is allowed then) and CLOSED at the end.
 *
 * Per DATA message the work is O(1) besides the hash: bounds checks, one xxHash64 over the view the
 * socket handed us, a state lookup and a positional write of that same view.
 */
import type { FastifyBaseLogger, FastifyRequest } from 'fastify';
import type { RawData, WebSocket } from 'ws';
import {
  Errors,
  HeaderSize,
  ProtocolError,
  RangeSet,
  decodeClientMessage,
  encodeAccept,
  encodeAck,
  encodeProtocolError,
  encodeResult,
  encodeTerminated,
  Limits,
  type ClientMessage,
  type CompleteMessage,
  type DataMessage,
  type Hasher,
  type OpenMessage,
  type ResumeMessage,
} from '../protocol/index.js';
import type { ServerMetrics } from './metrics.js';
import { ticketOf } from './handshake.js';
import type { OpenRateLimiter } from './quota.js';
import { storageErrorFor } from './storage-errors.js';
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
  readonly shuttingDown: () => boolean;
  /** A fresh completion (RESULT already sent). */
  readonly completed: (upload: OpenUpload) => void;
}

type State = 'idle' | 'active' | 'busy' | 'closed';

const ZERO_SECRET = new Uint8Array(Limits.SECRET_BYTES);

/**
 * The largest OPEN a client can send (every string and the metadata at their limits, with their
 * u16 length prefixes), which also covers RESUME: until ACCEPT no larger message is valid, so
 * nothing larger is buffered from a client that has not opened an upload.
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

export class Session implements UploadOwner {
  private state: State = 'idle';
  private upload: OpenUpload | undefined;
  /** Bumped when the connection leaves an upload: answers for older DATA are dropped. */
  private generation = 0;
  /** Payload bytes received and not yet answered (ACK or ERROR). */
  private outstanding = 0;
  /** Largest window advertised on this connection: the one enforced. */
  private maxWindow = 0;
  private paused = false;
  /** Set by shutdown: the socket stays paused whatever the answers do. */
  private stopping = false;
  private answerWaiters: Array<() => void> = [];
  private pendingAcks = new RangeSet();
  private ackScheduled = false;
  /** Last time the connection moved an upload forward (see `idleTimeout`); refusals do not count. */
  private lastProgressAt = Date.now();
  private periodStart = Date.now();
  /** Bytes newly stored in the current throughput period. */
  private periodBytes = 0;
  /** Non-fatal refusals sent on this connection (bounded by `maxRefusedMessages`). */
  private refusals = 0;
  private activeSincePeriodStart = false;
  private alive = true;
  private readonly log: FastifyBaseLogger;

  constructor(
    private readonly ws: WebSocket,
    /** The upgrade request: address, ticket and the authorization hook's context. */
    private readonly request: FastifyRequest,
    private readonly ctx: SessionContext,
  ) {
    this.log = request.log;
    ws.binaryType = 'nodebuffer';
    setMaxPayload(ws, MAX_MESSAGE_BEFORE_ACCEPT);
    ws.on('message', (data: RawData, isBinary: boolean) =>
      this.onMessage(data as Buffer, isBinary),
    );
    ws.on('pong', () => {
      this.alive = true;
    });
    ws.on('close', () => this.onClose());
  }

  get closed(): boolean {
    return this.state === 'closed';
  }

  // ------------------------------------------------------------------------------------------
  // Sending

  private send(bytes: Uint8Array): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    if (this.ws.bufferedAmount + bytes.byteLength > this.ctx.options.maxQueuedBytes) {
      this.cutUnreadSocket();
      return;
    }
    this.ws.send(bytes);
  }

  /**
   * The client stopped reading while we still have answers for it: stop reading its messages, say
   * why (1008) and drop the connection without waiting for a close frame it will never read.
   */
  private cutUnreadSocket(): void {
    if (this.state === 'closed') return;
    this.log.warn(
      { queued: this.ws.bufferedAmount, limit: this.ctx.options.maxQueuedBytes },
      'closing bigup connection: the client does not read its answers',
    );
    this.ctx.metrics.errors.inc({ code: Errors.LIMIT_EXCEEDED.name });
    this.leave();
    this.state = 'closed';
    this.ws.pause();
    this.ws.close(Errors.LIMIT_EXCEEDED.closeCode, 'send queue full: the client does not read');
    const ws = this.ws;
    setTimeout(() => ws.terminate(), 1000).unref();
  }

  private sendError(error: ProtocolError): void {
    if (!error.fatal && this.refusals++ >= this.ctx.options.maxRefusedMessages) {
      // The refusal past the limit becomes the fatal one.
      this.fail(
        new ProtocolError(
          Errors.LIMIT_EXCEEDED,
          `more than ${this.ctx.options.maxRefusedMessages} refused messages on one connection`,
        ),
      );
      return;
    }
    this.ctx.metrics.errors.inc({ code: error.codeName });
    this.send(encodeProtocolError(error));
  }

  /** The connection moved an upload forward: it is neither idle nor dead. */
  private progressed(): void {
    this.lastProgressAt = Date.now();
    this.alive = true;
  }

  /** Send a fatal (or any) error; fatal ones close the connection with the registry's code. */
  private fail(error: ProtocolError): void {
    if (this.state === 'closed') return;
    this.sendError(error);
    if (error.fatal) {
      this.log.debug({ code: error.codeName }, 'closing bigup connection after fatal error');
      this.closeWith(error.closeCode, error.codeName);
    }
  }

  /** Close with `code`; the reason names the error (SPEC.md 7.10), as the ERROR just sent did. */
  private closeWith(code: number, reason: string): void {
    this.leave();
    this.state = 'closed';
    this.ws.close(code, reason);
  }

  /** Let go of the current upload (its writes continue and are journaled; answers are dropped). */
  private leave(): void {
    const upload = this.upload;
    this.upload = undefined;
    this.generation++;
    this.outstanding = 0;
    this.pendingAcks = new RangeSet();
    this.wakeAnswerWaiters();
    this.updatePause();
    if (upload) {
      this.ctx.registry.release(upload, this);
      this.ctx.metrics.uploadsActive.set(this.ctx.registry.ownedCount);
    }
  }

  // ------------------------------------------------------------------------------------------
  // Receiving

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (this.state === 'closed') return;
    if (!isBinary) {
      this.fail(new ProtocolError(Errors.TEXT_MESSAGE, 'text messages are not part of bigup.1'));
      return;
    }
    let message: ClientMessage;
    try {
      const chunkSize = this.upload?.info.chunkSize ?? this.ctx.options.maxChunkSize;
      message = decodeClientMessage(data, { maxDataMessage: chunkSize + HeaderSize.DATA });
    } catch (error) {
      this.fail(asProtocolError(error));
      return;
    }
    if (message.type === 'data') {
      this.onData(message);
      return;
    }
    const allowed =
      this.state === 'idle'
        ? message.type === 'open' || message.type === 'resume'
        : this.state === 'active'
          ? message.type === 'complete' || message.type === 'terminate'
          : false;
    if (!allowed) {
      this.fail(
        new ProtocolError(
          Errors.UNEXPECTED_MESSAGE,
          `${message.type.toUpperCase()} is not allowed now`,
        ),
      );
      return;
    }
    const work =
      message.type === 'open'
        ? this.onOpen(message)
        : message.type === 'resume'
          ? this.onResume(message)
          : message.type === 'complete'
            ? this.onComplete(message)
            : this.onTerminate();
    work.catch((error: unknown) => {
      this.log.error({ err: error }, 'bigup session fault');
      this.fail(asProtocolError(error));
    });
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
    const address =
      ticket?.sub !== undefined ? `subject:${ticket.sub}` : `address:${this.request.ip}`;
    if (!hook) return address;
    const verdict = await hook({ kind, token, ...extra, request: this.request });
    if (!verdict) throw new ProtocolError(Errors.UNAUTHORIZED, 'the upload token was refused');
    return typeof verdict === 'object' &&
      typeof verdict.subject === 'string' &&
      verdict.subject !== ''
      ? `subject:${verdict.subject}`
      : address;
  }

  private accept(upload: OpenUpload, secret: Uint8Array | undefined): void {
    if (this.state === 'closed') {
      this.ctx.registry.release(upload, this);
      return;
    }
    this.upload = upload;
    this.generation++;
    this.outstanding = 0;
    this.state = 'active';
    setMaxPayload(this.ws, this.ctx.options.maxChunkSize + HeaderSize.DATA);
    this.maxWindow = Math.max(this.maxWindow, this.ctx.options.window);
    this.activeSincePeriodStart = false;
    this.progressed();
    this.ctx.metrics.uploadsActive.set(this.ctx.registry.ownedCount);
    const ranges = upload.ranges();
    this.send(
      encodeAccept({
        created: secret !== undefined,
        durable: this.ctx.options.durable,
        uploadId: upload.idBytes,
        secret: secret ?? ZERO_SECRET,
        fileSize: upload.info.fileSize,
        chunkSize: upload.info.chunkSize,
        window: this.ctx.options.window,
        ranges,
      }),
    );
  }

  private async onOpen(message: OpenMessage): Promise<void> {
    this.state = 'busy';
    // The slot is decided before the first await, so racing OPENs cannot all pass; the refusal is
    // reported in SPEC.md 7.1's order: authorization, size, space, then capacity.
    const reserved = this.ctx.registry.reserveSlot();
    try {
      const client = await this.admit('open', message.token, {
        fileSize: message.fileSize,
        name: message.name,
        contentType: message.contentType,
      });
      await this.ctx.registry.checkSizeAndSpace(message.fileSize);
      if (!reserved)
        throw new ProtocolError(Errors.TOO_MANY_UPLOADS, 'too many uploads in progress');
      if (!this.ctx.openRate.take(this.request.ip)) {
        throw new ProtocolError(
          Errors.TOO_MANY_UPLOADS,
          `more than ${this.ctx.options.opensPerSecond} new uploads per second from this address; retry shortly`,
        );
      }
      const { upload, secret } = await this.ctx.registry.create(message, this, client);
      this.log.info(
        { upload: upload.id, size: upload.info.fileSize, chunkSize: upload.info.chunkSize },
        'upload created',
      );
      this.accept(upload, secret);
    } catch (error) {
      this.refuseOpening(error);
    } finally {
      if (reserved) this.ctx.registry.releaseSlot();
    }
  }

  /** An OPEN or RESUME failed: back to IDLE (unless closed meanwhile) and answer the error. */
  private refuseOpening(error: unknown): void {
    if (this.state === 'busy') this.state = 'idle';
    if (!(error instanceof ProtocolError))
      this.log.error({ err: error }, 'bigup open/resume failed');
    this.fail(asProtocolError(error));
  }

  private async onResume(message: ResumeMessage): Promise<void> {
    this.state = 'busy';
    const id = Buffer.from(message.uploadId).toString('hex');
    // Taking over an upload that has a connection needs no new slot; otherwise reserve one now,
    // before the first await, as OPEN does.
    const takeover = this.ctx.registry.peek(id)?.owner !== undefined;
    const reserved = !takeover && this.ctx.registry.reserveSlot();
    try {
      if (!takeover && !reserved)
        throw new ProtocolError(Errors.TOO_MANY_UPLOADS, 'too many uploads in progress');
      await this.admit('resume', message.token, { uploadId: id });
      let upload: OpenUpload;
      try {
        upload = await this.ctx.registry.resume(message.uploadId, message.secret, this);
      } catch (error) {
        // With every slot taken, an unknown id gets TOO_MANY_UPLOADS before its secret is looked
        // at; a wrong secret for a connected upload must get the same answer (no existence oracle).
        if (
          takeover &&
          this.ctx.registry.ownedCount >= this.ctx.options.maxUploads &&
          error instanceof ProtocolError &&
          error.code === Errors.NOT_FOUND.code
        ) {
          throw new ProtocolError(Errors.TOO_MANY_UPLOADS, 'too many uploads in progress');
        }
        throw error;
      }
      this.log.info({ upload: upload.id, acked: upload.acked.total }, 'upload resumed');
      this.accept(upload, undefined);
    } catch (error) {
      this.refuseOpening(error);
    } finally {
      if (reserved) this.ctx.registry.releaseSlot();
    }
  }

  private onData(message: DataMessage): void {
    const upload = this.upload;
    if (this.state !== 'active' || !upload) {
      this.fail(new ProtocolError(Errors.UNEXPECTED_MESSAGE, 'DATA is only allowed after ACCEPT'));
      return;
    }
    const { offset, payload } = message;
    const length = payload.byteLength;
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
    this.updatePause();
    const { chunkSize, fileSize } = upload.info;
    if (
      offset % chunkSize !== 0 ||
      offset >= fileSize ||
      length !== Math.min(chunkSize, fileSize - offset)
    ) {
      this.answerError(
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
        new ProtocolError(Errors.HASH_MISMATCH, 'payload does not match its xxHash64', {
          offset,
          length,
        }),
      );
      return;
    }
    if (upload.completed) {
      this.answerError(
        new ProtocolError(Errors.CONFLICT, 'the upload is already complete', { offset, length }),
      );
      return;
    }
    const index = offset / chunkSize;
    const status = upload.chunkStatus(index);
    if (status && status.hash !== hash) {
      this.answerError(
        new ProtocolError(
          Errors.CONFLICT,
          'this chunk was already received with different content',
          { offset, length },
        ),
      );
      return;
    }
    if (status?.status === 'acked') {
      this.answerAck(offset, length);
      return;
    }
    // Only bytes this message newly stores are progress; a duplicate of a chunk being written is not.
    const fresh = status?.status !== 'writing';
    const done = fresh ? upload.write(index, hash, payload) : status.done;
    const generation = this.generation;
    done.then(
      () => {
        if (generation !== this.generation) return;
        if (fresh) {
          this.periodBytes += length;
          this.progressed();
        }
        this.answerAck(offset, length);
      },
      (error: unknown) => {
        if (generation === this.generation) this.fail(asProtocolError(error));
      },
    );
  }

  private answered(length: number): void {
    this.outstanding -= length;
    this.updatePause();
    if (this.outstanding === 0) this.wakeAnswerWaiters();
  }

  private wakeAnswerWaiters(): void {
    const waiters = this.answerWaiters;
    this.answerWaiters = [];
    for (const wake of waiters) wake();
  }

  /** Resolves when every DATA received so far has been answered. */
  private allAnswered(): Promise<void> {
    if (this.outstanding === 0) return Promise.resolve();
    return new Promise((resolve) => this.answerWaiters.push(resolve));
  }

  private answerError(error: ProtocolError): void {
    this.answered(error.length);
    this.sendError(error);
  }

  /** Acks that complete in the same turn of the event loop go out as one ACK (merged ranges). */
  private answerAck(offset: number, length: number): void {
    this.answered(length);
    this.pendingAcks.add(offset, offset + length);
    if (this.ackScheduled) return;
    this.ackScheduled = true;
    setImmediate(() => {
      this.ackScheduled = false;
      const ranges = this.pendingAcks.toArray();
      this.pendingAcks = new RangeSet();
      for (let i = 0; i < ranges.length; i += Limits.MAX_ACK_RANGES) {
        this.send(encodeAck(ranges.slice(i, i + Limits.MAX_ACK_RANGES)));
      }
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

  private async onComplete(message: CompleteMessage): Promise<void> {
    const upload = this.requireUpload();
    const generation = this.generation;
    this.state = 'busy';
    // Every DATA received before COMPLETE is answered first, so COMPLETE may follow the last DATA at once.
    await this.allAnswered();
    if (generation !== this.generation) return;
    let result: { digest: bigint; fresh: boolean };
    try {
      result = await upload.complete(message.digest);
    } catch (error) {
      if (generation !== this.generation) return;
      const failure = asProtocolError(error);
      if (!failure.fatal) this.state = 'active';
      this.fail(failure);
      return;
    }
    if (generation !== this.generation) return;
    this.progressed();
    this.send(
      encodeResult({
        uploadId: upload.idBytes,
        fileSize: upload.info.fileSize,
        digest: result.digest,
      }),
    );
    this.log.info(
      { upload: upload.id, size: upload.info.fileSize, fresh: result.fresh },
      'upload completed',
    );
    this.state = 'idle';
    this.leave();
    if (result.fresh) this.ctx.completed(upload);
  }

  /** The upload this connection holds; the dispatcher routes COMPLETE/TERMINATE only when active. */
  private requireUpload(): OpenUpload {
    if (!this.upload)
      throw new ProtocolError(Errors.INTERNAL_ERROR, 'no upload on this connection');
    return this.upload;
  }

  private async onTerminate(): Promise<void> {
    const upload = this.requireUpload();
    this.state = 'busy';
    // Answers to DATA still in flight are dropped, never acked.
    this.generation++;
    this.outstanding = 0;
    this.pendingAcks = new RangeSet();
    this.updatePause();
    this.upload = undefined;
    await this.ctx.registry.remove(upload.id, this);
    this.ctx.metrics.uploadsActive.set(this.ctx.registry.ownedCount);
    if ((this.state as State) === 'closed') return;
    this.progressed();
    this.send(encodeTerminated(upload.idBytes));
    this.state = 'idle';
  }

  // ------------------------------------------------------------------------------------------
  // Driven from outside

  /** The registry took the upload away (takeover, DELETE, TTL, storage failure). */
  evict(error: ProtocolError): void {
    this.fail(error.fatal ? error : new ProtocolError(Errors.UPLOAD_GONE, error.message));
  }

  /** Periodic checks: idle timeout and minimum throughput. */
  tick(now: number): void {
    if (this.state === 'closed') return;
    const { idleTimeout, minThroughput, throughputWindow } = this.ctx.options;
    // A client waiting for our answers is not idle.
    if (
      this.outstanding === 0 &&
      this.state !== 'busy' &&
      now - this.lastProgressAt > idleTimeout
    ) {
      this.fail(new ProtocolError(Errors.IDLE_TIMEOUT, `no progress for ${idleTimeout} ms`));
      return;
    }
    if (now - this.periodStart >= throughputWindow) {
      const rate = (this.periodBytes * 1000) / (now - this.periodStart);
      const judged =
        minThroughput > 0 &&
        this.activeSincePeriodStart &&
        this.state === 'active' &&
        this.upload !== undefined;
      this.periodStart = now;
      this.periodBytes = 0;
      this.activeSincePeriodStart = this.state === 'active';
      if (judged && rate < minThroughput) {
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
    if (this.state === 'closed') return;
    if (!this.alive) {
      this.leave();
      this.state = 'closed';
      this.ws.terminate();
      return;
    }
    this.alive = false;
    this.ws.ping();
  }

  /** Graceful shutdown: stop reading, let in-flight writes finish and be acked, then say goodbye. */
  async shutdown(): Promise<void> {
    if (this.state === 'closed') return;
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
    if (this.state !== 'closed') {
      this.leave();
      this.state = 'closed';
    }
  }
}
