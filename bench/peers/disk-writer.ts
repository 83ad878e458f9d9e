/**
 * Limit contender 3: the disk alone. Loads the source into memory (not timed), then writes it at
 * its offsets into a preallocated file in `--chunk` pieces, one after another; with `--sync`, a final
 * fdatasync, which turns "page cache speed" into "device write rate" (the bar for --durable).
 */
import { readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { cpuNow, emit, fail, intOption, selfUsage, stringOption } from './common.js';

const { values } = parseArgs({
  options: {
    source: { type: 'string' },
    dest: { type: 'string' },
    chunk: { type: 'string' },
    sync: { type: 'boolean' },
  },
});
const source = stringOption(values.source, 'source');
const dest = stringOption(values.dest, 'dest');
const chunk = intOption(values.chunk, 'chunk', 2 ** 20);

try {
  const data = readFileSync(source);
  const cpu0 = cpuNow();
  const t0 = performance.now();
  const handle = await open(dest, 'w');
  await handle.truncate(data.length);
  for (let offset = 0; offset < data.length; offset += chunk) {
    const n = Math.min(chunk, data.length - offset);
    const { bytesWritten } = await handle.write(data, offset, n, offset);
    if (bytesWritten !== n) throw new Error(`short write at ${offset}`);
  }
  if (values.sync) await handle.datasync();
  await handle.close();
  const seconds = (performance.now() - t0) / 1000;
  emit({ event: 'result', seconds, bytes: data.length, ...selfUsage(cpu0) });
} catch (error) {
  fail(error);
}
