/**
 * What the scenarios of `cattail bench` share: the options, the processes (simulator, replicas,
 * the current agent fleet), the run's deadline, the progress display, and the helpers every
 * scenario uses (start or stop a fleet, wait for a condition, write one change).
 */
import { AgentWorker, type Pin, type ReplicaProc, type SimProc, type WorkerImpairments, type WorkerStatus } from './procs.js';
import type { Progress } from './progress.js';

/** The scenarios `cattail bench` runs, in order (the `--scenario` option's values). */
export const SCENARIOS = ['cold-start', 'churn', 'burst', 'blip', 'replica-loss', 'replica-restart', 'slow-agents', 'api-load'] as const;
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
  /** Agent transport of the replicas (`cattail serve --transport`). */
  readonly transport: 'ws' | 'uws';
  /** slow-agents: percentage of the agents reading slowly, and their read rate in bytes/s. */
  readonly slowAgentsPercent: number;
  readonly slowReadBytesPerSec: number;
  /** slow-agents: percentage of the agents that stall, and for how long, in ms. */
  readonly stalledAgentsPercent: number;
  readonly stallMs: number;
  /** api-load: agents on each side (direct list/watch, and behind Cattail). */
  readonly apiLoadAgents: number;
  readonly scenarios: readonly Scenario[];
  readonly seed: number;
  /** Hard bound on the whole run, in ms. */
  readonly deadlineMs: number;
}

export interface BenchRecord {
  readonly scenario: Scenario;
  readonly summary: string;
  readonly [k: string]: unknown;
}

export const FEEDS = ['felix'];
/** The error of a wait that a stop signal ended (the run's report lists it). */
export const STOPPED = 'bench: stopped by signal';
export const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);

export function diff(a: Map<string, number>, b: Map<string, number>, k: string): number {
  return (b.get(k) ?? 0) - (a.get(k) ?? 0);
}

export class BenchContext {
  /** The current fleet of agent worker processes. */
  readonly workers: AgentWorker[] = [];
  /** Bytes per agent of the cold start (a full snapshot), for the reconnect scenarios' fractions. */
  snapshotBytesPerAgent = 0;
  private readonly started = Date.now();
  private pods: { ns: string; name: string }[] = [];
  private flip = 0;

  constructor(
    readonly o: BenchOptions,
    readonly sim: SimProc,
    readonly replicas: ReplicaProc[],
    readonly progress: Progress,
    /** Cores for the replicas (and the floor server) and for the load (simulator, agents). */
    readonly pins: { server: Pin; load: Pin },
    /** Aborted when the run is to stop early (a stop signal to `cattail bench`). */
    readonly signal: AbortSignal = new AbortController().signal,
  ) {}

  /** Time left before the run's deadline, in ms (at least 5 s, so a last phase can finish). */
  left(): number {
    return Math.max(5_000, this.o.deadlineMs - (Date.now() - this.started));
  }

  /** Throws STOPPED when the run was asked to stop: every wait and write loop calls it. */
  checkStopped(): void {
    if (this.signal.aborted) throw new Error(STOPPED);
  }

  want(s: Scenario): boolean {
    return this.o.scenarios.includes(s);
  }

  total<K extends keyof WorkerStatus>(k: K): number {
    return this.workers.reduce((s, w) => s + Number(w.last?.[k] ?? 0), 0);
  }

  /** Shows the fleet's live status (connected, in sync, deliveries/s). */
  showStatus(): void {
    if (this.workers.length === 0) return;
    const connected = this.workers.reduce((s, w) => s + (w.last?.modes?.['streaming'] ?? 0) + (w.last?.modes?.['snapshot'] ?? 0), 0);
    this.progress.status({ agents: this.total('agents'), connected, inSync: this.total('inSync'), deliveriesPerSec: this.total('framesPerSec') });
  }

  /** Polls `pred` every `stepMs` (refreshing the display) until it holds; throws after `deadlineMs`. */
  async until(what: string, deadlineMs: number, pred: () => boolean | Promise<boolean>, stepMs = 100): Promise<number> {
    const start = Date.now();
    while (!(await pred())) {
      this.checkStopped();
      this.showStatus();
      if (Date.now() - start > deadlineMs) throw new Error(`bench: ${what} did not happen within ${deadlineMs} ms`);
      await new Promise((r) => setTimeout(r, stepMs));
    }
    return Date.now() - start;
  }

  /** Starts `o.agents` agents in worker processes against `servers` (default: the running replicas). */
  async startFleet(opts: { servers?: readonly string[]; impairments?: WorkerImpairments; agents?: number } = {}): Promise<void> {
    const agents = opts.agents ?? this.o.agents;
    const servers = opts.servers ?? this.replicas.filter((r) => r.running).map((r) => r.url);
    const nWorkers = Math.max(1, Math.ceil(agents / this.o.agentsPerWorker));
    for (let i = 0; i < nWorkers; i++) {
      const n = Math.min(this.o.agentsPerWorker, agents - i * this.o.agentsPerWorker);
      this.workers.push(await AgentWorker.start({
        servers, feeds: FEEDS, agents: n, nodePrefix: `w${i}-node-`, durationMs: this.left(), trackResource: 'pods',
        ...(this.pins.load !== undefined ? { pin: this.pins.load } : {}), ...(opts.impairments !== undefined ? { impairments: opts.impairments } : {}),
      }));
    }
  }

  /** Stops every worker; their final reports (with the latency probe's arrivals). */
  async stopFleet(): Promise<(WorkerStatus | undefined)[]> {
    const finals = await Promise.all(this.workers.map((w) => w.stop()));
    this.workers.length = 0;
    return finals;
  }

  /** Every normal agent of every worker holds pods at `rv` or newer. */
  allHave(rv: number): boolean {
    return this.workers.every((w) => (w.last?.minTrackedRv ?? 0) >= rv);
  }

  /**
   * One pod label flip at the simulator: its resourceVersion and when it was sent (µs, monotonic).
   * The burst scenario's churn deletes and creates pods, so a pod of the sample may be gone: the
   * sample is then re-read and the flip retried (a bounded number of times).
   */
  async writeOne(): Promise<{ rv: string; atUs: number }> {
    for (let attempt = 0; ; attempt++) {
      if (this.pods.length === 0) {
        // One page is plenty to cycle through; a whole LIST of a big cluster does not fit a string.
        // Host-network pods give no workload endpoint (Calico skips them): flipping their labels
        // changes no agent's state and measured STATUS-only deliveries (124 B, seconds of latency).
        this.pods = (await this.sim.list('pods', 5_000))
          .filter((p) => (p as { spec?: { hostNetwork?: boolean } }).spec?.hostNetwork !== true)
          .map((p) => ({ ns: p.metadata?.namespace ?? '', name: p.metadata?.name ?? '' })).filter((p) => p.name !== '');
        if (this.pods.length === 0) throw new Error('bench: the cluster has no pods to change (--pods-per-node 0)');
      }
      const p = this.pods[this.flip % this.pods.length]!;
      this.flip++;
      const atUs = nowUs();
      try {
        const obj = await this.sim.admin<{ metadata: { resourceVersion: string } }>('PATCH', `/objects/pods?namespace=${encodeURIComponent(p.ns)}&name=${encodeURIComponent(p.name)}`, { metadata: { labels: { 'bench.cattail/flip': String(this.flip) } } });
        return { rv: obj.metadata.resourceVersion, atUs };
      } catch (err) {
        if (attempt >= 3 || !/: 404 /.test(String(err))) throw err;
        this.pods = [];
      }
    }
  }
}
