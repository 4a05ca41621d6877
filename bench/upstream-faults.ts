/**
 * API requests made by the upstream over a long run with faults (issue 7 "Figures"), written to
 * bench/results/upstream-faults.json and .md.
 *
 * The real upstream (production defaults: 800 ms → 30 s backoff, 1 s attempt gate, 90 s watchdog)
 * serves the felix feed from the real simulator while a seeded fault timeline
 * (`randomTimeline(seed)`: resets, black holes, 410s in both forms, 401/403, 429 storms after mass
 * terminations, compactions, churn…) runs against it. One FakeClock drives both, so an hour of
 * virtual time passes in seconds of wall time over real loopback sockets; the run stops early if
 * the wall-time budget is spent (reported). Afterwards the faults stop, the upstream settles for
 * five virtual minutes, and the feed is compared with the simulator's state projected.
 *
 * Run: npm run build && node dist/bench/upstream-faults.js [--minutes 240] [--seed 7] [--wall-ms 50000]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { FakeClock } from '../src/clock.js';
import { collectionPath, objectKey, resource } from '../src/registry.js';
import { builtinFeed, createUpstream } from '../src/server/upstream/index.js';
import { parseJson } from '../src/server/upstream/json.js';
import { encodeValue, entryProjector } from '../src/server/upstream/projections/index.js';
import type { KubeObject } from '../src/server/upstream/types.js';
import { FAULT_KINDS, type FaultKind, randomTimeline, startSim } from '../src/sim/index.js';
import { seededRandom } from '../src/random.js';

const here = dirname(fileURLToPath(import.meta.url));
const outDir = join(here, '..', '..', 'bench', 'results');
const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const minutes = arg('--minutes', 240);
const seed = arg('--seed', 7);
const wallBudgetMs = arg('--wall-ms', 50_000);
const FEED = 'felix';
// Faults aimed at the resources with traffic; tls_handshake_failure needs HTTPS (not used here).
const TARGETS = ['pods', 'nodes', 'namespaces', 'ippools.crd.projectcalico.org', 'ipamblocks.crd.projectcalico.org'];
const KINDS = (Object.keys(FAULT_KINDS) as FaultKind[]).filter((k) => k !== 'tls_handshake_failure');

const clock = new FakeClock();
const sim = await startSim({ nodes: 10, podsPerNode: 10, seed, clock });
const kubeConfig = new KubeConfig();
kubeConfig.loadFromFile(sim.kubeconfigPath);
const state = new Map<string, Buffer>();
let updates = 0;
let inSyncAtMs: number | undefined;
const up = createUpstream({ kubeConfig, replicaId: 'bench', clock, feeds: [FEED], random: seededRandom(seed) });
up.start({
  onBatch(_feed, b) {
    updates += b.updates.length;
    for (const u of b.updates) {
      if (u.value === null) state.delete(u.key);
      else state.set(u.key, u.value);
    }
    if (b.status === 'in-sync') inSyncAtMs ??= clock.monotonic();
  },
});

const timelineMs = minutes * 60_000;
// About one action every 10 s of virtual time, as a bad day on a busy cluster.
const timeline = randomTimeline(seed, { durationMs: timelineMs, count: Math.round(timelineMs / 10_000), resources: TARGETS, kinds: KINDS });
const wallStart = performance.now();
const simRequests = (): Record<string, number> => {
  const r = sim.admin.counters().requests;
  const out: Record<string, number> = {};
  if (typeof r === 'number') return out;
  for (const [k, v] of Object.entries(r)) {
    const [verb, res] = k.split(',');
    if (verb !== 'LIST' && verb !== 'WATCH') continue;
    out[res as string] = (out[res as string] ?? 0) + v;
  }
  return out;
};

/** Moves virtual time `ms` forward in 100 ms steps with real I/O in between; false when the wall budget ran out. */
async function run(ms: number): Promise<boolean> {
  const end = clock.monotonic() + ms;
  while (clock.monotonic() < end) {
    if (performance.now() - wallStart > wallBudgetMs) return false;
    for (let i = 0; i < 3; i++) await new Promise<void>((r) => setImmediate(r));
    await clock.advanceAsync(100);
  }
  return true;
}

// Initial sync before the faults start (its requests are counted apart).
for (let i = 0; i < 10_000 && inSyncAtMs === undefined; i++) await run(100);
const afterSync = simRequests();
const startMs = clock.monotonic();
sim.faults.runTimeline(timeline);
// Per-virtual-minute samples: the worst minute per resource shows the absence of bursts.
const worstMinute: Record<string, number> = {};
let prev = afterSync;
let completedMinutes = 0;
let complete = true;
for (let m = 0; m < minutes; m++) {
  if (!(await run(60_000))) {
    complete = false;
    break;
  }
  completedMinutes++;
  const now = simRequests();
  for (const [res, n] of Object.entries(now)) worstMinute[res] = Math.max(worstMinute[res] ?? 0, n - (prev[res] ?? 0));
  prev = now;
}
const faultMs = clock.monotonic() - startMs;
const duringFaults = simRequests();
sim.faults.stopTimeline();
sim.faults.clear();
await run(300_000);
const wallMs = Math.round(performance.now() - wallStart);

// The feed against the simulator's state projected (lists over HTTP, parsed like the upstream).
async function simList(id: string): Promise<KubeObject[]> {
  const text = await new Promise<string>((resolve, reject) => {
    http
      .get(sim.url + collectionPath(resource(id)), { headers: { 'user-agent': 'bench-oracle' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        res.on('error', reject);
      })
      .on('error', reject);
  });
  return (parseJson(text) as { items?: KubeObject[] }).items ?? [];
}
const expected = new Map<string, Buffer>();
for (const s of builtinFeed(FEED).specs) {
  const def = resource(s.resource);
  const project = entryProjector(def, s.projection);
  for (const [k, v] of project.statics) expected.set(k, encodeValue(v));
  for (const o of await simList(s.resource)) {
    for (const [k, v] of project.entries(o, objectKey(def, o.metadata?.namespace, o.metadata?.name ?? ''))) expected.set(k, encodeValue(v));
  }
}
let differing = 0;
for (const [k, v] of expected) if (!state.get(k)?.equals(v)) differing++;
for (const k of state.keys()) if (!expected.has(k)) differing++;

const metricSum = async (name: 'relists' | 'watchRestarts', by: string): Promise<Record<string, number>> => {
  const out: Record<string, number> = {};
  for (const v of (await up.metrics[name].get()).values) {
    const k = String((v.labels as Record<string, unknown>)[by]);
    out[k] = (out[k] ?? 0) + v.value;
  }
  return out;
};
const faultCounts: Record<string, number> = {};
for (const e of sim.faults.log()) faultCounts[e.kind] = (faultCounts[e.kind] ?? 0) + 1;
const faultMinutes = faultMs / 60_000;
const perResource = Object.keys({ ...duringFaults })
  .sort()
  .map((id) => {
    const n = (duringFaults[id] ?? 0) - (afterSync[id] ?? 0);
    return { resource: id, requests: n, perMinute: Number((n / faultMinutes).toFixed(2)), worstMinute: worstMinute[id] ?? 0 };
  });
const result = {
  generatedAt: new Date().toISOString(),
  node: process.version,
  seed,
  cluster: { nodes: 10, podsPerNode: 10, objectsInFeed: expected.size },
  feed: FEED,
  reflectors: up.health().length,
  virtualMinutesPlanned: minutes,
  virtualMinutesRun: Number(faultMinutes.toFixed(1)),
  complete,
  completedMinutes,
  wallMs,
  timelineEntries: timeline.length,
  faults: faultCounts,
  initialSyncRequests: Object.values(afterSync).reduce((a, b) => a + b, 0),
  requestsDuringFaults: perResource.reduce((n, r) => n + r.requests, 0),
  requestsPerResource: perResource,
  relistsByReason: await metricSum('relists', 'reason'),
  relistsByResource: await metricSum('relists', 'resource'),
  watchRestartsByReason: await metricSum('watchRestarts', 'reason'),
  feedUpdates: updates,
  convergedAfterSettling: differing === 0,
  differingKeys: differing,
  ready: up.ready(),
};
await up.stop();
await sim.close();

mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, 'upstream-faults.json'), JSON.stringify(result, null, 2) + '\n');
const table = (o: Record<string, number>): string[] =>
  Object.entries(o)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `| ${k} | ${v} |`);
const md = [
  '# Upstream: API requests over a long run with faults',
  '',
  `Generated ${result.generatedAt} on Node ${result.node} by \`bench/upstream-faults.ts\`: the ${FEED} feed (${result.reflectors} reflectors, production defaults) against the simulator (10 nodes × 10 pods, ${expected.size} values), with \`randomTimeline(${seed})\` — ${timeline.length} actions over ${minutes} virtual minutes aimed at ${TARGETS.join(', ')} — on a FakeClock shared by both (real loopback sockets). ${result.virtualMinutesRun} virtual minutes of faults ran${complete ? '' : ' (wall budget reached: partial)'} in ${(wallMs / 1000).toFixed(1)} s of wall time, then five quiet minutes to settle.`,
  '',
  `After settling: feed ${result.convergedAfterSettling ? 'equals' : `DIFFERS from (${differing} keys)`} the simulator's state projected; ready: ${result.ready}. Initial sync: ${result.initialSyncRequests} requests. During the faults: ${result.requestsDuringFaults} LIST/WATCH requests in all (${(result.requestsDuringFaults / faultMinutes).toFixed(1)} per minute for ${result.reflectors} reflectors); ${updates} feed updates in total.`,
  '',
  '## Requests per resource (LIST + WATCH, during the faults)',
  '',
  '| resource | requests | per minute | worst minute |',
  '|---|---:|---:|---:|',
  ...perResource.map((r) => `| ${r.resource} | ${r.requests} | ${r.perMinute} | ${r.worstMinute} |`),
  '',
  '## Relists by reason',
  '',
  '| reason | relists |',
  '|---|---:|',
  ...table(result.relistsByReason),
  '',
  '## Watch restarts by reason',
  '',
  '| reason | restarts |',
  '|---|---:|',
  ...table(result.watchRestartsByReason),
  '',
  '## Faults the simulator applied',
  '',
  '| kind | count |',
  '|---|---:|',
  ...table(faultCounts),
  '',
  'Untargeted resources keep one watch each and re-watch when the server times the watch out, so their rate is the floor; idle watches also re-open on the 90 s watchdog when no bookmark arrives.',
  '',
].join('\n');
writeFileSync(join(outDir, 'upstream-faults.md'), md);
console.log(md);

