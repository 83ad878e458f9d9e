/**
 * A hand-rolled WebSocket client on a bare TCP socket, for inputs `ws` refuses to produce: bad
 * frame headers, oversize length fields, thousands of fragments, RSV bits, extension offers, and
 * sockets that never answer pings (dead peers for the heartbeat test).
 */
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';

export interface RawWs {
  readonly socket: Socket;
  readonly status: number;
  /** Response headers, lower-case names. */
  readonly headers: Record<string, string>;
  /** Server frames received so far. */
  readonly frames: Array<{ opcode: number; payload: Buffer }>;
  /** Resolves when the server closes (close code, or 1006 when the TCP connection just ended). */
  readonly closed: Promise<number>;
}

export interface RawWsOptions {
  readonly path?: string;
  readonly headers?: Record<string, string>;
  readonly protocol?: string | null;
  /** Answer pings (default true). False makes a dead peer. */
  readonly pong?: boolean;
}

/** Open a socket and perform the upgrade; resolves once the response head arrived. */
export function rawConnect(port: number, options: RawWsOptions = {}): Promise<RawWs> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const key = randomBytes(16).toString('base64');
    const headers: Record<string, string> = {
      Host: `127.0.0.1:${port}`,
      Upgrade: 'websocket',
      Connection: 'Upgrade',
      'Sec-WebSocket-Key': key,
      'Sec-WebSocket-Version': '13',
      ...(options.protocol === null
        ? {}
        : { 'Sec-WebSocket-Protocol': options.protocol ?? 'bigup.1' }),
      ...options.headers,
    };
    const head = `GET ${options.path ?? '/upload'} HTTP/1.1\r\n${Object.entries(headers)
      .map(([k, v]) => `${k}: ${v}`)
      .join('\r\n')}\r\n\r\n`;
    socket.write(head);
    let buf = Buffer.alloc(0);
    let parsedHead: { status: number; headers: Record<string, string> } | undefined;
    const frames: Array<{ opcode: number; payload: Buffer }> = [];
    let closeCode = 1006;
    const closed = new Promise<number>((res) => socket.on('close', () => res(closeCode)));
    socket.on('error', () => undefined);
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (!parsedHead) {
        const end = buf.indexOf('\r\n\r\n');
        if (end === -1) return;
        const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
        const status = Number(lines[0].split(' ')[1]);
        const h: Record<string, string> = {};
        for (const line of lines.slice(1)) {
          const i = line.indexOf(':');
          h[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
        }
        parsedHead = { status, headers: h };
        buf = buf.subarray(end + 4);
        resolve({ socket, status, headers: h, frames, closed });
        if (status !== 101) return;
      }
      // Server frames: unmasked, FIN set (the server never fragments).
      for (;;) {
        if (buf.byteLength < 2) return;
        const opcode = buf[0] & 0x0f;
        let len = buf[1] & 0x7f;
        let at = 2;
        if (len === 126) {
          if (buf.byteLength < 4) return;
          len = buf.readUInt16BE(2);
          at = 4;
        } else if (len === 127) {
          if (buf.byteLength < 10) return;
          len = Number(buf.readBigUInt64BE(2));
          at = 10;
        }
        if (buf.byteLength < at + len) return;
        const payload = Buffer.from(buf.subarray(at, at + len));
        buf = buf.subarray(at + len);
        frames.push({ opcode, payload });
        if (opcode === 0x8) {
          closeCode = payload.byteLength >= 2 ? payload.readUInt16BE(0) : 1005;
          if (!socket.destroyed) socket.write(frame(0x8, payload.subarray(0, 2)));
          socket.end();
        } else if (opcode === 0x9 && options.pong !== false) {
          socket.write(frame(0xa, payload));
        }
      }
    });
    socket.once('error', (e) => {
      if (!parsedHead) reject(e);
    });
    socket.once('close', () => {
      if (!parsedHead) reject(new Error('closed before the upgrade response'));
    });
  });
}

export interface FrameOptions {
  readonly fin?: boolean;
  /** RSV1..3 bits (0..7). */
  readonly rsv?: number;
  /** Claim this payload length in the header instead of the real one. */
  readonly claimedLength?: bigint;
  readonly mask?: boolean;
}

/** One client frame (masked with a zero key unless told otherwise). */
export function frame(opcode: number, payload: Uint8Array, options: FrameOptions = {}): Buffer {
  const length = options.claimedLength ?? BigInt(payload.byteLength);
  const mask = options.mask ?? true;
  const head: number[] = [
    ((options.fin ?? true) ? 0x80 : 0) | ((options.rsv ?? 0) << 4) | (opcode & 0x0f),
  ];
  const m = mask ? 0x80 : 0;
  if (length < 126n) head.push(m | Number(length));
  else if (length < 65536n) head.push(m | 126, Number(length >> 8n) & 0xff, Number(length) & 0xff);
  else {
    head.push(m | 127);
    for (let i = 7; i >= 0; i--) head.push(Number((length >> BigInt(i * 8)) & 0xffn));
  }
  if (mask) head.push(0, 0, 0, 0);
  return Buffer.concat([Buffer.from(head), payload]);
}

/** The bigup ERROR code in a server binary frame, if it is one. */
export function errorCodeOf(payload: Buffer): number | undefined {
  return payload[0] === 0x30 && payload.byteLength >= 4 ? payload.readUInt16BE(2) : undefined;
}
