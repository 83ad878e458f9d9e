/** Peer contender 7, server side: one HTTP PUT streamed into one file. No resume, no checks: the "one stream" reference. */
import { createWriteStream } from 'node:fs';
import { createServer } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { emit, fail, stringOption } from './common.js';

const { values } = parseArgs({ options: { file: { type: 'string' } } });
const file = stringOption(values.file, 'file');
const http = createServer((req, res) => {
  if (req.method !== 'PUT') {
    res.writeHead(405).end();
    return;
  }
  pipeline(req, createWriteStream(file)).then(
    () => res.writeHead(201).end(),
    (error: Error) => res.writeHead(500).end(error.message),
  );
});
http.listen(0, '127.0.0.1', () => {
  const address = http.address();
  if (address === null || typeof address === 'string') fail('no TCP address');
  emit({ event: 'listening', port: address.port });
});
