/**
 * Peer contender 5, client side: tus-js-client in Node. `--chunk 0` keeps its default (the whole
 * file in one PATCH); otherwise one PATCH per chunk. No retries: a bench must see failures.
 * Timing runs from start() (the creation POST) to onSuccess (the last PATCH answered).
 */
import { createReadStream, statSync } from 'node:fs';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { Upload } from 'tus-js-client';
import { cpuNow, emit, startGate, fail, intOption, selfUsage, stringOption } from './common.js';

const { values } = parseArgs({
  options: { endpoint: { type: 'string' }, file: { type: 'string' }, chunk: { type: 'string' } },
});
const endpoint = stringOption(values.endpoint, 'endpoint');
const path = stringOption(values.file, 'file');
const chunk = intOption(values.chunk, 'chunk', 0);
const size = statSync(path).size;

await startGate();

const cpu0 = cpuNow();
const t0 = performance.now();
const upload = new Upload(createReadStream(path), {
  endpoint,
  uploadSize: size,
  chunkSize: chunk > 0 ? chunk : Number.POSITIVE_INFINITY,
  metadata: { filename: basename(path) },
  retryDelays: null,
  storeFingerprintForResuming: false,
  onError: fail,
  onSuccess: () => {
    const seconds = (performance.now() - t0) / 1000;
    emit({ event: 'result', seconds, bytes: size, url: upload.url, ...selfUsage(cpu0) });
  },
});
upload.start();
