/**
 * Issue 13, points 7 and 9 (HTTP side): the Host allow-list against DNS rebinding, token-guarded
 * /healthz and /metrics, `Cache-Control: no-store` on upload state, the page's security headers,
 * error bodies with a stable code and without errno or paths, and upgrades on unknown paths.
 */
import { mkdir } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RawClient } from '../helpers/protocol-client.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { rawConnect } from '../reliability/lib/raw-ws.js';

interface RawAnswer {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** One HTTP/1.1 exchange with any Host header (fetch cannot set it). */
function rawHttp(
  port: number,
  path: string,
  host: string,
  headers: Record<string, string> = {},
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    socket.on('end', () => {
      const [head = '', body = ''] = answer.split('\r\n\r\n');
      const [statusLine = '', ...lines] = head.split('\r\n');
      const parsed: Record<string, string> = {};
      for (const line of lines) {
        const i = line.indexOf(':');
        parsed[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
      resolve({ status: Number(statusLine.split(' ')[1]), headers: parsed, body });
    });
    socket.on('error', reject);
    const extra = Object.entries(headers)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('');
    socket.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\n${extra}Connection: close\r\n\r\n`);
  });
}

let tmp: TempDir;
let server: TestServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
  await tmp?.cleanup();
});

async function serve(options: Parameters<typeof startServer>[0] = {}): Promise<{ port: number }> {
  tmp = await makeTempDir('bigup-http-');
  server = await startServer({ dir: join(tmp.path, 'data'), ...options });
  return { port: Number(new URL(server.url).port) };
}

describe('DNS rebinding: the Host header is checked on every route', () => {
  it('without a token only loopback names are answered, on HTTP routes and on the upgrade', async () => {
    const { port } = await serve();
    expect((await rawHttp(port, '/healthz', `127.0.0.1:${port}`)).status).toBe(200);
    expect((await rawHttp(port, '/healthz', `localhost:${port}`)).status).toBe(200);
    const rebound = await rawHttp(port, '/healthz', `attacker.example:${port}`);
    expect(rebound.status).toBe(403);
    expect(JSON.parse(rebound.body)).toEqual({
      code: 'HOST_NOT_ALLOWED',
      error: expect.any(String),
    });
    // The attack of the issue: Origin and Host both attacker.example pass a same-origin check.
    const upgrade = await rawConnect(port, {
      headers: { Host: `attacker.example:${port}`, Origin: `http://attacker.example:${port}` },
    });
    expect(upgrade.status).toBe(403);
    upgrade.socket.destroy();
    const ok = await rawConnect(port, { headers: { Origin: `http://127.0.0.1:${port}` } });
    expect(ok.status).toBe(101);
    ok.socket.destroy();
  });

  it('allowedHosts lists the names a LAN server is reached by; a token alone allows any Host', async () => {
    const { port } = await serve({ allowedHosts: ['uploads.lan'] });
    expect((await rawHttp(port, '/healthz', `uploads.lan:${port}`)).status).toBe(200);
    expect((await rawHttp(port, '/healthz', `UPLOADS.LAN:${port}`)).status).toBe(200);
    expect((await rawHttp(port, '/healthz', `other.lan:${port}`)).status).toBe(403);
    expect((await rawHttp(port, '/healthz', 'uploads.lan@evil:80')).status).toBe(403);
    await server!.close();
    await tmp.cleanup();
    const withToken = await serve({ token: 's3cret', publicHealth: true });
    expect(
      (await rawHttp(withToken.port, '/healthz', `anything.example:${withToken.port}`)).status,
    ).toBe(200);
  });

  it('refuses a bad allowedHosts entry at registration', async () => {
    await expect(serve({ allowedHosts: ['http://x.example'] })).rejects.toThrow(/allowedHosts/);
  });

  it('same origin compares the scheme too: only an http(s) Origin can be this origin', async () => {
    const { port } = await serve({ token: 't' });
    const ws = await rawConnect(port, {
      headers: { Origin: `ftp://127.0.0.1:${port}`, Authorization: 'Bearer t' },
    });
    expect(ws.status).toBe(403);
    ws.socket.destroy();
  });
});

describe('token, caching and error bodies', () => {
  it('/healthz and /metrics need the token when one is set (publicHealth opens /healthz only)', async () => {
    const { port } = await serve({ token: 'tok', metrics: true });
    const health = await rawHttp(port, '/healthz', `127.0.0.1:${port}`);
    expect(health.status).toBe(401);
    expect(JSON.parse(health.body).code).toBe('TOKEN_REQUIRED');
    expect(
      (await rawHttp(port, '/healthz', `127.0.0.1:${port}`, { Authorization: 'Bearer tok' }))
        .status,
    ).toBe(200);
    expect((await rawHttp(port, '/metrics', `127.0.0.1:${port}`)).status).toBe(401);
    expect(
      (await rawHttp(port, '/metrics', `127.0.0.1:${port}`, { Authorization: 'Bearer tok' }))
        .status,
    ).toBe(200);
  });

  it('upload state is never cached: Cache-Control no-store on 200 and 404', async () => {
    const { port } = await serve();
    const client = await RawClient.connect(server!.wsUrl);
    client.open({ fileSize: 10 });
    const accept = await client.expect('accept');
    client.close();
    const id = Buffer.from(accept.uploadId).toString('hex');
    const secret = Buffer.from(accept.secret).toString('hex');
    const found = await rawHttp(port, `/uploads/${id}`, `127.0.0.1:${port}`, {
      'Bigup-Secret': secret,
    });
    expect(found.status).toBe(200);
    expect(found.headers['cache-control']).toBe('no-store');
    const missing = await rawHttp(port, `/uploads/${'0'.repeat(32)}`, `127.0.0.1:${port}`);
    expect(missing.status).toBe(404);
    expect(missing.headers['cache-control']).toBe('no-store');
    expect(JSON.parse(missing.body)).toEqual({ code: 'NOT_FOUND', error: 'not found' });
  });

  it('an unreadable upload record answers an unauthenticated GET with 404, no errno and no path', async () => {
    const { port } = await serve();
    const id = 'ab'.repeat(16);
    // A directory where the metadata file should be: reading it fails with EISDIR.
    await mkdir(join(tmp.path, 'data', 'uploads', `${id}.json`), { recursive: true });
    const answer = await rawHttp(port, `/uploads/${id}`, `127.0.0.1:${port}`, {
      'Bigup-Secret': 'cd'.repeat(32),
    });
    expect(answer.status).toBe(404);
    expect(answer.body).not.toMatch(/EISDIR|errno|\/tmp|data\/uploads/);
    expect(JSON.parse(answer.body).code).toBe('NOT_FOUND');
  });

  it('the page is served with CSP, nosniff and no framing by other sites', async () => {
    const { port } = await serve();
    const page = await rawHttp(port, '/', `127.0.0.1:${port}`);
    expect(page.status).toBe(200);
    expect(page.headers['x-content-type-options']).toBe('nosniff');
    expect(page.headers['content-security-policy']).toMatch(/frame-ancestors 'self'/);
    expect(page.headers['content-security-policy']).toMatch(/default-src 'self'/);
    expect(page.headers['x-frame-options']).toBe('SAMEORIGIN');
  });

  it('a WebSocket upgrade on an unknown path is answered 404 and its socket closed', async () => {
    const { port } = await serve();
    for (const path of [
      '/nope',
      '/metrics',
      '/uploads',
      '/healthz',
      `/uploads/${'ab'.repeat(16)}`,
    ]) {
      const attempt = await rawConnect(port, { path });
      expect(attempt.status).toBe(404);
      expect(
        await Promise.race([
          attempt.closed.then(() => 'closed'),
          new Promise((r) => setTimeout(() => r('open'), 2000)),
        ]),
      ).toBe('closed');
    }
  });
});

describe('requestTimeout: a deadline until the handler runs, never on an upload body', () => {
  /** Send `head`, then `body` in `pieces` spread over `spreadMs`; resolve with what came back. */
  function paced(
    port: number,
    head: string,
    body: Buffer,
    pieces: number,
    spreadMs: number,
  ): Promise<{ answer: string; closedBy: 'server' | 'end' }> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      let answer = '';
      let sent = 0;
      socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
      socket.on('close', () => resolve({ answer, closedBy: sent < pieces ? 'server' : 'end' }));
      socket.on('error', reject);
      socket.write(head);
      const size = Math.ceil(body.byteLength / pieces);
      const timer = setInterval(() => {
        if (socket.destroyed) return clearInterval(timer);
        socket.write(body.subarray(sent * size, (sent + 1) * size));
        if (++sent === pieces) clearInterval(timer);
      }, spreadMs / pieces);
    });
  }

  it('a tus PATCH that keeps sending for longer than requestTimeout is stored whole', async () => {
    const { port } = await serve({ requestTimeout: 500, headersTimeout: 500 });
    const size = 64 * 1024;
    const created = await fetch(`http://127.0.0.1:${port}/files/`, {
      method: 'POST',
      headers: { 'Tus-Resumable': '1.0.0', 'Upload-Length': String(size) },
    });
    expect(created.status).toBe(201);
    const location = new URL(created.headers.get('location') ?? '', `http://127.0.0.1:${port}`);
    const body = Buffer.alloc(size, 7);
    // 2 s of body, 4x the deadline, at ~32 KiB/s: above the default minThroughput (1 KiB/s).
    const { answer } = await paced(
      port,
      `PATCH ${location.pathname} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\n` +
        `Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n` +
        `Content-Length: ${size}\r\nConnection: close\r\n\r\n`,
      body,
      20,
      2000,
    );
    expect(answer).toMatch(/^HTTP\/1\.1 204/);
    expect(answer).toMatch(new RegExp(`upload-offset: ${size}`, 'i'));
  });

  it('a body Fastify reads itself that stalls is cut at requestTimeout', async () => {
    const { port } = await serve({ requestTimeout: 500, headersTimeout: 500 });
    // 10 of the 100 announced bytes, then nothing more: the handler never starts.
    const result = await paced(
      port,
      `DELETE /uploads/${'a'.repeat(32)} HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
        `Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a":"bbbb`,
      Buffer.alloc(0),
      1,
      60_000,
    );
    expect(result.closedBy).toBe('server');
    expect(result.answer).toBe('');
  });

  it('refuses a requestTimeout below headersTimeout', async () => {
    await expect(serve({ requestTimeout: 100, headersTimeout: 500 })).rejects.toThrow(
      /requestTimeout/,
    );
  });
});
