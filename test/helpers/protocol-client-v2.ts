/**
 * A raw bigup.2 test client (SPEC.md 16): a `ws` socket plus the codec, no policy of its own.
 * Every server message is kept with its stream, so tests can assert per-stream order and read
 * answers of many uploads in whatever order they come.
 */
import WebSocket from 'ws';
import {
  Capability,
  SUBPROTOCOL_V2,
  decodeServerFrame,
  encodeComplete,
  encodeHello,
  encodeOpen,
  encodeTerminate,
  loadHasher,
  withStream,
  writeDataHeaderV2,
  HeaderSizeV2,
  type CapabilityEntry,
  type Frame,
  type Hasher,
  type OpenMessage,
  type ServerMessageV2,
} from '../../protocol/index.js';

const zeroMask = (mask: Buffer): void => {
  mask.fill(0);
};

export class RawClientV2 {
  readonly inbox: Array<Frame<ServerMessageV2>> = [];
  private waiters: Array<() => void> = [];
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(
    readonly ws: WebSocket,
    readonly hasher: Hasher,
  ) {
    ws.on('message', (data: Buffer) => {
      this.inbox.push(
        decodeServerFrame(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)),
      );
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
    const waiters = this.waiters;
    this.waiters = [];
    for (const f of waiters) f();
  }

  static async connect(url: string, protocols: string[] = [SUBPROTOCOL_V2]): Promise<RawClientV2> {
    const hasher = await loadHasher();
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, protocols, {
        perMessageDeflate: false,
        generateMask: zeroMask,
      });
      ws.binaryType = 'nodebuffer';
      const client = new RawClientV2(ws, hasher);
      ws.once('open', () => resolve(client));
      ws.once('error', reject);
    });
  }

  send(bytes: Uint8Array): void {
    this.ws.send(bytes);
  }

  hello(capabilities: CapabilityEntry[] = [{ id: Capability.MULTIPLEX, value: 16 }]): void {
    this.send(encodeHello(capabilities));
  }

  open(stream: number, fields: Partial<Omit<OpenMessage, 'type'>> = {}): void {
    this.send(
      withStream(
        stream,
        encodeOpen({
          fileSize: 1,
          chunkSize: 0,
          name: `f${stream}`,
          contentType: '',
          token: '',
          metadata: {},
          ...fields,
        }),
      ),
    );
  }

  data(stream: number, offset: number, payload: Uint8Array): void {
    const message = new Uint8Array(HeaderSizeV2.DATA + payload.byteLength);
    message.set(payload, HeaderSizeV2.DATA);
    writeDataHeaderV2(message, stream, offset, this.hasher.h64(payload));
    this.send(message);
  }

  complete(stream: number, digest?: bigint): void {
    this.send(withStream(stream, encodeComplete(digest)));
  }

  terminate(stream: number): void {
    this.send(withStream(stream, encodeTerminate()));
  }

  /** Wait until `predicate` holds for some received message; returns it (and leaves the inbox as is). */
  async waitFor(
    predicate: (frame: Frame<ServerMessageV2>) => boolean,
    timeoutMs = 10_000,
  ): Promise<Frame<ServerMessageV2>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.inbox.find(predicate);
      if (found) return found;
      if (this.ws.readyState === WebSocket.CLOSED)
        throw new Error('connection closed while waiting');
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
  }

  /** The message of type `type` on `stream`. */
  async expect<T extends ServerMessageV2['type']>(
    stream: number,
    type: T,
    timeoutMs?: number,
  ): Promise<Extract<ServerMessageV2, { type: T }>> {
    const frame = await this.waitFor(
      (f) => f.stream === stream && f.message.type === type,
      timeoutMs,
    );
    return frame.message as Extract<ServerMessageV2, { type: T }>;
  }

  /** Messages received on `stream`, in order. */
  on(stream: number): ServerMessageV2[] {
    return this.inbox.filter((f) => f.stream === stream).map((f) => f.message);
  }

  close(): void {
    this.ws.close();
  }

  destroy(): void {
    this.ws.terminate();
  }
}
