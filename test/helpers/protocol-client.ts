/**
 * A raw bigup.1 test client: a `ws` socket plus the codec, with no retry or policy of its own, so
 * tests can send exactly the bytes they mean (bad ones included) and read every server message.
 * Masks with zeros (legal, and the fastest path on Node; see docs/measurements.md).
 */
import WebSocket from 'ws';
import {
  SUBPROTOCOL_V1,
  chunkCount,
  decodeServerMessage,
  encodeComplete,
  encodeData,
  encodeOpen,
  encodeResume,
  encodeTerminate,
  loadHasher,
  wholeFileDigest,
  type AcceptMessage,
  type ByteRange,
  type ErrorMessage,
  type Hasher,
  type OpenMessage,
  type ServerMessage,
} from '../../protocol/index.js';
import { ChunksInFlight } from '../../client/core/chunks-in-flight.js';

// The core's in-flight accounting is the one every test sender uses too.
export { ChunksInFlight };

export interface ConnectOptions {
  /** Subprotocols to offer. Default ['bigup.1']. */
  protocols?: string[];
  headers?: Record<string, string>;
  /** Server token as `?token=`. */
  token?: string;
  /** Local address to connect from (e.g. another loopback address: another client). */
  localAddress?: string;
}

/** How an upgrade attempt ended when the server refused it. */
export interface RefusedUpgrade {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
}

const zeroMask = (mask: Buffer) => {
  mask.fill(0);
};

export class RawClient {
  private readonly inbox: Array<ServerMessage | { type: 'undecodable'; bytes: Buffer }> = [];
  private waiters: Array<() => void> = [];
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(
    readonly ws: WebSocket,
    readonly hasher: Hasher,
  ) {
    ws.on('message', (data: Buffer) => {
      try {
        this.inbox.push(
          decodeServerMessage(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)),
        );
      } catch {
        this.inbox.push({ type: 'undecodable', bytes: data });
      }
      this.wake();
    });
    this.closed = new Promise((resolve) => {
      ws.on('close', (code: number, reason: Buffer) => {
        this.wake();
        resolve({ code, reason: reason.toString() });
      });
    });
    ws.on('error', () => undefined);
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Connect, or reject with a RefusedUpgrade when the server answers the upgrade with HTTP. */
  static connect(url: string, options: ConnectOptions = {}): Promise<RawClient> {
    return loadHasher().then(
      (hasher) =>
        new Promise<RawClient>((resolve, reject) => {
          const target =
            options.token === undefined ? url : `${url}?token=${encodeURIComponent(options.token)}`;
          const ws = new WebSocket(target, options.protocols ?? [SUBPROTOCOL_V1], {
            headers: options.headers,
            perMessageDeflate: false,
            generateMask: zeroMask,
            maxPayload: 64 * 1024 * 1024,
            ...(options.localAddress ? { localAddress: options.localAddress } : {}),
          });
          ws.binaryType = 'nodebuffer';
          const client = new RawClient(ws, hasher);
          ws.once('open', () => resolve(client));
          ws.once('unexpected-response', (_req, res) => {
            reject(
              Object.assign(new Error(`upgrade refused: ${res.statusCode}`), {
                status: res.statusCode ?? 0,
                headers: res.headers,
              }),
            );
            res.resume();
            ws.terminate();
          });
          ws.once('error', (error) => reject(error));
        }),
    );
  }

  /** Upgrade expected to fail: resolves with the HTTP status and headers. */
  static async refused(url: string, options: ConnectOptions = {}): Promise<RefusedUpgrade> {
    try {
      const client = await RawClient.connect(url, options);
      client.ws.terminate();
    } catch (error) {
      const e = error as Partial<RefusedUpgrade>;
      if (typeof e.status === 'number') return { status: e.status, headers: e.headers ?? {} };
      throw error;
    }
    throw new Error('upgrade unexpectedly succeeded');
  }

  send(bytes: Uint8Array | string): void {
    this.ws.send(bytes);
  }

  /** The next server message (waits up to `timeoutMs`). */
  async next(timeoutMs = 10_000): Promise<ServerMessage> {
    const deadline = Date.now() + timeoutMs;
    while (this.inbox.length === 0) {
      if (this.ws.readyState === WebSocket.CLOSED)
        throw new Error('connection closed while waiting for a message');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for a server message');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    const message = this.inbox.shift()!;
    if (message.type === 'undecodable') throw new Error('server sent an undecodable message');
    return message;
  }

  /** The next message, which must be of `type`. */
  async expect<T extends ServerMessage['type']>(
    type: T,
    timeoutMs?: number,
  ): Promise<Extract<ServerMessage, { type: T }>> {
    const message = await this.next(timeoutMs);
    if (message.type !== type) {
      throw new Error(
        `expected ${type}, got ${JSON.stringify(message, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString(16) : v))}`,
      );
    }
    return message as Extract<ServerMessage, { type: T }>;
  }

  /** The next message must be an ERROR with this code name's code. */
  async expectError(code: number, timeoutMs?: number): Promise<ErrorMessage> {
    const error = await this.expect('error', timeoutMs);
    if (error.code !== code)
      throw new Error(
        `expected error code 0x${code.toString(16)}, got 0x${error.code.toString(16)} (${error.message})`,
      );
    return error;
  }

  open(fields: Partial<Omit<OpenMessage, 'type'>> & { fileSize: number }): void {
    this.send(
      encodeOpen({
        chunkSize: 0,
        name: 'file.bin',
        contentType: '',
        token: '',
        metadata: {},
        ...fields,
      }),
    );
  }

  resume(uploadId: Uint8Array, secret: Uint8Array, token = ''): void {
    this.send(encodeResume({ uploadId, secret, token }));
  }

  /** Send DATA for `payload` at `offset`, with its real hash unless one is given. */
  sendData(offset: number, payload: Uint8Array, hash = this.hasher.h64(payload)): void {
    const { header, payload: body } = encodeData(offset, hash, payload);
    // ws sends one buffer per message, so the test client copies; only the server must not.
    const joined = Buffer.concat([header, body]);
    this.send(joined);
  }

  complete(digest?: bigint): void {
    this.send(encodeComplete(digest));
  }

  terminate(): void {
    this.send(encodeTerminate());
  }

  close(): void {
    this.ws.close();
  }

  destroy(): void {
    this.ws.terminate();
  }
}

/** Chunk bounds of a file at a chunk size. */
export function chunksOf(fileSize: number, chunkSize: number): ByteRange[] {
  const out: ByteRange[] = [];
  for (let i = 0; i < chunkCount(fileSize, chunkSize); i++) {
    out.push({ start: i * chunkSize, end: Math.min((i + 1) * chunkSize, fileSize) });
  }
  return out;
}

/** Chunks of `[0, fileSize)` not covered by `acked`. */
export function missingChunks(
  fileSize: number,
  chunkSize: number,
  acked: readonly ByteRange[],
): ByteRange[] {
  return chunksOf(fileSize, chunkSize).filter(
    (c) => !acked.some((r) => r.start <= c.start && c.end <= r.end),
  );
}

/** The whole-file digest the server will compute for `data` at `chunkSize`. */
export function digestOf(hasher: Hasher, data: Uint8Array, chunkSize: number): bigint {
  return wholeFileDigest(
    hasher,
    chunksOf(data.byteLength, chunkSize).map((c) => hasher.h64(data.subarray(c.start, c.end))),
  );
}

/**
 * Settle the chunks an ACK `range` covers and return their offsets. A test sender is strict:
 * throws unless the range is exactly chunks it has in flight.
 */
export function settleAck(inFlight: ChunksInFlight, range: ByteRange, chunkSize: number): number[] {
  const chunks = inFlight.acked(range, chunkSize);
  const covered = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
  if (covered !== range.end - range.start)
    throw new Error(`ACK for a range not in flight: [${range.start}, ${range.end})`);
  return chunks.map((chunk) => chunk.offset);
}

export interface SendResult {
  /** Ranges acked during this call. */
  readonly acked: ByteRange[];
  /** Errors received (non-fatal ones keep the loop going). */
  readonly errors: ErrorMessage[];
}

/**
 * Send `chunks` of `data` respecting the window from `accept`, collecting ACKs until every chunk
 * is answered. Stops early (without throwing) when `stopAfterAcks` chunks were acked or the
 * connection closes.
 */
export async function sendChunks(
  client: RawClient,
  accept: AcceptMessage,
  data: Uint8Array,
  chunks: readonly ByteRange[],
  options: {
    stopAfterBytes?: number;
    timeoutMs?: number;
    onAck?: (ackedBytes: number) => void;
  } = {},
): Promise<SendResult> {
  const acked: ByteRange[] = [];
  const errors: ErrorMessage[] = [];
  const inFlight = new ChunksInFlight();
  let ackedBytes = 0;
  let next = 0;
  while (next < chunks.length || inFlight.count > 0) {
    while (next < chunks.length) {
      const c = chunks[next];
      const len = c.end - c.start;
      if (!inFlight.fits(len, accept.window)) break;
      client.sendData(c.start, data.subarray(c.start, c.end));
      inFlight.sent(c.start, len);
      next++;
    }
    let message: ServerMessage;
    try {
      message = await client.next(options.timeoutMs);
    } catch {
      break;
    }
    if (message.type === 'ack') {
      for (const r of message.ranges) {
        acked.push(r);
        const before = inFlight.outstanding;
        settleAck(inFlight, r, accept.chunkSize);
        ackedBytes += before - inFlight.outstanding;
      }
      options.onAck?.(ackedBytes);
      if (options.stopAfterBytes !== undefined && ackedBytes >= options.stopAfterBytes) break;
    } else if (message.type === 'error') {
      errors.push(message);
      if (message.fatal) break;
      inFlight.refused(message.offset);
    } else {
      throw new Error(`unexpected ${message.type} while sending chunks`);
    }
  }
  return { acked, errors };
}
