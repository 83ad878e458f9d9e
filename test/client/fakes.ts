/**
 * Test doubles for the client core: an in-memory FileSource and a scripted bigup.1 server behind
 * a fake Transport.
 *
 * Why a fake server next to the real one (test/helpers/server.ts, which the client tests use for
 * whatever a real server shows): the tests below need the server to misbehave or hold still on
 * cue, at an exact message, which a real server never does: hold ACKs to fill the window, send an
 * ACK off the chunk grid, refuse one chunk with HASH_MISMATCH or INCOMPLETE, drop the connection
 * after the Nth DATA, refuse every connection, and hold an upload an earlier session left (`seed`)
 * without running that session. It follows protocol/SPEC.md closely enough for the client (hash
 * checks, acked ranges, window, COMPLETE/RESULT, RESUME, TERMINATE); keep it to that: a behaviour
 * the real server can show belongs in a test against the real server.
 */
import {
  RangeSet,
  bytesToHex,
  chunkCount,
  decodeClientMessage,
  encodeAccept,
  encodeAck,
  encodeError,
  encodeResult,
  encodeTerminated,
  encodeWindow,
  loadHasher,
  wholeFileDigest,
} from '../../protocol/index.js';
import type { ClientMessage, ErrorName, Hasher } from '../../protocol/index.js';
import { Errors } from '../../protocol/index.js';
import type {
  CloseInfo,
  Connection,
  ConnectionHandlers,
  FileSource,
  Transport,
} from '../../client/core/types.js';

export function memorySource(
  bytes: Uint8Array,
  name = 'file.bin',
  lastModified = 1_700_000_000_000,
): FileSource & { reads: Array<[number, number]> } {
  const reads: Array<[number, number]> = [];
  return {
    name,
    size: bytes.byteLength,
    type: 'application/octet-stream',
    lastModified,
    reads,
    async read(start, end, target) {
      reads.push([start, end]);
      const view = bytes.subarray(start, end);
      if (target) {
        target.set(view);
        return target.subarray(0, end - start);
      }
      return view.slice();
    },
  };
}

export function randomBytes(size: number, seed = 1): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

interface StoredUpload {
  id: Uint8Array;
  secret: Uint8Array;
  size: number;
  chunkSize: number;
  data: Uint8Array;
  acked: RangeSet;
  hashes: bigint[];
  completed: boolean;
}

export interface SentData {
  conn: number;
  offset: number;
  length: number;
}

export class FakeServer implements Transport {
  hasher!: Hasher;
  readonly uploads = new Map<string, StoredUpload>();
  readonly connections: FakeConnection[] = [];
  readonly log: Array<{
    conn: number;
    type: ClientMessage['type'];
    offset?: number;
    length?: number;
    digest?: bigint;
  }> = [];
  readonly urls: string[] = [];
  /** Server configuration, changeable between steps. */
  window = 8 * 65_536;
  chunkSize = 65_536;
  autoAck = true;
  /** Milliseconds a COMPLETE waits for its RESULT (a completion that flushes a big file). */
  resultDelayMs = 0;
  /** Refuse every connection, as a server that is down does. */
  refuse: 'down' | undefined;
  /** Hook on each DATA before the server handles it; return an error name to refuse it. */
  onData: ((offset: number, conn: FakeConnection) => ErrorName | 'drop' | undefined) | undefined;
  /** Highest outstanding bytes seen on any connection (window accounting check). */
  maxOutstanding = 0;
  windowViolations = 0;

  async init(): Promise<this> {
    this.hasher = await loadHasher();
    return this;
  }

  /** Whether this transport takes upgrade headers (as the Node one does). */
  sendsHeaders = false;
  /** The upgrade headers the client gave each connection. */
  readonly headers: Array<Readonly<Record<string, string>> | undefined> = [];

  connect(
    url: string,
    protocols: readonly string[],
    handlers: ConnectionHandlers,
    headers?: Readonly<Record<string, string>>,
  ): Connection {
    this.urls.push(url);
    this.headers.push(headers);
    const conn = new FakeConnection(this, this.connections.length, handlers);
    this.connections.push(conn);
    setTimeout(() => {
      if (this.refuse === 'down')
        conn.drop({ code: 1006, reason: '', error: 'connect ECONNREFUSED' });
      else handlers.onOpen(protocols.includes('bigup.1') ? 'bigup.1' : '');
    }, 1);
    return conn;
  }

  get dataLog(): SentData[] {
    return this.log
      .filter((e) => e.type === 'data')
      .map((e) => ({ conn: e.conn, offset: e.offset!, length: e.length! }));
  }

  soleUpload(): StoredUpload {
    const [upload] = [...this.uploads.values()];
    if (!upload) throw new Error('no upload on the fake server');
    return upload;
  }

  /** Create an upload holding `ranges` of `bytes` already, as a previous session would have left it. */
  seed(
    bytes: Uint8Array,
    chunkSize: number,
    ackedChunks: number[],
  ): { id: string; secret: string } {
    const id = new Uint8Array(16).map((_, i) => i + 1);
    const secret = new Uint8Array(32).map((_, i) => 100 + i);
    const upload: StoredUpload = {
      id,
      secret,
      size: bytes.byteLength,
      chunkSize,
      data: new Uint8Array(bytes.byteLength),
      acked: new RangeSet(),
      hashes: [],
      completed: false,
    };
    for (const i of ackedChunks) {
      const start = i * chunkSize;
      const end = Math.min(start + chunkSize, bytes.byteLength);
      upload.data.set(bytes.subarray(start, end), start);
      upload.hashes[i] = this.hasher.h64(bytes.subarray(start, end));
      upload.acked.add(start, end);
    }
    this.uploads.set(bytesToHex(id), upload);
    return { id: bytesToHex(id), secret: bytesToHex(secret) };
  }
}

export class FakeConnection implements Connection {
  bufferedAmount = 0;
  readonly reportsDrain = false;
  closed = false;
  closedByClient: { code?: number; reason?: string } | undefined;
  upload: StoredUpload | undefined;
  outstanding = new Map<number, number>();
  outstandingBytes = 0;
  held: Array<{ start: number; end: number }> = [];
  advertised = 0;
  completing = false;

  constructor(
    private readonly server: FakeServer,
    readonly index: number,
    private readonly handlers: ConnectionHandlers,
  ) {}

  /** Server -> client. */
  reply(bytes: Uint8Array): void {
    if (this.closed) return;
    this.handlers.onMessage(bytes);
  }

  error(
    name: ErrorName,
    context: { offset?: number; length?: number; message?: string } = {},
  ): void {
    const def = Errors[name];
    this.reply(encodeError({ code: def.code, ...context }));
    if (def.fatal) this.drop({ code: def.closeCode || 1000, reason: '' });
  }

  setWindow(window: number): void {
    this.advertised = Math.max(this.advertised, window);
    this.reply(encodeWindow(window));
  }

  /** The network or the server drops the connection. */
  drop(info: CloseInfo = { code: 1006, reason: '' }): void {
    if (this.closed) return;
    this.closed = true;
    setTimeout(() => this.handlers.onClose(info), 0);
  }

  /** Ack every held chunk. */
  releaseAcks(): void {
    const held = this.held.splice(0);
    for (const r of held) this.ack(r.start, r.end);
  }

  private ack(start: number, end: number): void {
    if (this.closed || !this.upload) return;
    this.outstanding.delete(start);
    this.outstandingBytes -= end - start;
    this.reply(encodeAck([{ start, end }]));
    this.maybeResult();
  }

  private maybeResult(): void {
    const u = this.upload;
    if (!this.completing || !u || this.outstandingBytes > 0 || this.held.length > 0) return;
    this.completing = false;
    if (u.acked.total !== u.size) {
      this.reply(encodeError({ code: Errors.INCOMPLETE.code }));
      return;
    }
    u.completed = true;
    this.reply(
      encodeResult({
        uploadId: u.id,
        fileSize: u.size,
        digest: wholeFileDigest(this.server.hasher, u.hashes),
      }),
    );
  }

  send(data: Uint8Array): void {
    if (this.closed) return;
    const copy = data.slice(); // the client reuses buffers after ACK; keep our own
    const message = decodeClientMessage(copy);
    const server = this.server;
    const entry: {
      conn: number;
      type: ClientMessage['type'];
      offset?: number;
      length?: number;
      digest?: bigint;
    } = { conn: this.index, type: message.type };
    if (message.type === 'data') {
      entry.offset = message.offset;
      entry.length = message.payload.byteLength;
    }
    if (message.type === 'complete' && message.digest !== undefined) entry.digest = message.digest;
    server.log.push(entry);
    // Answer asynchronously, like a real server.
    setTimeout(() => this.handle(message), 0);
  }

  private handle(message: ClientMessage): void {
    // Like a real server, a message that arrived before the client closed is still carried out
    // (its answer is lost); after a drop nothing more arrives.
    if (this.closed && this.closedByClient === undefined) return;
    const server = this.server;
    switch (message.type) {
      case 'open': {
        const id = crypto.getRandomValues(new Uint8Array(16));
        const secret = crypto.getRandomValues(new Uint8Array(32));
        const chunkSize = server.chunkSize;
        const u: StoredUpload = {
          id,
          secret,
          size: message.fileSize,
          chunkSize,
          data: new Uint8Array(message.fileSize),
          acked: new RangeSet(),
          hashes: [],
          completed: false,
        };
        server.uploads.set(bytesToHex(id), u);
        this.upload = u;
        this.advertised = server.window;
        this.reply(
          encodeAccept({
            created: true,
            durable: false,
            uploadId: id,
            secret,
            fileSize: u.size,
            chunkSize,
            window: server.window,
            ranges: [],
          }),
        );
        return;
      }
      case 'resume': {
        const u = server.uploads.get(bytesToHex(message.uploadId));
        if (!u || bytesToHex(u.secret) !== bytesToHex(message.secret)) {
          this.error('NOT_FOUND');
          return;
        }
        this.upload = u;
        this.advertised = server.window;
        const ranges = u.completed ? [{ start: 0, end: u.size }] : u.acked.toArray();
        this.reply(
          encodeAccept({
            created: false,
            durable: false,
            uploadId: u.id,
            secret: new Uint8Array(32),
            fileSize: u.size,
            chunkSize: u.chunkSize,
            window: server.window,
            ranges,
          }),
        );
        return;
      }
      case 'data': {
        const u = this.upload!;
        const length = message.payload.byteLength;
        this.outstanding.set(message.offset, length);
        this.outstandingBytes += length;
        server.maxOutstanding = Math.max(server.maxOutstanding, this.outstandingBytes);
        if (this.outstandingBytes > Math.max(this.advertised, length)) server.windowViolations++;
        const verdict = server.onData?.(message.offset, this);
        if (verdict === 'drop') {
          this.drop();
          return;
        }
        const forget = () => {
          this.outstanding.delete(message.offset);
          this.outstandingBytes -= length;
        };
        if (verdict) {
          forget();
          this.error(verdict, { offset: message.offset, length });
          this.maybeResult();
          return;
        }
        if (server.hasher.h64(message.payload) !== message.hash) {
          forget();
          this.error('HASH_MISMATCH', { offset: message.offset, length });
          return;
        }
        u.data.set(message.payload, message.offset);
        u.hashes[message.offset / u.chunkSize] = message.hash;
        u.acked.add(message.offset, message.offset + length);
        if (server.autoAck) this.ack(message.offset, message.offset + length);
        else this.held.push({ start: message.offset, end: message.offset + length });
        return;
      }
      case 'complete': {
        const u = this.upload!;
        if (message.digest !== undefined && u.acked.total === u.size) {
          const digest = wholeFileDigest(
            server.hasher,
            u.hashes.slice(0, chunkCount(u.size, u.chunkSize)),
          );
          if (digest !== message.digest) {
            this.reply(encodeError({ code: Errors.DIGEST_MISMATCH.code }));
            return;
          }
        }
        this.completing = true;
        if (server.resultDelayMs > 0) setTimeout(() => this.maybeResult(), server.resultDelayMs);
        else this.maybeResult();
        return;
      }
      case 'terminate': {
        const u = this.upload;
        if (u) server.uploads.delete(bytesToHex(u.id));
        this.upload = undefined;
        this.reply(encodeTerminated(u?.id ?? new Uint8Array(16)));
        return;
      }
    }
  }

  close(code?: number, reason?: string): void {
    if (this.closed) return;
    this.closedByClient = { code, reason };
    this.closed = true;
    setTimeout(() => this.handlers.onClose({ code: code ?? 1000, reason: reason ?? '' }), 0);
  }
}

/** Wait until `predicate` holds (polling), or throw after `ms`. */
export async function until(predicate: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 2));
  }
}
