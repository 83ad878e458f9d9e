/**
 * The browser scenario's peer server, one process so its CPU is measured as one: it serves the
 * bench page (tus-js-client and the two page ceilings, bench/browser/), @tus/server with
 * @tus/file-store at /files (as bench/peers/tus-server.ts), and two sinks that write what they
 * receive into a file at its offset, like every other contender's server does:
 *   PUT /sink/<name>?offset=N&size=S   one slice per request (the fetch ceiling)
 *   WS  /ws-sink/<name>?size=S         binary frames [u64 BE offset][bytes], one text "ok" per frame
 * Stored files land in --dir (tus: its own layout; sinks: --dir/sink/<name>).
 */
import { createReadStream } from 'node:fs';
import { mkdir, open, stat, type FileHandle } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { extname, join, normalize } from 'node:path';
import { parseArgs } from 'node:util';
import { FileStore } from '@tus/file-store';
import { Server } from '@tus/server';
import { WebSocketServer, type RawData } from 'ws';
import { emit, fail, stringOption } from './common.js';

const { values } = parseArgs({
  options: { dir: { type: 'string' }, page: { type: 'string' } },
});
const directory = stringOption(values.dir, 'dir');
const pageDir = stringOption(values.page, 'page');
const sinkDir = join(directory, 'sink');
await mkdir(join(directory, 'tus'), { recursive: true });
await mkdir(sinkDir, { recursive: true });

/** Largest slice a sink accepts in one request or frame: bounds what one request can buffer. */
const MAX_SLICE = 64 * 2 ** 20;
const SAFE_NAME = /^[\w.-]{1,100}$/;

const tus = new Server({
  path: '/files',
  datastore: new FileStore({ directory: join(directory, 'tus') }),
});

/** Open (creating, sized) sink files, shared by the requests of one upload. */
const handles = new Map<string, Promise<FileHandle>>();
function sinkFile(name: string): Promise<FileHandle> {
  let handle = handles.get(name);
  if (!handle) {
    handle = open(join(sinkDir, name), 'w');
    handles.set(name, handle);
  }
  return handle;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  let length = 0;
  for await (const part of req as AsyncIterable<Buffer>) {
    length += part.length;
    if (length > MAX_SLICE) throw new Error('slice too large');
    parts.push(part);
  }
  return Buffer.concat(parts, length);
}

async function putSlice(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const name = url.pathname.slice('/sink/'.length);
  const offset = Number(url.searchParams.get('offset'));
  if (!SAFE_NAME.test(name) || !Number.isSafeInteger(offset) || offset < 0) {
    res.writeHead(400).end();
    return;
  }
  const body = await readBody(req);
  const handle = await sinkFile(name);
  await handle.write(body, 0, body.length, offset);
  res.writeHead(204).end();
}

const PAGE_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.css': 'text/css',
};

async function servePage(res: ServerResponse, pathname: string): Promise<void> {
  const relative = normalize(pathname === '/' ? '/index.html' : pathname);
  if (relative.includes('..')) {
    res.writeHead(400).end();
    return;
  }
  const path = join(pageDir, relative);
  try {
    await stat(path);
  } catch {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'content-type': PAGE_TYPES[extname(path)] ?? 'application/octet-stream' });
  createReadStream(path).pipe(res);
}

const http = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://peer');
  const fail500 = (error: unknown): void => {
    if (!res.headersSent) res.writeHead(500);
    res.end(String(error));
  };
  if (url.pathname.startsWith('/files')) tus.handle(req, res).catch(fail500);
  else if (url.pathname.startsWith('/sink/') && req.method === 'PUT')
    putSlice(req, res, url).catch(fail500);
  else if (url.pathname === '/close-sinks' && req.method === 'POST')
    closeSinks().then(() => res.writeHead(204).end(), fail500);
  else if (req.method === 'GET') servePage(res, url.pathname).catch(fail500);
  else res.writeHead(405).end();
});

async function closeSinks(): Promise<void> {
  const all = [...handles.values()];
  handles.clear();
  for (const handle of all) await (await handle).close();
}

const wss = new WebSocketServer({
  noServer: true,
  perMessageDeflate: false,
  maxPayload: MAX_SLICE + 8,
});
http.on('upgrade', (req, socket, head) => {
  const url = new URL(req.url ?? '/', 'http://peer');
  const name = url.pathname.slice('/ws-sink/'.length);
  if (!url.pathname.startsWith('/ws-sink/') || !SAFE_NAME.test(name)) {
    socket.destroy();
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    const file = sinkFile(name);
    // Frames are written in arrival order, each acked once on disk (as our server acks).
    let queue: Promise<void> = Promise.resolve();
    ws.on('message', (data: RawData) => {
      const frame = data as Buffer;
      queue = queue.then(async () => {
        const offset = Number(frame.readBigUInt64BE(0));
        await (await file).write(frame, 8, frame.length - 8, offset);
        ws.send('ok');
      });
      queue.catch((error: unknown) => ws.close(1011, String(error).slice(0, 100)));
    });
  });
});

http.listen(0, '127.0.0.1', () => {
  const address = http.address();
  if (address === null || typeof address === 'string') fail('no TCP address');
  emit({ event: 'listening', port: address.port });
});
