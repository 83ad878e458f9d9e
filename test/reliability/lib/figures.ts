/**
 * Every scenario writes the figures it produced to test-output/reliability/<scenario>.json, so
 * test/reliability/README.md is built from a real run (`npx tsx test/reliability/report.ts`), not
 * typed by hand.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const FIGURES_DIR = fileURLToPath(
  new URL('../../../test-output/reliability/', import.meta.url),
);

export type Figure = number | string | boolean;

export function recordFigures(scenario: string, figures: Record<string, Figure>): void {
  mkdirSync(FIGURES_DIR, { recursive: true });
  const body = { scenario, recordedAt: new Date().toISOString(), ...figures };
  writeFileSync(join(FIGURES_DIR, `${scenario}.json`), `${JSON.stringify(body, null, 2)}\n`);
  console.log(`[reliability] ${scenario}: ${JSON.stringify(figures)}`);
}
