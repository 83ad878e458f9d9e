/**
 * Transport over the browser's own WebSocket. Browsers do not expose the HTTP status of a refused
 * upgrade (a 401 looks like close 1006), nor a drain event: the core polls `bufferedAmount`.
 * `send` copies the view into the browser's queue, so the core may reuse its buffer at once.
 *
 * With `dataFrom` (the file being uploaded), DATA the core hands over with `sendChunk` goes out as
 * `new Blob([header, file.slice(start, end)])` instead of the bytes the core read into JS: Firefox
 * sends a Blob slice about twice as fast as an ArrayBuffer (bench/RESULTS.md). Chromium is given
 * no `dataFrom` and sends the bytes read, faster there for less CPU (transports.ts
 * `sendsBytesRead`). A slice's bytes are the ones the core hashed unless the file changed
 * meanwhile: then the server answers HASH_MISMATCH and the core re-reads and resends the chunk.
 * The transport knows no wire layout: the core says which bytes of the file the payload is.
 */
import { CloseCode } from '../../protocol/index.js';
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
        if (ws.readyState === ws.OPEN) ws.send(data);
      },
      sendChunk(message: Uint8Array, start: number, end: number): void {
        if (ws.readyState !== ws.OPEN) return;
        if (!dataFrom || end <= start) {
          ws.send(message);
          return;
        }
        // The header is what precedes the payload in `message`; the payload goes from the Blob.
        ws.send(
          new Blob([
            message.slice(0, message.byteLength - (end - start)),
            dataFrom.slice(start, end),
          ]),
        );
      },
      get bufferedAmount(): number {
        return ws.bufferedAmount;
      },
      reportsDrain: false,
      close(code: number = CloseCode.NORMAL, reason = ''): void {
        if (ws.readyState === ws.CONNECTING || ws.readyState === ws.OPEN) ws.close(code, reason);
      },
    };
  }
}
