import { randomBytes } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Errors, bytesToHex, encodeOpen } from '../../protocol/index.js';
import { RawClient, chunksOf, sendChunks } from '../helpers/protocol-client.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { listFiles, makeTempDir, type TempDir } from '../helpers/tmp.js';

const CHUNK = 65_536;

describe('bad input', () => {
  let tmp: TempDir;
  let dataDir: string;
  let server: TestServer;

  beforeAll(async () => {
    tmp = await makeTempDir();
    dataDir = join(tmp.path, 'data');
    server = await startServer({ dir: dataDir, window: 4 * CHUNK });
  });
  afterAll(async () => {
    await server.close();
    await tmp.cleanup();
  });

  async function opened(size = 4 * CHUNK + 10, name = 'f.bin') {
    const client = await RawClient.connect(server.wsUrl);
    client.open({ fileSize: size, chunkSize: CHUNK, name });
    const accept = await client.expect('accept');
    return { client, accept };
  }

  async function fatal(client: RawClient, code: number, closeCode: number): Promise<void> {
    const error = await client.expectError(code);
    expect(error.fatal).toBe(true);
    expect((await client.closed).code).toBe(closeCode);
  }

  it('answers a corrupted chunk with HASH_MISMATCH, writes nothing, and acks a correct retry', async () => {
    const { client } = await opened();
    const payload = randomBytes(CHUNK);
    client.sendData(0, payload, client.hasher.h64(payload) ^ 1n);
    const error = await client.expectError(Errors.HASH_MISMATCH.code);
    expect(error).toMatchObject({ fatal: false, retryable: true, offset: 0, length: CHUNK });
    client.sendData(0, payload);
    expect((await client.expect('ack')).ranges).toEqual([{ start: 0, end: CHUNK }]);
    client.close();
  });

  it('refuses chunks off the grid, past the end or of the wrong length with OUT_OF_RANGE (not fatal)', async () => {
    const { client } = await opened();
    client.sendData(100, randomBytes(CHUNK));
    expect(await client.expectError(Errors.OUT_OF_RANGE.code)).toMatchObject({
      fatal: false,
      offset: 100,
      length: CHUNK,
    });
    client.sendData(5 * CHUNK, randomBytes(CHUNK));
    await client.expectError(Errors.OUT_OF_RANGE.code);
    client.sendData(4 * CHUNK, randomBytes(11)); // last chunk is 10 bytes
    await client.expectError(Errors.OUT_OF_RANGE.code);
    client.sendData(0, randomBytes(CHUNK - 1));
    await client.expectError(Errors.OUT_OF_RANGE.code);
    client.sendData(4 * CHUNK, randomBytes(10));
    await client.expect('ack');
    client.close();
  });

  it('keeps the first bytes of a chunk and answers different content with CONFLICT', async () => {
    const { client } = await opened();
    client.sendData(0, randomBytes(CHUNK));
    await client.expect('ack');
    client.sendData(0, randomBytes(CHUNK));
    expect(await client.expectError(Errors.CONFLICT.code)).toMatchObject({ fatal: false });
    client.complete();
    expect(await client.expectError(Errors.INCOMPLETE.code)).toMatchObject({ fatal: false });
    client.close();
  });

  it('closes with 1009 on DATA larger than the agreed chunk', async () => {
    const { client } = await opened();
    client.sendData(0, randomBytes(CHUNK + 1));
    await fatal(client, Errors.MESSAGE_TOO_LARGE.code, 1009);
  });

  it('closes with 1009 on a frame above ws maxPayload, before buffering it', async () => {
    const { client } = await opened();
    client.send(Buffer.alloc(16 * 1024 * 1024 + 19));
    expect((await client.closed).code).toBe(1009);
  });

  it('closes with 1003 on a text message', async () => {
    const client = await RawClient.connect(server.wsUrl);
    client.send('hello');
    await fatal(client, Errors.TEXT_MESSAGE.code, 1003);
  });

  it('closes with 1002 on garbage and truncated messages', async () => {
    const a = await RawClient.connect(server.wsUrl);
    a.send(Buffer.from([0x99, 0x00, 0x01]));
    await fatal(a, Errors.UNKNOWN_MESSAGE_TYPE.code, 1002);
    const b = await RawClient.connect(server.wsUrl);
    b.send(
      encodeOpen({
        fileSize: 10,
        chunkSize: 0,
        name: 'x',
        contentType: '',
        token: '',
        metadata: {},
      }).subarray(0, 15),
    );
    await fatal(b, Errors.MALFORMED.code, 1002);
    const c = await RawClient.connect(server.wsUrl);
    c.send(Buffer.from([0x11, 0x00, 0x00, 0x01])); // an ACK: server-only message
    await fatal(c, Errors.UNEXPECTED_MESSAGE.code, 1002);
  });

  it('refuses DATA and COMPLETE before OPEN with UNEXPECTED_MESSAGE', async () => {
    const a = await RawClient.connect(server.wsUrl);
    a.sendData(0, randomBytes(100));
    await fatal(a, Errors.UNEXPECTED_MESSAGE.code, 1002);
    const b = await RawClient.connect(server.wsUrl);
    b.complete();
    await fatal(b, Errors.UNEXPECTED_MESSAGE.code, 1002);
  });

  it('refuses a file above the maximum size with FILE_TOO_LARGE before creating anything', async () => {
    const before = await listFiles(dataDir);
    const client = await RawClient.connect(server.wsUrl);
    client.open({ fileSize: 200 * 1024 ** 3 });
    await fatal(client, Errors.FILE_TOO_LARGE.code, 1000);
    expect(await listFiles(dataDir)).toEqual(before);
  });

  it('closes with WINDOW_EXCEEDED when the client ignores the window', async () => {
    const { client, accept } = await opened(16 * CHUNK);
    expect(accept.window).toBe(4 * CHUNK);
    for (const c of chunksOf(16 * CHUNK, CHUNK)) client.sendData(c.start, randomBytes(CHUNK));
    let message = await client.next();
    while (message.type === 'ack') message = await client.next();
    expect(message).toMatchObject({
      type: 'error',
      code: Errors.WINDOW_EXCEEDED.code,
      fatal: true,
    });
    expect((await client.closed).code).toBe(1008);
  });

  it('never uses a client name as a path, and answers odd ids with 404', async () => {
    const names = [
      '../../escape.txt',
      '/etc/passwd',
      '..',
      'a/../../b',
      'C:\\Windows\\evil.dll',
      '\u0000nul',
      '.hidden',
    ];
    const ids: string[] = [];
    for (const name of names) {
      const data = randomBytes(1000);
      const { client, accept } = await opened(1000, name);
      await sendChunks(client, accept, data, [{ start: 0, end: 1000 }]);
      client.complete();
      await client.expect('result');
      client.close();
      ids.push(bytesToHex(accept.uploadId));
      const dir = join(dataDir, 'files', bytesToHex(accept.uploadId));
      const [stored] = await readdir(dir);
      expect(stored).toBeDefined();
      // eslint-disable-next-line no-control-regex -- a NUL in a stored name is what this rules out
      expect(stored).not.toMatch(/[/\\]|^\.|\u0000/);
      expect((await readFile(join(dir, stored))).equals(data)).toBe(true);
    }
    // Nothing next to the data directory, and inside it only the documented layout.
    expect(await readdir(tmp.path)).toEqual(['data']);
    for (const file of await listFiles(dataDir)) {
      expect(file).toMatch(
        /^(uploads\/[0-9a-f]{32}\.(json|part|journal)|files\/[0-9a-f]{32}\/[^/]+|content\/\d+-\d+\/([0-9a-f]{32}|anyone|all)\/[0-9a-f]{16})$/,
      );
    }
    for (const bad of [
      '..%2F..%2Fetc%2Fpasswd',
      'ABCDEF',
      `${ids[0].toUpperCase()}`,
      `${ids[0]}00`,
      '%00',
    ]) {
      const res = await fetch(`${server.url}/uploads/${bad}`, {
        headers: { 'Bigup-Secret': '0'.repeat(64) },
      });
      expect(res.status).toBe(404);
    }
  });

  it('still serves a normal upload after all of the above', async () => {
    const data = randomBytes(10 * CHUNK + 5);
    const { client, accept } = await opened(data.byteLength, 'after.bin');
    const { errors } = await sendChunks(client, accept, data, chunksOf(data.byteLength, CHUNK));
    expect(errors).toEqual([]);
    client.complete();
    await client.expect('result');
    expect(
      (await readFile(join(dataDir, 'files', bytesToHex(accept.uploadId), 'after.bin'))).equals(
        data,
      ),
    ).toBe(true);
    client.close();
  });
});
