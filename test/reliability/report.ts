/**
 * Print the figures of the last run (test-output/reliability/*.json) as a markdown table, for
 * test/reliability/README.md: `npx tsx test/reliability/report.ts`.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIGURES_DIR } from './lib/figures.js';

const rows: string[] = ['| scenario | figures (last run) |', '| --- | --- |'];
for (const file of readdirSync(FIGURES_DIR)
  .filter((f) => f.endsWith('.json'))
  .sort()) {
  const { scenario, recordedAt, ...figures } = JSON.parse(
    readFileSync(join(FIGURES_DIR, file), 'utf8'),
  ) as Record<string, unknown>;
  const text = Object.entries(figures)
    .map(([k, v]) => `${k} ${String(v)}`)
    .join(', ');
  rows.push(`| ${String(scenario)} (${String(recordedAt).slice(0, 16)}) | ${text} |`);
}
process.stdout.write(`${rows.join('\n')}\n`);
