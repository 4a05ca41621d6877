/**
 * `npm run reliability`: runs the CI convergence seeds and the hostile-input suites with vitest,
 * with CATTAIL_RELIABILITY_RECORD set so that they record what they tried
 * (test/support/reliability-record.ts), then writes bench/results/reliability-ci.json and
 * regenerates docs/reliability.md with the last soak beside it. If any of those tests fails,
 * nothing is written and the exit code is 1: the page only ever shows counts whose assertions held.
 * Bounded by the tests' own timeouts (the convergence seeds take about a minute).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunReport } from '../test/convergence/scenario.js';
import type { HostileLine, ReliabilityLine } from '../test/support/reliability-record.js';
import { CI_FILE, PAGE_FILE, type ReliabilityCiFile, readJson, renderReliability, SOAK_FILE, type SoakFile } from './reliability.js';

const SUITES = [
  'test/convergence/convergence.test.ts',
  'test/proto/hostile.test.ts',
  'test/server/hostile.test.ts',
  'test/server/fuzz-inbound.test.ts',
  'test/server/connection-floods.test.ts',
  'test/server/inbound-budget-server.test.ts',
  'test/server/mtls.test.ts',
  'test/upstream/reflector-faults.test.ts',
  'test/frame-compression.test.ts',
  'test/client/lifecycle.test.ts',
];

const dir = mkdtempSync(join(tmpdir(), 'cattail-reliability-'));
const record = join(dir, 'record.jsonl');
writeFileSync(record, '');
try {
  const run = spawnSync('npx', ['vitest', 'run', ...SUITES], { stdio: 'inherit', env: { ...process.env, CATTAIL_RELIABILITY_RECORD: record } });
  if (run.status !== 0) {
    process.stderr.write(`reliability: vitest failed (exit ${run.status ?? run.signal}); nothing written\n`);
    process.exitCode = 1;
  } else {
    const lines = readFileSync(record, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as ReliabilityLine);
    const seeds = lines.filter((l): l is { kind: 'seed'; report: RunReport } => l.kind === 'seed').map((l) => l.report).sort((a, b) => a.seed - b.seed);
    const hostile = lines.filter((l): l is HostileLine => l.kind === 'hostile');
    const ci: ReliabilityCiFile = { at: new Date().toISOString(), node: process.version, seeds, hostile };
    writeFileSync(CI_FILE, `${JSON.stringify(ci, null, 2)}\n`);
    writeFileSync(PAGE_FILE, renderReliability(readJson<SoakFile>(SOAK_FILE), ci));
    process.stdout.write(`reliability: ${seeds.length} seeds, ${hostile.reduce((s, l) => s + l.tried, 0)} hostile inputs recorded; docs/reliability.md written\n`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
