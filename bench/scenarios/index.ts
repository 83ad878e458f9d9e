/** The bench's further scenarios by id (cli/bench.ts runs them after the contenders). */
import type { ScenarioResult } from '../types.js';
import { browserScenario, firefoxScenario } from './browser.js';
import type { ScenarioContext, ScenarioId } from './common.js';
import { completionScenario } from './completion.js';
import { concurrencyScenario } from './concurrency.js';
import { resumeScenario } from './resume.js';
import { scaleScenario } from './scale.js';
import { sweepScenario } from './sweep.js';

export { SCENARIO_IDS, type ScenarioContext, type ScenarioId } from './common.js';

export const SCENARIOS: Record<ScenarioId, (ctx: ScenarioContext) => Promise<ScenarioResult>> = {
  resume: resumeScenario,
  completion: completionScenario,
  concurrency: concurrencyScenario,
  sweep: sweepScenario,
  browser: browserScenario,
  firefox: firefoxScenario,
  scale: scaleScenario,
};
