/**
 * The HTTP binding (SPEC.md 3.6): the same upload over POST/PUT/DELETE, and every bad input
 * answered with its registry error, its HTTP status, and nothing stored.
 */
import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Errors,
  bytesToHex,
  decodeServerMessage,
  encodeComplete,
  encodeOpen,
  encodeResume,
  hashToHex,
  loadHasher,
  type AcceptMessage,
  type ErrorMessage,
  type Hasher,
  type ServerMessage,
} from '../../protocol/index.js';
import { HTTP_STATUS_OF_ERROR } from '../../server/http-binding.js';
import { RawClient } from '../helpers/protocol-client.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

const CHUNK = 65_536;
const TOKEN = 'http-binding-test-token';

interface Reply {
  status: number;
  headers: Headers;
  message: ServerMessage | undefined;
}

async function call(
  url: string,
  init: { method: string; body?: Uint8Array; headers?: Record<string, string> },
): Promise<Reply> {
  const response = await fetch(url, {
    method: init.method,
    headers: { 'content-type': 'application/octet-stream', ...init.headers },
    ...(init.body ? { body: new Uint8Array(init.body) } : {}),
  });
  const bytes = new Uint8Array(await response.arrayBuffer());
  const isBinary = response.headers.get('content-type') === 'application/octet-stream';
  return {
    status: response.status,
    headers: response.headers,
    message: isBinary && bytes.byteLength > 0 ? decodeServerMessage(bytes) : undefined,
  };
}

/** A PUT through node:http, which keeps reading the answer when the server refuses early. */
function rawPut(
  url: string,
  headers: Record<string, string>,
  body: Buffer,
): Promise<{ status: number; message: ServerMessage | undefined }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'PUT', headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (p: Buffer) => parts.push(p));
      res.on('end', () => {
        const bytes = Buffer.concat(parts);
        resolve({
          status: res.statusCode ?? 0,
          message: bytes.length > 0 ? decodeServerMessage(new Uint8Array(bytes)) : undefined,
        });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

function errorOf(reply: { message: ServerMessage | undefined }): ErrorMessage {
  expect(reply.message?.type).toBe('error');
  return reply.message as ErrorMessage;
}

describe('HTTP binding', () => {
  let tmp: TempDir;
  let server: TestServer;
  let hasher: Hasher;
  const auth = { authorization: `Bearer ${TOKEN}` };

  beforeAll(async () => {
    tmp = await makeTempDir();
    hasher = await loadHasher();
    server = await startServer({
      dir: join(tmp.path, 'data'),
      token: TOKEN,
      window: 4 * CHUNK,
      httpRequestsPerUpload: 3,
      httpBodyTimeout: 500,
    });
  });
  afterAll(async () => {
    await server.close();
    await tmp.cleanup();
  });

  const base = (): string => `${server.url}/upload`;

  async function open(size: number): Promise<{ accept: AcceptMessage; lease: string; id: string }> {
    const reply = await call(base(), {
      method: 'POST',
      headers: auth,
      body: encodeOpen({
        fileSize: size,
        chunkSize: CHUNK,
        name: 'h.bin',
        contentType: '',
        token: '',
        metadata: {},
      }),
    });
    expect(reply.status).toBe(200);
    const accept = reply.message as AcceptMessage;
    expect(accept.type).toBe('accept');
    return {
      accept,
      lease: reply.headers.get('bigup-lease') ?? '',
      id: bytesToHex(accept.uploadId),
    };
  }

  function put(
    id: string,
    lease: string,
    index: number,
    bytes: Uint8Array,
    hash = hasher.h64(bytes),
  ) {
    return call(`${base()}/${id}/chunks/${index}`, {
      method: 'PUT',
      headers: { 'bigup-lease': lease, 'bigup-hash': hashToHex(hash) },
      body: bytes,
    });
  }

  async function ackedBytes(id: string, secret: Uint8Array): Promise<number> {
    const response = await fetch(`${server.url}/uploads/${id}`, {
      headers: { 'bigup-secret': bytesToHex(secret) },
    });
    expect(response.status).toBe(200);
    return ((await response.json()) as { ackedBytes: number }).ackedBytes;
  }

  it('uploads a file: OPEN, PUT of every chunk (out of order, several in flight), COMPLETE', async () => {
    const file = randomBytes(3 * CHUNK + 123);
    const { accept, lease, id } = await open(file.length);
    expect(lease).toMatch(/^[0-9a-f]{32}$/);
    // Three in flight at once (the server's limit in this suite), out of order; then the last.
    const order = [3, 1, 0, 2];
    const replies = await Promise.all(
      order.slice(0, 3).map((i) => put(id, lease, i, file.subarray(i * CHUNK, (i + 1) * CHUNK))),
    );
    replies.push(await put(id, lease, 2, file.subarray(2 * CHUNK, 3 * CHUNK)));
    for (const [n, i] of order.entries()) {
      expect(replies[n].status).toBe(200);
      expect(replies[n].message).toEqual({
        type: 'ack',
        ranges: [{ start: i * CHUNK, end: Math.min(file.length, (i + 1) * CHUNK) }],
      });
    }
    const done = await call(`${base()}/${id}/complete`, {
      method: 'POST',
      headers: { 'bigup-lease': lease },
      body: encodeComplete(),
    });
    expect(done.status).toBe(200);
    expect(done.message?.type).toBe('result');
    const stored = await readFile(join(tmp.path, 'data', 'files', id, 'h.bin'));
    expect(stored.equals(file)).toBe(true);
    expect(accept.created).toBe(true);
    // The lease ended with the upload: a late PUT learns it must not go on.
    const late = await put(id, lease, 0, file.subarray(0, CHUNK));
    expect(late.status).toBe(408);
  });

  it('release lets go of the upload at once (as closing a WebSocket); the lease is then unknown', async () => {
    const { accept, lease, id } = await open(2 * CHUNK);
    const state = async () =>
      (await (
        await fetch(`${server.url}/uploads/${id}`, {
          headers: { 'bigup-secret': bytesToHex(accept.secret) },
        })
      ).json()) as { connected: boolean };
    expect((await state()).connected).toBe(true);
    const released = await fetch(`${base()}/${id}/release`, {
      method: 'POST',
      headers: { 'bigup-lease': lease },
    });
    expect(released.status).toBe(204);
    expect((await state()).connected).toBe(false);
    expect((await put(id, lease, 0, randomBytes(CHUNK))).status).toBe(408);
  });

  it('refuses a wrong hash (422 HASH_MISMATCH), stores nothing, then acks the right one', async () => {
    const { accept, lease, id } = await open(2 * CHUNK);
    const bytes = randomBytes(CHUNK);
    const bad = await put(id, lease, 0, bytes, hasher.h64(bytes) ^ 1n);
    expect(bad.status).toBe(422);
    expect(errorOf(bad)).toMatchObject({
      code: Errors.HASH_MISMATCH.code,
      offset: 0,
      length: CHUNK,
    });
    expect(bad.headers.get('bigup-error')).toBe('HASH_MISMATCH');
    expect(await ackedBytes(id, accept.secret)).toBe(0);
    expect((await put(id, lease, 0, bytes)).status).toBe(200);
    expect(await ackedBytes(id, accept.secret)).toBe(CHUNK);
  });

  it('refuses a wrong index and a wrong length (416 OUT_OF_RANGE), nothing stored', async () => {
    const { accept, lease, id } = await open(2 * CHUNK);
    const bytes = randomBytes(CHUNK);
    const past = await put(id, lease, 2, bytes);
    expect(past.status).toBe(416);
    expect(errorOf(past).code).toBe(Errors.OUT_OF_RANGE.code);
    const notANumber = await put(id, lease, -1, bytes);
    expect(notANumber.status).toBe(416);
    const short = await put(id, lease, 0, bytes.subarray(0, 100));
    expect(short.status).toBe(416);
    expect(await ackedBytes(id, accept.secret)).toBe(0);
  });

  it('refuses a body larger than the chunk from its Content-Length (413), nothing stored', async () => {
    const { accept, lease, id } = await open(2 * CHUNK);
    const body = randomBytes(CHUNK + 1);
    const reply = await rawPut(
      `${base()}/${id}/chunks/0`,
      { 'bigup-lease': lease, 'bigup-hash': hashToHex(hasher.h64(body)) },
      body,
    );
    expect(reply.status).toBe(413);
    expect(errorOf(reply).code).toBe(Errors.MESSAGE_TOO_LARGE.code);
    expect(await ackedBytes(id, accept.secret)).toBe(0);
  });

  it('refuses a body that does not arrive within httpBodyTimeout (408 TOO_SLOW), nothing stored', async () => {
    const { accept, lease, id } = await open(2 * CHUNK);
    const bytes = randomBytes(CHUNK);
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(
        `${base()}/${id}/chunks/0`,
        {
          method: 'PUT',
          headers: {
            'bigup-lease': lease,
            'bigup-hash': hashToHex(hasher.h64(bytes)),
            'content-length': String(CHUNK),
          },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.write(bytes.subarray(0, 1000)); // and never the rest
    });
    expect(status).toBe(408);
    expect(await ackedBytes(id, accept.secret)).toBe(0);
  });

  it('refuses OPEN without the server token (401) and with a wrong one (403), creating nothing', async () => {
    const body = new Uint8Array(
      encodeOpen({
        fileSize: CHUNK,
        chunkSize: CHUNK,
        name: 'x.bin',
        contentType: '',
        token: '',
        metadata: {},
      }),
    );
    const none = await fetch(base(), { method: 'POST', body });
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({ code: 'TOKEN_REQUIRED' });
    const wrong = await fetch(base(), {
      method: 'POST',
      body,
      headers: { authorization: 'Bearer nope' },
    });
    expect(wrong.status).toBe(403);
    expect(wrong.headers.get('bigup-lease')).toBeNull();
    // A PUT without a lease is no way around it.
    const bytes = randomBytes(CHUNK);
    const noLease = await put('0'.repeat(32), '0'.repeat(32), 0, bytes);
    expect(noLease.status).toBe(408);
    expect(errorOf(noLease).code).toBe(Errors.IDLE_TIMEOUT.code);
  });

  it('one writer: a RESUME (over HTTP or WebSocket) takes the upload over; the old lease gets TAKEN_OVER and stores nothing', async () => {
    const { accept, lease, id } = await open(3 * CHUNK);
    const bytes = randomBytes(CHUNK);
    expect((await put(id, lease, 0, bytes)).status).toBe(200);
    const resumed = await call(base(), {
      method: 'POST',
      headers: auth,
      body: encodeResume({ uploadId: accept.uploadId, secret: accept.secret, token: '' }),
    });
    expect(resumed.status).toBe(200);
    expect((resumed.message as AcceptMessage).ranges).toEqual([{ start: 0, end: CHUNK }]);
    const second = resumed.headers.get('bigup-lease') ?? '';
    expect(second).not.toBe(lease);
    const old = await put(id, lease, 1, randomBytes(CHUNK));
    expect(old.status).toBe(409);
    expect(errorOf(old).code).toBe(Errors.TAKEN_OVER.code);
    expect(await ackedBytes(id, accept.secret)).toBe(CHUNK);
    // A WebSocket RESUME takes it from the HTTP lease in turn.
    const ws = await RawClient.connect(server.wsUrl, { token: TOKEN });
    ws.resume(accept.uploadId, accept.secret);
    expect((await ws.expect('accept')).ranges).toEqual([{ start: 0, end: CHUNK }]);
    const fromHttp = await put(id, second, 1, randomBytes(CHUNK));
    expect(fromHttp.status).toBe(409);
    expect(errorOf(fromHttp).code).toBe(Errors.TAKEN_OVER.code);
    expect(await ackedBytes(id, accept.secret)).toBe(CHUNK);
    ws.close();
  });

  /** Start `count` PUTs whose bodies never finish (each sends 10 bytes of `CHUNK`). */
  function holdBodies(url: string, id: string, lease: string, count: number) {
    return Array.from({ length: count }, (_, i) => {
      const req = httpRequest(`${url}/${id}/chunks/${i}`, {
        method: 'PUT',
        headers: {
          'bigup-lease': lease,
          'bigup-hash': '0000000000000000',
          'content-length': String(CHUNK),
        },
      });
      req.on('error', () => undefined);
      req.write(Buffer.alloc(10));
      return req;
    });
  }

  it('bounds chunk requests pending on one lease (httpRequestsPerUpload): one more ends the lease with WINDOW_EXCEEDED', async () => {
    const { accept, lease, id } = await open(8 * CHUNK);
    // Three bodies that never finish hold the three slots; the fourth is refused at once.
    const held = holdBodies(base(), id, lease, 3);
    await new Promise((r) => setTimeout(r, 100));
    const fourth = await put(id, lease, 5, randomBytes(CHUNK));
    expect(fourth.status).toBe(429);
    expect(errorOf(fourth).code).toBe(Errors.WINDOW_EXCEEDED.code);
    for (const req of held) req.destroy();
    expect(await ackedBytes(id, accept.secret)).toBe(0);
  });

  it('closes the connection after refusing a PUT before reading its body (rules 1 to 5)', async () => {
    const { lease, id } = await open(2 * CHUNK);
    const cases: Array<[string, Record<string, string>]> = [
      [`/upload/${id}/chunks/0`, { 'bigup-lease': '0'.repeat(32) }], // unknown lease
      [`/upload/${id}/chunks/0`, { 'bigup-lease': lease, 'bigup-hash': 'nope' }],
      [`/upload/${id}/chunks/99`, { 'bigup-lease': lease, 'bigup-hash': '0'.repeat(16) }],
      // Rule 5 (a length that is not the chunk's): bounded, but it could trickle for ever.
      [`/upload/${id}/chunks/0`, { 'bigup-lease': lease, 'bigup-hash': '0'.repeat(16) }],
    ];
    for (const [path, headers] of cases) {
      const socket = connect(Number(new URL(server.url).port), '127.0.0.1');
      const head = Object.entries({ ...auth, ...headers })
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('');
      // A body is declared (a terabyte, or one byte short of the chunk) and never sent: only
      // closing ends this request.
      const length = path.endsWith('/chunks/0') && headers['bigup-hash'] ? CHUNK - 1 : 1e12;
      socket.write(
        `PUT ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\n${head}content-length: ${length}\r\n\r\n`,
      );
      let answer = '';
      socket.on('data', (part: Buffer) => (answer += part.toString('latin1')));
      await new Promise<void>((resolve) => socket.once('close', () => resolve()));
      expect(answer).toMatch(/^HTTP\/1\.1 4\d\d /);
      expect(answer.toLowerCase()).toContain('connection: close');
    }
  });

  it('stops reading the bodies of a lease when it ends: released and resumed leases cannot stack up bodies', async () => {
    // httpBodyTimeout far beyond the test's time: only the lease's end can answer these PUTs.
    const slow = await startServer({
      dir: join(tmp.path, 'data-stop'),
      window: 2 * CHUNK,
      httpRequestsPerUpload: 8,
      httpBodyTimeout: 120_000,
      logLevel: false,
    });
    try {
      const opened = await call(`${slow.url}/upload`, {
        method: 'POST',
        body: encodeOpen({
          fileSize: 8 * CHUNK,
          chunkSize: CHUNK,
          name: 's.bin',
          contentType: '',
          token: '',
          metadata: {},
        }),
      });
      const accept = opened.message as AcceptMessage;
      const id = bytesToHex(accept.uploadId);
      let lease = opened.headers.get('bigup-lease') ?? '';
      for (let cycle = 0; cycle < 3; cycle++) {
        const held = holdBodies(`${slow.url}/upload`, id, lease, 2);
        const answered = held.map(
          (req) =>
            new Promise<{ status: number; closed: boolean }>((resolve) => {
              req.on('response', (res) => {
                res.resume();
                // The server closes the connection: the rest of the body is never read.
                req.socket?.once('close', () =>
                  resolve({ status: res.statusCode ?? 0, closed: true }),
                );
              });
            }),
        );
        await new Promise((r) => setTimeout(r, 100));
        // Meanwhile another client uploads a file whole on its own lease.
        if (cycle === 0) {
          const file = randomBytes(2 * CHUNK);
          const other = await call(`${slow.url}/upload`, {
            method: 'POST',
            body: encodeOpen({
              fileSize: file.length,
              chunkSize: CHUNK,
              name: 'bystander.bin',
              contentType: '',
              token: '',
              metadata: {},
            }),
          });
          const otherLease = other.headers.get('bigup-lease') ?? '';
          const otherId = bytesToHex((other.message as AcceptMessage).uploadId);
          for (const i of [0, 1]) {
            const bytes = file.subarray(i * CHUNK, (i + 1) * CHUNK);
            const acked = await call(`${slow.url}/upload/${otherId}/chunks/${i}`, {
              method: 'PUT',
              headers: { 'bigup-lease': otherLease, 'bigup-hash': hashToHex(hasher.h64(bytes)) },
              body: bytes,
            });
            expect(acked.status).toBe(200);
          }
          const done = await call(`${slow.url}/upload/${otherId}/complete`, {
            method: 'POST',
            headers: { 'bigup-lease': otherLease },
            body: encodeComplete(),
          });
          expect(done.message?.type).toBe('result');
          const stored = await readFile(
            join(tmp.path, 'data-stop', 'files', otherId, 'bystander.bin'),
          );
          expect(stored.equals(file)).toBe(true);
        }
        const released = await fetch(`${slow.url}/upload/${id}/release`, {
          method: 'POST',
          headers: { 'bigup-lease': lease },
        });
        expect(released.status).toBe(204);
        for (const outcome of await Promise.all(answered)) {
          expect(outcome.status).toBe(HTTP_STATUS_OF_ERROR.IDLE_TIMEOUT);
          expect(outcome.closed).toBe(true);
        }
        const resumed = await call(`${slow.url}/upload`, {
          method: 'POST',
          body: encodeResume({ uploadId: accept.uploadId, secret: accept.secret, token: '' }),
        });
        expect(resumed.status).toBe(200);
        lease = resumed.headers.get('bigup-lease') ?? '';
      }
    } finally {
      await slow.close();
    }
  });

  it('bounds the bytes pending on one lease, bodies being received included, by the window', async () => {
    const small = await startServer({
      dir: join(tmp.path, 'data-window'),
      window: 2 * CHUNK,
      httpRequestsPerUpload: 8,
      logLevel: false,
    });
    try {
      const reply = await call(`${small.url}/upload`, {
        method: 'POST',
        body: encodeOpen({
          fileSize: 8 * CHUNK,
          chunkSize: CHUNK,
          name: 'w.bin',
          contentType: '',
          token: '',
          metadata: {},
        }),
      });
      const lease = reply.headers.get('bigup-lease') ?? '';
      const id = bytesToHex((reply.message as AcceptMessage).uploadId);
      const held = holdBodies(`${small.url}/upload`, id, lease, 2);
      await new Promise((r) => setTimeout(r, 100));
      const bytes = randomBytes(CHUNK);
      const third = await call(`${small.url}/upload/${id}/chunks/2`, {
        method: 'PUT',
        headers: { 'bigup-lease': lease, 'bigup-hash': hashToHex(hasher.h64(bytes)) },
        body: bytes,
      });
      expect(third.status).toBe(429);
      expect(errorOf(third).code).toBe(Errors.WINDOW_EXCEEDED.code);
      for (const req of held) req.destroy();
    } finally {
      await small.close();
    }
  });
});

describe('HTTP binding across origins', () => {
  it('answers the preflight and exposes the lease to an allowed origin; refuses another origin (403)', async () => {
    const tmpDir = await makeTempDir();
    const server = await startServer({
      dir: join(tmpDir.path, 'data'),
      origins: ['http://app.example'],
    });
    try {
      const preflight = await fetch(`${server.url}/upload/${'a'.repeat(32)}/chunks/0`, {
        method: 'OPTIONS',
        headers: {
          origin: 'http://app.example',
          'access-control-request-method': 'PUT',
          'access-control-request-headers': 'bigup-lease, bigup-hash',
        },
      });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get('access-control-allow-origin')).toBe('http://app.example');
      expect(preflight.headers.get('access-control-allow-headers')).toContain('bigup-hash');
      const body = new Uint8Array(
        encodeOpen({
          fileSize: 10,
          chunkSize: 0,
          name: 'c.bin',
          contentType: '',
          token: '',
          metadata: {},
        }),
      );
      const opened = await fetch(`${server.url}/upload`, {
        method: 'POST',
        headers: { origin: 'http://app.example', 'content-type': 'application/octet-stream' },
        body,
      });
      expect(opened.status).toBe(200);
      expect(opened.headers.get('access-control-expose-headers')).toContain('Bigup-Lease');
      const evil = await fetch(`${server.url}/upload`, {
        method: 'POST',
        headers: { origin: 'http://evil.example', 'content-type': 'application/octet-stream' },
        body,
      });
      expect(evil.status).toBe(403);
      expect(evil.headers.get('access-control-allow-origin')).toBeNull();
      expect(await evil.json()).toMatchObject({ code: 'ORIGIN_NOT_ALLOWED' });
    } finally {
      await server.close();
      await tmpDir.cleanup();
    }
  });
});

describe('SPEC.md 3.6.5 and the server agree on the status of every error', () => {
  it('lists each registry error once, with the status the server answers', async () => {
    const spec = await readFile(
      fileURLToPath(new URL('../../protocol/SPEC.md', import.meta.url)),
      'utf8',
    );
    const table =
      /<!-- BEGIN: http-binding-status -->([\s\S]*?)<!-- END: http-binding-status -->/.exec(
        spec,
      )?.[1];
    expect(table).toBeDefined();
    const listed = new Map<string, number>();
    for (const row of table!.split('\n').slice(3)) {
      const cells = row.split('|').map((c) => c.trim());
      if (cells.length < 3 || cells[1] === '') continue;
      for (const name of cells[1].split(',').map((n) => n.trim()))
        listed.set(name, Number(/^\d{3}/.exec(cells[2])?.[0]));
    }
    expect(Object.fromEntries(listed)).toEqual({ ...HTTP_STATUS_OF_ERROR });
    expect([...listed.keys()].sort()).toEqual(Object.keys(Errors).sort());
  });
});
