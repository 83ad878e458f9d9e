/** Peer contender 5, server side: @tus/server with @tus/file-store, as its documentation sets it up. */
import { parseArgs } from 'node:util';
import { FileStore } from '@tus/file-store';
import { Server } from '@tus/server';
import { serveAndReport, stringOption } from './common.js';

const { values } = parseArgs({ options: { dir: { type: 'string' } } });
const directory = stringOption(values.dir, 'dir');
const tus = new Server({ path: '/files', datastore: new FileStore({ directory }) });
serveAndReport((req, res) => tus.handle(req, res));
