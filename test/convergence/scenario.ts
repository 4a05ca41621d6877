/**
 * One convergence run: the simulator, replicas and agents (system.ts), seeded churn, and a seeded
 * timeline of faults against all three; then the oracle.
 *
 * The oracle, after the churn stops and the system settles:
 *  - every agent's state equals the simulator's, projected the way the feed projects it (digest
 *    first; on a mismatch the first differing key, both values, and the agent's history of it);
 *  - no agent ever applied an upstream watermark older than one it had applied (replica revisions
 *    are per replica, so watermarks are what must never go back across failovers);
 *  - every deletion reached every agent (implied by state equality; counted separately);
 *  - no replica crashed unless the timeline killed it;
 *  - API requests per resource and replica stayed under a bound (no hot loop).
 * A failing run prints the command that replays it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as tcpConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unpack } from 'msgpackr';
import { connect, type Client } from '../../src/client/index.js';
import { realClock } from '../../src/clock.js';
import { seededRandom } from '../../src/random.js';
import { VERSION } from '../../src/version.js';
import { builtinFeed } from '../../src/server/upstream/feeds.js';
import { compareResourceVersions } from '../../proto/index.js';
import { digestOf } from '../support/digest.js';
import { expectedState } from '../upstream/helpers.js';
import { ReplicaProc, SimProc, loopbackBlock } from '../../src/bench/procs.js';

export interface ScenarioOptions {
  readonly seed: number;
  readonly replicas: number;
  readonly agents: number;
  /** How long churn and faults run before the settle phase. */
  readonly durationMs: number;
  /** Simulated cluster size. */
  readonly nodes: number;
  readonly podsPerNode: number;
  readonly churnPerSec: number;
  /** Mean gap between two faults. */
  readonly faultEveryMs: number;
  /** Longest the settle phase may take before the run fails. */
  readonly settleTimeoutMs: number;
  /**
   * Replica 0 reaches the API server through a round-robin port over the leader and an HA follower
   * lagging this many resourceVersions (varied by the timeline); the other replicas talk to the
   * leader. Unset: no follower.
   */
  readonly haLagRvs?: number;
}

export const DEFAULT_SCENARIO: Omit<ScenarioOptions, 'seed'> = {
  replicas: 2, agents: 4, durationMs: 8_000, nodes: 6, podsPerNode: 4, churnPerSec: 25, faultEveryMs: 900, settleTimeoutMs: 45_000, haLagRvs: 5,
};

export interface RunReport {
  readonly seed: number;
  readonly faults: Readonly<Record<string, number>>;
  readonly divergences: readonly string[];
  readonly watermarkRegressions: readonly string[];
  readonly crashes: readonly string[];
  readonly hotLoops: readonly string[];
  readonly deletionsSeen: number;
  readonly agentsChecked: number;
  readonly entries: number;
  readonly settleMs: number;
  /** Highest resident set of any replica process, MB. */
  readonly peakReplicaRssMb: number;
  /** Most open file descriptors of any replica process at a sample (once per fault step). */
  readonly peakReplicaFds: number;
  /** Budgets found exceeded: a replica's delta log above its byte cap, or its RSS above the scenario's bound. */
  readonly budgetBreaches?: readonly string[];
  /** API requests the lagging HA follower answered (replica 0 reaches it through the round-robin port). */
  readonly haFollowerRequests?: number;
  readonly replayCommand: string;
}

const FEED = 'felix';
/** The replicas' delta-log budget (`--delta-log-max-bytes`, its minimum), checked at every step. */
const DELTA_LOG_MAX_BYTES = 65_536;
/** The replicas' memory budget in this scenario: a resident set above it is a failure. */
const REPLICA_RSS_BUDGET_MB = 512;
/** LIST + WATCH requests one replica may make per resource per minute of run before it counts as a hot loop. */
const MAX_REQUESTS_PER_RESOURCE_PER_MIN = 120;

interface AgentUnderTest {
  id: number;
  client: Client;
  marks: Map<string, string>;
  regressions: string[];
  history: Map<string, string[]>;
  deletions: number;
  /** The agent's TCP sockets (dialled through the client's transport seam), to stall them. */
  sockets: Set<Socket>;
}

function watchAgent(a: AgentUnderTest): void {
  a.client.on('change', (batch) => {
    if (batch.feed !== FEED) return;
    for (const u of batch.upserts) pushHistory(a, u.key, `upsert ${u.raw.length}B`);
    for (const k of batch.deletes) {
      pushHistory(a, k, 'delete');
      a.deletions++;
    }
    const marks = a.client.feed(FEED).status.watermarks;
    for (const [r, rv] of Object.entries(marks)) {
      const prev = a.marks.get(r);
      if (prev !== undefined && compareResourceVersions(rv, prev) < 0) a.regressions.push(`agent ${a.id} ${r}: ${prev} → ${rv}`);
      a.marks.set(r, rv);
    }
  });
}

function pushHistory(a: AgentUnderTest, key: string, what: string): void {
  let h = a.history.get(key);
  if (h === undefined) a.history.set(key, (h = []));
  h.push(what);
  if (h.length > 20) h.shift();
}

function newAgent(id: number, endpoints: string[], seed: number): AgentUnderTest {
  const sockets = new Set<Socket>();
  // The client's own dial seam, so the timeline can stop reading from an agent's socket: a slow
  // or stalled reader (the server sees backpressure) or, held past the read timeout, a black hole.
  const dial = (endpoint: string): Socket => {
    const u = new URL(endpoint);
    const s = tcpConnect(Number(u.port), u.hostname);
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    return s;
  };
  const client = connect({ endpoints, feeds: [FEED], node: `conv-node-${id}`, random: seededRandom(seed * 1000 + id), clock: realClock, dial });
  const a: AgentUnderTest = { id, client, marks: new Map(), regressions: [], history: new Map(), deletions: 0, sockets };
  watchAgent(a);
  return a;
}

async function expected(sim: SimProc): Promise<Map<string, Buffer>> {
  const spec = builtinFeed(FEED);
  const objects = new Map<string, Awaited<ReturnType<SimProc['list']>>>();
  for (const r of spec.resources) objects.set(r, await sim.list(r));
  return expectedState(spec, (r) => objects.get(r) ?? []);
}

export async function runScenario(o: ScenarioOptions, log: (line: string) => void = () => undefined): Promise<RunReport> {
  const rand = seededRandom(o.seed);
  const host = loopbackBlock(o.seed);
  const faults: Record<string, number> = {};
  const count = (k: string): void => void (faults[k] = (faults[k] ?? 0) + 1);
  const armed = new Set<string>();
  const budgetBreaches: string[] = [];
  let followerRequests = 0;
  const sim = await SimProc.start({ host: host(1), nodes: o.nodes, podsPerNode: o.podsPerNode, seed: o.seed, ...(o.haLagRvs !== undefined ? { haLagRvs: o.haLagRvs } : {}) });
  // Replica 0 keeps a checkpoint (--state-dir): the timeline's kills and SIGTERMs of it are warm
  // restarts, whose restored state and resumed watches the oracle checks like everything else.
  const stateRoot = mkdtempSync(join(tmpdir(), 'cattail-conv-state-'));
  const replicas = Array.from({ length: o.replicas }, (_, i) => new ReplicaProc(`conv-${i}`, host(10 + i), (i === 0 ? sim.haKubeconfig : undefined) ?? sim.kubeconfig, [FEED],
    // A SIGTERM drains agents gradually; 3 s keeps a run short (production uses the 300 s default).
    // Pings every second make the agents' read timeout 3 s and the server's pong timeout 4 s, so a
    // black-holed connection is noticed on both sides within a run.
    // A watch silent for 3 s is re-made and a resource without a healthy watch for 4 s is stale, so
    // a replica cut off from the API server shows it within a run.
    // Replica 1 lists with plain paged LISTs (an API server without WatchList), in pages of 10, so
    // an expired continue token can meet its relists; the others stream lists with WatchList. The
    // delta log gets its smallest budget, which the oracle checks at every step.
    ['--shutdown-timeout-ms', '3000', '--ping-interval-ms', '1000', '--pong-timeout-ms', '4000', '--watch-inactivity-timeout-ms', '3000', '--upstream-stale-after-ms', '4000', '--list-page-size', '10',
      '--delta-log-max-bytes', String(DELTA_LOG_MAX_BYTES), ...(i === 1 ? ['--no-watch-list'] : [])], undefined, i === 0 ? join(stateRoot, `conv-${i}`) : undefined));
  const agents: AgentUnderTest[] = [];
  const retired: AgentUnderTest[] = [];
  const crashes: string[] = [];
  // Stalls end by themselves; before the settle phase every one still running is ended at once.
  const pendingResumes = new Set<() => void>();
  const frozen = new Set<ReplicaProc>();
  const later = (ms: number, resume: () => void): void => {
    const t = setTimeout(() => {
      pendingResumes.delete(run);
      resume();
    }, ms);
    const run = (): void => {
      clearTimeout(t);
      resume();
    };
    pendingResumes.add(run);
  };
  const replay = `npm run soak -- --seed ${o.seed} --duration-ms ${o.durationMs} --replicas ${o.replicas} --agents ${o.agents}`;
  try {
    await Promise.all(replicas.map((r) => r.start()));
    const endpoints = replicas.map((r) => r.url);
    for (let i = 0; i < o.agents; i++) agents.push(newAgent(i, endpoints, o.seed));
    await sim.admin('POST', '/churn', { ratePerSec: o.churnPerSec, seed: o.seed });

    const started = Date.now();
    let nextAgentId = o.agents;
    while (Date.now() - started < o.durationMs) {
      await new Promise((r) => setTimeout(r, Math.round(o.faultEveryMs * (0.5 + rand()))));
      for (const r of replicas) if (r.crashed) crashes.push(`${r.name} exited ${r.output().slice(-500)}`);
      for (const r of replicas) r.sampleRss();
      await checkBudgets(replicas.filter((r) => r.running && !frozen.has(r)), budgetBreaches);
      const pick = rand();
      const replica = replicas[Math.floor(rand() * replicas.length)] as ReplicaProc;
      // A frozen replica is left alone by the other replica faults (a SIGTERM would wait on it).
      const killable = replica.running && !frozen.has(replica) && replicas.filter((r) => r.running && !frozen.has(r)).length > 1;
      if (pick < 0.31) {
        // Upstream faults: the simulator's own catalogue, aimed at the replicas' watches and lists.
        const kinds = ['reset', 'error_410', 'http_410', 'reset_mid_line', 'error_500', 'close_after_headers', 'blackhole', 'expire_continue'] as const;
        const kind = kinds[Math.floor(rand() * kinds.length)] as string;
        await sim.admin('POST', '/faults', { kind, verb: kind === 'http_410' || kind === 'blackhole' ? 'WATCH' : undefined, times: 1 + Math.floor(rand() * 3) });
        // A black hole is counted as armed: the partition below fires the simulator's blackhole
        // rule too, so its fired count is not this fault's alone.
        if (kind === 'blackhole') count('upstream:blackhole');
        else armed.add(kind);
      } else if (pick < 0.35) {
        // The HA follower falls further behind or catches up: replica 0's requests that land on it
        // see an older state (an older list, a watch RV the follower has not reached).
        if (o.haLagRvs !== undefined) {
          await sim.admin('POST', '/faults/lag', { lagRvs: Math.floor(rand() * 40) });
          count('upstream:ha_follower_lag');
        }
      } else if (pick < 0.45) {
        await sim.admin('POST', '/faults/terminate', { resource: 'pods', retryAfterMs: 500 });
        count('upstream:terminate_watches_429');
      } else if (pick < 0.5) {
        await sim.admin('POST', '/faults/compact', {});
        count('upstream:compact');
      } else if (pick < 0.54) {
        // The API server restarts with an empty watch cache: every resume gets 410, every replica relists.
        // The restart drops every connection, the admin request's own included: no answer comes.
        await sim.admin('POST', '/faults/restart', { refuseMs: 300 }, false).catch(() => undefined);
        count('upstream:restart');
      } else if (pick < 0.62) {
        if (killable) {
          await replica.kill('SIGKILL');
          count('replica:sigkill');
          await replica.start();
        }
      } else if (pick < 0.7) {
        if (killable) {
          const code = await replica.kill('SIGTERM');
          if (code !== 0) crashes.push(`${replica.name} exited ${code} on SIGTERM: ${replica.output().slice(-500)}`);
          count('replica:sigterm');
          await replica.start();
        }
      } else if (pick < 0.74) {
        // A replica stops answering (a partitioned or frozen pod): its agents' read timeouts fire
        // and they fail over; its own watches fall behind and catch up after.
        const pid = replica.pid;
        if (killable && pid !== undefined) {
          process.kill(pid, 'SIGSTOP');
          frozen.add(replica);
          later(1_500 + Math.floor(rand() * 2_500), () => {
            frozen.delete(replica);
            try {
              process.kill(pid, 'SIGCONT');
            } catch {
              // it was killed meanwhile
            }
          });
          count('replica:stall');
        }
      } else if (pick < 0.8) {
        // A replica partitioned from the API server while its agents stay connected: its pod watch
        // is cut and every request it makes meets a black hole (matched by its User-Agent) for a
        // few seconds. It serves its last state, turns stale, and catches up when the rule goes.
        const rule = await sim.admin<{ id: string }>('POST', '/faults', { kind: 'blackhole', clientId: `cattail/${VERSION} (replica ${replica.name})`, times: 1_000 });
        await sim.admin('POST', '/faults/terminate', { resource: 'pods' });
        later(2_000 + Math.floor(rand() * 3_000), () => void sim.admin('DELETE', `/faults/${rule.id}`).catch(() => undefined));
        count('replica:partition');
      } else if (pick < 0.84) {
        // An agent stops reading: briefly (a slow reader: backpressure, skips, a compacted
        // catch-up) or past its read timeout (a black hole: 4013 on its side, 4005 on the server's).
        const a = agents[Math.floor(rand() * agents.length)] as AgentUnderTest;
        const blackhole = rand() < 0.4;
        for (const s of a.sockets) s.pause();
        later(blackhole ? 5_000 : 300 + Math.floor(rand() * 2_000), () => {
          for (const s of a.sockets) s.resume();
        });
        count(blackhole ? 'agent:blackhole' : 'agent:stall');
      } else if (pick < 0.9) {
        // An agent restarts: its process (here: its client) is gone and a new one starts empty.
        const i = Math.floor(rand() * agents.length);
        const old = agents[i] as AgentUnderTest;
        old.client.destroy();
        retired.push(old);
        agents[i] = newAgent(nextAgentId++, endpoints, o.seed);
        count('agent:restart');
      } else {
        // Direct writes, deletions included, besides the churn.
        const ns = `conv-${Math.floor(rand() * 3)}`;
        await sim.admin('POST', '/objects/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }).catch(() => undefined);
        await sim.admin('DELETE', `/objects/namespaces?name=${ns}`).catch(() => undefined);
        count('write:namespace-create-delete');
      }
    }
    for (const resume of [...pendingResumes]) resume();
    await sim.admin('DELETE', '/churn');
    await sim.admin('DELETE', '/faults').catch(() => undefined);
    // The follower catches up too: a lag counted in resourceVersions never closes once writes stop.
    if (o.haLagRvs !== undefined) await sim.admin('POST', '/faults/lag', { lagRvs: 0 });
    // The catalogue's faults are counted as the simulator fired them, not as armed: an armed rule
    // that met no matching request (no relist with a continue token, say) injected nothing.
    const fired = (await sim.admin<{ faults: Record<string, number> | number }>('GET', '/counters')).faults;
    for (const kind of armed) {
      const n = typeof fired === 'object' ? (fired[kind] ?? 0) : 0;
      if (n > 0) faults[`upstream:${kind}`] = n;
    }
    if (o.haLagRvs !== undefined) {
      const ha = await sim.admin<{ followerRequests: Record<string, number> | number }>('GET', '/ha');
      const served = typeof ha.followerRequests === 'object' ? Object.values(ha.followerRequests).reduce((a, b) => a + b, 0) : ha.followerRequests;
      followerRequests = served;
    }
    for (const r of replicas) if (!r.running) await r.start();
    for (const r of replicas) if (r.crashed) crashes.push(`${r.name} crashed: ${r.output().slice(-500)}`);

    // Settle: every agent's state equals the simulator's projected state. The expected state is
    // re-read while waiting: writes in flight when the churn stopped may still land.
    const settleStart = Date.now();
    let want = await expected(sim);
    let wantDigest = digestOf(want);
    let wantReadAt = Date.now();
    const divergences: string[] = [];
    for (const a of agents) {
      for (;;) {
        if (Date.now() - wantReadAt > 2_000) {
          want = await expected(sim);
          wantDigest = digestOf(want);
          wantReadAt = Date.now();
        }
        const view = a.client.feed(FEED);
        const got = new Map<string, Buffer>();
        for (const k of view.keys()) got.set(k, view.getRaw(k) as Buffer);
        if (a.client.inSync && digestOf(got).equals(wantDigest)) break;
        if (Date.now() - settleStart > o.settleTimeoutMs) {
          divergences.push(`agent ${a.id} (${a.client.state}): ${firstDifference(a, got, want)}`);
          break;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    if (divergences.length > 0) {
      divergences.push(...(await replicaViews(replicas, want, o.seed)));
      const state = await sim.admin<{ currentRv?: string }>('GET', '/state');
      const pods = await sim.list('pods');
      const missing = new Set(divergences.flatMap((d) => /first differing key (\S+):/.exec(d)?.[1] ?? []));
      for (const p of pods) {
        const key = `/pods/${p.metadata?.namespace}/${p.metadata?.name}`;
        if (missing.has(key)) divergences.push(`simulator (RV ${JSON.stringify(state.currentRv)}): ${key} uid ${p.metadata?.uid} resourceVersion ${p.metadata?.resourceVersion} created ${p.metadata?.creationTimestamp}`);
      }
    }
    const hotLoops = await requestBounds(sim, Date.now() - started, builtinFeed(FEED).resources.length);
    const report: RunReport = {
      seed: o.seed, faults, divergences,
      watermarkRegressions: [...agents, ...retired].flatMap((a) => a.regressions),
      crashes, hotLoops,
      deletionsSeen: agents.reduce((s, a) => s + a.deletions, 0),
      agentsChecked: agents.length, entries: want.size, settleMs: Date.now() - settleStart, replayCommand: replay,
      peakReplicaRssMb: 0,
      peakReplicaFds: 0,
      haFollowerRequests: followerRequests,
      budgetBreaches,
    };
    log(`seed ${o.seed}: ${Object.values(faults).reduce((s, n) => s + n, 0)} faults (${Object.entries(faults).map(([k, n]) => `${k} ${n}`).join(', ')}), ${followerRequests} requests to the lagging follower, ${agents.length} agents × ${want.size} entries, settled in ${report.settleMs} ms, divergences ${divergences.length}, regressions ${report.watermarkRegressions.length}, crashes ${crashes.length}`);
    await Promise.all(replicas.map((r) => r.kill('SIGTERM')));
    for (const r of replicas) r.sampleRss();
    const peakReplicaRssMb = Math.max(...replicas.map((r) => r.peakRssMb));
    if (peakReplicaRssMb > REPLICA_RSS_BUDGET_MB) budgetBreaches.push(`a replica's resident set reached ${peakReplicaRssMb} MB (budget ${REPLICA_RSS_BUDGET_MB} MB)`);
    return { ...report, peakReplicaRssMb, peakReplicaFds: Math.max(...replicas.map((r) => r.peakFds)) };
  } finally {
    for (const a of [...agents]) a.client.destroy();
    await Promise.all(replicas.map((r) => r.kill('SIGKILL')));
    await sim.stop();
    rmSync(stateRoot, { recursive: true, force: true });
  }
}

/** Reads each replica's budget gauges and notes any above its configured cap. */
async function checkBudgets(replicas: readonly ReplicaProc[], breaches: string[]): Promise<void> {
  for (const r of replicas) {
    // A replica that is restarting or unreachable this instant is sampled at the next step.
    const m = await Promise.race([r.metrics().catch(() => undefined), new Promise<undefined>((res) => setTimeout(() => res(undefined), 2_000))]);
    const logBytes = m?.get('cattail_delta_log_bytes');
    if (logBytes !== undefined && logBytes > DELTA_LOG_MAX_BYTES) breaches.push(`${r.name}: delta log ${logBytes} bytes above --delta-log-max-bytes ${DELTA_LOG_MAX_BYTES}`);
  }
}

/** On a divergence: what a fresh agent gets from each replica, to tell a replica's state from an agent's. */
async function replicaViews(replicas: readonly ReplicaProc[], want: Map<string, Buffer>, seed: number): Promise<string[]> {
  const out: string[] = [];
  for (const r of replicas) {
    const c = connect({ endpoints: [r.url], feeds: [FEED], node: 'conv-probe', random: seededRandom(seed), clock: realClock });
    try {
      await Promise.race([c.whenInSync(), new Promise((res) => setTimeout(res, 10_000))]);
      const view = c.feed(FEED);
      const missing = [...want.keys()].filter((k) => !view.has(k));
      const extra = [...view.keys()].filter((k) => !want.has(k));
      out.push(`replica ${r.name}: fresh snapshot ${c.inSync ? 'in sync' : 'NOT in sync'}, missing ${missing.length} (${missing.slice(0, 3).join(' ')}), extra ${extra.length} (${extra.slice(0, 3).join(' ')}), watermarks ${JSON.stringify(view.status.watermarks)}`);
    } finally {
      c.destroy();
    }
  }
  return out;
}

function firstDifference(a: AgentUnderTest, got: Map<string, Buffer>, want: Map<string, Buffer>): string {
  for (const [k, v] of want) {
    const g = got.get(k);
    if (g === undefined || !g.equals(v)) {
      const values = g === undefined ? '' : `; agent ${JSON.stringify(unpack(g))} vs simulator ${JSON.stringify(unpack(v))}`;
      return `first differing key ${k}: agent ${g === undefined ? 'lacks it' : `has ${g.length}B`}, simulator ${v.length}B; agent history: ${(a.history.get(k) ?? []).join(', ') || 'none'}${values}`;
    }
  }
  for (const k of got.keys()) if (!want.has(k)) return `agent still holds deleted key ${k}; agent history: ${(a.history.get(k) ?? []).join(', ')}`;
  return 'states equal but not in sync';
}

/** Replicas whose LIST + WATCH requests exceeded the bound (from the simulator's per-client counters). */
async function requestBounds(sim: SimProc, elapsedMs: number, resources: number): Promise<string[]> {
  const counters = await sim.admin<{ clients?: Record<string, { watchRequests: number; lists: number }> }>('GET', '/counters');
  const limit = Math.max(60 * resources, (MAX_REQUESTS_PER_RESOURCE_PER_MIN * resources * elapsedMs) / 60_000);
  const out: string[] = [];
  for (const [client, c] of Object.entries(counters.clients ?? {})) {
    if (!client.includes('replica')) continue;
    const n = c.watchRequests + c.lists;
    if (n > limit) out.push(`${client}: ${n} LIST+WATCH requests over ${resources} resources (bound ${Math.round(limit)})`);
  }
  return out;
}
