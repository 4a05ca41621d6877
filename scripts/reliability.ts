/**
 * docs/reliability.md, from the last soak (bench/results/soak.json, `npm run soak`) and the last
 * reliability run (bench/results/reliability-ci.json, `npm run reliability`: the CI seeds and the
 * hostile-input suites). Either script rewrites the page from both files, so the page always shows
 * the newest of each.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { RunReport } from '../test/convergence/scenario.js';
import type { HostileLine } from '../test/support/reliability-record.js';

export interface SoakFile {
  at: string;
  node: string;
  reports: RunReport[];
}

export interface ReliabilityCiFile {
  at: string;
  node: string;
  seeds: RunReport[];
  hostile: HostileLine[];
}

export const SOAK_FILE = new URL('../bench/results/soak.json', import.meta.url);
export const CI_FILE = new URL('../bench/results/reliability-ci.json', import.meta.url);
export const PAGE_FILE = new URL('../docs/reliability.md', import.meta.url);

export function readJson<T>(file: URL): T | undefined {
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as T) : undefined;
}

const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);
const faultCount = (r: RunReport): number => sum(Object.values(r.faults));
/** Everything the oracle counts against a run: divergences, regressions, crashes, hot loops, budget breaches. */
export const failures = (r: RunReport): number => r.divergences.length + r.watermarkRegressions.length + r.crashes.length + r.hotLoops.length + (r.budgetBreaches?.length ?? 0);

function runTable(reports: readonly RunReport[]): string[] {
  return [
    '| seed | faults | requests to the lagging HA follower | agents × entries | deletions seen | settle ms | divergences | watermark regressions | crashes | hot loops | budget breaches | peak replica RSS MB | peak replica FDs |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...reports.map((r) => `| ${r.seed} | ${faultCount(r)} | ${r.haFollowerRequests ?? '—'} | ${r.agentsChecked} × ${r.entries} | ${r.deletionsSeen} | ${r.settleMs} | ${r.divergences.length} | ${r.watermarkRegressions.length} | ${r.crashes.length} | ${r.hotLoops.length} | ${r.budgetBreaches?.length ?? '—'} | ${r.peakReplicaRssMb} | ${r.peakReplicaFds} |`),
  ];
}

function faultsByKind(soak: readonly RunReport[], seeds: readonly RunReport[]): string[] {
  const count = (rs: readonly RunReport[]): Map<string, number> => {
    const m = new Map<string, number>();
    for (const r of rs) for (const [k, n] of Object.entries(r.faults)) m.set(k, (m.get(k) ?? 0) + n);
    return m;
  };
  const a = count(soak);
  const b = count(seeds);
  const kinds = [...new Set([...a.keys(), ...b.keys()])].sort((x, y) => x.localeCompare(y));
  return ['| kind | soak | CI seeds |', '|---|---|---|', ...kinds.map((k) => `| ${k} | ${a.get(k) ?? 0} | ${b.get(k) ?? 0} |`)];
}

/** One row per (surface, class): the inputs tried and every outcome with its count. */
function hostileTable(lines: readonly HostileLine[]): string[] {
  const rows = new Map<string, { surface: string; klass: string; tried: number; witness: boolean; outcomes: Map<string, number> }>();
  for (const l of lines) {
    const key = `${l.surface}\u0000${l.class}`;
    const row = rows.get(key) ?? { surface: l.surface, klass: l.class, tried: 0, witness: false, outcomes: new Map<string, number>() };
    row.tried += l.tried;
    row.witness ||= l.witness;
    row.outcomes.set(l.outcome, (row.outcomes.get(l.outcome) ?? 0) + l.tried);
    rows.set(key, row);
  }
  const order = ['decoder', 'session', 'connections', 'tls', 'upstream', 'agent'];
  const sorted = [...rows.values()].sort((x, y) => order.indexOf(x.surface) - order.indexOf(y.surface) || x.klass.localeCompare(y.klass));
  return [
    '| surface | input class | tried | outcomes (count) | healthy agent asserted streaming |',
    '|---|---|---|---|---|',
    ...sorted.map((r) => `| ${r.surface} | ${r.klass} | ${r.tried} | ${[...r.outcomes].sort(([, x], [, y]) => y - x).map(([o, n]) => `${o} (${n})`).join('; ')} | ${r.witness ? 'yes' : '—'} |`),
  ];
}

export function renderReliability(soak: SoakFile | undefined, ci: ReliabilityCiFile | undefined): string {
  const soakRuns = soak?.reports ?? [];
  const seeds = ci?.seeds ?? [];
  const hostile = ci?.hostile ?? [];
  const all = [...soakRuns, ...seeds];
  const classes = new Set(hostile.map((l) => `${l.surface}\u0000${l.class}`)).size;
  return [
    '# Reliability figures',
    '',
    'Generated from the last `npm run soak` (scripts/soak.ts) and the last `npm run reliability`',
    '(scripts/reliability-run.ts: the CI seeds and the hostile-input suites, run with vitest).',
    '',
    'Each convergence run starts the simulated API server, Cattail replicas and library agents as',
    'separate processes on loopback, drives seeded churn and a seeded timeline of faults against all of',
    'them (API faults, a lagging HA follower behind a round-robin port for one replica, replica kills,',
    'stalls and partitions, agent restarts, stalls and black holes),',
    'then checks every agent against the simulator (test/convergence/scenario.ts describes the',
    'oracle; it also samples each replica\'s delta-log bytes against `--delta-log-max-bytes` at every',
    'step and its resident set against 512 MB). Target: zero in every failure column.',
    '',
    `**Total:** ${all.length} runs (${soakRuns.length} soak, ${seeds.length} CI seeds), ${sum(all.map(faultCount))} faults injected, ` +
      `${sum(all.map((r) => r.divergences.length))} divergences, ${sum(all.map(failures))} failures of any kind; ` +
      `${sum(hostile.map((l) => l.tried))} hostile inputs in ${classes} classes; peak replica RSS ${Math.max(0, ...all.map((r) => r.peakReplicaRssMb))} MB, ` +
      `peak replica FDs ${Math.max(0, ...all.map((r) => r.peakReplicaFds))}.`,
    '',
    `## Soak runs${soak ? ` (${soak.at}, Node ${soak.node})` : ''}`,
    '',
    ...(soakRuns.length > 0 ? runTable(soakRuns) : ['No soak recorded yet: `npm run soak`.']),
    '',
    `## CI seeds${ci ? ` (${ci.at}, Node ${ci.node})` : ''}`,
    '',
    'The fixed seeds of `test/convergence/convergence.test.ts`, which CI runs on every change.',
    '',
    ...(seeds.length > 0 ? runTable(seeds) : ['Not recorded yet: `npm run reliability`.']),
    '',
    '## Faults injected, by kind',
    '',
    ...faultsByKind(soakRuns, seeds),
    '',
    '## Hostile inputs, by class',
    '',
    'What the hostile-input suites sent, counted where each assertion about it holds (a class whose',
    'test failed is not recorded, because a failed run writes nothing): the pure decoder',
    '(test/proto/hostile.test.ts), the real server\'s session (test/server/hostile.test.ts and the',
    'fast-check fuzz test/server/fuzz-inbound.test.ts, whose sequences are counted by their first',
    'payload), its TCP and HTTP front (test/server/connection-floods.test.ts, from many 127.0.0.0/8',
    'source addresses), TLS (test/server/mtls.test.ts), the upstream reader',
    '(test/upstream/reflector-faults.test.ts) and the agent facing a hostile server',
    '(test/client/lifecycle.test.ts; decompression in test/frame-compression.test.ts). "Healthy agent asserted streaming" means the test',
    'checks that an agent on the same server kept receiving every change, in order, with a matching',
    'digest, while these inputs arrived. No input of any class crashed a process.',
    '',
    ...(hostile.length > 0 ? hostileTable(hostile) : ['Not recorded yet: `npm run reliability`.']),
    '',
  ].join('\n');
}
