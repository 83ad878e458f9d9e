/**
 * bigup.2 on the server (SPEC.md 16): the HELLO / WELCOME handshake, several uploads in flight on
 * one connection (OPENs outstanding, DATA interleaved, completions pipelined), upload-level errors
 * ending one stream only, late messages of ended streams dropped, and a bigup.1 client unchanged.
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Capability, Errors, encodeOpen, withStream } from '../../protocol/index.js';
import { RawClient } from '../helpers/protocol-client.js';
import { RawClientV2 } from '../helpers/protocol-client-v2.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed * 7) & 0xff;
  return out;
}

describe('bigup.2: several uploads on one connection', () => {
  let tmp: TempDir;
  let server: TestServer;
  const completions: string[] = [];

  beforeEach(async () => {
    tmp = await makeTempDir();
    completions.length = 0;
    server = await startServer({
      dir: tmp.path,
      maxStreamsPerConnection: 8,
      maxUploadSize: 1024 * 1024,
      onUploadComplete: (u) => {
        completions.push(u.id);
      },
    });
  });

  afterEach(async () => {
    await server.close();
    await tmp.cleanup();
  });

  it('grants at most maxStreamsPerConnection and ignores capabilities it does not know', async () => {
    const client = await RawClientV2.connect(server.wsUrl);
    expect(client.ws.protocol).toBe('bigup.2');
    client.hello([
      { id: Capability.MULTIPLEX, value: 100 },
      { id: Capability.PROOF_OF_POSSESSION, value: 1 },
      { id: 0x7f00, value: 3 },
    ]);
    const welcome = await client.waitFor((f) => f.message.type === 'welcome');
    expect(welcome.message).toEqual({
      type: 'welcome',
      // PROOF_OF_POSSESSION is known and on by default (instantUpload 'subject'): granted.
      capabilities: [
        { id: Capability.MULTIPLEX, value: 8 },
        { id: Capability.PROOF_OF_POSSESSION, value: 0 },
      ],
    });
    client.close();
  });

  it('uploads 8 files at once: OPENs outstanding, DATA interleaved, completions pipelined', async () => {
    const client = await RawClientV2.connect(server.wsUrl);
    client.hello();
    const files = Array.from({ length: 8 }, (_, i) => bytes(1000 + i * 4096, i));
    // Every OPEN before any ACCEPT (the first one right behind HELLO, before WELCOME).
    files.forEach((file, i) =>
      client.open(i + 1, { fileSize: file.byteLength, name: `file-${i}.bin` }),
    );
    for (let i = 0; i < files.length; i++) await client.expect(i + 1, 'accept');
    // DATA of all eight, then all COMPLETEs, without waiting for one ACK.
    for (let i = files.length - 1; i >= 0; i--) client.data(i + 1, 0, files[i]);
    for (let i = 0; i < files.length; i++) client.complete(i + 1);
    for (let i = 0; i < files.length; i++) {
      const result = await client.expect(i + 1, 'result');
      expect(result.fileSize).toBe(files[i].byteLength);
      // Per stream the answers keep SPEC.md 5's order: ACCEPT first, RESULT last.
      const kinds = client.on(i + 1).map((m) => m.type);
      expect(kinds[0]).toBe('accept');
      expect(kinds[kinds.length - 1]).toBe('result');
      const id = Buffer.from(result.uploadId).toString('hex');
      expect(await readFile(join(tmp.path, 'files', id, `file-${i}.bin`))).toEqual(
        Buffer.from(files[i]),
      );
    }
    expect(completions).toHaveLength(8);
    client.close();
  });

  it('an upload-level refusal ends its stream only; the other uploads finish', async () => {
    const client = await RawClientV2.connect(server.wsUrl);
    client.hello();
    client.open(1, { fileSize: 10, name: 'ok-1' });
    client.open(2, { fileSize: 10 * 1024 * 1024, name: 'too-large' });
    client.open(3, { fileSize: 10, name: 'ok-3' });
    const refusal = await client.expect(2, 'error');
    expect(refusal.code).toBe(Errors.FILE_TOO_LARGE.code);
    expect(refusal.fatal).toBe(true);
    for (const stream of [1, 3]) {
      await client.expect(stream, 'accept');
      client.data(stream, 0, bytes(10, stream));
      client.complete(stream);
      await client.expect(stream, 'result');
    }
    // A message that crossed the end of stream 2 is dropped silently, the connection stays.
    client.complete(2);
    client.open(4, { fileSize: 0, name: 'empty' });
    await client.expect(4, 'accept');
    client.complete(4);
    await client.expect(4, 'result');
    expect(client.on(2).map((m) => m.type)).toEqual(['error']);
    expect(client.ws.readyState).toBe(client.ws.OPEN);
    client.close();
  });

  it('a message before HELLO is UNEXPECTED_MESSAGE (fatal, 1002)', async () => {
    const client = await RawClientV2.connect(server.wsUrl);
    client.open(1);
    const error = await client.waitFor((f) => f.message.type === 'error');
    expect(error.stream).toBe(0);
    expect(error.message).toMatchObject({ code: Errors.UNEXPECTED_MESSAGE.code, fatal: true });
    expect((await client.closed).code).toBe(1002);
  });

  it('stream ids only grow: reusing one is UNEXPECTED_MESSAGE', async () => {
    const client = await RawClientV2.connect(server.wsUrl);
    client.hello();
    client.open(5, { fileSize: 0 });
    await client.expect(5, 'accept');
    client.complete(5);
    await client.expect(5, 'result');
    client.open(5, { fileSize: 0 });
    const error = await client.waitFor((f) => f.message.type === 'error');
    expect(error.message).toMatchObject({ code: Errors.UNEXPECTED_MESSAGE.code });
    expect((await client.closed).code).toBe(1002);
  });

  it('DATA for a stream never opened is UNEXPECTED_MESSAGE', async () => {
    const client = await RawClientV2.connect(server.wsUrl);
    client.hello();
    client.data(9, 0, bytes(10, 1));
    const error = await client.waitFor((f) => f.message.type === 'error');
    expect(error.message).toMatchObject({ code: Errors.UNEXPECTED_MESSAGE.code });
    expect((await client.closed).code).toBe(1002);
  });

  it('without MULTIPLEX a bigup.2 client gets one stream at a time', async () => {
    const client = await RawClientV2.connect(server.wsUrl);
    client.hello([]);
    const welcome = await client.waitFor((f) => f.message.type === 'welcome');
    expect(welcome.message).toEqual({ type: 'welcome', capabilities: [] });
    client.send(
      withStream(
        1,
        encodeOpen({
          fileSize: 0,
          chunkSize: 0,
          name: 'a',
          contentType: '',
          token: '',
          metadata: {},
        }),
      ),
    );
    client.send(
      withStream(
        2,
        encodeOpen({
          fileSize: 0,
          chunkSize: 0,
          name: 'b',
          contentType: '',
          token: '',
          metadata: {},
        }),
      ),
    );
    const error = await client.waitFor((f) => f.message.type === 'error');
    expect(error.message).toMatchObject({ code: Errors.LIMIT_EXCEEDED.code });
    expect((await client.closed).code).toBe(1008);
  });

  it('an OPEN whose connection is gone before it is admitted creates nothing (no files, no reservation)', async () => {
    let admit!: () => void;
    const gate = new Promise<void>((resolve) => (admit = resolve));
    let reached!: () => void;
    const asked = new Promise<void>((resolve) => (reached = resolve));
    await server.close();
    server = await startServer({
      dir: tmp.path,
      metrics: true,
      adminToken: 'admin',
      authorizeUpload: async ({ name }) => {
        if (name !== 'gone.bin') return true;
        reached();
        await gate;
        return true;
      },
    });
    const connections = async (): Promise<number> => {
      const text = await (
        await fetch(`${server.url}/metrics`, { headers: { authorization: 'Bearer admin' } })
      ).text();
      return Number(/^bigup_connections (\d+)/m.exec(text)?.[1]);
    };
    const gone = await RawClientV2.connect(server.wsUrl);
    gone.hello();
    gone.open(1, { fileSize: 1000, name: 'gone.bin' });
    await asked;
    gone.destroy();
    for (const until = Date.now() + 30_000; (await connections()) > 0 && Date.now() < until;)
      await new Promise((r) => setTimeout(r, 10));
    expect(await connections()).toBe(0);
    admit();
    // Another upload after it, on a new connection: the first OPEN's handler has long ended.
    const other = await RawClientV2.connect(server.wsUrl);
    other.hello();
    other.open(1, { fileSize: 10, name: 'other.bin' });
    const accepted = await other.expect(1, 'accept');
    other.close();
    const id = Buffer.from(accepted.uploadId).toString('hex');
    const files = await readdir(join(tmp.path, 'uploads'));
    expect(files.filter((f) => !f.startsWith(id))).toEqual([]);
  });

  it('a bigup.1 client against this server still works (one upload after another)', async () => {
    const client = await RawClient.connect(server.wsUrl);
    expect(client.ws.protocol).toBe('bigup.1');
    for (let i = 0; i < 2; i++) {
      const file = bytes(5000, i);
      client.open({ fileSize: file.byteLength, chunkSize: 64 * 1024 });
      await client.expect('accept');
      client.sendData(0, file);
      client.complete();
      await client.expect('ack');
      await client.expect('result');
    }
    expect(completions).toHaveLength(2);
    client.close();
  });
});
