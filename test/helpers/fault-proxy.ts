/**
 * The tests' one TCP proxy, on 127.0.0.1: forwards to a target and injects faults. `cutAll` drops
 * every open connection at once (a NAT timeout, a Wi-Fi drop); the finer faults act on the client
 * -> server direction, where DATA frames flow: cut after an exact byte count (FIN or RST, so
 * mid-frame), stall, trickle at N bytes/s, or cut automatically every few hundred KiB. Bytes are
 * counted after the first HTTP request head (the WebSocket upgrade), so a test can line the count
 * up with WebSocket frame ends (test/reliability/lib/pump.ts `frames`).
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export type CutKind = 'fin' | 'rst';

interface Conn {
  readonly client: Socket;
  readonly upstream: Socket;
  /** Bytes of the upgrade request not yet seen complete (-1 once it has been forwarded). */
  head: Buffer | undefined;
  /** Bytes forwarded after the upgrade request. */
  forwarded: number;
  queue: Buffer[];
  cutAt?: { bytes: number; kind: CutKind };
  /** Hold this connection's bytes once this many were forwarded (a stall mid-frame). */
  holdAt?: number;
  /** The server's socket buffer is full: read no more from the client until it drains. */
  draining: boolean;
  closed: boolean;
}

export interface FaultProxy {
  readonly port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Cuts made so far (armed, automatic or cutAll). */
  readonly cuts: number;
  /** Bytes forwarded upstream after the upgrade request on the newest connection. */
  forwardedOnLast(): number;
  /** Cut the newest connection once `bytes` (counted after the upgrade) were forwarded. */
  cutLastAfter(bytes: number, kind: CutKind): void;
  /** Every new connection is cut after a byte count `pick()` returns (0 disables). */
  autoCut(pick: (() => { bytes: number; kind: CutKind }) | undefined): void;
  /** Hold the newest connection's bytes once `bytes` were forwarded, until `resume()`. */
  holdLastAt(bytes: number): void;
  /** Hold client -> server bytes (queued) until `resume()`. */
  stall(): void;
  resume(): void;
  /** Forward client -> server at most this many bytes per second (0: unlimited). */
  trickle(bytesPerSecond: number): void;
  cutAll(kind: CutKind): number;
  close(): Promise<void>;
}

export async function startFaultProxy(targetPort: number): Promise<FaultProxy> {
  const conns: Conn[] = [];
  let accepted = 0;
  let cuts = 0;
  let stalled = false;
  let rate = 0;
  let auto: (() => { bytes: number; kind: CutKind }) | undefined;
  let trickleTimer: NodeJS.Timeout | undefined;

  const cut = (c: Conn, kind: CutKind): void => {
    if (c.closed) return;
    c.closed = true;
    cuts++;
    if (kind === 'rst') {
      c.upstream.resetAndDestroy();
      c.client.resetAndDestroy();
    } else {
      // FIN to the server after the exact byte count; the client just loses its connection.
      c.upstream.end();
      c.client.destroy();
    }
  };

  /** Forward what the current mode allows from c.queue. */
  const pumpConn = (c: Conn, budget = Infinity): number => {
    let sent = 0;
    while (!c.closed && c.queue.length > 0 && !stalled && sent < budget) {
      let buf = c.queue[0];
      let take = Math.min(buf.byteLength, budget - sent);
      if (c.head === undefined && c.holdAt !== undefined) {
        take = Math.min(take, c.holdAt - c.forwarded);
        if (take <= 0) break;
      }
      if (c.head === undefined && c.cutAt) take = Math.min(take, c.cutAt.bytes - c.forwarded);
      if (c.head !== undefined) {
        // Still inside the HTTP upgrade request: forward it whole, count nothing.
        const joined = Buffer.concat([c.head, buf]);
        const end = joined.indexOf('\r\n\r\n');
        if (end === -1) {
          c.head = joined;
          c.queue.shift();
          continue;
        }
        c.upstream.write(joined.subarray(0, end + 4));
        c.head = undefined;
        c.queue[0] = joined.subarray(end + 4);
        if (c.queue[0].byteLength === 0) c.queue.shift();
        continue;
      }
      if (take > 0) {
        if (!c.upstream.write(buf.subarray(0, take))) c.draining = true;
        c.forwarded += take;
        sent += take;
        buf = buf.subarray(take);
        if (buf.byteLength === 0) c.queue.shift();
        else c.queue[0] = buf;
      }
      if (c.cutAt && c.forwarded >= c.cutAt.bytes) {
        cut(c, c.cutAt.kind);
        break;
      }
    }
    // Backpressure towards the client while we hold bytes or the server is slow to read them.
    if (c.queue.length > 0 || c.draining) c.client.pause();
    else if (!c.closed) c.client.resume();
    return sent;
  };

  const server: Server = createServer((client) => {
    accepted++;
    const upstream = connect(targetPort, '127.0.0.1');
    const c: Conn = {
      client,
      upstream,
      head: Buffer.alloc(0),
      forwarded: 0,
      queue: [],
      draining: false,
      closed: false,
    };
    upstream.on('drain', () => {
      c.draining = false;
      if (!c.closed && c.queue.length === 0) client.resume();
    });
    if (auto) {
      const plan = auto();
      if (plan.bytes > 0) c.cutAt = plan;
    }
    conns.push(c);
    const end = () => {
      c.closed = true;
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.on('data', (d: Buffer) => {
      c.queue.push(d);
      if (rate === 0) pumpConn(c);
    });
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');

  const last = (): Conn => {
    const c = conns[conns.length - 1];
    if (!c) throw new Error('no connection yet');
    return c;
  };

  return {
    port: address.port,
    get accepted() {
      return accepted;
    },
    get cuts() {
      return cuts;
    },
    forwardedOnLast: () => last().forwarded,
    cutLastAfter(bytes, kind) {
      const c = last();
      c.cutAt = { bytes, kind };
      if (c.forwarded >= bytes) cut(c, kind);
    },
    autoCut(pick) {
      auto = pick;
    },
    holdLastAt(bytes) {
      last().holdAt = bytes;
    },
    stall() {
      stalled = true;
    },
    resume() {
      stalled = false;
      for (const c of conns) c.holdAt = undefined;
      for (const c of conns) pumpConn(c);
    },
    trickle(bytesPerSecond) {
      rate = bytesPerSecond;
      clearInterval(trickleTimer);
      if (rate > 0) {
        // One tick per byte at low rates (1 B/s is one byte a second, not a burst).
        const every = Math.max(10, Math.floor(1000 / rate));
        const per = Math.max(1, Math.round((rate * every) / 1000));
        trickleTimer = setInterval(() => {
          for (const c of conns) pumpConn(c, per);
        }, every);
        trickleTimer.unref();
      } else {
        for (const c of conns) pumpConn(c);
      }
    },
    cutAll(kind) {
      let n = 0;
      for (const c of conns)
        if (!c.closed) {
          cut(c, kind);
          n++;
        }
      return n;
    },
    close() {
      clearInterval(trickleTimer);
      for (const c of conns) {
        c.client.destroy();
        c.upstream.destroy();
      }
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
