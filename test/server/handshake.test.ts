import { Writable } from 'node:stream';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bigUploader, loggerOptions, OptionsError } from '../../server/index.js';
import { RawClient } from '../helpers/protocol-client.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

describe('handshake', () => {
  let tmp: TempDir;
  let server: TestServer;

  beforeAll(async () => {
    tmp = await makeTempDir();
    server = await startServer({
      dir: tmp.path,
      token: 's3cret-token',
      origins: ['https://app.example.com'],
    });
  });
  afterAll(async () => {
    await server.close();
    await tmp.cleanup();
  });

  it('answers 401 without a token and 403 with a wrong one, before the upgrade', async () => {
    expect((await RawClient.refused(server.wsUrl)).status).toBe(401);
    expect((await RawClient.refused(server.wsUrl, { token: 'nope' })).status).toBe(403);
    expect(
      (await RawClient.refused(server.wsUrl, { headers: { Authorization: 'Bearer nope' } })).status,
    ).toBe(403);
  });

  it('accepts the token as query parameter or Bearer header', async () => {
    const a = await RawClient.connect(server.wsUrl, { token: 's3cret-token' });
    expect(a.ws.protocol).toBe('bigup.1');
    a.close();
    const b = await RawClient.connect(server.wsUrl, {
      headers: { Authorization: 'Bearer s3cret-token' },
    });
    b.close();
  });

  it('refuses a foreign Origin with 403 and allows a listed one', async () => {
    const refused = await RawClient.refused(server.wsUrl, {
      token: 's3cret-token',
      headers: { Origin: 'https://evil.example' },
    });
    expect(refused.status).toBe(403);
    const ok = await RawClient.connect(server.wsUrl, {
      token: 's3cret-token',
      headers: { Origin: 'https://app.example.com' },
    });
    ok.close();
  });

  it('answers 426 with Bigup-Versions when neither bigup.2 nor bigup.1 is offered', async () => {
    const refused = await RawClient.refused(server.wsUrl, {
      token: 's3cret-token',
      protocols: ['bigup.9'],
    });
    expect(refused.status).toBe(426);
    expect(refused.headers['bigup-versions']).toBe('bigup.2, bigup.1');
  });

  it('does not negotiate permessage-deflate', async () => {
    const client = await RawClient.connect(server.wsUrl, { token: 's3cret-token' });
    expect(client.ws.extensions).toBe('');
    client.close();
  });

  it('same-origin only by default', async () => {
    const other = await makeTempDir();
    const open = await startServer({ dir: other.path });
    try {
      const host = new URL(open.url).host;
      expect(
        (await RawClient.refused(open.wsUrl, { headers: { Origin: 'https://evil.example' } }))
          .status,
      ).toBe(403);
      (await RawClient.connect(open.wsUrl, { headers: { Origin: `http://${host}` } })).close();
      (await RawClient.connect(open.wsUrl)).close();
    } finally {
      await open.close();
      await other.cleanup();
    }
  });

  it('rejects bad options at registration', async () => {
    const app = Fastify();
    await expect(
      app.register(bigUploader, { dir: tmp.path, window: -1 }).ready(),
    ).rejects.toBeInstanceOf(OptionsError);
    const app2 = Fastify();
    await expect(
      app2.register(bigUploader, { dir: tmp.path, origins: ['not an origin'] }).ready(),
    ).rejects.toThrow(/origins/);
  });

  it('never logs the token from the query string', async () => {
    let logged = '';
    const sink = new Writable({
      write(chunk, _enc, done) {
        logged += chunk.toString();
        done();
      },
    });
    const options = loggerOptions('info') as Record<string, unknown>;
    const app = Fastify({ logger: { ...options, stream: sink } });
    const dir = await makeTempDir();
    await app.register(bigUploader, { dir: dir.path, token: 'very-secret-value' });
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const ws = `${url.replace('http', 'ws')}/upload`;
      (await RawClient.connect(ws, { token: 'very-secret-value' })).close();
      await RawClient.refused(ws, { token: 'wrong-secret-value' });
      await fetch(`${url}/uploads/${'0'.repeat(32)}`, {
        headers: { Authorization: 'Bearer very-secret-value' },
      });
    } finally {
      await app.close();
      await dir.cleanup();
    }
    expect(logged).toContain('/upload');
    expect(logged).not.toContain('very-secret-value');
    expect(logged).not.toContain('wrong-secret-value');
  });
});
