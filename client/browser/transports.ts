/**
 * Which transport a browser upload uses: `'websocket'` (bigup.1 over the page's WebSocket),
 * `'http'` (the HTTP binding, SPEC.md 3.6) or `'auto'`: WebSocket, falling back to HTTP when a
 * WebSocket cannot be opened (a proxy that refuses upgrades, a firewall that drops them, a refused
 * upgrade whose reason a browser hides: over HTTP the refusal's status is visible).
 */
import {
  ABNORMAL_CLOSURE,
  type Connection,
  type ConnectionHandlers,
  type Transport,
} from '../core/types.js';
import { HttpTransport } from './http-transport.js';
import { BrowserWebSocketTransport } from './websocket-transport.js';

export type TransportChoice = 'auto' | 'websocket' | 'http';
export const TRANSPORT_CHOICES: readonly TransportChoice[] = ['auto', 'websocket', 'http'];

/**
 * What `'auto'` tries first. Measured in one Chromium (bench/RESULTS.md, browser scenario), the
 * component over WebSocket and over HTTP were within noise of each other (83 and 83 MB/s, 512 MiB;
 * 80 and 95, 256 MiB; the order flipped between runs), so the long-proven path goes first and
 * HTTP is the fallback. One constant to flip when a run says otherwise.
 */
export const AUTO_FIRST: Exclude<TransportChoice, 'auto'> = 'websocket';

export function isTransportChoice(value: unknown): value is TransportChoice {
  return typeof value === 'string' && (TRANSPORT_CHOICES as readonly string[]).includes(value);
}

function single(kind: Exclude<TransportChoice, 'auto'>, dataFrom: Blob | undefined): Transport {
  return kind === 'http'
    ? new HttpTransport(dataFrom ? { dataFrom } : {})
    : new BrowserWebSocketTransport(
        globalThis.WebSocket,
        dataFrom && !sendsBytesRead() ? { dataFrom } : {},
      );
}

/**
 * The first transport until it fails before a single answer ever came through it: a connection
 * that closes with 1006 (a WebSocket upgrade refused or dropped, a network error) or with HTTP
 * 404/405 (a server without the HTTP binding). From then on the second, for good; that close is
 * reported as a plain connection loss, so the core retries at once through the second and resumes
 * from the acked ranges the server holds, whichever binding stored them.
 */
export class FallbackTransport implements Transport {
  private current: Transport;
  private answered = false;

  constructor(
    first: Transport,
    private readonly second: Transport,
  ) {
    this.current = first;
  }

  get sendsHeaders(): boolean {
    return this.current.sendsHeaders === true;
  }

  /** The transport the next connection uses. */
  get active(): Transport {
    return this.current;
  }

  connect(
    url: string,
    protocols: readonly string[],
    handlers: ConnectionHandlers,
    headers?: Readonly<Record<string, string>>,
  ): Connection {
    const transport = this.current;
    // A close the client asked for (a pause or a cancel while the socket is still connecting,
    // which a browser reports as 1006) says nothing about whether the first transport works.
    let closedByClient = false;
    const connection = transport.connect(
      url,
      protocols,
      {
        ...handlers,
        onMessage: (data) => {
          this.answered = true;
          handlers.onMessage(data);
        },
        onClose: (info) => {
          const unreachable =
            info.code === ABNORMAL_CLOSURE &&
            (info.httpStatus === undefined || info.httpStatus === 404 || info.httpStatus === 405);
          if (
            unreachable &&
            !closedByClient &&
            !this.answered &&
            transport === this.current &&
            transport !== this.second
          ) {
            this.current = this.second;
            handlers.onClose({
              code: ABNORMAL_CLOSURE,
              reason: 'falling back to the other transport',
            });
            return;
          }
          handlers.onClose(info);
        },
      },
      headers,
    );
    return {
      send: (data) => connection.send(data),
      ...(connection.sendChunk
        ? {
            sendChunk: (message: Uint8Array, start: number, end: number) =>
              connection.sendChunk?.(message, start, end),
          }
        : {}),
      get bufferedAmount() {
        return connection.bufferedAmount;
      },
      reportsDrain: connection.reportsDrain,
      close: (code?: number, reason?: string) => {
        closedByClient = true;
        connection.close(code, reason);
      },
    };
  }
}

/**
 * Whether the WebSocket sends a chunk as the bytes the core read for its hash, rather than as a
 * slice of the file, which the browser then reads from disk a second time. Measured in one headless
 * Chromium driven without DevTools' network instrumentation (bench/RESULTS.md, 512 MiB, 3 rounds,
 * the previous build in the same run): the component over WebSocket 199 MB/s median (189-213)
 * against 147 with Blob slices, for 6.1 against 8.6 s of Chromium CPU and 2.0 against 2.5 s of
 * server CPU per GiB. Firefox keeps the slice: there a WebSocket sends an ArrayBuffer at about half
 * the rate of a Blob slice (bench/RESULTS.md, "Where Firefox's time goes"); elsewhere unmeasured.
 * The HTTP binding keeps the slice everywhere: in Chromium a PUT of bytes while the next chunk is
 * read through a BYOB reader left that read unresolved in about half the runs (docs/measurements.md).
 * Chromium-based engines are told apart by `navigator.userAgentData` (User-Agent Client Hints,
 * exposed in windows and workers there and nowhere else today), not by parsing the UA string.
 * Chromium exposes it only in secure contexts (https, localhost): on a plain-http page of another
 * host the WebSocket sends slices, as before.
 */
export function sendsBytesRead(
  nav: { readonly userAgentData?: unknown } | undefined = globalThis.navigator as
    { readonly userAgentData?: unknown } | undefined,
): boolean {
  return nav?.userAgentData !== undefined;
}

/**
 * The transport for `choice`, sending chunk payloads as slices of `dataFrom` when given (over
 * WebSocket only where the engine does not send the bytes read: `sendsBytesRead`).
 */
export function chooseTransport(choice: TransportChoice, dataFrom?: Blob): Transport {
  if (choice !== 'auto') return single(choice, dataFrom);
  const second = AUTO_FIRST === 'http' ? 'websocket' : 'http';
  return new FallbackTransport(single(AUTO_FIRST, dataFrom), single(second, dataFrom));
}
