/**
 * Nothing planted in the data directory redirects a write, and nothing the store creates is
 * readable by others (issue 14, item 5). Each test plants a symlink at a path the store is about
 * to use, runs a real upload through the server, and checks the symlink's target outside the data
 * directory is untouched and the upload either finishes inside the data directory or fails with
 * UPLOAD_DAMAGED. Modes are checked on every file and directory the store made.
 */
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Errors, bytesToHex } from '../../protocol/index.js';
import { DiskStore } from '../../server/index.js';
import { RawClient, chunksOf, sendChunks } from '../helpers/protocol-client.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { uploadInfo } from '../helpers/upload-info.js';

const CHUNK = 65_536;

describe('data directory safety', () => {
  let tmp: TempDir;
  let data: string;
  let outside: string;
  const servers: TestServer[] = [];
  beforeEach(async () => {
    tmp = await makeTempDir();
    data = join(tmp.path, 'data');
    outside = join(tmp.path, 'outside');
    await mkdir(outside);
  });
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.close();
    await tmp.cleanup();
  });

  async function serve(storeOptions: { groupReadable?: boolean } = {}): Promise<TestServer> {
    const server = await startServer({ store: new DiskStore({ dir: data, ...storeOptions }) });
    servers.push(server);
    return server;
  }

  async function openUpload(server: TestServer, size: number, name = 'f.bin') {
    const client = await RawClient.connect(server.wsUrl);
    client.open({ fileSize: size, chunkSize: CHUNK, name });
    const accept = await client.expect('accept');
    return { client, accept, id: bytesToHex(accept.uploadId) };
  }

  async function sendAllAndComplete(
    client: RawClient,
    accept: Awaited<ReturnType<typeof openUpload>>['accept'],
    bytes: Buffer,
  ) {
    const { errors } = await sendChunks(client, accept, bytes, chunksOf(bytes.byteLength, CHUNK));
    expect(errors).toEqual([]);
    client.complete();
    return client.next();
  }

  const mode = async (path: string) => (await stat(path)).mode & 0o777;

  it('a symlink planted at files/<id> does not send the completed file outside: it is replaced by a real directory', async () => {
    const server = await serve();
    const bytes = randomBytes(4 * CHUNK);
    const { client, accept, id } = await openUpload(server, bytes.byteLength, 'secret.bin');
    await symlink(outside, join(data, 'files', id));
    const answer = await sendAllAndComplete(client, accept, bytes);
    client.close();
    expect(answer.type).toBe('result');
    expect(await readdir(outside)).toEqual([]);
    expect((await lstat(join(data, 'files', id))).isDirectory()).toBe(true);
    expect((await readFile(join(data, 'files', id, 'secret.bin'))).equals(bytes)).toBe(true);
  });

  it('files/ removed by an operator while the server runs: the next completion makes it again (0700)', async () => {
    const server = await serve();
    const bytes = randomBytes(3 * CHUNK);
    const { client, accept, id } = await openUpload(server, bytes.byteLength, 'again.bin');
    await rm(join(data, 'files'), { recursive: true });
    const answer = await sendAllAndComplete(client, accept, bytes);
    client.close();
    expect(answer.type).toBe('result');
    expect(await mode(join(data, 'files'))).toBe(0o700);
    expect((await readFile(join(data, 'files', id, 'again.bin'))).equals(bytes)).toBe(true);
  });

  it('a symlink planted at uploads/<id>.json while the upload runs: the completion does not append through it', async () => {
    const server = await serve();
    const victim = join(outside, 'victim.conf');
    await writeFile(victim, 'precious\n');
    const bytes = randomBytes(2 * CHUNK);
    const { client, accept, id } = await openUpload(server, bytes.byteLength);
    // The completion appends its record to <id>.json (disk-store.ts header).
    const metaPath = join(data, 'uploads', `${id}.json`);
    await rm(metaPath);
    await symlink(victim, metaPath);
    const answer = await sendAllAndComplete(client, accept, bytes);
    client.close();
    expect(answer).toMatchObject({ type: 'error', code: Errors.UPLOAD_DAMAGED.code });
    expect(await readFile(victim, 'utf8')).toBe('precious\n');
    expect((await lstat(metaPath)).isSymbolicLink()).toBe(true);
  });

  it('a symlink planted at uploads/<id>.json before OPEN is removed, not written through', async () => {
    // create() writes the metadata at its name (no temp file): O_EXCL, a planted link removed.
    const store = new DiskStore({ dir: data });
    await store.init();
    const victim = join(outside, 'victim.conf');
    await writeFile(victim, 'precious\n');
    const id = 'e'.repeat(32);
    await symlink(victim, join(data, 'uploads', `${id}.json`));
    const handle = await store.create(uploadInfo({ id, fileSize: CHUNK, chunkSize: CHUNK }));
    await handle.close();
    expect(await readFile(victim, 'utf8')).toBe('precious\n');
    expect((await lstat(join(data, 'uploads', `${id}.json`))).isFile()).toBe(true);
    expect((await store.readState(id))?.info.name).toBe('f.bin');
  });

  for (const planted of ['part', 'journal'] as const) {
    it(`a symlink planted at uploads/<id>.${planted} while the server was down: RESUME gets UPLOAD_DAMAGED and the target is untouched`, async () => {
      const first = await serve();
      const bytes = randomBytes(4 * CHUNK);
      const { client, accept, id } = await openUpload(first, bytes.byteLength);
      await sendChunks(client, accept, bytes, chunksOf(2 * CHUNK, CHUNK));
      client.close();
      await first.close();
      servers.splice(servers.indexOf(first), 1);
      const victim = join(outside, 'victim.bin');
      await writeFile(victim, 'precious\n');
      await rm(join(data, 'uploads', `${id}.${planted}`));
      await symlink(victim, join(data, 'uploads', `${id}.${planted}`));
      const second = await serve();
      const again = await RawClient.connect(second.wsUrl);
      again.resume(accept.uploadId, accept.secret);
      await again.expectError(Errors.UPLOAD_DAMAGED.code);
      again.close();
      expect(await readFile(victim, 'utf8')).toBe('precious\n');
    });
  }

  it('creates files 0600 and directories 0700 by default', async () => {
    const server = await serve();
    const bytes = randomBytes(2 * CHUNK);
    const { client, accept, id } = await openUpload(server, bytes.byteLength);
    expect(await mode(join(data, 'uploads'))).toBe(0o700);
    expect(await mode(join(data, 'files'))).toBe(0o700);
    for (const ext of ['part', 'journal', 'json'])
      expect(await mode(join(data, 'uploads', `${id}.${ext}`)), ext).toBe(0o600);
    expect((await sendAllAndComplete(client, accept, bytes)).type).toBe('result');
    client.close();
    expect(await mode(join(data, 'files', id))).toBe(0o700);
    expect(await mode(join(data, 'files', id, 'f.bin'))).toBe(0o600);
    expect(await mode(join(data, 'uploads', `${id}.json`))).toBe(0o600);
  });

  it('groupReadable gives the group read access (0640 / 0750), never others', async () => {
    const server = await serve({ groupReadable: true });
    const bytes = randomBytes(CHUNK);
    const { client, accept, id } = await openUpload(server, bytes.byteLength);
    expect((await sendAllAndComplete(client, accept, bytes)).type).toBe('result');
    client.close();
    expect(await mode(join(data, 'files'))).toBe(0o750);
    expect(await mode(join(data, 'files', id))).toBe(0o750);
    expect(await mode(join(data, 'files', id, 'f.bin'))).toBe(0o640);
  });

  it('tightens store directories an older version left world-readable', async () => {
    await mkdir(join(data, 'uploads'), { recursive: true, mode: 0o755 });
    await mkdir(join(data, 'files'), { recursive: true, mode: 0o755 });
    await serve();
    expect(await mode(join(data, 'uploads'))).toBe(0o700);
    expect(await mode(join(data, 'files'))).toBe(0o700);
  });
});
