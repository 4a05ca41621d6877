/**
 * `cattail bench`: the simulated API server with a generated cluster, Cattail replicas and agent
 * worker processes, all on loopback, pinned to different cores where the machine has them (the
 * replicas on CPU 0; the simulator, the agents and this coordinator on CPU 1), through a sequence
 * of scenarios that share one cluster:
 *
 *   cold-start    all agents connect at once to a warmed replica: time to all in sync, snapshot
 *                 builds, bytes, server CPU and peak memory, refusals
 *   churn         label flips at a steady rate: write → receipt latency at the agents (first and
 *                 last agent per change), deliveries/s, server CPU per delivery
 *   burst         a burst of changes at once: time until the last agent has all of them
 *   blip          every agent drops and reconnects: resume bytes against the cold start's bytes
 *   replica-loss  one of two replicas is killed (SIGKILL): time until every agent is in sync
 *                 again, bytes per moved agent against a full snapshot
 *   api-load      the API server's cost of the whole run (requests, watches, bytes) against what
 *                 the same agents would cost it watching directly (measured with a smaller
 *                 direct fleet and scaled, said so in the record)
 *
 * Every phase has a deadline; every process is stopped at the end; the run stops by itself.
 */
import { cpus, totalmem } from 'node:os';
import { loopbackBlock, AgentWorker, ReplicaProc, SimProc, type WorkerStatus } from './procs.js';

/** The scenarios `cattail bench` runs, in order (the `--scenario` option's values). */
export const SCENARIOS = ['cold-start', 'churn', 'burst', 'blip', 'replica-loss', 'api-load'] as const;
export type Scenario = (typeof SCENARIOS)[number];

export interface BenchOptions {
  readonly agents: number;
  readonly nodes: number;
  readonly podsPerNode: number;
  /** Label flips per second in the churn scenario. */
  readonly churnPerSec: number;
  /** Length of the churn scenario's measured window, in ms. */
  readonly churnMs: number;
  /** Changes written at once in the burst scenario. */
  readonly burstChanges: number;
  /** Agents per worker process. */
  readonly agentsPerWorker: number;
  readonly scenarios: readonly Scenario[];
  readonly seed: number;
  /** Hard bound on the whole run, in ms. */
  readonly deadlineMs: number;
  readonly progress: (line: string) => void;
}

export interface BenchRecord {
  readonly scenario: Scenario;
  readonly summary: string;
  readonly [k: string]: unknown;
}

export interface BenchReport {
  readonly at: string;
  readonly machine: { cpus: number; cpuModel: string; memoryGb: number; node: string; pinned: boolean };
  readonly parameters: Omit<BenchOptions, 'progress'>;
  readonly records: BenchRecord[];
}

const FEEDS = ['felix'];
const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);

function pct(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

async function until(what: string, deadlineMs: number, pred: () => boolean | Promise<boolean>, stepMs = 100): Promise<number> {
  const start = Date.now();
  while (!(await pred())) {
    if (Date.now() - start > deadlineMs) throw new Error(`bench: ${what} did not happen within ${deadlineMs} ms`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return Date.now() - start;
}

class Fleet {
  constructor(readonly workers: AgentWorker[]) {}
  total<K extends keyof WorkerStatus>(k: K): number {
    return this.workers.reduce((s, w) => s + Number(w.last?.[k] ?? 0), 0);
  }
}

export async function runBench(o: BenchOptions): Promise<BenchReport> {
  const pinned = cpus().length > 1;
  const serverCpu = pinned ? 0 : undefined;
  const loadCpu = pinned ? 1 : undefined;
  const host = loopbackBlock(o.seed + 7_000);
  const records: BenchRecord[] = [];
  const started = Date.now();
  const left = (): number => Math.max(5_000, o.deadlineMs - (Date.now() - started));
  const want = (s: Scenario): boolean => o.scenarios.includes(s);
  o.progress(`starting the simulator: ${o.nodes} nodes × ${o.podsPerNode} pods`);
  const sim = await SimProc.start({ host: host(1), nodes: o.nodes, podsPerNode: o.podsPerNode, seed: o.seed, ...(loadCpu !== undefined ? { pin: loadCpu } : {}) });
  const replicas = [0, 1].slice(0, want('replica-loss') ? 2 : 1).map((i) => new ReplicaProc(`bench-${i}`, host(10 + i), sim.kubeconfig, FEEDS, [], serverCpu));
  const workers: AgentWorker[] = [];
  try {
    await Promise.all(replicas.map((r) => r.start()));
    await Promise.all(replicas.map((r) => r.ready(left())));
    o.progress(`replicas warm: ${replicas.map((r) => r.url).join(', ')}`);
    const m0 = await replicas[0]!.metrics();

    // ---- cold start ----
    const nWorkers = Math.max(1, Math.ceil(o.agents / o.agentsPerWorker));
    const t0 = Date.now();
    for (let i = 0; i < nWorkers; i++) {
      const n = Math.min(o.agentsPerWorker, o.agents - i * o.agentsPerWorker);
      workers.push(await AgentWorker.start({ servers: replicas.map((r) => r.url), feeds: FEEDS, agents: n, nodePrefix: `w${i}-node-`, durationMs: left(), trackResource: 'pods', ...(loadCpu !== undefined ? { pin: loadCpu } : {}) }));
    }
    const fleet = new Fleet(workers);
    await until('all agents in sync (cold start)', left(), () => {
      o.progress(`cold start: ${fleet.total('inSync')}/${o.agents} in sync`);
      return fleet.total('inSync') >= o.agents;
    }, 250);
    const coldMs = Date.now() - t0;
    const m1 = await replicas[0]!.metrics();
    const coldBytes = fleet.total('bytes');
    const diff = (a: Map<string, number>, b: Map<string, number>, k: string): number => (b.get(k) ?? 0) - (a.get(k) ?? 0);
    for (const r of replicas) r.sampleRss();
    if (want('cold-start')) {
      records.push({
        scenario: 'cold-start', agents: o.agents, timeToAllInSyncMs: coldMs, snapshotBuilds: diff(m0, m1, 'cattail_snapshots_generated_total'),
        bytesReceived: coldBytes, bytesPerAgent: Math.round(coldBytes / o.agents), serverCpuS: +diff(m0, m1, 'cattail_process_cpu_seconds_total').toFixed(2),
        peakRssMb: Math.max(...replicas.map((r) => r.peakRssMb)), refusals: diff(m0, m1, 'cattail_connections_refused_total'),
        summary: `${o.agents} agents in sync in ${(coldMs / 1000).toFixed(1)} s, ${diff(m0, m1, 'cattail_snapshots_generated_total')} snapshot builds, ${Math.round(coldBytes / o.agents / 1024)} KiB per agent`,
      });
      o.progress(records.at(-1)!.summary);
    }

    const pods = (await sim.list('pods')).map((p) => ({ ns: p.metadata?.namespace ?? '', name: p.metadata?.name ?? '' })).filter((p) => p.name !== '');
    let flip = 0;
    const writeOne = async (): Promise<{ rv: string; atUs: number }> => {
      const p = pods[flip % pods.length]!;
      flip++;
      const atUs = nowUs();
      const obj = await sim.admin<{ metadata: { resourceVersion: string } }>('PATCH', `/objects/pods?namespace=${encodeURIComponent(p.ns)}&name=${encodeURIComponent(p.name)}`, { metadata: { labels: { 'bench.cattail/flip': String(flip) } } });
      return { rv: obj.metadata.resourceVersion, atUs };
    };
    /** Every agent of every worker holds pods at `rv` or newer. */
    const allHave = (rv: number): boolean => workers.every((w) => (w.last?.minTrackedRv ?? 0) >= rv);

    // ---- churn ----
    if (want('churn')) {
      const mA = await replicas[0]!.metrics();
      const writes: { rv: string; atUs: number }[] = [];
      const end = Date.now() + o.churnMs;
      const gapMs = 1000 / o.churnPerSec;
      let next = Date.now();
      while (Date.now() < end) {
        writes.push(await writeOne());
        next += gapMs;
        await new Promise((r) => setTimeout(r, Math.max(0, next - Date.now())));
      }
      const lastRv = writes.at(-1)!.rv;
      // The latency probe's arrivals reach us in each worker's final line: stop them once the last change arrived.
      await until('the last churn change reached every agent', left(), () => allHave(Number(lastRv)), 100).catch((err: unknown) => o.progress(String(err)));
      const mB = await replicas[0]!.metrics();
      const finals = await stopAll(workers);
      workers.length = 0;
      const lastLat: number[] = [];
      const firstLat: number[] = [];
      let complete = 0;
      for (const w of writes) {
        let count = 0;
        let first = Infinity;
        let last = 0;
        for (const f of finals) {
          // Each worker recorded, per resourceVersion, when each of its agents first held it.
          const a = f?.arrivals?.[w.rv];
          if (a === undefined) continue;
          count += a[0];
          first = Math.min(first, a[1]);
          last = Math.max(last, a[2]);
        }
        if (count >= o.agents) complete++;
        if (Number.isFinite(first)) {
          firstLat.push((first - w.atUs) / 1000);
          lastLat.push((last - w.atUs) / 1000);
        }
      }
      firstLat.sort((a, b) => a - b);
      lastLat.sort((a, b) => a - b);
      const deliveries = writes.length * o.agents;
      const cpu = diff(mA, mB, 'cattail_process_cpu_seconds_total');
      records.push({
        scenario: 'churn', changes: writes.length, ratePerSec: o.churnPerSec, windowMs: o.churnMs, changesSeenByAllAgents: complete, lastRv,
        firstAgentLatencyMs: { p50: +pct(firstLat, 50).toFixed(1), p99: +pct(firstLat, 99).toFixed(1), max: +(firstLat.at(-1) ?? 0).toFixed(1) },
        lastAgentLatencyMs: { p50: +pct(lastLat, 50).toFixed(1), p99: +pct(lastLat, 99).toFixed(1), max: +(lastLat.at(-1) ?? 0).toFixed(1) },
        deliveriesPerSec: Math.round(deliveries / (o.churnMs / 1000)), serverCpuS: +cpu.toFixed(2), serverCpuUsPerDelivery: +((cpu * 1e6) / Math.max(1, deliveries)).toFixed(2),
        summary: `${writes.length} changes at ${o.churnPerSec}/s to ${o.agents} agents: last agent p50 ${pct(lastLat, 50).toFixed(0)} ms, p99 ${pct(lastLat, 99).toFixed(0)} ms; ${((cpu * 1e6) / Math.max(1, deliveries)).toFixed(1)} µs server CPU per delivery`,
      });
      o.progress(records.at(-1)!.summary);
      // A fresh fleet for the following scenarios (they resume, or take snapshots, as agents would).
      for (let i = 0; i < nWorkers; i++) {
        const n = Math.min(o.agentsPerWorker, o.agents - i * o.agentsPerWorker);
        workers.push(await AgentWorker.start({ servers: replicas.map((r) => r.url), feeds: FEEDS, agents: n, nodePrefix: `w${i}-node-`, durationMs: left(), trackResource: 'pods', ...(loadCpu !== undefined ? { pin: loadCpu } : {}) }));
      }
      await until('all agents in sync again', left(), () => new Fleet(workers).total('inSync') >= o.agents, 250);
    }

    // ---- burst ----
    if (want('burst')) {
      // The simulator's own churn driver writes the burst (an HTTP request per change from here
      // would measure this coordinator); a marker change after it tells when everything arrived.
      const before = new Fleet(workers).total('frames');
      const t = Date.now();
      const started0 = await sim.admin<{ changes: number }>('POST', '/churn', { ratePerSec: o.burstChanges, seed: o.seed });
      await new Promise((r) => setTimeout(r, 1_000));
      const stopped = await sim.admin<{ changes: number }>('DELETE', '/churn');
      const writtenMs = Date.now() - t;
      const marker = Number((await writeOne()).rv);
      const doneMs = await until('the burst reached every agent', left(), () => allHave(marker), 50);
      const written = stopped.changes - started0.changes;
      records.push({
        scenario: 'burst', changesRequested: o.burstChanges, changesWritten: written, writtenMs, timeToAllAgentsMs: writtenMs + doneMs, framesReceived: new Fleet(workers).total('frames') - before,
        summary: `${written} changes in ${(writtenMs / 1000).toFixed(1)} s; every agent had all of them ${((writtenMs + doneMs) / 1000).toFixed(1)} s after the first`,
      });
      o.progress(records.at(-1)!.summary);
    }

    // ---- blip ----
    if (want('blip')) {
      const fleetNow = new Fleet(workers);
      const bytes0 = fleetNow.total('bytes');
      const snaps0 = fleetNow.total('snapshots');
      const resumes0 = fleetNow.total('resumes');
      for (const w of workers) w.blip();
      await new Promise((r) => setTimeout(r, 500));
      const ms = await until('every agent back in sync after the blip', left(), () => new Fleet(workers).total('inSync') >= o.agents, 100);
      const f = new Fleet(workers);
      const resumeBytes = f.total('bytes') - bytes0;
      records.push({
        scenario: 'blip', agents: o.agents, timeToAllInSyncMs: ms + 500, resumes: f.total('resumes') - resumes0, snapshots: f.total('snapshots') - snaps0,
        bytesPerAgent: Math.round(resumeBytes / o.agents), snapshotBytesPerAgent: Math.round(coldBytes / o.agents), fractionOfSnapshot: +(resumeBytes / Math.max(1, coldBytes)).toFixed(4),
        summary: `blip: every agent back in ${((ms + 500) / 1000).toFixed(1)} s; ${Math.round(resumeBytes / o.agents)} B per agent = ${((100 * resumeBytes) / Math.max(1, coldBytes)).toFixed(2)} % of a snapshot`,
      });
      o.progress(records.at(-1)!.summary);
    }

    // ---- replica loss ----
    if (want('replica-loss') && replicas.length > 1) {
      const victim = replicas[1]!;
      const f0 = new Fleet(workers);
      const bytes0 = f0.total('bytes');
      const snaps0 = f0.total('snapshots');
      const survivor0 = await replicas[0]!.metrics();
      await victim.kill('SIGKILL');
      const t = Date.now();
      await new Promise((r) => setTimeout(r, 300));
      const ms = await until('every agent in sync on the surviving replica', left(), () => new Fleet(workers).total('inSync') >= o.agents, 100);
      const f = new Fleet(workers);
      const moved = f.total('snapshots') - snaps0;
      const survivor1 = await replicas[0]!.metrics();
      records.push({
        scenario: 'replica-loss', agents: o.agents, movedAgents: moved, timeToAllInSyncMs: Date.now() - t,
        bytesPerMovedAgent: Math.round((f.total('bytes') - bytes0) / Math.max(1, moved)), snapshotBytesPerAgent: Math.round(coldBytes / o.agents),
        survivorAcceptedConnections: diff(survivor0, survivor1, 'cattail_connections_accepted_total'),
        summary: `replica loss: ${moved} agents moved, all in sync in ${((Date.now() - t) / 1000).toFixed(1)} s; ${Math.round((f.total('bytes') - bytes0) / Math.max(1, moved) / 1024)} KiB per moved agent (a snapshot: resume across replicas is not portable yet)`,
      });
      void ms;
      o.progress(records.at(-1)!.summary);
    }

    // ---- API-server load ----
    if (want('api-load')) {
      const counters = await sim.admin<{ clients?: Record<string, { watchesOpen: number; watchRequests: number; lists: number }>; bytesSent?: Record<string, number> | number }>('GET', '/counters');
      const clients = Object.entries(counters.clients ?? {}).filter(([c]) => c.includes('replica'));
      const requests = clients.reduce((s, [, c]) => s + c.watchRequests + c.lists, 0);
      const watches = clients.reduce((s, [, c]) => s + c.watchesOpen, 0);
      const bytesSent = typeof counters.bytesSent === 'number' ? counters.bytesSent : Object.values(counters.bytesSent ?? {}).reduce((a, b) => a + b, 0);
      const perAgentDirectWatches = watches / Math.max(1, replicas.filter((r) => r.running).length);
      records.push({
        scenario: 'api-load', withCattail: { replicas: replicas.length, requests, watchesOpen: watches, bytesSentByApiServer: bytesSent },
        directEstimate: { agents: o.agents, watchesOpen: Math.round(perAgentDirectWatches * o.agents), note: 'each direct agent would hold the same watches a replica holds (one per resource) and LIST every resource at start; estimated from the replicas\' own counts, not measured with agents at this size' },
        summary: `API server with Cattail: ${watches} watches, ${requests} LIST+WATCH requests for ${o.agents} agents; directly: ~${Math.round(perAgentDirectWatches * o.agents)} watches`,
      });
      o.progress(records.at(-1)!.summary);
    }
  } finally {
    await stopAll(workers);
    await Promise.all(replicas.map((r) => r.kill('SIGKILL')));
    await sim.stop();
  }
  return {
    at: new Date().toISOString(),
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', memoryGb: Math.round(totalmem() / 2 ** 30), node: process.version, pinned },
    parameters: { agents: o.agents, nodes: o.nodes, podsPerNode: o.podsPerNode, churnPerSec: o.churnPerSec, churnMs: o.churnMs, burstChanges: o.burstChanges, agentsPerWorker: o.agentsPerWorker, scenarios: o.scenarios, seed: o.seed, deadlineMs: o.deadlineMs },
    records,
  };
}

async function stopAll(workers: readonly AgentWorker[]): Promise<(WorkerStatus | undefined)[]> {
  return Promise.all(workers.map((w) => w.stop()));
}

export function renderMarkdown(r: BenchReport): string {
  const lines = [
    '# cattail bench',
    '',
    `${r.at}, Node ${r.machine.node}, ${r.machine.cpus} × ${r.machine.cpuModel}, ${r.machine.memoryGb} GiB; ${r.machine.pinned ? 'replicas pinned to CPU 0, simulator and agents to CPU 1' : 'not pinned (one core)'}.`,
    `Parameters: ${JSON.stringify(r.parameters)}`,
    '',
    '| scenario | result |',
    '|---|---|',
    ...r.records.map((x) => `| ${x.scenario} | ${x.summary} |`),
    '',
    'Full records: the JSON file beside this one.',
    '',
  ];
  return lines.join('\n');
}
