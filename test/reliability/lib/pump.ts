/**
 * An upload driver on the raw test client (test/helpers/protocol-client.ts) that never trusts the
 * server: it records the time of every ACK it sees (the client's view of "acked"), tolerates the
 * connection dying at any instant (kill -9, cuts), can pace itself so faults land mid-upload, and
 * knows where each DATA frame ends on the wire so a test can prove half frames are never acked.
 */
import { open } from 'node:fs/promises';
import type { AcceptMessage, ByteRange, ErrorMessage } from '../../../protocol/index.js';
import { ChunksInFlight, RawClient, settleAck } from '../../helpers/protocol-client.js';

/** Chunk indexes acked at least once, with the time (performance.now) the client first saw each. */
export class AckLog {
  readonly firstSeen = new Map<number, number>();
  constructor(
    readonly chunkSize: number,
    readonly fileSize: number,
  ) {}

  addRange(r: ByteRange, at = performance.now()): number[] {
    const added: number[] = [];
    if (r.start % this.chunkSize !== 0)
      throw new Error(`ACK range [${r.start}, ${r.end}) does not start on a chunk boundary`);
    for (let at2 = r.start; at2 < r.end; at2 += this.chunkSize) {
      const index = at2 / this.chunkSize;
      if (!this.firstSeen.has(index)) {
        this.firstSeen.set(index, at);
        added.push(index);
      }
    }
    return added;
  }

  get chunks(): number[] {
    return [...this.firstSeen.keys()].sort((a, b) => a - b);
  }

  get bytes(): number {
    let n = 0;
    for (const i of this.firstSeen.keys())
      n += Math.min(this.chunkSize, this.fileSize - i * this.chunkSize);
    return n;
  }
}

/** Chunk indexes fully covered by `ranges`. */
export function chunksIn(
  ranges: readonly ByteRange[],
  chunkSize: number,
  fileSize: number,
): Set<number> {
  const out = new Set<number>();
  for (const r of ranges) {
    for (let i = Math.ceil(r.start / chunkSize); i * chunkSize < r.end; i++) {
      if (Math.min((i + 1) * chunkSize, fileSize) <= r.end) out.add(i);
    }
  }
  return out;
}

/** Bytes of a masked client WebSocket frame carrying `payload` bytes (RFC 6455 5.2). */
export function clientFrameBytes(payload: number): number {
  return 2 + (payload >= 65_536 ? 8 : payload >= 126 ? 2 : 0) + 4 + payload;
}

export interface PumpOptions {
  /** Client-side cap on unacked bytes (min with the server window). */
  readonly window?: number;
  /** Pace to about this many payload bytes per second (0: as fast as the window allows). */
  readonly rate?: number;
  /** Give up waiting for a message after this long. Default 10 s. */
  readonly timeoutMs?: number;
  /** Wire bytes the connection carried before the first DATA (OPEN/RESUME frames). */
  readonly wireStart?: number;
  /** Called for each newly acked chunk. */
  readonly onAck?: (index: number) => void;
  /** Stop sending new chunks (and return once the in-flight ones are answered) when true. */
  readonly stop?: () => boolean;
}

export interface PumpResult {
  /** Chunks whose ACK was seen on this connection. */
  readonly ackedHere: number[];
  readonly errors: ErrorMessage[];
  /** True when the connection died or closed before every chunk was answered. */
  readonly interrupted: boolean;
  /** Why the connection stopped early ('' when it did not, or a fatal ERROR ended it). */
  readonly why: string;
  /** For each DATA sent: chunk index and the wire offset where its frame ends. */
  readonly frames: ReadonlyArray<{ index: number; wireEnd: number }>;
}

/** Send `indexes` of `data` over an accepted connection, recording every ACK in `log`. */
export async function pump(
  client: RawClient,
  accept: AcceptMessage,
  data: Uint8Array,
  indexes: readonly number[],
  log: AckLog,
  options: PumpOptions = {},
): Promise<PumpResult> {
  const { chunkSize, fileSize } = accept;
  const window = Math.min(accept.window, options.window ?? accept.window);
  const inFlight = new ChunksInFlight();
  const ackedHere: number[] = [];
  const errors: ErrorMessage[] = [];
  const frames: Array<{ index: number; wireEnd: number }> = [];
  let wire = options.wireStart ?? 0;
  let next = 0;
  let interrupted = false;
  let why = '';
  let closing = false;
  const started = performance.now();
  let sentBytes = 0;
  while (next < indexes.length || inFlight.count > 0) {
    while (!closing && next < indexes.length && !(options.stop?.() ?? false)) {
      const index = indexes[next];
      const start = index * chunkSize;
      const len = Math.min(chunkSize, fileSize - start);
      if (!inFlight.fits(len, window)) break;
      if (options.rate) {
        const due = started + (sentBytes / options.rate) * 1000;
        const wait = due - performance.now();
        if (wait > 0) {
          if (inFlight.count > 0) break; // read ACKs while we wait
          await new Promise((r) => setTimeout(r, wait));
        }
      }
      // The socket is closing: stop sending, but still read what the server said before it closed.
      if (client.ws.readyState !== client.ws.OPEN) {
        closing = true;
        break;
      }
      client.sendData(start, data.subarray(start, start + len));
      wire += clientFrameBytes(18 + len);
      frames.push({ index, wireEnd: wire });
      inFlight.sent(start, len);
      sentBytes += len;
      next++;
    }
    if (inFlight.count === 0 && !closing) {
      if (next >= indexes.length || (options.stop?.() ?? false)) break;
      continue;
    }
    let message;
    try {
      // With pacing, wake up in time for the next send even without an answer.
      message = await client.next(options.timeoutMs ?? 10_000);
    } catch (error) {
      interrupted = true;
      why = (error as Error).message;
      break;
    }
    if (message.type === 'ack') {
      const now = performance.now();
      for (const r of message.ranges) {
        for (const index of log.addRange(r, now)) options.onAck?.(index);
        for (const at of settleAck(inFlight, r, chunkSize)) ackedHere.push(at / chunkSize);
      }
    } else if (message.type === 'error') {
      errors.push(message);
      if (message.fatal) {
        interrupted = true;
        break;
      }
      inFlight.refused(message.offset);
    } else {
      throw new Error(`unexpected ${message.type} while sending chunks`);
    }
  }
  return { ackedHere, errors, interrupted, why, frames };
}

/** Read `ranges` of the file at `path` and return the ranges whose bytes differ from `data`. */
export async function mismatchedRanges(
  path: string,
  data: Uint8Array,
  ranges: readonly ByteRange[],
): Promise<ByteRange[]> {
  const bad: ByteRange[] = [];
  const handle = await open(path, 'r');
  try {
    for (const r of ranges) {
      const buf = Buffer.alloc(r.end - r.start);
      const { bytesRead } = await handle.read(buf, 0, buf.byteLength, r.start);
      if (bytesRead !== buf.byteLength || !buf.equals(data.subarray(r.start, r.end))) bad.push(r);
    }
  } finally {
    await handle.close();
  }
  return bad;
}

/** OPEN or RESUME on a fresh connection; resolves with the client and its ACCEPT. */
export async function openOrResume(
  url: string,
  upload: { id: Uint8Array; secret: Uint8Array } | undefined,
  fields: { fileSize: number; chunkSize: number; name?: string },
): Promise<{ client: RawClient; accept: AcceptMessage; wireStart: number }> {
  const client = await RawClient.connect(url);
  let wireStart: number;
  if (upload) {
    client.resume(upload.id, upload.secret);
    wireStart = clientFrameBytes(50 + 2);
  } else {
    const name = fields.name ?? 'file.bin';
    client.open({ fileSize: fields.fileSize, chunkSize: fields.chunkSize, name });
    wireStart = clientFrameBytes(22 + 2 + Buffer.byteLength(name) + 2 + 2 + 2);
  }
  const accept = await client.expect('accept');
  return { client, accept, wireStart };
}

/** Chunk indexes of the file that `ranges` (an ACCEPT's) do not fully cover: what is left to send. */
export function missingChunks(
  ranges: readonly ByteRange[],
  chunkSize: number,
  fileSize: number,
): number[] {
  const have = chunksIn(ranges, chunkSize, fileSize);
  const missing: number[] = [];
  for (let i = 0; i * chunkSize < fileSize; i++) if (!have.has(i)) missing.push(i);
  return missing;
}

/**
 * The ending every fault test shares: on an accepted connection, send what its ACCEPT lacks (no
 * chunk may be refused), COMPLETE, wait for RESULT and close. ACKs go into `log` as in `pump`.
 */
export async function finishUpload(
  conn: { client: RawClient; accept: AcceptMessage; wireStart?: number },
  data: Uint8Array,
  log: AckLog = new AckLog(conn.accept.chunkSize, conn.accept.fileSize),
  options: PumpOptions = {},
): Promise<PumpResult> {
  const { client, accept } = conn;
  const missing = missingChunks(accept.ranges, accept.chunkSize, accept.fileSize);
  const result = await pump(client, accept, data, missing, log, {
    wireStart: conn.wireStart,
    ...options,
  });
  if (result.errors.length > 0 || result.interrupted)
    throw new Error(
      `finishing the upload: ${result.why || JSON.stringify(result.errors.map((e) => e.code))}`,
    );
  client.complete();
  await client.expect('result');
  client.close();
  return result;
}
