/**
 * The plugin as a Fastify plugin: encapsulated routes (prefix), coexistence with an app that
 * registered @fastify/websocket itself (our route keeps its own limits), /metrics opt-in and
 * behind the token, options refused at registration.
 */
import websocket from '@fastify/websocket';
import Fastify, { type FastifyInstance } from 'fastify';
import { WebSocket } from 'ws';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SUBPROTOCOL_V1 } from '../../protocol/index.js';
import { bigUploader, OptionsError } from '../../server/index.js';
import { RawClient } from '../helpers/protocol-client.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

const MiB = 1024 * 1024;

let tmp: TempDir;
let app: FastifyInstance | undefined;

beforeEach(async () => {
  tmp = await makeTempDir();
});
afterEach(async () => {
  await app?.close();
  app = undefined;
  await tmp.cleanup();
});

async function listen(instance: FastifyInstance): Promise<string> {
  return instance.listen({ host: '127.0.0.1', port: 0 });
}

/** Open a socket with `ws`'s defaults (which offer permessage-deflate) and report what was agreed. */
function openWithDeflateOffer(url: string, protocols: string[]): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { perMessageDeflate: true });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

describe('the Fastify plugin', () => {
  it('moves every route under prefix and decorates the registering instance', async () => {
    app = Fastify();
    await app.register(bigUploader, { prefix: '/files', dir: tmp.path });
    app.get('/', async () => 'mine');
    const url = await listen(app);
    expect(app.bigUploader.options.dir).toBe(tmp.path);
    expect((await fetch(`${url}/files/healthz`)).status).toBe(200);
    expect((await fetch(`${url}/healthz`)).status).toBe(404);
    expect((await fetch(`${url}/files/uploads/00000000000000000000000000000000`)).status).toBe(404);
    expect(await (await fetch(`${url}/`)).text()).toBe('mine');
    const client = await RawClient.connect(`${url.replace(/^http/, 'ws')}/files/upload`);
    expect(client.ws.protocol).toBe(SUBPROTOCOL_V1);
    client.close();
    expect((await RawClient.refused(`${url.replace(/^http/, 'ws')}/upload`)).status).toBe(404);
  });

  it('shares an app-wide @fastify/websocket server and still holds its own limits on its route', async () => {
    app = Fastify();
    await app.register(websocket, { options: { maxPayload: 100 * MiB, perMessageDeflate: true } });
    app.get('/chat', { websocket: true }, (socket) => {
      socket.on('message', (data: Buffer) => socket.send(`echo ${data.length}`));
    });
    await app.register(bigUploader, { dir: tmp.path, maxChunkSize: MiB, defaultChunkSize: MiB });
    const url = (await listen(app)).replace(/^http/, 'ws');

    // The app's own route keeps the app's settings.
    const chat = await openWithDeflateOffer(`${url}/chat`, []);
    expect(chat.extensions).toContain('permessage-deflate');
    const echoed = new Promise<string>((resolve) =>
      chat.once('message', (d: Buffer) => resolve(d.toString())),
    );
    chat.send(Buffer.alloc(3 * MiB));
    expect(await echoed).toBe(`echo ${3 * MiB}`);
    chat.close();

    // Ours: no compression negotiated, and a message over one chunk + header is refused (1009).
    const ours = await openWithDeflateOffer(`${url}/upload`, [SUBPROTOCOL_V1]);
    expect(ours.protocol).toBe(SUBPROTOCOL_V1);
    expect(ours.extensions).toBe('');
    const closed = new Promise<number>((resolve) =>
      ours.once('close', (code: number) => resolve(code)),
    );
    ours.send(Buffer.alloc(2 * MiB));
    expect(await closed).toBe(1009);
  });

  it('serves /metrics only when asked, and then only with the token when one is set', async () => {
    app = Fastify();
    await app.register(bigUploader, { dir: tmp.path });
    const url = await listen(app);
    expect((await fetch(`${url}/metrics`)).status).toBe(404);
    await app.close();

    app = Fastify();
    await app.register(bigUploader, { dir: tmp.path, metrics: true, token: 'tok' });
    const guarded = await listen(app);
    expect((await fetch(`${guarded}/metrics`)).status).toBe(401);
    expect(
      (await fetch(`${guarded}/metrics`, { headers: { Authorization: 'Bearer nope' } })).status,
    ).toBe(401);
    const ok = await fetch(`${guarded}/metrics`, { headers: { Authorization: 'Bearer tok' } });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain('bigup_');
  });

  it('refuses bad options at registration with a message naming the option', async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ dir: tmp.path, maxUploadSise: 5 }, /unknown option "maxUploadSise"/],
      [{ dir: tmp.path, window: -1 }, /window/],
      [{ dir: tmp.path, path: 'upload' }, /path must start with "\/"/],
      [{ dir: tmp.path, metrics: 'yes' }, /metrics must be a boolean/],
      [{ dir: tmp.path, prefix: 'files' }, /prefix/],
      [
        { dir: tmp.path, instantUploadMinSize: 0 },
        /instantUploadMinSize must be an integer in 1\.\./,
      ],
      [{ dir: tmp.path, instantUploadMinSize: 1.5 }, /instantUploadMinSize/],
    ];
    for (const [options, message] of cases) {
      const instance = Fastify();
      const registered = instance.register(bigUploader, options as never).ready();
      await expect(registered).rejects.toThrow(message);
      await expect(registered).rejects.toBeInstanceOf(OptionsError);
      await instance.close().catch(() => undefined);
    }
  });
});
