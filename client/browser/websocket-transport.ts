/**
 * Transport over the browser's own WebSocket. Browsers do not expose the HTTP status of a refused
 * upgrade (a 401 looks like close 1006), nor a drain event: the core polls `bufferedAmount`.
 * `send` copies the view into the browser's queue, so the core may reuse its buffer at once.
 */
import type { Connection, ConnectionHandlers, Transport } from '../core/types.js';

export class BrowserWebSocketTransport implements Transport {
  constructor(private readonly WebSocketImpl: typeof WebSocket = globalThis.WebSocket) {}

  connect(url: string, protocols: readonly string[], handlers: ConnectionHandlers): Connection {
    const ws = new this.WebSocketImpl(url, [...protocols]);
    ws.binaryType = 'arraybuffer';
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
