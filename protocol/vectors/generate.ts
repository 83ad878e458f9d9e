/**
 * `npm run vectors`: writes protocol/vectors/<message>.json, examples.json, v2/bigup2.json, and the generated
 * sections of protocol/SPEC.md (error registry table, worked examples). Run it after any change
 * to the codec or the registry; test/protocol checks that the committed files match its output.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { loadHasher } from '../hash.js';
import { buildFrameVectors } from './build-v2.js';
import {
  buildExamples,
  buildVectors,
  renderErrorTable,
  renderExamples,
  replaceGenerated,
} from './build.js';

const here = dirname(fileURLToPath(import.meta.url));

/** Stable JSON: two-space indent, trailing newline, so diffs stay small and reviewable. */
function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

async function main(): Promise<void> {
  const hasher = await loadHasher();
  const files = buildVectors(hasher);
  for (const file of files) {
    await writeFile(join(here, `${file.message.toLowerCase()}.json`), json(file));
  }
  await mkdir(join(here, 'v2'), { recursive: true });
  await writeFile(join(here, 'v2', 'bigup2.json'), json(buildFrameVectors(hasher)));
  const examples = buildExamples(hasher);
  await writeFile(join(here, 'examples.json'), json(examples));

  const specPath = join(here, '..', 'SPEC.md');
  let spec = await readFile(specPath, 'utf8');
  spec = replaceGenerated(spec, 'error-registry', renderErrorTable());
  spec = replaceGenerated(spec, 'examples', renderExamples(examples));
  await writeFile(specPath, spec);
  console.log(`wrote ${files.length} vector files, examples.json and SPEC.md generated sections`);
}

await main();
