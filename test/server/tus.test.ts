import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { tusRequest, tusUpload } from '../helpers/tus.js';

const MiB = 1024 * 1024;
const AUTH = { Authorization: 'Bearer tok' };

describe('tus endpoint with tus-js-client (Node)', () => {
  let tmp: TempDir;
  const servers: TestServer[] = [];
  async function serve(options: Parameters<typeof startServer>[0] = {}): Promise<TestServer> {
    const server = await startServer({
      dir: tmp.path,
      token: 'tok',
      adminToken: 'admin',
      defaultChunkSize: 1 * MiB,
      ...options,
    });
    servers.push(server);
    return server;
  }

  beforeEach(async () => {
    tmp = await makeTempDir();
  });
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.close();
    await tmp.cleanup();
  });

  async function state(server: TestServer, id: string): Promise<Record<string, unknown>> {
    const response = await fetch(`${server.url}/uploads/${id}`, {
      headers: { Authorization: 'Bearer admin' },
    });
    expect(response.status).toBe(200);
    return (await response.json()) as Record<string, unknown>;
  }

  it('uploads a file in one PATCH: byte-identical, completed in GET /uploads/:id, hook called', async () => {
    const completed: string[] = [];
    const server = await serve({
      onUploadComplete: (u) => {
        completed.push(u.id);
      },
    });
    const data = randomBytes(5 * MiB + 12_345);
    const result = await tusUpload(data, {
      endpoint: `${server.url}/files/`,
      headers: AUTH,
      metadata: { filename: 'one.bin', filetype: 'application/x-test' },
    });
    expect(result.url).toMatch(/\/files\/[0-9a-f]{32}$/);
    expect((await readFile(join(tmp.path, 'files', result.id, 'one.bin'))).equals(data)).toBe(true);
    const body = await state(server, result.id);
    expect(body).toMatchObject({
      state: 'completed',
      name: 'one.bin',
      contentType: 'application/x-test',
      fileSize: data.byteLength,
      ackedBytes: data.byteLength,
    });
    await new Promise((r) => setTimeout(r, 50));
    expect(completed).toEqual([result.id]);
  });

  it('uploads in PATCHes that do not line up with the server chunks (partial tails carried over)', async () => {
    const server = await serve();
    const data = randomBytes(3 * MiB + 777);
    // 700 KiB + 3 bytes: every PATCH ends inside a 1 MiB server chunk, at a different place.
    const result = await tusUpload(data, {
      endpoint: `${server.url}/files/`,
      headers: AUTH,
      chunkSize: 700 * 1024 + 3,
      metadata: { filename: 'odd.bin' },
    });
    expect(result.offsets.length).toBeGreaterThan(4);
    expect(result.offsets[result.offsets.length - 1]).toBe(data.byteLength);
    expect((await readFile(join(tmp.path, 'files', result.id, 'odd.bin'))).equals(data)).toBe(true);
  });

  it("stores Uppy's relativePath 'null' (a file not from a folder) under its name, a real one in its folders", async () => {
    const server = await serve();
    const data = randomBytes(64 * 1024 + 5);
    // What @uppy/tus sends for a picked file: every meta field as String(value).
    const picked = await tusUpload(data, {
      endpoint: `${server.url}/files/`,
      headers: AUTH,
      metadata: { name: 'a.bin', filename: 'a.bin', relativePath: 'null', type: '' },
    });
    expect((await readFile(join(tmp.path, 'files', picked.id, 'a.bin'))).equals(data)).toBe(true);
    const fromFolder = await tusUpload(data, {
      endpoint: `${server.url}/files/`,
      headers: AUTH,
      metadata: { filename: 'b.bin', relativePath: 'photos/2026/b.bin' },
    });
    const stored = join(tmp.path, 'files', fromFolder.id, 'photos', '2026', 'b.bin');
    expect((await readFile(stored)).equals(data)).toBe(true);
  });

  it('answers HEAD with the offset and metadata of an unfinished upload, and OPTIONS without credentials', async () => {
    const server = await serve();
    const options = await tusRequest(`${server.url}/files/`, 'OPTIONS', {});
    expect(options.status).toBe(204);
    expect(options.headers.get('tus-version')).toBe('1.0.0');
    expect(options.headers.get('tus-extension')).toContain('creation-with-upload');
    expect(options.headers.get('tus-checksum-algorithm')).toContain('sha1');
    const created = await tusRequest(`${server.url}/files/`, 'POST', {
      ...AUTH,
      'Upload-Length': String(2 * MiB),
      'Upload-Metadata': `filename ${Buffer.from('h.bin').toString('base64')}`,
    });
    expect(created.status).toBe(201);
    const url = new URL(created.headers.get('location')!, server.url).href;
    const part = randomBytes(MiB + 10);
    const patched = await tusRequest(
      url,
      'PATCH',
      { ...AUTH, 'Upload-Offset': '0', 'Content-Type': 'application/offset+octet-stream' },
      part,
    );
    expect(patched.status).toBe(204);
    expect(patched.headers.get('upload-offset')).toBe(String(part.byteLength));
    expect(patched.headers.get('upload-expires')).toMatch(/GMT$/);
    const head = await tusRequest(url, 'HEAD', AUTH);
    expect(head.status).toBe(200);
    expect(head.headers.get('upload-offset')).toBe(String(part.byteLength));
    expect(head.headers.get('upload-length')).toBe(String(2 * MiB));
    expect(head.headers.get('upload-metadata')).toBe(
      `filename ${Buffer.from('h.bin').toString('base64')}`,
    );
    expect(head.headers.get('cache-control')).toBe('no-store');
    // The whole chunk is acked like any other; the 10-byte tail is tus-only.
    const id = created.headers.get('bigup-upload-id')!;
    const secret = created.headers.get('bigup-secret')!;
    const viaSecret = await fetch(`${server.url}/uploads/${id}`, {
      headers: { 'Bigup-Secret': secret },
    });
    expect(await viaSecret.json()).toMatchObject({
      state: 'uploading',
      ackedBytes: MiB,
      ranges: [{ start: 0, end: MiB }],
    });
  });
});
