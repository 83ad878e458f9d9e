/**
 * The tus endpoint refusing bad input: each request gets its specified status and `{code, error}`
 * body, and nothing stored changes (metadata, journal, tail records, the upload's offset and the
 * bytes below it; a refused PATCH may leave bytes above the offset, which nothing vouches for).
 * Also the extensions working as tus-js-client uses them (creation-with-upload, deferred length,
 * checksum, termination, expiration).
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DiskStore, mintUploadTicket } from '../../server/index.js';
import { bytesToHex } from '../../protocol/index.js';
import { RawClient } from '../helpers/protocol-client.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { listFiles, makeTempDir, type TempDir } from '../helpers/tmp.js';
import { tusRequest, tusUpload } from '../helpers/tus.js';

const MiB = 1024 * 1024;
const AUTH = { Authorization: 'Bearer tok' };
const OCTETS = { 'Content-Type': 'application/offset+octet-stream' };
const SECRET = 'a-ticket-secret-of-at-least-32-characters!';

describe('tus endpoint: bad input and extensions', () => {
  let tmp: TempDir;
  let server: TestServer;
  beforeEach(async () => {
    tmp = await makeTempDir();
    server = await startServer({
      dir: tmp.path,
      token: 'tok',
      adminToken: 'admin',
      ticketSecret: SECRET,
      defaultChunkSize: MiB,
      maxUploadSize: 64 * MiB,
      metrics: true,
    });
  });
  afterEach(async () => {
    await server.close();
    await tmp.cleanup();
  });

  it('does not reach an upload opened over WebSocket (no secret in tus): HEAD, PATCH and DELETE are 404, the upload unharmed', async () => {
    const data = randomBytes(2 * MiB);
    const client = await RawClient.connect(server.wsUrl, { token: 'tok' });
    client.open({ fileSize: data.byteLength, chunkSize: MiB, name: 'ws.bin' });
    const accept = await client.expect('accept');
    client.sendData(0, data.subarray(0, MiB));
    await client.expect('ack');
    client.close();
    await client.closed;
    const id = bytesToHex(accept.uploadId);
    const url = `${server.url}/files/${id}`;
    expect((await tusRequest(url, 'HEAD', AUTH)).status).toBe(404);
    const patched = await tusRequest(
      url,
      'PATCH',
      { ...AUTH, ...OCTETS, 'Upload-Offset': String(MiB) },
      randomBytes(MiB),
    );
    expect(patched.status).toBe(404);
    expect((await tusRequest(url, 'DELETE', AUTH)).status).toBe(404);
    // Its owner, with the secret, finds it as it left it and completes it with its own bytes.
    const again = await RawClient.connect(server.wsUrl, { token: 'tok' });
    again.resume(accept.uploadId, accept.secret);
    expect((await again.expect('accept')).ranges).toEqual([{ start: 0, end: MiB }]);
    again.sendData(MiB, data.subarray(MiB));
    await again.expect('ack');
    again.complete();
    await again.expect('result');
    again.close();
    const stored = (await listFiles(tmp.path)).find((f) => f.startsWith(`files/${id}/`));
    expect(stored).toBeDefined();
    expect((await readFile(join(tmp.path, stored ?? ''))).equals(data)).toBe(true);
  });

  /**
   * Every file of the data directory and its sha256, `.part` files cut at `partLimit` bytes; for a
   * journal, the chunk records the store reads from it (an open of the upload appends BOOT and
   * SYNC marks, as a WebSocket RESUME does: bookkeeping, not stored content).
   */
  async function snapshot(partLimit = Number.MAX_SAFE_INTEGER): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    const store = new DiskStore({ dir: tmp.path });
    await store.init();
    for (const file of await listFiles(tmp.path)) {
      if (file.endsWith('.journal')) {
        const state = await store.readState(file.slice('uploads/'.length, -'.journal'.length));
        out[file] = JSON.stringify(state?.chunks.map((c) => [c.index, c.hash.toString(16)]));
        continue;
      }
      let bytes = await readFile(join(tmp.path, file));
      if (file.endsWith('.part')) bytes = bytes.subarray(0, partLimit);
      out[file] = createHash('sha256').update(bytes).digest('hex');
    }
    return out;
  }

  /**
   * The snapshot once the server stopped writing: after a PATCH the upload is unloaded in the
   * background, and its final checkpoint appends a SYNC mark to the journal.
   */
  async function settled(partLimit?: number): Promise<Record<string, string>> {
    let last = await snapshot(partLimit);
    for (let i = 0; i < 50; i++) {
      await new Promise((r) => setTimeout(r, 40));
      const next = await snapshot(partLimit);
      if (JSON.stringify(next) === JSON.stringify(last)) return next;
      last = next;
    }
    return last;
  }

  /** An upload of `size` bytes with its first `sent` bytes PATCHed; its URL and offset. */
  async function started(
    size: number,
    sent: number,
  ): Promise<{ url: string; id: string; data: Buffer }> {
    const data = randomBytes(size);
    const created = await tusRequest(`${server.url}/files/`, 'POST', {
      ...AUTH,
      'Upload-Length': String(size),
    });
    expect(created.status).toBe(201);
    const url = new URL(created.headers.get('location')!).href;
    if (sent > 0) {
      const patched = await tusRequest(
        url,
        'PATCH',
        { ...AUTH, ...OCTETS, 'Upload-Offset': '0' },
        data.subarray(0, sent),
      );
      expect(patched.status).toBe(204);
    }
    return { url, id: created.headers.get('bigup-upload-id')!, data };
  }

  async function offsetOf(url: string): Promise<number> {
    const head = await tusRequest(url, 'HEAD', AUTH);
    expect(head.status).toBe(200);
    return Number(head.headers.get('upload-offset'));
  }

  async function expectRefused(response: Response, status: number, code: string): Promise<void> {
    expect(response.status).toBe(status);
    expect(response.headers.get('tus-resumable')).toBe('1.0.0');
    const text = await response.text();
    if (text !== '') expect(JSON.parse(text)).toMatchObject({ code }); // HEAD answers have no body
  }

  it('refuses malformed creations (version, lengths, metadata, size) and creates nothing', async () => {
    const before = await snapshot();
    const post = (headers: Record<string, string>) =>
      tusRequest(`${server.url}/files/`, 'POST', { ...AUTH, ...headers });
    const noVersion = await fetch(`${server.url}/files/`, {
      method: 'POST',
      headers: { ...AUTH, 'Upload-Length': '10' },
    });
    await expectRefused(noVersion, 412, 'TUS_VERSION_UNSUPPORTED');
    expect(noVersion.headers.get('tus-version')).toBe('1.0.0');
    await expectRefused(
      await post({ 'Tus-Resumable': '0.2.2', 'Upload-Length': '10' }),
      412,
      'TUS_VERSION_UNSUPPORTED',
    );
    for (const length of ['abc', '-1', '1e3', '10.5', '', '99999999999999999']) {
      await expectRefused(await post({ 'Upload-Length': length }), 400, 'TUS_BAD_HEADER');
    }
    await expectRefused(await post({}), 400, 'TUS_BAD_HEADER');
    await expectRefused(
      await post({ 'Upload-Length': '10', 'Upload-Defer-Length': '1' }),
      400,
      'TUS_BAD_HEADER',
    );
    await expectRefused(await post({ 'Upload-Defer-Length': '2' }), 400, 'TUS_BAD_HEADER');
    await expectRefused(
      await post({ 'Upload-Length': String(64 * MiB + 1) }),
      413,
      'TUS_TOO_LARGE',
    );
    for (const metadata of [
      'filename not*base64',
      'a YQ==,a YQ==',
      'bad key YQ==',
      `filename ${Buffer.from([0xff, 0xfe]).toString('base64')}`,
    ]) {
      await expectRefused(
        await post({ 'Upload-Length': '10', 'Upload-Metadata': metadata }),
        400,
        'TUS_BAD_HEADER',
      );
    }
    // creation-with-upload with a body of the wrong type
    await expectRefused(
      await tusRequest(
        `${server.url}/files/`,
        'POST',
        { ...AUTH, 'Upload-Length': '4', 'Content-Type': 'text/plain' },
        Buffer.from('abcd'),
      ),
      415,
      'TUS_CONTENT_TYPE',
    );
    expect(await snapshot()).toEqual(before);
  });

  it('refuses missing and invalid credentials, and a ticket of another subject, changing nothing', async () => {
    const { url } = await started(3 * MiB, MiB + 7);
    const before = await settled();
    const noAuth = await tusRequest(`${server.url}/files/`, 'POST', { 'Upload-Length': '10' });
    await expectRefused(noAuth, 401, 'TOKEN_REQUIRED');
    expect(noAuth.headers.get('www-authenticate')).toBe('Bearer');
    await expectRefused(
      await tusRequest(`${server.url}/files/`, 'POST', {
        Authorization: 'Bearer nope',
        'Upload-Length': '10',
      }),
      403,
      'TOKEN_REFUSED',
    );
    await expectRefused(
      await tusRequest(
        url,
        'PATCH',
        { ...OCTETS, 'Upload-Offset': String(MiB + 7) },
        randomBytes(100),
      ),
      401,
      'TOKEN_REQUIRED',
    );
    await expectRefused(
      await tusRequest(url, 'HEAD', { Authorization: 'Bearer nope' }),
      403,
      'TOKEN_REFUSED',
    );
    await expectRefused(await tusRequest(url, 'DELETE', {}), 401, 'TOKEN_REQUIRED');
    // A ticket reaches its own subject's uploads only; another one is told "not found".
    const alice = mintUploadTicket(SECRET, { sub: 'alice' });
    const bob = mintUploadTicket(SECRET, { sub: 'bob' });
    const mine = await tusRequest(`${server.url}/files/`, 'POST', {
      Authorization: `Bearer ${alice}`,
      'Upload-Length': '100',
    });
    expect(mine.status).toBe(201);
    const mineUrl = mine.headers.get('location')!;
    const afterAlice = await settled();
    await expectRefused(
      await tusRequest(
        mineUrl,
        'PATCH',
        { Authorization: `Bearer ${bob}`, ...OCTETS, 'Upload-Offset': '0' },
        randomBytes(100),
      ),
      404,
      'NOT_FOUND',
    );
    await expectRefused(
      await tusRequest(mineUrl, 'HEAD', { Authorization: `Bearer ${bob}` }),
      404,
      'NOT_FOUND',
    );
    await expectRefused(
      await tusRequest(mineUrl, 'DELETE', { Authorization: `Bearer ${bob}` }),
      404,
      'NOT_FOUND',
    );
    await expectRefused(
      await tusRequest(url, 'HEAD', { Authorization: `Bearer ${alice}` }),
      404,
      'NOT_FOUND',
    );
    expect(await snapshot()).toEqual(afterAlice);
    // A ticket's size claim holds for tus creations too.
    const small = mintUploadTicket(SECRET, { sub: 'carol', maxSize: 10 });
    await expectRefused(
      await tusRequest(`${server.url}/files/`, 'POST', {
        Authorization: `Bearer ${small}`,
        'Upload-Length': '11',
      }),
      413,
      'TUS_TOO_LARGE',
    );
    expect(await offsetOf(url)).toBe(MiB + 7);
    expect(Object.keys(await snapshot()).length).toBe(Object.keys(before).length + 3); // alice's upload only (json, journal, data)
  });

  it('refuses bad PATCHes: offset mismatch 409, bad headers 400, type 415, past the length 413; nothing stored changes', async () => {
    const { url, data } = await started(3 * MiB, MiB + 7);
    const at = MiB + 7;
    const before = await settled(at);
    const patch = (
      headers: Record<string, string>,
      body: Uint8Array = data.subarray(at, at + 1000),
    ) => tusRequest(url, 'PATCH', { ...AUTH, ...OCTETS, ...headers }, body);
    await expectRefused(await patch({ 'Upload-Offset': '0' }), 409, 'TUS_OFFSET_MISMATCH');
    await expectRefused(
      await patch({ 'Upload-Offset': String(at + 1) }),
      409,
      'TUS_OFFSET_MISMATCH',
    );
    await expectRefused(
      await patch({ 'Upload-Offset': String(2 * MiB) }),
      409,
      'TUS_OFFSET_MISMATCH',
    );
    await expectRefused(await patch({}), 400, 'TUS_BAD_HEADER');
    for (const offset of ['x', '-5', '1.0', ' '])
      await expectRefused(await patch({ 'Upload-Offset': offset }), 400, 'TUS_BAD_HEADER');
    await expectRefused(
      await patch({ 'Upload-Offset': String(at), 'Upload-Length': String(3 * MiB + 1) }),
      400,
      'TUS_BAD_HEADER',
    );
    await expectRefused(
      await patch({ 'Upload-Offset': String(at), 'Content-Type': 'application/octet-stream' }),
      415,
      'TUS_CONTENT_TYPE',
    );
    await expectRefused(
      await patch({ 'Upload-Offset': String(at), 'Upload-Checksum': 'crc32 AAAAAA==' }),
      400,
      'TUS_CHECKSUM_UNSUPPORTED',
    );
    await expectRefused(
      await patch({ 'Upload-Offset': String(at), 'Upload-Checksum': 'sha1 not base64!' }),
      400,
      'TUS_BAD_HEADER',
    );
    await expectRefused(
      await patch({ 'Upload-Offset': String(at) }, randomBytes(3 * MiB - at + 1)),
      413,
      'TUS_TOO_LARGE',
    );
    await expectRefused(
      await fetch(url, {
        method: 'PATCH',
        headers: { ...AUTH, ...OCTETS, 'Upload-Offset': String(at) },
        body: new Uint8Array(data.subarray(at, at + 10)),
      }),
      412,
      'TUS_VERSION_UNSUPPORTED',
    );
    expect(await offsetOf(url)).toBe(at);
    expect(await snapshot(at)).toEqual(before);
    // Unknown and malformed ids: 404, whatever the method.
    for (const bad of ['0'.repeat(32), 'zz', '..%2F..%2Fetc%2Fpasswd']) {
      await expectRefused(
        await tusRequest(`${server.url}/files/${bad}`, 'HEAD', AUTH),
        404,
        'NOT_FOUND',
      );
      await expectRefused(
        await tusRequest(
          `${server.url}/files/${bad}`,
          'PATCH',
          { ...AUTH, ...OCTETS, 'Upload-Offset': '0' },
          Buffer.from('x'),
        ),
        404,
        'NOT_FOUND',
      );
    }
    // The upload still completes with the right bytes.
    const rest = await patch({ 'Upload-Offset': String(at) }, data.subarray(at));
    expect(rest.status).toBe(204);
    expect(rest.headers.get('upload-offset')).toBe(String(data.byteLength));
  });

  it('checksum: a matching sha1 stores the body, a mismatch gets 460 and stores nothing', async () => {
    const { url, id, data } = await started(2 * MiB + 5, 100);
    const body = data.subarray(100, MiB + 300); // completes chunk 0 and starts chunk 1
    const sha1 = (b: Uint8Array) => createHash('sha1').update(b).digest('base64');
    const before = await settled(100);
    const bad = await tusRequest(
      url,
      'PATCH',
      {
        ...AUTH,
        ...OCTETS,
        'Upload-Offset': '100',
        'Upload-Checksum': `sha1 ${sha1(randomBytes(10))}`,
      },
      body,
    );
    await expectRefused(bad, 460, 'TUS_CHECKSUM_MISMATCH');
    expect(await offsetOf(url)).toBe(100);
    expect(await snapshot(100)).toEqual(before);
    const state = await fetch(`${server.url}/uploads/${id}`, {
      headers: { Authorization: 'Bearer admin' },
    });
    expect(await state.json()).toMatchObject({ ackedBytes: 0 });
    const good = await tusRequest(
      url,
      'PATCH',
      { ...AUTH, ...OCTETS, 'Upload-Offset': '100', 'Upload-Checksum': `sha1 ${sha1(body)}` },
      body,
    );
    expect(good.status).toBe(204);
    expect(good.headers.get('upload-offset')).toBe(String(MiB + 300));
    const sha256 = createHash('sha256')
      .update(data.subarray(MiB + 300))
      .digest('base64');
    const last = await tusRequest(
      url,
      'PATCH',
      {
        ...AUTH,
        ...OCTETS,
        'Upload-Offset': String(MiB + 300),
        'Upload-Checksum': `sha256 ${sha256}`,
      },
      data.subarray(MiB + 300),
    );
    expect(last.status).toBe(204);
    expect((await readFile(join(tmp.path, 'files', id, 'file'))).equals(data)).toBe(true);
  });

  it('a second PATCH while one is writing gets 423, and HEAD still answers; the first one completes', async () => {
    const size = 2 * MiB;
    const { url, data } = await started(size, 0);
    const target = new URL(url);
    // The first PATCH sends half its body, then waits.
    const first = httpRequest({
      host: target.hostname,
      port: target.port,
      path: target.pathname,
      method: 'PATCH',
      headers: {
        ...AUTH,
        ...OCTETS,
        'Tus-Resumable': '1.0.0',
        'Upload-Offset': '0',
        'Content-Length': String(size),
      },
    });
    const firstAnswer = new Promise<{ status: number; offset: string | undefined }>(
      (resolve, reject) => {
        first.on('response', (res) => {
          res.resume();
          resolve({
            status: res.statusCode!,
            offset: res.headers['upload-offset'] as string | undefined,
          });
        });
        first.on('error', reject);
      },
    );
    first.write(data.subarray(0, MiB + 10));
    // The second PATCH must come while the first holds the upload: once its first chunk is stored.
    for (const until = Date.now() + 30_000; Date.now() < until && (await offsetOf(url)) < MiB;)
      await new Promise((r) => setTimeout(r, 20));
    const before = await settled(MiB);
    const second = await tusRequest(
      url,
      'PATCH',
      { ...AUTH, ...OCTETS, 'Upload-Offset': String(MiB) },
      data.subarray(MiB),
    );
    await expectRefused(second, 423, 'TUS_LOCKED');
    const third = await tusRequest(
      url,
      'PATCH',
      { ...AUTH, ...OCTETS, 'Upload-Offset': '0' },
      data.subarray(0, 10),
    );
    expect([409, 423]).toContain(third.status);
    expect(await snapshot(MiB)).toEqual(before);
    first.end(data.subarray(MiB + 10));
    expect(await firstAnswer).toEqual({ status: 204, offset: String(size) });
  });

  it('HEADs racing the start of a PATCH do not lock it out: the PATCH takes the upload over from a HEAD instead of answering 423', async () => {
    // Each HEAD of an unloaded upload holds it while it loads it for its answer.
    // One chunk of two per PATCH: no completion (and its fsyncs) in the loop.
    for (let round = 0; round < 20; round++) {
      const { url, data } = await started(2 * MiB, 0);
      const heads = Array.from({ length: 8 }, () => tusRequest(url, 'HEAD', AUTH));
      const patched = tusRequest(
        url,
        'PATCH',
        { ...AUTH, ...OCTETS, 'Upload-Offset': '0' },
        data.subarray(0, MiB),
      );
      const later = Array.from({ length: 8 }, () => tusRequest(url, 'HEAD', AUTH));
      for (const head of await Promise.all([...heads, ...later])) expect(head.status).toBe(200);
      const answer = await patched;
      expect(answer.status).toBe(204);
      expect(answer.headers.get('upload-offset')).toBe(String(MiB));
    }
  });

  it('creation-with-upload, deferred length and termination as tus-js-client uses them', async () => {
    const data = randomBytes(2 * MiB + 3);
    const withUpload = await tusUpload(data, {
      endpoint: `${server.url}/files/`,
      headers: AUTH,
      uploadDataDuringCreation: true,
      metadata: { filename: 'cwu.bin' },
    });
    expect((await readFile(join(tmp.path, 'files', withUpload.id, 'cwu.bin'))).equals(data)).toBe(
      true,
    );
    expect(withUpload.offsets).toEqual([]); // the body went with the POST
    const deferred = await tusUpload(data, {
      endpoint: `${server.url}/files/`,
      headers: AUTH,
      uploadLengthDeferred: true,
      metadata: { filename: 'deferred.bin' },
    });
    expect(
      (await readFile(join(tmp.path, 'files', deferred.id, 'deferred.bin'))).equals(data),
    ).toBe(true);
    // A deferred upload before its first PATCH: HEAD says so; data without a length is refused.
    const announced = await tusRequest(`${server.url}/files/`, 'POST', {
      ...AUTH,
      'Upload-Defer-Length': '1',
    });
    expect(announced.status).toBe(201);
    const pendingUrl = announced.headers.get('location')!;
    const head = await tusRequest(pendingUrl, 'HEAD', AUTH);
    expect(head.headers.get('upload-defer-length')).toBe('1');
    expect(head.headers.get('upload-offset')).toBe('0');
    await expectRefused(
      await tusRequest(
        pendingUrl,
        'PATCH',
        { ...AUTH, ...OCTETS, 'Upload-Offset': '0' },
        Buffer.from('abc'),
      ),
      400,
      'TUS_BAD_HEADER',
    );
    expect((await tusRequest(pendingUrl, 'DELETE', AUTH)).status).toBe(204);
    expect((await tusRequest(pendingUrl, 'HEAD', AUTH)).status).toBe(404);
    // Termination of a stored upload: its files go, HEAD and GET /uploads/:id say 404.
    const { url, id } = await started(3 * MiB, MiB + 1);
    expect((await tusRequest(url, 'DELETE', AUTH)).status).toBe(204);
    expect((await tusRequest(url, 'HEAD', AUTH)).status).toBe(404);
    expect(
      (await fetch(`${server.url}/uploads/${id}`, { headers: { Authorization: 'Bearer admin' } }))
        .status,
    ).toBe(404);
    expect((await listFiles(tmp.path)).filter((f) => f.includes(id))).toEqual([]);
  });

  it('two first PATCHes of a deferred-length upload at once: one creates it, and the quota counts it once', async () => {
    await server.close();
    server = await startServer({
      dir: tmp.path,
      token: 'tok',
      defaultChunkSize: MiB,
      maxUnfinishedUploadsPerClient: 2,
    });
    for (let round = 0; round < 3; round++) {
      const announced = await tusRequest(`${server.url}/files/`, 'POST', {
        ...AUTH,
        'Upload-Defer-Length': '1',
      });
      expect(announced.status).toBe(201);
      const url = announced.headers.get('location')!;
      const first = { ...AUTH, ...OCTETS, 'Upload-Offset': '0', 'Upload-Length': '1000' };
      const answers = await Promise.all([
        tusRequest(url, 'PATCH', first),
        tusRequest(url, 'PATCH', first),
      ]);
      for (const answer of answers) expect([204, 423]).toContain(answer.status);
      expect(answers.some((answer) => answer.status === 204)).toBe(true);
      // One unfinished upload held: a second fits the limit of 2 (a double count left no room).
      const second = await tusRequest(`${server.url}/files/`, 'POST', {
        ...AUTH,
        'Upload-Length': '10',
      });
      expect(second.status).toBe(201);
      for (const done of [url, second.headers.get('location')!])
        expect((await tusRequest(done, 'DELETE', AUTH)).status).toBe(204);
    }
  });

  it('an announced record left behind after its upload was stored (its removal failed): HEAD, PATCH and DELETE act on the stored upload', async () => {
    const announced = await tusRequest(`${server.url}/files/`, 'POST', {
      ...AUTH,
      'Upload-Defer-Length': '1',
    });
    expect(announced.status).toBe(201);
    const url = announced.headers.get('location')!;
    const id = announced.headers.get('bigup-upload-id')!;
    const record = join(tmp.path, 'tus', `${id}.pending`);
    const saved = await readFile(record);
    const first = await tusRequest(
      url,
      'PATCH',
      { ...AUTH, ...OCTETS, 'Upload-Offset': '0', 'Upload-Length': '10' },
      Buffer.from('hello'),
    );
    expect(first.status).toBe(204);
    // As a failed removal would have left it. HEAD answers for the stored upload, not the record.
    await writeFile(record, saved);
    const head = await tusRequest(url, 'HEAD', AUTH);
    expect(head.headers.get('upload-offset')).toBe('5');
    expect(head.headers.get('upload-defer-length')).toBeNull();
    await writeFile(record, saved);
    const second = await tusRequest(
      url,
      'PATCH',
      { ...AUTH, ...OCTETS, 'Upload-Offset': '5' },
      Buffer.from('world'),
    );
    expect(second.status).toBe(204);
    expect(second.headers.get('upload-offset')).toBe('10');
    await expect(readFile(record)).rejects.toThrow();
    // DELETE of a stored upload with the record back: the upload goes, not just the record.
    const other = await tusRequest(`${server.url}/files/`, 'POST', {
      ...AUTH,
      'Upload-Defer-Length': '1',
    });
    const otherUrl = other.headers.get('location')!;
    const otherRecord = join(tmp.path, 'tus', `${other.headers.get('bigup-upload-id')}.pending`);
    const otherSaved = await readFile(otherRecord);
    await tusRequest(
      otherUrl,
      'PATCH',
      { ...AUTH, ...OCTETS, 'Upload-Offset': '0', 'Upload-Length': '10' },
      Buffer.from('hello'),
    );
    await writeFile(otherRecord, otherSaved);
    expect((await tusRequest(otherUrl, 'DELETE', AUTH)).status).toBe(204);
    expect((await tusRequest(otherUrl, 'HEAD', AUTH)).status).toBe(404);
  });

  it('expiration: Upload-Expires is announced, and the sweeper removes the idle upload after it', async () => {
    const { url } = await started(3 * MiB, MiB + 1);
    const head = await tusRequest(url, 'HEAD', AUTH);
    const expires = Date.parse(head.headers.get('upload-expires')!);
    expect(expires).toBeGreaterThan(Date.now());
    expect(await server.app.bigUploader.sweep(Date.now())).toBe(0);
    expect(await server.app.bigUploader.sweep(expires + 1000)).toBe(1);
    expect((await tusRequest(url, 'HEAD', AUTH)).status).toBe(404);
  });

  it('counts tus uploads in the metrics and answers foreign Hosts 403 before anything else', async () => {
    await started(100, 100);
    const metrics = await (
      await fetch(`${server.url}/metrics`, { headers: { Authorization: 'Bearer admin' } })
    ).text();
    expect(metrics).toMatch(/bigup_uploads_created_total 1/);
    expect(metrics).toMatch(/bigup_uploads_completed_total 1/);
    const open = await startServer({ dir: join(tmp.path, 'open') });
    try {
      const port = new URL(open.url).port;
      const answer = await new Promise<number>((resolve, reject) => {
        const req = httpRequest(
          {
            host: '127.0.0.1',
            port,
            path: '/files/',
            method: 'POST',
            headers: {
              Host: `evil.example:${port}`,
              'Tus-Resumable': '1.0.0',
              'Upload-Length': '10',
            },
          },
          (res) => {
            res.resume();
            resolve(res.statusCode!);
          },
        );
        req.on('error', reject);
        req.end();
      });
      expect(answer).toBe(403);
      expect(await listFiles(join(tmp.path, 'open'))).toEqual([]);
    } finally {
      await open.close();
    }
  });
});
