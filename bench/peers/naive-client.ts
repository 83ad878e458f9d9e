/**
 * Peer contender 6, client side: POST each 1 MiB slice as multipart/form-data with fetch, one after
 * another, then ask for the merge. Timing covers all of it; the merge is also reported on its own.
 */
import { openSync, fstatSync, readSync } from 'node:fs';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { cpuNow, emit, startGate, fail, intOption, selfUsage, stringOption } from './common.js';

const { values } = parseArgs({
  options: { url: { type: 'string' }, file: { type: 'string' }, chunk: { type: 'string' } },
});
const base = stringOption(values.url, 'url');
const path = stringOption(values.file, 'file');
const chunk = intOption(values.chunk, 'chunk', 2 ** 20);
const fd = openSync(path, 'r');
const size = fstatSync(fd).size;
const uploadId = `u${process.pid}${Date.now()}`;

try {
  await startGate();
  const cpu0 = cpuNow();
  const t0 = performance.now();
  const total = Math.ceil(size / chunk);
  for (let i = 0; i < total; i++) {
    const n = Math.min(chunk, size - i * chunk);
    const buf = Buffer.allocUnsafe(n);
    readSync(fd, buf, 0, n, i * chunk);
    const form = new FormData();
    form.append('chunk', new Blob([buf]), `${basename(path)}.part${i}`);
    const res = await fetch(`${base}/upload?uploadId=${uploadId}&index=${i}`, {
      method: 'POST',
      body: form,
    });
    if (!res.ok) throw new Error(`chunk ${i}: HTTP ${res.status}`);
    await res.arrayBuffer();
  }
  const m0 = performance.now();
  const res = await fetch(`${base}/merge`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ uploadId, name: basename(path), total }),
  });
  if (!res.ok) throw new Error(`merge: HTTP ${res.status}`);
  const { path: stored } = (await res.json()) as { path: string };
  const end = performance.now();
  emit({
    event: 'result',
    seconds: (end - t0) / 1000,
    mergeSeconds: (end - m0) / 1000,
    bytes: size,
    path: stored,
    ...selfUsage(cpu0),
  });
} catch (error) {
  fail(error);
}
