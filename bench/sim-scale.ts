/**
 * Scale figures of the simulated API server: a 5,000-node, 150,000-pod cluster.
 *
 *   npm run build && node --expose-gc dist/bench/sim-scale.js [--nodes 5000] [--pods-per-node 30] [--limit 500] [--out bench/results/sim-scale.json]
 *
 * Reports generation time, memory held after generation (heap, external/array buffers, RSS), and
 * the time and bytes of a full paged LIST of pods over loopback, plus one RV=0 (unpaged) LIST.
 * Bounded: one generation and two list passes, no loops on time.
 */
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { startSim } from '../src/sim/index.js';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '5000' },
    'pods-per-node': { type: 'string', default: '30' },
    limit: { type: 'string', default: '500' },
    out: { type: 'string', default: 'bench/results/sim-scale.json' },
  },
});
const nodes = Number(values.nodes);
const podsPerNode = Number(values['pods-per-node']);
const limit = Number(values.limit);
const gc = (globalThis as { gc?: () => void }).gc;
const mb = (n: number): number => Math.round((n / 1024 / 1024) * 10) / 10;

function memory(): Record<string, number> {
  gc?.();
  const m = process.memoryUsage();
  return { rssMB: mb(m.rss), heapUsedMB: mb(m.heapUsed), externalMB: mb(m.external), arrayBuffersMB: mb(m.arrayBuffers) };
}

async function drain(url: string): Promise<{ bytes: number; body: string | undefined }> {
  const r = await fetch(url);
  if (r.status !== 200) throw new Error(`${url}: HTTP ${r.status}`);
  const reader = (r.body as ReadableStream<Uint8Array>).getReader();
  let bytes = 0;
  const keep: Uint8Array[] = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    bytes += value.length;
    // Only the tail is needed (CR lists end with metadata); built-in lists start with it.
    if (bytes < 4096) keep.push(value);
  }
  return { bytes, body: Buffer.concat(keep).toString('utf8', 0, Math.min(bytes, 4096)) };
}

/** CPU time of this process (user + system): comparable across runs on a shared, loaded machine. */
const cpuMs = (since?: NodeJS.CpuUsage): number => {
  const u = process.cpuUsage(since);
  return Math.round((u.user + u.system) / 1000);
};
const before = memory();
const load = loadavg().map((l) => Math.round(l * 10) / 10);
const c0 = process.cpuUsage();
const t0 = performance.now();
const sim = await startSim({ nodes, podsPerNode, seed: 1 });
const generationMs = performance.now() - t0;
const generationCpuMs = cpuMs(c0);
const held = memory();
const counts = sim.admin.counters();

// Full paged list of pods: every page shares the first page's RV.
const c1 = process.cpuUsage();
const t1 = performance.now();
let cont = '';
let pages = 0;
let bytes = 0;
let items = 0;
let firstRv: string | undefined;
/** Items in a PodList body: each item starts with `{"metadata":{"name":` at depth 2. */
function countItems(body: Buffer): number {
  const marker = Buffer.from('{"metadata":{"name":');
  let n = 0;
  for (let at = body.indexOf(marker); at >= 0; at = body.indexOf(marker, at + 1)) n++;
  return n;
}
for (let i = 0; i < 10_000; i++) {
  const r = await fetch(`${sim.url}/api/v1/pods?limit=${limit}${cont ? `&continue=${cont}` : ''}`);
  const body = Buffer.from(await r.arrayBuffer());
  bytes += body.length;
  // Parse only what paging needs (built-in lists start with metadata): the figure is the server's cost.
  const head = body.toString('utf8', 0, 1024);
  const rv = /"resourceVersion":"(\d+)"/.exec(head)?.[1];
  firstRv ??= rv;
  if (rv !== firstRv) throw new Error(`page ${pages} has RV ${rv}, first page ${firstRv}`);
  items += countItems(body);
  pages++;
  cont = /"continue":"([^"]+)"/.exec(head)?.[1] ?? '';
  if (!cont) break;
}
const pagedMs = performance.now() - t1;
const pagedCpuMs = cpuMs(c1);
const peakAfterPaged = memory();

const c2 = process.cpuUsage();
const t2 = performance.now();
const unpaged = await drain(`${sim.url}/api/v1/pods?resourceVersion=0`);
const unpagedMs = performance.now() - t2;
const unpagedCpuMs = cpuMs(c2);
const afterUnpaged = memory();

const result = {
  date: new Date().toISOString(),
  node: process.version,
  gcExposed: gc !== undefined,
  machine: { cpus: cpus().length, loadAvgAtStart: load, note: 'wall times depend on machine load; cpuMs is this process only (server and client share it)' },
  cluster: { nodes, podsPerNode, pods: sim.admin.count('pods'), currentRv: Number(counts.currentRv) },
  generation: { ms: Math.round(generationMs), cpuMs: generationCpuMs, memoryBefore: before, memoryHeld: held },
  pagedList: { limit, pages, items, bytes, MB: mb(bytes), ms: Math.round(pagedMs), cpuMs: pagedCpuMs, MBps: Math.round(mb(bytes) / (pagedMs / 1000)), memoryAfter: peakAfterPaged },
  unpagedListRv0: { bytes: unpaged.bytes, MB: mb(unpaged.bytes), ms: Math.round(unpagedMs), cpuMs: unpagedCpuMs, memoryAfter: afterUnpaged },
  avgPodBytes: Math.round(unpaged.bytes / Math.max(1, sim.admin.count('pods'))),
};
await sim.close();
writeFileSync(values.out, JSON.stringify(result, null, 2) + '\n');
process.stdout.write(JSON.stringify(result, null, 2) + '\n');
