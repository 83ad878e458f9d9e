/**
 * Transport over the HTTP binding of bigup.1 (protocol/SPEC.md 3.6), for browsers: in Chromium a
 * `fetch` PUT of a Blob slice streams the file from disk faster, and with less CPU, than a
 * WebSocket frame can (bench/RESULTS.md, browser scenario). The core is unchanged: it sends the
 * same messages through the same seam, and this transport turns each into the binding's request
 * and each response body (an ACCEPT, ACK, RESULT, TERMINATED or ERROR message) into `onMessage`.
 *
 * This is the binding, so unlike the WebSocket transport it reads a few header fields of what it
 * carries (with the shared codec): the upload id and chunk grid from ACCEPT or RESUME, the offset
 * and hash of each DATA. It never reads a payload: with `dataFrom`, the PUT body is a slice of
 * the file Blob, so the bytes go from disk to the network without entering JavaScript.
 *
 * A fatal ERROR ends the lease as it would close a WebSocket: `onClose` follows with the error's
 * close code. A request that fails on the network closes the "connection" with 1006 (retryable:
 * the core resumes, over a fresh lease). COMPLETE is held until every PUT sent before it has its
 * answer (SPEC.md 3.6.3): over HTTP, requests do not arrive in the order they were sent.
 */
import {
  CloseCode,
  MessageType,
  SUBPROTOCOL_V1,
  bytesToHex,
  decodeClientMessage,
  decodeServerMessage,
  errorByCode,
  hashToHex,
} from '../../protocol/index.js';
import {
  ABNORMAL_CLOSURE,
  type Connection,
  type ConnectionHandlers,
  type Transport,
} from '../core/types.js';

export interface HttpTransportOptions {
  /** Send chunk bodies as slices of this Blob rather than from the core's buffer. */
  readonly dataFrom?: Blob;
  /** `fetch` to use (tests). Default: the global one. */
  readonly fetch?: typeof fetch;
}

/**
 * Chunk requests this transport keeps pending on one lease at most: the reference server's
 * `httpRequestsPerUpload` default, below which a server may refuse more (SPEC.md 3.6.3).
 */
export const HTTP_PUTS_IN_FLIGHT = 8;

/** The binding's base URL for a WebSocket endpoint URL: same host and path, http(s) scheme. */
export function httpBindingUrl(endpoint: string): URL {
  const url = new URL(endpoint);
  if (url.protocol === 'ws:') url.protocol = 'http:';
  else if (url.protocol === 'wss:') url.protocol = 'https:';
  return url;
}

export class HttpTransport implements Transport {
  /** fetch sets headers: the core sends the token as `Authorization: Bearer`. */
  readonly sendsHeaders = true;

  constructor(private readonly options: HttpTransportOptions = {}) {}

  connect(
    url: string,
    _protocols: readonly string[],
    handlers: ConnectionHandlers,
    headers: Readonly<Record<string, string>> = {},
  ): Connection {
    const doFetch = this.options.fetch ?? globalThis.fetch.bind(globalThis);
    const dataFrom = this.options.dataFrom;
    const base = httpBindingUrl(url);
    const path = base.pathname.replace(/\/+$/, '');
    const at = (suffix: string): string => `${base.origin}${path}${suffix}`;
    const aborter = new AbortController();
    let closed = false;
    let lease: string | undefined;
    let uploadId: string | undefined;
    let chunkSize = 0;
    /** PUTs sent and not answered; COMPLETE waits for them. */
    let putsPending = 0;
    /** PUTs waiting for one of the HTTP_PUTS_IN_FLIGHT places (SPEC.md 3.6.3). */
    const putsQueued: (() => void)[] = [];
    let heldComplete: Uint8Array | undefined;
    /** The server ended the lease (RESULT, TERMINATED): nothing to release. */
    let leaseEnded = false;
    /** TERMINATE was sent: its DELETE ends the lease. */
    let terminating = false;

    // onClose comes after the call that closed, as a WebSocket's close event does.
    const close = (code: number, reason: string, error?: string, httpStatus?: number): void => {
      if (closed) return;
      closed = true;
      aborter.abort();
      queueMicrotask(() =>
        handlers.onClose({
          code,
          reason,
          ...(error !== undefined ? { error } : {}),
          ...(httpStatus !== undefined ? { httpStatus } : {}),
        }),
      );
    };

    /** Hand a response to the core: a binding message, or a refusal of the request itself. */
    const deliver = async (response: Response): Promise<void> => {
      const type = response.headers.get('content-type') ?? '';
      const body = new Uint8Array(await response.arrayBuffer());
      if (closed) return;
      if (!type.startsWith('application/octet-stream') || body.byteLength === 0) {
        // Host, Origin, token or capacity refusals are plain HTTP answers, as a refused upgrade.
        close(ABNORMAL_CLOSURE, `HTTP ${response.status}`, undefined, response.status);
        return;
      }
      const newLease = response.headers.get('bigup-lease');
      if (newLease) lease = newLease;
      if (!lease && response.ok) {
        // Every later request needs it: without it the upload would wait for answers to requests
        // it can never make. Most likely a cross-origin page whose server (or a proxy or CDN in
        // front of it) does not expose the header.
        close(
          ABNORMAL_CLOSURE,
          'no Bigup-Lease',
          'the answer carried no readable Bigup-Lease header (cross-origin: the server must expose it, Access-Control-Expose-Headers)',
          response.status,
        );
        return;
      }
      let fatalClose: { code: number; reason: string } | undefined;
      try {
        const message = decodeServerMessage(body);
        if (message.type === 'accept') {
          uploadId = bytesToHex(message.uploadId);
          chunkSize = message.chunkSize;
        } else if (message.type === 'result' || message.type === 'terminated') {
          leaseEnded = true;
        } else if (message.type === 'error' && message.fatal) {
          // Not every fatal answer ends the lease on the server (a refused request may leave it
          // open): the release that follows the close frees the upload at once either way, and
          // the server answers it harmlessly for a lease it already ended.
          const definition = errorByCode(message.code);
          fatalClose = {
            code: definition?.closeCode ?? CloseCode.INTERNAL_ERROR,
            reason: definition?.name ?? 'ERROR',
          };
        }
      } catch {
        // Not ours to judge: the core decodes it again and reports the violation.
      }
      handlers.onMessage(body);
      if (fatalClose) close(fatalClose.code, fatalClose.reason);
    };

    /** `outlivesClose`: not aborted when the lease closes, and kept alive past a closing page. */
    const request = (target: string, init: RequestInit, outlivesClose = false): void => {
      const lifetime: RequestInit = outlivesClose
        ? { keepalive: true }
        : { signal: aborter.signal };
      doFetch(target, { ...init, ...lifetime, cache: 'no-store' })
        .then(deliver)
        .catch((error: unknown) => {
          if (!closed)
            close(ABNORMAL_CLOSURE, '', error instanceof Error ? error.message : String(error));
        });
    };

    const octets = (data: Uint8Array): Uint8Array<ArrayBuffer> =>
      new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();

    const sendComplete = (message: Uint8Array): void => {
      if (!uploadId || !lease) return;
      request(at(`/${uploadId}/complete`), {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream', 'bigup-lease': lease },
        body: octets(message),
      });
    };

    queueMicrotask(() => {
      if (!closed) handlers.onOpen(SUBPROTOCOL_V1);
    });

    return {
      send(data: Uint8Array): void {
        if (closed || data.byteLength === 0) return;
        switch (data[0]) {
          case MessageType.OPEN:
          case MessageType.RESUME: {
            if (data[0] === MessageType.RESUME) {
              const resume = decodeClientMessage(data);
              if (resume.type === 'resume') uploadId = bytesToHex(resume.uploadId);
            }
            request(base.toString(), {
              method: 'POST',
              headers: { 'content-type': 'application/octet-stream', ...headers },
              body: octets(data),
            });
            return;
          }
          case MessageType.COMPLETE:
            if (putsPending > 0) heldComplete = octets(data);
            else sendComplete(data);
            return;
          case MessageType.TERMINATE: {
            if (!uploadId || !lease) return;
            // Not aborted by the close that may follow at once (a local fault ends the upload with
            // TERMINATE, then closes): a WebSocket sends what was queued before its close frame,
            // and the server must hear this too, or the upload waits for its TTL. `keepalive`
            // lets it outlive a closing page; the lease ends with it, so no release follows, and
            // no chunk still queued goes to a lease being deleted.
            terminating = true;
            putsQueued.length = 0;
            request(
              at(`/${uploadId}`),
              { method: 'DELETE', headers: { 'bigup-lease': lease } },
              true,
            );
            return;
          }
          case MessageType.DATA: {
            const m = decodeClientMessage(data);
            if (m.type === 'data') putChunk(m.offset, m.hash, m.payload);
            return;
          }
        }
      },
      sendChunk(message: Uint8Array, start: number, end: number): void {
        if (closed) return;
        const m = decodeClientMessage(message);
        if (m.type !== 'data') return;
        putChunk(
          m.offset,
          m.hash,
          dataFrom && end > start ? dataFrom.slice(start, end) : m.payload,
        );
      },
      bufferedAmount: 0,
      reportsDrain: false,
      close(code: number = CloseCode.NORMAL, reason = ''): void {
        // The server frees the upload at once (a paused upload can be resumed elsewhere), as it
        // does when a WebSocket closes; `keepalive` lets the request outlive a closing page.
        if (!closed && !leaseEnded && !terminating && lease && uploadId) {
          doFetch(at(`/${uploadId}/release`), {
            method: 'POST',
            headers: { 'bigup-lease': lease },
            keepalive: true,
          }).catch(() => undefined);
        }
        close(code, reason);
      },
    };

    function putChunk(offset: number, hash: bigint, body: Blob | Uint8Array): void {
      if (!uploadId || !lease || chunkSize === 0) return;
      // The window bounds the bytes in flight; the server also bounds the requests pending on a
      // lease (small chunks: a 32 MiB window holds 32 chunks of 1 MiB), so the rest wait here.
      if (putsPending >= HTTP_PUTS_IN_FLIGHT) {
        putsQueued.push(() => putChunk(offset, hash, body));
        return;
      }
      putsPending++;
      doFetch(at(`/${uploadId}/chunks/${offset / chunkSize}`), {
        method: 'PUT',
        headers: {
          'content-type': 'application/octet-stream',
          'bigup-lease': lease,
          'bigup-hash': hashToHex(hash),
        },
        body: body instanceof Blob ? body : octets(body),
        signal: aborter.signal,
        cache: 'no-store',
      })
        .then(deliver)
        .catch((error: unknown) => {
          if (!closed)
            close(ABNORMAL_CLOSURE, '', error instanceof Error ? error.message : String(error));
        })
        .finally(() => {
          putsPending--;
          const next = closed ? undefined : putsQueued.shift();
          if (next) next();
          if (putsPending === 0 && heldComplete && !closed) {
            const complete = heldComplete;
            heldComplete = undefined;
            sendComplete(complete);
          }
        });
    }
  }
}
