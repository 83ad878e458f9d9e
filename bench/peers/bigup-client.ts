/**
 * Contender 4, client side: the same Node client core `big-uploader send` drives (client/node,
 * default chunk size and window unless given), in a peer so the harness can gate its start like
 * every other client's. Timing runs from connect to the server's RESULT.
 */
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { createUploader } from '../../client/node/index.js';
import { cpuNow, emit, fail, intOption, selfUsage, startGate, stringOption } from './common.js';

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
const chunk = values.chunk === undefined ? undefined : intOption(values.chunk, 'chunk');
const window = values.window === undefined ? undefined : intOption(values.window, 'window');

const uploader = await createUploader({
  endpoint: url,
  file: path,
  resumeStore: false,
  ...(chunk !== undefined ? { chunkSize: chunk } : {}),
  ...(window !== undefined ? { maxInFlightBytes: window } : {}),
});
await startGate();
const cpu0 = cpuNow();
const t0 = performance.now();
const outcome = await uploader.start();
const seconds = (performance.now() - t0) / 1000;
if (outcome.state !== 'done') {
  fail(
    outcome.state === 'failed'
      ? `${outcome.error.name}: ${outcome.error.message}`
      : `upload ended ${outcome.state}`,
  );
}
const result = outcome.result;
emit({
  event: 'result',
  seconds,
  bytes: result.size,
  id: result.uploadId,
  name: basename(path),
  size: result.size,
  bytesSent: result.bytesSent,
  completionSeconds: result.completionMs / 1000,
  digest: result.digest,
  ...selfUsage(cpu0),
});
process.exit(0);
