/**
 * A minimal bigup.1 sink for measuring the client alone: accepts any OPEN, verifies each chunk's
 * hash (as a real server must), acks at once, writes nothing. Run:
 *   npx tsx test/client/measure/sink.ts PORT [--no-verify]
 * then point `big-uploader send` at ws://127.0.0.1:PORT/upload.
 */
import { WebSocketServer } from 'ws';
import { randomBytes } from 'node:crypto';
import {
  decodeClientMessage,
  encodeAccept,
  encodeAck,
  encodeResult,
  loadHasher,
  wholeFileDigest,
} from '../../../protocol/index.js';

const port = Number(process.argv[2] ?? 3400);
const verify = !process.argv.includes('--no-verify');
const hasher = await loadHasher();
const wss = new WebSocketServer({
  port,
  host: '127.0.0.1',
  perMessageDeflate: false,
  maxPayload: 80 * 1024 * 1024,
  handleProtocols: () => 'bigup.1',
});
wss.on('connection', (ws) => {
  let size = 0;
  let chunk = 0;
  let id = new Uint8Array(16);
  const hashes: bigint[] = [];
  ws.on('message', (data: Buffer) => {
    const m = decodeClientMessage(data);
    if (m.type === 'open') {
      size = m.fileSize;
      chunk = Math.min(Math.max(m.chunkSize || 1048576, 65536), 16 * 1048576);
      id = new Uint8Array(randomBytes(16));
      ws.send(
        encodeAccept({
          created: true,
          durable: false,
          uploadId: id,
          secret: new Uint8Array(randomBytes(32)),
          fileSize: size,
          chunkSize: chunk,
          window: 64 * 1048576,
          ranges: [],
        }),
      );
    } else if (m.type === 'data') {
      if (verify && hasher.h64(m.payload) !== m.hash) throw new Error('hash mismatch');
      hashes[m.offset / chunk] = m.hash;
      ws.send(encodeAck([{ start: m.offset, end: m.offset + m.payload.byteLength }]));
    } else if (m.type === 'complete') {
      ws.send(
        encodeResult({ uploadId: id, fileSize: size, digest: wholeFileDigest(hasher, hashes) }),
      );
    }
  });
});
console.log(`sink listening on ws://127.0.0.1:${port}/upload`);
