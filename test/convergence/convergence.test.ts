/**
 * End-to-end convergence under faults (real processes on loopback): fixed seeds in CI; fresh seeds
 * and longer runs with `npm run soak`. See scenario.ts for the timeline and the oracle.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_SCENARIO, runScenario } from './scenario.js';
import { recordSeed } from '../support/reliability-record.js';

const SEEDS = [11, 29];

describe('convergence - API faults, replica kills and agent restarts, checked against the simulator', () => {
  it.each(SEEDS)('seed %i: every agent ends equal to the upstream, watermarks never go back, nothing crashes', async (seed) => {
    const r = await runScenario({ ...DEFAULT_SCENARIO, seed }, (line) => process.stdout.write(`${line}\n`));
    for (const d of r.divergences) process.stdout.write(`  ${d}\n`);
    const why = `replay: ${r.replayCommand}`;
    expect(Object.values(r.faults).reduce((s, n) => s + n, 0), why).toBeGreaterThanOrEqual(4);
    expect(r.divergences, why).toEqual([]);
    expect(r.watermarkRegressions, why).toEqual([]);
    expect(r.crashes, why).toEqual([]);
    expect(r.hotLoops, why).toEqual([]);
    expect(r.budgetBreaches, why).toEqual([]);
    expect(r.entries).toBeGreaterThan(20);
    recordSeed(r);
  }, 120_000);
});
