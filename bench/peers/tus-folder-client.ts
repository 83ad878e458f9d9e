/**
 * Peer for the small-files scenario (issue 16): tus-js-client in Node uploading every file of a
 * folder, `--parallel N` at a time (1 = one after another), each file its own creation POST and
 * PATCH as tus-js-client does. No retries: a bench must see failures. The scenario times the
 * whole process, start-up included, as it does for `big-uploader send`.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { Upload } from 'tus-js-client';
import { emit, fail, intOption, stringOption } from './common.js';

const { values } = parseArgs({
  options: { endpoint: { type: 'string' }, dir: { type: 'string' }, parallel: { type: 'string' } },
});
const endpoint = stringOption(values.endpoint, 'endpoint');
const root = stringOption(values.dir, 'dir');
const parallel = intOption(values.parallel, 'parallel', 1);

const files = readdirSync(root, { recursive: true, withFileTypes: true })
  .filter((entry) => entry.isFile())
  .map((entry) => join(entry.parentPath, entry.name));

function send(path: string): Promise<void> {
  const bytes = readFileSync(path);
  return new Promise((resolve, reject) => {
    new Upload(bytes, {
      endpoint,
      uploadSize: bytes.length,
      metadata: { filename: relative(root, path) },
      retryDelays: null,
      storeFingerprintForResuming: false,
      onError: reject,
      onSuccess: () => resolve(),
    }).start();
  });
}

let next = 0;
await Promise.all(
  Array.from({ length: parallel }, async () => {
    while (next < files.length) await send(files[next++] ?? '');
  }),
).catch(fail);
emit({ event: 'result', files: files.length });
