/**
 * The HTTP binding of bigup.1 (protocol/SPEC.md 3.6): the same uploads, ids, secrets, chunk grid,
 * per-chunk hashes, acked ranges and store as the WebSocket endpoint, over plain requests, for
 * browsers, where `fetch` of a Blob slice outruns a WebSocket frame (bench/RESULTS.md, browser):
 *
 *   POST   {path}                      body: OPEN or RESUME   -> ACCEPT + `Bigup-Lease`
 *   PUT    {path}/:id/chunks/:index    body: the chunk's bytes, `Bigup-Hash`, `Bigup-Lease` -> ACK
 *   POST   {path}/:id/complete         body: COMPLETE         -> RESULT
 *   DELETE {path}/:id                  (TERMINATE)            -> TERMINATED
 *   POST   {path}/:id/release          (the client lets go, as closing a WebSocket) -> 204
 *
 * Bodies are the binding's messages, encoded as on the WebSocket; every refusal is an ERROR
 * message with the HTTP status of `HTTP_STATUS_OF_ERROR`.
 *
 * One rule set, not two: a lease is a `Session` (session.ts) over a virtual socket. Each request
 * is turned into the message the WebSocket client would have sent and handed to that session; the
 * session's answers (ACCEPT, ACK, ERROR...) are routed back to the requests that wait for them. So
 * the hash check, the chunk grid, ownership and takeover, quotas, the authorization hook, upload
 * tickets, the window, idle timeout and minimum throughput are the session's, unchanged.
 *
 * What the binding adds are the bounds an HTTP client could otherwise stretch: a chunk body is at
 * most the agreed chunk size (refused from Content-Length, before a byte is read), must arrive
 * within `httpBodyTimeout`, and a lease has at most `httpRequestsPerUpload` chunk requests
 * pending. Control bodies are at most the largest OPEN.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import {
  Errors,
  HeaderSize,
  ProtocolError,
  SUBPROTOCOL_V1,
  bytesToHex,
  decodeClientMessage,
  decodeServerMessage,
  encodeProtocolError,
  encodeAck,
  encodeTerminate,
  errorByCode,
  writeDataHeader,
  type ErrorDefinition,
  type ServerMessage,
} from '../protocol/index.js';
import { originAllowed, requestToken, ticketOf, tokenMatches } from './handshake.js';
import { HttpErrors, sendHttpError } from './http-errors.js';
import { MAX_MESSAGE_BEFORE_ACCEPT, Session, type SessionContext } from './session.js';
import { verifyUploadTicket } from './tickets.js';

/** Request and response headers of the binding (lower case, as Node presents them). */
export const HttpBindingHeaders = {
  /** The writer lease an ACCEPT response grants; required on every later request. */
  LEASE: 'bigup-lease',
  /** xxHash64 of a chunk body, 16 lowercase hex digits. */
  HASH: 'bigup-hash',
  /** The error name, next to the ERROR body, for people reading logs. */
  ERROR: 'bigup-error',
} as const;

/** The HTTP status answering each registry error (SPEC.md 3.6.5). */
export const HTTP_STATUS_OF_ERROR: Readonly<Record<keyof typeof Errors, number>> = Object.freeze({
  MALFORMED: 400,
  UNKNOWN_MESSAGE_TYPE: 400,
  UNEXPECTED_MESSAGE: 409,
  TEXT_MESSAGE: 400,
  MESSAGE_TOO_LARGE: 413,
  RESERVED_BITS_SET: 400,
  INVALID_UTF8: 400,
  LIMIT_EXCEEDED: 400,
  INTEGER_TOO_LARGE: 400,
  INVALID_FIELD: 400,
  UNAUTHORIZED: 403,
  NOT_FOUND: 404,
  FILE_TOO_LARGE: 413,
  INSUFFICIENT_STORAGE: 507,
  TOO_MANY_UPLOADS: 503,
  TAKEN_OVER: 409,
  DIGEST_MISMATCH: 409,
  INCOMPLETE: 409,
  UPLOAD_GONE: 410,
  UPLOAD_DAMAGED: 410,
  HASH_MISMATCH: 422,
  OUT_OF_RANGE: 416,
  CONFLICT: 409,
  WINDOW_EXCEEDED: 429,
  STORAGE_ERROR: 503,
  STORAGE_FULL: 507,
  INTERNAL_ERROR: 500,
  SHUTTING_DOWN: 503,
  IDLE_TIMEOUT: 408,
  TOO_SLOW: 408,
});

export function httpStatusOf(definition: Pick<ErrorDefinition, 'name'>): number {
  return HTTP_STATUS_OF_ERROR[definition.name as keyof typeof Errors] ?? 500;
}

/** Headers a page may send (preflight) and read (answers) across origins. */
const CORS_REQUEST_HEADERS = 'authorization, content-type, bigup-lease, bigup-hash';
const CORS_EXPOSED = 'Bigup-Lease, Bigup-Error';

const LEASE_TEXT = /^[0-9a-f]{32}$/;
const HASH_TEXT = /^[0-9a-f]{16}$/;
const ID_TEXT = /^[0-9a-f]{32}$/;
const INDEX_TEXT = /^(0|[1-9][0-9]{0,15})$/;
/** Ended leases remembered (per binding) so late requests of a taken-over client learn why. */
const ENDED_LEASES_KEPT = 1024;

/** One answer for a waiting request: the status and the binding message as the body. */
interface Answer {
  status: number;
  body: Uint8Array;
  retryAfter?: boolean;
  errorName?: string;
}

interface PendingChunk {
  readonly offset: number;
  readonly length: number;
  readonly answer: (a: Answer) => void;
}

function errorAnswer(error: ProtocolError): Answer {
  return {
    status: httpStatusOf({ name: error.codeName }),
    body: encodeProtocolError(error),
    retryAfter:
      error.retryable &&
      (error.codeName === 'TOO_MANY_UPLOADS' || error.codeName === 'SHUTTING_DOWN'),
    errorName: error.codeName,
  };
}

/**
 * The socket a lease's Session talks to: `send` routes each answer to the request waiting for it;
 * `close`/`terminate` end the lease. Pausing means nothing here: a chunk body is read whole before
 * it becomes a message, and the number of pending chunk requests is bounded.
 */
class Lease {
  readonly id = bytesToHex(randomBytes(16));
  readonly session: Session;
  uploadId: string | undefined;
  chunkSize = 0;
  fileSize = 0;
  /** The OPEN/RESUME/COMPLETE/TERMINATE request waiting for its answer. */
  private control: ((a: Answer) => void) | undefined;
  private readonly chunks: PendingChunk[] = [];
  private messageListener: ((data: Buffer, isBinary: boolean) => void) | undefined;
  private closeListener: (() => void) | undefined;
  private endedWith: ProtocolError | undefined;
  readyState = 1;
  readonly OPEN = 1;
  /** The binding carries bigup.1's messages (SPEC.md 3.6). */
  readonly protocol = SUBPROTOCOL_V1;
  readonly bufferedAmount = 0;
  binaryType = 'nodebuffer';

  constructor(
    request: FastifyRequest,
    ctx: SessionContext,
    private readonly onEnd: (lease: Lease, error: ProtocolError) => void,
  ) {
    this.session = new Session(this as unknown as WebSocket, request, ctx);
  }

  /**
   * Stops for the chunk bodies being received: a lease that ends stops reading them at once, so a
   * body cannot outlive its lease and the bound its window and request count put on memory (a
   * client that released or lost its lease and took a new one could otherwise stack up bodies of
   * ended leases, each read until httpBodyTimeout).
   */
  readonly bodyStops = new Set<() => void>();
  /** Chunk bodies being received for this lease (not yet handed to the session). */
  receiving = 0;
  /** Their bytes. */
  receivingBytes = 0;

  /** Payload bytes of this lease's chunk requests from arrival to answer (bounded by the window). */
  get pendingBytes(): number {
    let total = this.receivingBytes;
    for (const c of this.chunks) total += c.length;
    return total;
  }

  /** Chunk requests of this lease from arrival to answer: what `httpRequestsPerUpload` bounds. */
  get pendingChunks(): number {
    return this.receiving + this.chunks.length;
  }

  /** Whether a chunk request at `offset` was handed to the session and is not answered yet. */
  hasChunkPending(offset: number): boolean {
    return this.chunks.some((c) => c.offset === offset);
  }

  get ended(): boolean {
    return this.readyState !== 1;
  }

  // --- the socket side, as Session uses it ---------------------------------------------------

  on(event: string, listener: (...args: never[]) => void): this {
    if (event === 'message') this.messageListener = listener as Lease['messageListener'];
    else if (event === 'close') this.closeListener = listener;
    return this;
  }

  send(bytes: Uint8Array): void {
    let message: ServerMessage;
    try {
      message = decodeServerMessage(bytes);
    } catch {
      return; // the session only sends what the codec encodes
    }
    switch (message.type) {
      case 'accept':
        this.uploadId = bytesToHex(message.uploadId);
        this.chunkSize = message.chunkSize;
        this.fileSize = message.fileSize;
        this.answerControl({ status: 200, body: bytes });
        return;
      case 'result':
      case 'terminated':
        this.answerControl({ status: 200, body: bytes });
        return;
      case 'ack':
        for (const range of message.ranges) this.answerChunks(range.start, range.end);
        return;
      case 'window':
        return;
      case 'error': {
        const definition = errorByCode(message.code) ?? Errors.INTERNAL_ERROR;
        const error = new ProtocolError(definition, message.message, message);
        if (error.fatal) {
          this.endedWith = error;
          this.answerAll(errorAnswer(error));
          return;
        }
        const index = this.chunks.findIndex((c) => c.offset === error.offset);
        if (message.length > 0 && index >= 0) {
          const [chunk] = this.chunks.splice(index, 1);
          chunk.answer(errorAnswer(error));
        } else this.answerControl(errorAnswer(error));
        return;
      }
    }
  }

  close(): void {
    this.end();
  }

  terminate(): void {
    this.end();
  }

  pause(): void {}
  resume(): void {}
  ping(): void {}

  // --- the request side ----------------------------------------------------------------------

  /** Hand one client message to the session; `answer` gets the session's reply. */
  request(message: Buffer, answer: (a: Answer) => void): void {
    this.control = answer;
    this.messageListener?.(message, true);
  }

  chunk(message: Buffer, offset: number, length: number, answer: (a: Answer) => void): void {
    this.chunks.push({ offset, length, answer });
    this.messageListener?.(message, true);
  }

  get controlPending(): boolean {
    return this.control !== undefined;
  }

  /** End the lease with `error` (the session lets go of its upload). */
  endWith(error: ProtocolError): void {
    this.endedWith ??= error;
    this.answerAll(errorAnswer(error));
    this.end();
  }

  private answerControl(a: Answer): void {
    const control = this.control;
    this.control = undefined;
    control?.(a);
  }

  private answerChunks(start: number, end: number): void {
    for (let i = 0; i < this.chunks.length;) {
      const c = this.chunks[i];
      if (c.offset >= start && c.offset + c.length <= end) {
        this.chunks.splice(i, 1);
        c.answer({ status: 200, body: encodeAck([{ start: c.offset, end: c.offset + c.length }]) });
      } else i++;
    }
  }

  private answerAll(a: Answer): void {
    this.answerControl(a);
    for (const c of this.chunks.splice(0)) c.answer(a);
  }

  private end(): void {
    if (this.readyState !== 1) return;
    this.readyState = 3;
    for (const stop of [...this.bodyStops]) stop();
    const error =
      this.endedWith ??
      new ProtocolError(Errors.IDLE_TIMEOUT, 'the lease ended; resume the upload');
    this.answerAll(errorAnswer(error));
    this.closeListener?.();
    this.onEnd(this, error);
  }
}

type BodyOutcome = 'ok' | 'too-slow' | 'aborted' | 'wrong-length' | 'stopped';

/**
 * A request body read into `target` from `at`, exactly `length` bytes, within `timeoutMs`; while
 * it is read, `stops` holds a function that ends the read ('stopped').
 */
function readBody(
  raw: IncomingMessage,
  target: Buffer,
  at: number,
  length: number,
  timeoutMs: number,
  stops?: Set<() => void>,
): Promise<BodyOutcome> {
  return new Promise((resolve) => {
    let filled = 0;
    let settled = false;
    const stop = (): void => settle('stopped');
    const settle = (outcome: BodyOutcome): void => {
      if (settled) return;
      settled = true;
      stops?.delete(stop);
      clearTimeout(timer);
      raw.off('data', onData);
      raw.off('end', onEnd);
      raw.off('error', onAbort);
      raw.off('aborted', onAbort);
      resolve(outcome);
    };
    const onData = (part: Buffer): void => {
      if (filled + part.length > length) {
        settle('wrong-length');
        return;
      }
      part.copy(target, at + filled);
      filled += part.length;
    };
    const onEnd = (): void => settle(filled === length ? 'ok' : 'wrong-length');
    const onAbort = (): void => settle('aborted');
    const timer = setTimeout(() => settle('too-slow'), timeoutMs);
    stops?.add(stop);
    raw.on('data', onData);
    raw.once('end', onEnd);
    raw.once('error', onAbort);
    raw.once('aborted', onAbort);
  });
}

function contentLength(request: FastifyRequest): number | undefined {
  const header = request.headers['content-length'];
  if (typeof header !== 'string' || !/^\d{1,16}$/.test(header)) return undefined;
  return Number(header);
}

async function sendAnswer(reply: FastifyReply, a: Answer): Promise<FastifyReply> {
  reply
    .code(a.status)
    .header('content-type', 'application/octet-stream')
    .header('cache-control', 'no-store');
  if (a.errorName) reply.header(HttpBindingHeaders.ERROR, a.errorName);
  if (a.retryAfter) reply.header('retry-after', '5');
  return reply.send(Buffer.from(a.body.buffer, a.body.byteOffset, a.body.byteLength));
}

function refuse(
  reply: FastifyReply,
  definition: ErrorDefinition,
  message?: string,
): Promise<FastifyReply> {
  return sendAnswer(reply, errorAnswer(new ProtocolError(definition, message)));
}

/** The reply closes the connection unless the request declared an empty body. */
function closing(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const empty =
    request.headers['content-length'] === '0' && request.headers['transfer-encoding'] === undefined;
  return empty ? reply : reply.header('connection', 'close');
}

/** Not fatal (the lease goes on), as rule 8's refusal: the pending request gets its own answer. */
function refuseWhileControlPending(reply: FastifyReply): Promise<FastifyReply> {
  return refuse(
    reply,
    Errors.CONFLICT,
    'a COMPLETE or TERMINATE of this lease is pending; no chunk is taken until it is answered',
  );
}

/**
 * The binding's routes and leases. `register` adds the routes to the plugin's scope (after its
 * Host check); `tick` and `shutdown` are driven by the plugin like its WebSocket sessions.
 */
export class HttpBinding {
  private readonly leases = new Map<string, Lease>();
  /** Why recently ended leases ended (bounded; oldest forgotten first). */
  private readonly endedLeases = new Map<string, ProtocolError>();

  constructor(private readonly ctx: SessionContext) {}

  get size(): number {
    return this.leases.size;
  }

  tick(now: number): void {
    for (const lease of this.leases.values()) lease.session.tick(now);
  }

  async shutdown(): Promise<void> {
    await Promise.all([...this.leases.values()].map((l) => l.session.shutdown()));
  }

  register(scope: FastifyInstance): void {
    const { options } = this.ctx;
    const path = options.path.replace(/\/+$/, '');
    // Bodies are read by the handlers themselves, bounded and timed (never by Fastify's parsers).
    void scope.register(async (binding) => {
      binding.removeAllContentTypeParsers();
      binding.addContentTypeParser('*', (_request, _payload, done) => done(null, undefined));
      binding.addHook('onRequest', async (request, reply) => {
        if (!originAllowed(request, options.origins)) {
          await sendHttpError(reply, HttpErrors.ORIGIN_NOT_ALLOWED);
          return;
        }
        // A page on an allowed other origin (the `origins` option) may read the answers; the
        // same check that admits its WebSocket admits its requests (SPEC.md 3.6.1).
        const origin = request.headers.origin;
        if (origin !== undefined) {
          void reply
            .header('access-control-allow-origin', origin)
            .header('vary', 'Origin')
            .header('access-control-expose-headers', CORS_EXPOSED);
        }
      });
      const routes = [
        path || '/',
        `${path}/:id/chunks/:index`,
        `${path}/:id/complete`,
        `${path}/:id`,
        `${path}/:id/release`,
      ];
      for (const route of routes) {
        binding.options(route, (_request, reply) =>
          reply
            .code(204)
            .header('access-control-allow-methods', 'POST, PUT, DELETE')
            .header('access-control-allow-headers', CORS_REQUEST_HEADERS)
            .header('access-control-max-age', '600')
            .send(),
        );
      }
      binding.post(path || '/', (request, reply) => this.opening(request, reply));
      binding.put(`${path}/:id/chunks/:index`, (request, reply) => this.chunk(request, reply));
      binding.post(`${path}/:id/complete`, (request, reply) => this.complete(request, reply));
      binding.delete(`${path}/:id`, (request, reply) => this.terminate(request, reply));
      binding.post(`${path}/:id/release`, (request, reply) => this.release(request, reply));
    });
  }

  /** The server token or an upload ticket, checked like the WebSocket handshake (SPEC.md 3.3). */
  private async authorized(request: FastifyRequest, reply: FastifyReply): Promise<boolean> {
    const { options } = this.ctx;
    if (this.ctx.shuttingDown()) {
      await refuse(reply, Errors.SHUTTING_DOWN);
      return false;
    }
    if (options.tokens.length === 0 && options.ticketSecrets.length === 0) return true;
    const token = requestToken(request, true);
    if (token === undefined || token === '') {
      await sendHttpError(reply.header('WWW-Authenticate', 'Bearer'), HttpErrors.TOKEN_REQUIRED);
      return false;
    }
    if (tokenMatches(token, options.tokens)) return true;
    const claims =
      options.ticketSecrets.length > 0
        ? verifyUploadTicket(token, options.ticketSecrets)
        : undefined;
    if (!claims) {
      await sendHttpError(reply, HttpErrors.TOKEN_REFUSED);
      return false;
    }
    ticketOf.set(request.raw, claims);
    return true;
  }

  /** A control body (OPEN, RESUME, COMPLETE): at most the largest OPEN, read within the body timeout. */
  private async controlBody(
    request: FastifyRequest,
    reply: FastifyReply,
  ): Promise<Buffer | undefined> {
    const length = contentLength(request);
    if (length === undefined) {
      await refuse(reply.code(411), Errors.MALFORMED, 'Content-Length is required');
      return undefined;
    }
    if (length > MAX_MESSAGE_BEFORE_ACCEPT) {
      await refuse(
        reply,
        Errors.MESSAGE_TOO_LARGE,
        `a control message is at most ${MAX_MESSAGE_BEFORE_ACCEPT} bytes`,
      );
      return undefined;
    }
    const body = Buffer.allocUnsafe(length);
    const outcome = await readBody(request.raw, body, 0, length, this.ctx.options.httpBodyTimeout);
    if (outcome === 'ok') return body;
    await this.bodyFailed(request, reply, outcome);
    return undefined;
  }

  private async bodyFailed(
    request: FastifyRequest,
    reply: FastifyReply,
    outcome: Exclude<BodyOutcome, 'ok'>,
    ended?: ProtocolError,
  ): Promise<void> {
    if (outcome === 'aborted') return;
    reply.header('connection', 'close');
    if (outcome === 'stopped' && ended) await sendAnswer(reply, errorAnswer(ended));
    else if (outcome === 'too-slow')
      await refuse(
        reply,
        Errors.TOO_SLOW,
        `the body did not arrive within ${this.ctx.options.httpBodyTimeout} ms`,
      );
    else await refuse(reply, Errors.MALFORMED, 'the body length differs from Content-Length');
    // The rest of a body we refused is not read: the connection goes.
    reply.raw.once('finish', () => request.raw.destroy());
  }

  private leaseFor(request: FastifyRequest): { lease?: Lease; error: ProtocolError } {
    const header = request.headers[HttpBindingHeaders.LEASE];
    const id = (request.params as { id?: string }).id ?? '';
    const unknown = new ProtocolError(
      Errors.IDLE_TIMEOUT,
      'no such lease (it expired, or the server restarted): resume the upload',
    );
    if (typeof header !== 'string' || !LEASE_TEXT.test(header) || !ID_TEXT.test(id))
      return { error: unknown };
    const lease = this.leases.get(header);
    if (!lease || lease.uploadId !== id) return { error: this.endedLeases.get(header) ?? unknown };
    return { lease, error: unknown };
  }

  private ended = (lease: Lease, error: ProtocolError): void => {
    if (this.leases.get(lease.id) === lease) this.leases.delete(lease.id);
    this.endedLeases.set(lease.id, error);
    if (this.endedLeases.size > ENDED_LEASES_KEPT) {
      const oldest = this.endedLeases.keys().next();
      if (!oldest.done) this.endedLeases.delete(oldest.value);
    }
  };

  private async opening(
    request: FastifyRequest,
    reply: FastifyReply,
  ): Promise<FastifyReply | void> {
    if (!(await this.authorized(request, reply))) return;
    const body = await this.controlBody(request, reply);
    if (!body) return;
    let type: string;
    try {
      type = decodeClientMessage(body).type;
    } catch (error) {
      return sendAnswer(
        reply,
        errorAnswer(error instanceof ProtocolError ? error : new ProtocolError(Errors.MALFORMED)),
      );
    }
    if (type !== 'open' && type !== 'resume')
      return refuse(
        reply,
        Errors.UNEXPECTED_MESSAGE,
        `POST ${this.ctx.options.path} takes OPEN or RESUME`,
      );
    const lease = new Lease(request, this.ctx, this.ended);
    const answer = await new Promise<Answer>((resolve) => lease.request(body, resolve));
    if (answer.status === 200 && !lease.ended && lease.uploadId !== undefined) {
      this.leases.set(lease.id, lease);
      reply.header(HttpBindingHeaders.LEASE, lease.id);
    } else if (!lease.ended) lease.close();
    return sendAnswer(reply, answer);
  }

  private async chunk(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | void> {
    const { lease, error } = this.leaseFor(request);
    // A refusal before the body is read closes the connection: Node would otherwise read and
    // discard the body, of any declared length and at any pace, to keep the connection.
    if (!lease) return sendAnswer(closing(request, reply), errorAnswer(error));
    const indexText = (request.params as { index: string }).index;
    const hashText = request.headers[HttpBindingHeaders.HASH];
    if (typeof hashText !== 'string' || !HASH_TEXT.test(hashText))
      return refuse(
        closing(request, reply),
        Errors.INVALID_FIELD,
        'Bigup-Hash must be 16 lowercase hex digits',
      );
    const offset = INDEX_TEXT.test(indexText) ? Number(indexText) * lease.chunkSize : Number.NaN;
    if (!Number.isSafeInteger(offset) || offset >= lease.fileSize)
      return refuse(
        closing(request, reply),
        Errors.OUT_OF_RANGE,
        'no chunk of this upload has that index',
      );
    const length = contentLength(request);
    if (length === undefined)
      return refuse(
        closing(request, reply.code(411)),
        Errors.MALFORMED,
        'Content-Length is required',
      );
    if (length > lease.chunkSize)
      return refuse(
        reply.header('connection', 'close'),
        Errors.MESSAGE_TOO_LARGE,
        `a chunk is at most ${lease.chunkSize} bytes`,
      );
    // Refused before a byte is read: the connection closes here too, since a body of bounded
    // length can still trickle for ever while Node discards it (no timeout covers that).
    if (length !== Math.min(lease.chunkSize, lease.fileSize - offset))
      return refuse(
        closing(request, reply),
        Errors.OUT_OF_RANGE,
        `chunk ${indexText} is ${Math.min(lease.chunkSize, lease.fileSize - offset)} bytes, not ${length}`,
      );
    // SPEC.md 3.6.3 rule 9: while a COMPLETE or TERMINATE is answered, a chunk is refused and the
    // lease goes on (handed to the session, a DATA after COMPLETE would end it, and the COMPLETE
    // of a file that completes would be answered with that error).
    if (lease.controlPending) return refuseWhileControlPending(closing(request, reply));
    // Bodies are buffered before the session sees them: the window (7.5, with its one-chunk
    // allowance) and the request count bound them from arrival, so a lease holds what a
    // connection may, not httpRequestsPerUpload chunks.
    const pending = lease.pendingBytes;
    const overWindow = pending > 0 && pending + length > this.ctx.options.window;
    if (overWindow || lease.pendingChunks >= this.ctx.options.httpRequestsPerUpload) {
      const why = overWindow
        ? `${pending + length} bytes pending on one lease, window ${this.ctx.options.window}`
        : `more than ${this.ctx.options.httpRequestsPerUpload} chunk requests pending on one lease`;
      lease.endWith(new ProtocolError(Errors.WINDOW_EXCEEDED, why));
      return refuse(reply.header('connection', 'close'), Errors.WINDOW_EXCEEDED, why);
    }
    // The DATA message the WebSocket client would have sent, built around the body in one buffer.
    const message = Buffer.allocUnsafe(HeaderSize.DATA + length);
    writeDataHeader(message, offset, BigInt(`0x${hashText}`));
    lease.receiving++;
    lease.receivingBytes += length;
    const outcome = await readBody(
      request.raw,
      message,
      HeaderSize.DATA,
      length,
      this.ctx.options.httpBodyTimeout,
      lease.bodyStops,
    ).finally(() => {
      lease.receiving--;
      lease.receivingBytes -= length;
    });
    if (outcome !== 'ok')
      return this.bodyFailed(request, reply, outcome, this.endedLeases.get(lease.id) ?? error);
    if (lease.ended) return sendAnswer(reply, errorAnswer(this.endedLeases.get(lease.id) ?? error));
    if (lease.controlPending) return refuseWhileControlPending(reply);
    // The session's answers name a chunk by its offset: with two PUTs of one chunk pending, one's
    // refusal or ACK could be answered to the other (SPEC.md 3.6.3, rule 8).
    if (lease.hasChunkPending(offset))
      return refuse(
        reply,
        Errors.CONFLICT,
        `another PUT of chunk ${indexText} is pending on this lease; wait for its answer`,
      );
    const answer = await new Promise<Answer>((resolve) =>
      lease.chunk(message, offset, length, resolve),
    );
    return sendAnswer(reply, answer);
  }

  private async complete(
    request: FastifyRequest,
    reply: FastifyReply,
  ): Promise<FastifyReply | void> {
    const { lease, error } = this.leaseFor(request);
    if (!lease) return sendAnswer(reply, errorAnswer(error));
    const body = await this.controlBody(request, reply);
    if (!body) return;
    let type: string;
    try {
      type = decodeClientMessage(body).type;
    } catch (e) {
      return sendAnswer(
        reply,
        errorAnswer(e instanceof ProtocolError ? e : new ProtocolError(Errors.MALFORMED)),
      );
    }
    if (type !== 'complete')
      return refuse(reply, Errors.UNEXPECTED_MESSAGE, 'this request takes COMPLETE');
    return this.controlRequest(lease, body, reply);
  }

  private async terminate(
    request: FastifyRequest,
    reply: FastifyReply,
  ): Promise<FastifyReply | void> {
    const { lease, error } = this.leaseFor(request);
    if (!lease) return sendAnswer(reply, errorAnswer(error));
    return this.controlRequest(lease, Buffer.from(encodeTerminate()), reply);
  }

  /** The client lets go (pause, page closing): as closing a WebSocket, the upload is free at once. */
  private async release(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const { lease, error } = this.leaseFor(request);
    if (!lease) return sendAnswer(reply, errorAnswer(error));
    lease.close();
    return reply.code(204).header('cache-control', 'no-store').send();
  }

  private async controlRequest(
    lease: Lease,
    body: Buffer,
    reply: FastifyReply,
  ): Promise<FastifyReply> {
    if (lease.controlPending)
      return refuse(
        reply,
        Errors.UNEXPECTED_MESSAGE,
        'another control request of this lease is pending',
      );
    const answer = await new Promise<Answer>((resolve) => lease.request(body, resolve));
    // After RESULT or TERMINATED the upload is no longer this lease's: the lease ends.
    if (answer.status === 200) lease.close();
    return sendAnswer(reply, answer);
  }
}
