/**
 * Transport over the browser's own WebSocket. Browsers do not expose the HTTP status of a refused
 * upgrade (a 401 looks like close 1006), nor a drain event: the core polls `bufferedAmount`.
 * `send` copies the view into the browser's queue, so the core may reuse its buffer at once.
 *
 * With `dataFrom` (the file being uploaded), DATA goes out as `new Blob([header, file.slice(...)])`
 * instead of the bytes the core read into JS: Chromium then streams the payload from the file,
 * about twice as fast as sending an ArrayBuffer (docs/measurements.md). The bytes are the ones the
 * core hashed; if the file changed meanwhile, the server answers HASH_MISMATCH and the core
 * re-reads and resends the chunk.
 */
import { HeaderSize, MessageType } from '../../protocol/index.js';
import type { Connection, ConnectionHandlers, Transport } from '../core/types.js';

export interface BrowserTransportOptions {
  /** Send DATA payloads as slices of this Blob rather than from the core's buffer. */
  readonly dataFrom?: Blob;
}

export class BrowserWebSocketTransport implements Transport {
  constructor(
    private readonly WebSocketImpl: typeof WebSocket = globalThis.WebSocket,
    private readonly options: BrowserTransportOptions = {},
  ) {}

  connect(url: string, protocols: readonly string[], handlers: ConnectionHandlers): Connection {
    const ws = new this.WebSocketImpl(url, [...protocols]);
    ws.binaryType = 'arraybuffer';
    const dataFrom = this.options.dataFrom;
    let closed = false;
    ws.onopen = () => handlers.onOpen(ws.protocol);
    ws.onmessage = (event: MessageEvent) => {
      if (event.data instanceof ArrayBuffer) handlers.onMessage(new Uint8Array(event.data));
      else handlers.onMessage(new TextEncoder().encode(String(event.data))); // text: the decoder refuses it
    };
    ws.onclose = (event: CloseEvent) => {
      if (closed) return;
      closed = true;
      handlers.onClose({ code: event.code, reason: event.reason });
    };
    return {
      send(data: Uint8Array): void {
        if (ws.readyState !== ws.OPEN) return;
        if (dataFrom && data[0] === MessageType.DATA && data.byteLength > HeaderSize.DATA) {
          const view = new DataView(data.buffer, data.byteOffset, HeaderSize.DATA);
          const offset = view.getUint32(2) * 2 ** 32 + view.getUint32(6);
          const end = offset + data.byteLength - HeaderSize.DATA;
          ws.send(new Blob([data.slice(0, HeaderSize.DATA), dataFrom.slice(offset, end)]));
        } else {
          ws.send(data);
        }
      },
      get bufferedAmount(): number {
        return ws.bufferedAmount;
      },
      reportsDrain: false,
      close(code = 1000, reason = ''): void {
        if (ws.readyState === ws.CONNECTING || ws.readyState === ws.OPEN) ws.close(code, reason);
      },
    };
  }
}
