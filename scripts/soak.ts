/**
 * `npm run soak -- [--duration-ms N] [--seed S] [--runs R] [--replicas N] [--agents N]`: runs the
 * convergence scenario (test/convergence/scenario.ts) with fresh seeds (or the one given) for a
 * chosen time, prints a line per run and a total, and writes bench/results/soak.json and the
 * reliability page docs/reliability.md (with the last `npm run reliability` beside it). A failing seed prints the command that replays it. Every
 * run is bounded (its own duration plus the settle timeout); the soak stops by itself.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DEFAULT_SCENARIO, type RunReport, runScenario } from '../test/convergence/scenario.js';
import { CI_FILE, failures, PAGE_FILE, type ReliabilityCiFile, readJson, renderReliability, SOAK_FILE, type SoakFile } from './reliability.js';

const { values } = parseArgs({
  options: {
    'duration-ms': { type: 'string' }, seed: { type: 'string' }, runs: { type: 'string' },
    replicas: { type: 'string' }, agents: { type: 'string' }, 'total-ms': { type: 'string' },
  },
});
const num = (v: string | undefined, d: number): number => (v === undefined ? d : Number(v));
const totalMs = num(values['total-ms'], 10 * 60_000);
const runs = num(values.runs, values.seed !== undefined ? 1 : 1_000);
const started = Date.now();
const reports: RunReport[] = [];
let seed = num(values.seed, Math.floor(Date.now() % 100_000));
for (let i = 0; i < runs && Date.now() - started < totalMs; i++, seed++) {
  const r = await runScenario(
    { ...DEFAULT_SCENARIO, seed, durationMs: num(values['duration-ms'], 20_000), replicas: num(values.replicas, DEFAULT_SCENARIO.replicas), agents: num(values.agents, DEFAULT_SCENARIO.agents) },
    (line) => process.stdout.write(`${line}\n`),
  );
  reports.push(r);
  if (failures(r) > 0) {
    for (const d of [...r.divergences, ...r.watermarkRegressions, ...r.crashes, ...r.hotLoops, ...(r.budgetBreaches ?? [])]) process.stdout.write(`  ${d}\n`);
    process.stdout.write(`  FAILED — replay with: ${r.replayCommand}\n`);
  }
}
const faults = reports.reduce((s, r) => s + Object.values(r.faults).reduce((a, n) => a + n, 0), 0);
const divergences = reports.reduce((s, r) => s + r.divergences.length, 0);
process.stdout.write(`soak: ${reports.length} runs, ${faults} faults injected, ${divergences} divergences, max replica RSS ${Math.max(0, ...reports.map((r) => r.peakReplicaRssMb))} MB, max replica FDs ${Math.max(0, ...reports.map((r) => r.peakReplicaFds))}\n`);
const soak: SoakFile = { at: new Date().toISOString(), node: process.version, reports };
writeFileSync(SOAK_FILE, `${JSON.stringify(soak, null, 2)}\n`);
writeFileSync(PAGE_FILE, renderReliability(soak, readJson<ReliabilityCiFile>(CI_FILE)));
process.exitCode = reports.some((r) => failures(r) > 0) ? 1 : 0;
