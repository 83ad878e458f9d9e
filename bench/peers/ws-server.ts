/**
 * Limit contenders 1 and 2: the least a WebSocket server can do with the file.
 * Message format (bench-only, not bigup.1): client sends a text message `{"size":N}`, then binary
 * messages of 8 bytes big-endian offset + payload; the server acks each with its 8-byte offset and,
 * on the text message `done`, answers `ok` once every write has returned.
 * --mode discard: ack at once, keep nothing. --mode write: positional write into a file
 * preallocated to the final size (as our server does), ack when the write returns.
 */
import { close, ftruncate, open, write } from 'node:fs';
import { parseArgs } from 'node:util';
import { WebSocketServer, type WebSocket } from 'ws';
import { emit, fail, stringOption } from './common.js';

const { values } = parseArgs({ options: { mode: { type: 'string' }, file: { type: 'string' } } });
const mode = stringOption(values.mode, 'mode');
if (mode !== 'discard' && mode !== 'write') fail(`--mode must be discard or write, not ${mode}`);
const file = mode === 'write' ? stringOption(values.file, 'file') : '';

// One upload per connection is all the bench needs; the payload limit only has to admit 64 MiB + header.
const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: 0,
  maxPayload: 64 * 2 ** 20 + 64,
  perMessageDeflate: false,
});

function ackBuffer(offset: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(BigInt(offset));
  return b;
}

wss.on('connection', (socket: WebSocket) => {
  let fd = -1;
  let pendingWrites = 0;
  let doneAsked = false;
  // Messages that arrive while the file is being opened wait here, in order.
  let queue: Buffer[] | undefined = mode === 'write' ? [] : undefined;

  const finishIfDone = (): void => {
    if (!doneAsked || pendingWrites > 0) return;
    if (fd >= 0) {
      const f = fd;
      fd = -1;
      close(f, (error) => (error ? fail(error) : socket.send('ok')));
    } else {
      socket.send('ok');
    }
  };

  const handleData = (data: Buffer): void => {
    const offset = Number(data.readBigUInt64BE(0));
    if (mode === 'discard') {
      socket.send(ackBuffer(offset));
      return;
    }
    pendingWrites++;
    write(fd, data, 8, data.length - 8, offset, (error) => {
      if (error) fail(error);
      pendingWrites--;
      socket.send(ackBuffer(offset));
      finishIfDone();
    });
  };

  socket.on('message', (data: Buffer, isBinary: boolean) => {
    if (!isBinary) {
      const text = data.toString('utf8');
      if (text === 'done') {
        doneAsked = true;
        if (!queue) finishIfDone();
        return;
      }
      const { size } = JSON.parse(text) as { size: number };
      if (mode === 'write') {
        open(file, 'w', (error, f) => {
          if (error) fail(error);
          ftruncate(f, size, (error2) => {
            if (error2) fail(error2);
            fd = f;
            const waiting = queue ?? [];
            queue = undefined;
            for (const d of waiting) handleData(d);
            finishIfDone();
          });
        });
      }
      return;
    }
    if (queue) queue.push(data);
    else handleData(data);
  });
});

wss.on('listening', () => {
  const address = wss.address();
  if (address === null || typeof address === 'string') fail('no TCP address');
  emit({ event: 'listening', port: address.port });
});
