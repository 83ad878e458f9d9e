/**
 * Transport over the `ws` package for Node.
 *
 * Zero mask: RFC 6455 requires clients to mask frames; `ws` lets the caller supply the mask and,
 * when it is all zeros, skips the XOR pass entirely (the frame is still a valid masked frame). On
 * this machine that lifts a write-at-offset pipe from ~160 MB/s (pure-JS masking) to ~750 MB/s
 * (docs/measurements.md). It is safe for a non-browser client: masking exists so that hostile
 * *browser scripts* cannot make a WebSocket emit bytes that a confused intermediary (a caching
 * proxy) would parse as HTTP; it gives no confidentiality or integrity to the data (the mask key
 * travels in clear in the same frame). A CLI runs no untrusted script, and our payload integrity
 * comes from per-chunk xxHash64 and TLS (wss://) where confidentiality matters. Browsers always
 * mask with random keys; pass `{ zeroMask: false }` to mimic them.
 */
import WebSocket from 'ws';
import { CloseCode } from '../../protocol/index.js';
import type { CloseInfo, Connection, ConnectionHandlers, Transport } from '../core/types.js';

export interface WsTransportOptions {
  /** Use an all-zero masking key so ws skips masking (default true; see the file comment). */
  readonly zeroMask?: boolean;
  /** Give up on a handshake that takes longer than this (default 15 s). */
  readonly handshakeTimeoutMs?: number;
  /** Extra HTTP headers for the upgrade request (e.g. Authorization). */
  readonly headers?: Readonly<Record<string, string>>;
}

const zeroMask = (mask: Buffer): void => {
  mask.fill(0);
};

const HTTP_STATUS = /Unexpected server response: (\d{3})/;

export class WsTransport implements Transport {
  readonly sendsHeaders = true;

  constructor(private readonly options: WsTransportOptions = {}) {}

  connect(
    url: string,
    protocols: readonly string[],
    handlers: ConnectionHandlers,
    headers?: Readonly<Record<string, string>>,
  ): Connection {
    const allHeaders = { ...this.options.headers, ...headers };
    const ws = new WebSocket(url, [...protocols], {
      perMessageDeflate: false,
      handshakeTimeout: this.options.handshakeTimeoutMs ?? 15_000,
      ...(this.options.zeroMask === false ? {} : { generateMask: zeroMask }),
      ...(Object.keys(allHeaders).length > 0 ? { headers: allHeaders } : {}),
      // Server messages are small control messages; refuse anything absurd before buffering it.
      maxPayload: 32 * 1024 * 1024,
    });
    let lastError: string | undefined;
    let httpStatus: number | undefined;
    let closed = false;
    ws.on('open', () => handlers.onOpen(ws.protocol));
    ws.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
      const bytes = Array.isArray(data)
        ? Buffer.concat(data)
        : data instanceof ArrayBuffer
          ? new Uint8Array(data)
          : data;
      handlers.onMessage(bytes);
    });
    ws.on('error', (error: Error) => {
      lastError = error.message;
      const match = HTTP_STATUS.exec(error.message);
      if (match) httpStatus = Number(match[1]);
    });
    ws.on('close', (code: number, reason: Buffer) => {
      if (closed) return;
      closed = true;
      const info: CloseInfo = {
        code,
        reason: reason.toString('utf8'),
        ...(httpStatus !== undefined ? { httpStatus } : {}),
        ...(lastError !== undefined ? { error: lastError } : {}),
      };
      handlers.onClose(info);
    });
    const onSent = (): void => handlers.onDrain?.();
    return {
      send(data: Uint8Array): void {
        if (ws.readyState !== WebSocket.OPEN) return; // the close handler reports the loss
        // The callback fires once the frame has been handed to the kernel: our drain signal.
        ws.send(data, { binary: true }, onSent);
      },
      get bufferedAmount(): number {
        return ws.bufferedAmount;
      },
      reportsDrain: true,
      close(code: number = CloseCode.NORMAL, reason = ''): void {
        if (ws.readyState === WebSocket.CONNECTING) {
          ws.terminate();
          return;
        }
        if (ws.readyState === WebSocket.OPEN) ws.close(code, reason);
        // Do not wait for the peer's close frame forever: a dead peer would hold the socket.
        setTimeout(() => ws.terminate(), 2000).unref();
      },
    };
  }
}
