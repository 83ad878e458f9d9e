/** Peer contender 5, server side: @tus/server with @tus/file-store, as its documentation sets it up. */
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { FileStore } from '@tus/file-store';
import { Server } from '@tus/server';
import { emit, fail, stringOption } from './common.js';

const { values } = parseArgs({ options: { dir: { type: 'string' } } });
const directory = stringOption(values.dir, 'dir');
const tus = new Server({ path: '/files', datastore: new FileStore({ directory }) });
const http = createServer((req, res) => {
  tus.handle(req, res).catch(fail);
});
http.listen(0, '127.0.0.1', () => {
  const address = http.address();
  if (address === null || typeof address === 'string') fail('no TCP address');
  emit({ event: 'listening', port: address.port });
});
