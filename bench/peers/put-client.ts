/** Peer contender 7, client side: stream the file as the body of one PUT; timing from connect to the response. */
import { createReadStream, statSync } from 'node:fs';
import { request } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { cpuNow, emit, startGate, fail, selfUsage, stringOption } from './common.js';

const { values } = parseArgs({ options: { url: { type: 'string' }, file: { type: 'string' } } });
const url = stringOption(values.url, 'url');
const path = stringOption(values.file, 'file');
const size = statSync(path).size;

await startGate();

const cpu0 = cpuNow();
const t0 = performance.now();
const req = request(url, {
  method: 'PUT',
  headers: { 'content-length': String(size), 'content-type': 'application/octet-stream' },
});
req.on('response', (res) => {
  res.resume();
  res.on('end', () => {
    if (res.statusCode !== 201) fail(`HTTP ${res.statusCode}`);
    emit({
      event: 'result',
      seconds: (performance.now() - t0) / 1000,
      bytes: size,
      ...selfUsage(cpu0),
    });
  });
});
req.on('error', fail);
pipeline(createReadStream(path, { highWaterMark: 2 ** 20 }), req).catch(fail);
