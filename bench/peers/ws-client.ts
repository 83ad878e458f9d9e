/**
 * Client side of limit contenders 1 and 2: sends the file as binary WebSocket messages with
 * `--window` messages in flight (app-level acks), reading each chunk straight from the file into
 * the message buffer. The mask is all zeros, which ws recognises and skips (legal per RFC 6455:
 * the mask only has to be unpredictable to defeat cache poisoning by browsers' scripts, which a
 * Node client is not); docs/measurements.md shows masking decides the WebSocket ceiling here.
 * Timing runs from connect to the server's final `ok`.
 */
import { fstatSync, openSync, read } from 'node:fs';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { cpuNow, emit, startGate, fail, intOption, selfUsage, stringOption } from './common.js';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    file: { type: 'string' },
    chunk: { type: 'string' },
    window: { type: 'string' },
  },
});
const url = stringOption(values.url, 'url');
const path = stringOption(values.file, 'file');
const chunk = intOption(values.chunk, 'chunk', 2 ** 20);
const windowCount = Math.max(1, intOption(values.window, 'window', 16));
const fd = openSync(path, 'r');
const size = fstatSync(fd).size;

// A small pool, recycled once ws has handed a buffer to the socket: fresh 1 MiB buffers per message
// would make the kernel fault in new pages for every one, which is not what a limit should measure.
const pool: Buffer[] = [];
const takeBuffer = (): Buffer => pool.pop() ?? Buffer.allocUnsafe(8 + chunk);

await startGate();

const cpu0 = cpuNow();
const t0 = performance.now();
const socket = new WebSocket(url, {
  perMessageDeflate: false,
  generateMask: (mask: Buffer) => mask.fill(0),
});
let nextOffset = 0;
let inFlight = 0;
let acked = 0;

function sendChunk(offset: number): void {
  const n = Math.min(chunk, size - offset);
  const buf = takeBuffer();
  buf.writeBigUInt64BE(BigInt(offset));
  read(fd, buf, 8, n, offset, (error, bytesRead) => {
    if (error || bytesRead !== n) fail(error ?? new Error(`short read at ${offset}`));
    const message = n === chunk ? buf : buf.subarray(0, 8 + n);
    socket.send(message, { binary: true }, (sendError) => {
      if (sendError) fail(sendError);
      pool.push(buf);
    });
  });
}

function pump(): void {
  while (inFlight < windowCount && nextOffset < size) {
    inFlight++;
    const offset = nextOffset;
    nextOffset += chunk;
    sendChunk(offset);
  }
}

socket.on('open', () => {
  socket.send(JSON.stringify({ size }));
  if (size === 0) socket.send('done');
  pump();
});
socket.on('message', (data: Buffer, isBinary: boolean) => {
  if (!isBinary) {
    if (data.toString('utf8') !== 'ok') fail(`unexpected reply ${data.toString('utf8')}`);
    const seconds = (performance.now() - t0) / 1000;
    emit({ event: 'result', seconds, bytes: size, ...selfUsage(cpu0) });
    socket.close();
    return;
  }
  const offset = Number(data.readBigUInt64BE(0));
  inFlight--;
  acked += Math.min(chunk, size - offset);
  if (acked === size) socket.send('done');
  else pump();
});
socket.on('error', fail);
