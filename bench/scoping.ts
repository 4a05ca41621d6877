/**
 * Per-node scoping (#20) measured: bytes per agent and server CPU per change, scoped versus
 * cluster-wide, on the felix feed at NODES × PODS workload endpoints (default 5,000 × 30).
 *
 *   npm run bench:scoping -- [--feed felix|tunnel-ip-allocation] [--nodes 5000] [--pods 30] [--rounds 200]
 *     [--paced-rounds 8] [--bursts 10] [--compression brotli|none] [--no-scope-watermarks] [--out bench/results/scoping-felix]
 *
 * Results: bench/results/scoping.md (written by hand from scoping-felix.json and scoping-tunnel-ip.json).
 *
 * In-process, no network: one store, two fan-outs over it (felix scoped, felix cluster-wide),
 * each with one agent per node on a counting socket (every byte the server hands a socket is
 * counted; nothing is copied, as the real transports share the Buffers). The agents connect while
 * the store is empty, then the whole cluster arrives as one batch (the initial load), then
 * single changes and bursts of changes, each flushed synchronously on one fan-out at a time
 * under process.cpuUsage(): the CPU of a flush is the encoding (shared part once, node parts once
 * per node), the per-node STATUS (digest of the node's view) and the hand-off to every socket.
 * A fresh agent per fan-out then takes a snapshot (bytes per agent for a new agent).
 * Values are the real libcalico projection of generated pods (convertPod). Bounded: a deadline
 * stops starting new rounds and writes what it has.
 */
import { writeFileSync } from 'node:fs';
import { loadavg, cpus } from 'node:os';
import { encodeFrame } from '../proto/index.js';
import { realClock } from '../src/clock.js';
import { FanOut } from '../src/server/fanout/fanout.js';
import { FeedRuntime } from '../src/server/fanout/feeds.js';
import { SnapshotCache } from '../src/server/fanout/snapshot-cache.js';
import { FanOutStats } from '../src/server/fanout/stats.js';
import { createMetrics } from '../src/server/ops/metrics.js';
import type { FeedDefinition } from '../src/server/pipeline/seams.js';
import type { ServedStore } from '../src/server/pipeline/store-port.js';
import { ScopeIndex } from '../src/server/scoping/index.js';
import { SCOPE_POLICIES, type ScopePolicy } from '../src/server/scoping/policy.js';
import { Connection } from '../src/server/transport/connection.js';
import type { AgentSocket, AgentSocketEvents } from '../src/server/transport/seam.js';
import { convertPod } from '../src/server/upstream/projections/libcalico-workload-endpoint.js';
import { convertNode } from '../src/server/upstream/projections/libcalico-node.js';
import { profileRulesKey, ipPoolKey, policyKey } from '../src/server/upstream/projections/calico-keys.js';
import { FeedStore, encodeValue } from '../src/snapshot/index.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? def) : def;
}
const NODES = Number(arg('nodes', '5000'));
const PODS = Number(arg('pods', '30'));
const ROUNDS = Number(arg('rounds', '200'));
const BURSTS = Number(arg('bursts', '10'));
/** Single changes more than 1 s apart: on the scoped side every one then carries a STATUS with each node's digest. */
const PACED = Number(arg('paced-rounds', '8'));
const BURST_SIZE = Number(arg('burst-size', '100'));
const COMPRESSION = arg('compression', 'brotli') as 'brotli' | 'none';
/** Agents advertise scope.watermarks, as the client library does (PROTOCOL.md §4.7); --no-scope-watermarks: they do not. */
const SCOPE_WATERMARKS = !process.argv.includes('--no-scope-watermarks');
/** felix: NODES × PODS workload endpoints; tunnel-ip-allocation: NODES Nodes (every change is one Node's). */
const FEED = arg('feed', 'felix') as 'felix' | 'tunnel-ip-allocation';
const OUT = arg('out', `bench/results/scoping-${FEED === 'felix' ? 'felix' : 'tunnel-ip'}`);
const DEADLINE_MS = Number(arg('deadline-ms', String(8 * 60_000)));
const started = Date.now();
const timeLeft = (): boolean => Date.now() - started < DEADLINE_MS;

let seed = 42;
const rand = (): number => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);

function podValue(node: number, i: number, gen: number): { key: string; value: Buffer } {
  const ns = `team-${i % 97}`;
  const app = `app-${(node * PODS + i) % 211}`;
  const name = `${app}-${(node * 7919 + i).toString(16)}-${gen.toString(36)}x`;
  const ip = `10.${(node >> 8) & 255}.${node & 255}.${i + 2}`;
  const pod = {
    metadata: {
      name, namespace: ns, uid: `${node}-${i}-uid`, generateName: `${app}-`,
      labels: { app, 'pod-template-hash': (node * 31 + i).toString(16), tier: i % 3 === 0 ? 'frontend' : 'backend', version: `v${gen % 5}`, team: ns },
    },
    spec: { nodeName: `worker-${node}`, serviceAccountName: `sa-${i % 7}`, containers: [{ name: 'main', ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }, { name: 'metrics', containerPort: 9090, protocol: 'TCP' }] }] },
    status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] },
  };
  const [kv] = convertPod(pod as never);
  if (kv === undefined) throw new Error('pod did not project');
  return { key: kv[0], value: encodeValue(kv[1]) };
}

/** A Kubernetes Node as the libcalico projection sends it (v3 Node + host config keys). */
function nodeValues(node: number, gen: number): { key: string; value: Buffer }[] {
  const ip = `172.16.${(node >> 8) & 255}.${node & 255}`;
  const k8s = {
    metadata: {
      name: `worker-${node}`, uid: `node-${node}`,
      labels: { 'kubernetes.io/hostname': `worker-${node}`, 'kubernetes.io/os': 'linux', 'topology.kubernetes.io/zone': `zone-${node % 3}`, 'node.kubernetes.io/instance-type': 'm5.large', gen: String(gen % 7) },
      annotations: { 'projectcalico.org/IPv4Address': `${ip}/16`, 'projectcalico.org/IPv4IPIPTunnelAddr': `10.${(node >> 8) & 255}.${node & 255}.1` },
    },
    spec: { podCIDR: `10.${(node >> 8) & 255}.${node & 255}.0/24`, podCIDRs: [`10.${(node >> 8) & 255}.${node & 255}.0/24`] },
    status: { addresses: [{ type: 'InternalIP', address: ip }, { type: 'Hostname', address: `worker-${node}` }] },
  };
  return convertNode(k8s as never).map(([key, value]) => ({ key, value: encodeValue(value) }));
}

class CountingSocket implements AgentSocket {
  readonly peer = { remoteAddress: '127.0.0.1', remotePort: 1, headers: {}, protocol: 'cattail.v1', tls: undefined };
  readonly transport = 'ws' as const;
  readonly writable = true;
  readonly bufferedAmount = 0;
  readonly copiedBytes = 0;
  readonly quietBytes = 16_384;
  bytes = 0;
  events: AgentSocketEvents | undefined;
  get sink(): this { return this; }
  setEvents(e: AgentSocketEvents): void { this.events = e; }
  write(b: Buffer, done?: () => void): boolean { this.bytes += b.length; done?.(); return true; }
  writeCorked(bs: readonly Buffer[], dones: readonly ((() => void) | undefined)[]): boolean {
    for (let i = 0; i < bs.length; i++) { this.bytes += (bs[i] as Buffer).length; dones[i]?.(); }
    return true;
  }
  close(): void {}
  terminate(): void {}
}

interface Side {
  name: 'scoped' | 'cluster-wide';
  fanout: FanOut;
  feed: FeedRuntime;
  sockets: CountingSocket[];
  conns: Connection[];
}

const store = new FeedStore({ feed: FEED, logMaxAgeMs: 3_600_000, logMaxBytes: 2 ** 31 });
const def: FeedDefinition = { name: FEED, resources: ['pods'], projectionVersion: 1, model: 'libcalico.v2' };
const metrics = createMetrics(new FanOutStats(), { defaultMetrics: false });
const LIMITS = { maxInboundBytes: 65_536, maxClientBytes: 2 ** 31, compressMinBytes: 1_024 };

function side(name: Side['name']): Side {
  const feed = new FeedRuntime(0, def, store as unknown as ServedStore, 'bench', metrics.fanout.feed(`${FEED}-${name}`));
  if (name === 'scoped') feed.scope = new ScopeIndex(SCOPE_POLICIES.get(FEED) as ScopePolicy, store as unknown as ServedStore);
  const cache = new SnapshotCache({ clock: realClock, reuseWindowMs: 1_000, sliceEntries: 2_000, sliceMs: 5, compressMinBytes: 1_024, metrics });
  const fanout = new FanOut({
    clock: realClock, random: rand, metrics, log: undefined, serverId: 'bench', feeds: [feed], cache, compressions: ['brotli', 'deflate'],
    handshakeTimeoutMs: 3_600_000, pingIntervalMs: 3_600_000, pongTimeoutMs: 3_600_000, flushWindowMs: 3_600_000, maxFallBehindMs: 3_600_000,
    newClientGracePeriodMs: 3_600_000, socketHighWaterBytes: 2 ** 31, maxClientBytes: 2 ** 31, maxInboundBytes: 65_536, maxFrameBytes: 1_048_576, compressMinBytes: 1_024,
  });
  return { name, fanout, feed, sockets: [], conns: [] };
}

function connect(s: Side, node: string): CountingSocket {
  const sock = new CountingSocket();
  const conn = new Connection(sock, s.fanout, LIMITS, realClock.monotonic(), 3_600_000);
  s.fanout.add(conn);
  // As the client library: scope.watermarks too (every scoped unit then ends with a STATUS), unless
  // --no-scope-watermarks measures the agents that keep the held-back STATUS and its trail.
  const caps = ['scope.node', 'resume.watermarks', ...(SCOPE_WATERMARKS ? ['scope.watermarks'] : []), ...(COMPRESSION === 'brotli' ? ['compress.brotli'] : [])];
  sock.events?.message(encodeFrame({ type: 'hello', protocol: 1, node, clientId: node, feeds: [{ name: FEED }], caps }), true);
  s.sockets.push(sock);
  s.conns.push(conn);
  return sock;
}

async function settled(s: Side): Promise<void> {
  for (let i = 0; i < 100_000; i++) {
    if (s.conns.every((c) => c.cursors.every((x) => x.phase === 'live')) && s.fanout.serviceQueueLength === 0) return;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error(`${s.name}: agents never settled`);
}

/** One synchronous flush under cpuUsage: CPU µs and bytes handed to each socket. */
function flush(s: Side): { cpuUs: number; bytes: number[] } {
  const before = s.sockets.map((x) => x.bytes);
  const c0 = process.cpuUsage();
  s.fanout.flush();
  const c = process.cpuUsage(c0);
  return { cpuUs: c.user + c.system, bytes: s.sockets.map((x, i) => x.bytes - (before[i] as number)) };
}

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s.length === 0 ? NaN : (s[Math.floor(s.length / 2)] as number); };
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
const r1 = (x: number): number => Math.round(x * 10) / 10;

async function main(): Promise<void> {
  const result: Record<string, unknown> = { nodes: NODES, podsPerNode: PODS, compression: COMPRESSION, scopeWatermarks: SCOPE_WATERMARKS, cpus: cpus().length, loadavgStart: loadavg()[0], node: process.version };
  result['feed'] = FEED;
  const sides = [side('scoped'), side('cluster-wide')];
  // Agents first, on the empty store (snapshots of nothing), so the load arrives as one flush.
  for (const s of sides) for (let n = 0; n < NODES; n++) connect(s, `worker-${n}`);
  for (const s of sides) await settled(s);
  // The cluster: every pod's endpoint, plus cluster-wide entries (profiles, policies, a pool).
  const gens = new Map<number, number>();
  const updates: { key: string; value: Buffer }[] = [];
  if (FEED === 'felix') for (let n = 0; n < NODES; n++) for (let i = 0; i < PODS; i++) updates.push(podValue(n, i, 0));
  else for (let n = 0; n < NODES; n++) updates.push(...nodeValues(n, 0));
  if (FEED === 'felix') for (let p = 0; p < 97; p++) updates.push({ key: profileRulesKey(`kns.team-${p}`), value: encodeValue({ inbound_rules: [{ action: 'allow' }], outbound_rules: [{ action: 'allow' }] }) });
  if (FEED === 'felix') for (let p = 0; p < 200; p++) updates.push({ key: policyKey('default', `team-${p % 97}.np-${p}`), value: encodeValue({ order: 1000, selector: `app == 'app-${p}'`, inbound_rules: [{ action: 'allow', src_selector: `tier == 'frontend'` }], types: ['ingress'] }) });
  updates.push({ key: ipPoolKey('10.0.0.0/8'), value: encodeValue({ cidr: '10.0.0.0/8', ipip_mode: 'always', masquerade: true }) });
  store.apply({ updates, status: 'in-sync', watermarks: { pods: '1' } }, Date.now());
  result['entries'] = updates.length;
  const stats = store.stats();
  result['stateBytes'] = stats.keyBytes + stats.valueBytes;
  // Initial load: one flush per side (the scoped side also builds its index and slims 150k values).
  const load: Record<string, unknown> = {};
  for (const s of sides) {
    const t0 = performance.now();
    const f = flush(s);
    load[s.name] = { cpuMs: r1(f.cpuUs / 1000), wallMs: r1(performance.now() - t0), bytesPerAgentMean: Math.round(mean(f.bytes)), bytesAllAgentsMB: r1(f.bytes.reduce((a, b) => a + b, 0) / 2 ** 20) };
    await settled(s);
  }
  result['initialLoad'] = load;
  // Single changes: one pod of a random node changes (a label), one flush per change.
  const single: Record<string, { cpuUs: number[]; changedAgent: number[]; otherAgents: number[] }> = { scoped: { cpuUs: [], changedAgent: [], otherAgents: [] }, 'cluster-wide': { cpuUs: [], changedAgent: [], otherAgents: [] } };
  let rounds = 0;
  for (let r = 0; r < ROUNDS && timeLeft(); r++) {
    const n = Math.floor(rand() * NODES);
    const i = Math.floor(rand() * PODS);
    const g = (gens.get(n * PODS + i) ?? 0) + 1;
    gens.set(n * PODS + i, g);
    store.apply({ updates: FEED === 'felix' ? [podValue(n, i, g)] : nodeValues(n, g), watermarks: { pods: String(2 + r) } }, Date.now());
    // Alternate which side flushes first (caches, GC).
    for (const s of r % 2 === 0 ? sides : [...sides].reverse()) {
      const f = flush(s);
      const rec = single[s.name] as { cpuUs: number[]; changedAgent: number[]; otherAgents: number[] };
      rec.cpuUs.push(f.cpuUs);
      rec.changedAgent.push(f.bytes[n] as number);
      rec.otherAgents.push(mean(f.bytes.filter((_, k) => k !== n)));
    }
    rounds++;
  }
  result['singleChanges'] = Object.fromEntries(Object.entries(single).map(([k, v]) => [k, {
    rounds, cpuUsPerChangeMedian: Math.round(median(v.cpuUs)), cpuUsPerChangeMean: Math.round(mean(v.cpuUs)),
    bytesToChangedNodesAgent: Math.round(median(v.changedAgent)), bytesToOtherAgent: Math.round(median(v.otherAgents)),
  }]));
  // Paced single changes (> 1 s apart, as a quiet cluster sees them): each flush carries the
  // STATUS on both sides, on the scoped side with every node's digest of its view.
  const paced: Record<string, { cpuUs: number[]; changedAgent: number[]; otherAgents: number[] }> = { scoped: { cpuUs: [], changedAgent: [], otherAgents: [] }, 'cluster-wide': { cpuUs: [], changedAgent: [], otherAgents: [] } };
  let pacedRounds = 0;
  for (let r = 0; r < PACED && timeLeft(); r++) {
    await new Promise((res) => setTimeout(res, 1_050));
    const n = Math.floor(rand() * NODES);
    const i = Math.floor(rand() * PODS);
    const g = (gens.get(n * PODS + i) ?? 0) + 1;
    gens.set(n * PODS + i, g);
    store.apply({ updates: FEED === 'felix' ? [podValue(n, i, g)] : nodeValues(n, g), watermarks: { pods: String(50_000 + r) } }, Date.now());
    for (const s of r % 2 === 0 ? sides : [...sides].reverse()) {
      const f = flush(s);
      const rec = paced[s.name] as { cpuUs: number[]; changedAgent: number[]; otherAgents: number[] };
      rec.cpuUs.push(f.cpuUs);
      rec.changedAgent.push(f.bytes[n] as number);
      rec.otherAgents.push(mean(f.bytes.filter((_, k) => k !== n)));
    }
    pacedRounds++;
  }
  result['pacedSingleChanges'] = Object.fromEntries(Object.entries(paced).map(([k, v]) => [k, {
    rounds: pacedRounds, cpuUsPerChangeMedian: Math.round(median(v.cpuUs)), bytesToChangedNodesAgent: Math.round(median(v.changedAgent)), bytesToOtherAgent: Math.round(median(v.otherAgents)),
  }]));
  // Bursts: BURST_SIZE changes on random nodes in one flush.
  const burst: Record<string, { cpuUs: number[]; perAgent: number[] }> = { scoped: { cpuUs: [], perAgent: [] }, 'cluster-wide': { cpuUs: [], perAgent: [] } };
  let bursts = 0;
  for (let b = 0; b < BURSTS && timeLeft(); b++) {
    const batch: { key: string; value: Buffer }[] = [];
    for (let k = 0; k < BURST_SIZE; k++) {
      const n = Math.floor(rand() * NODES);
      const i = Math.floor(rand() * PODS);
      const g = (gens.get(n * PODS + i) ?? 0) + 1;
      gens.set(n * PODS + i, g);
      if (FEED === 'felix') batch.push(podValue(n, i, g));
      else batch.push(...nodeValues(n, g));
    }
    store.apply({ updates: batch, watermarks: { pods: String(100_000 + b) } }, Date.now());
    for (const s of b % 2 === 0 ? sides : [...sides].reverse()) {
      const f = flush(s);
      (burst[s.name] as { cpuUs: number[] }).cpuUs.push(f.cpuUs);
      (burst[s.name] as { perAgent: number[] }).perAgent.push(mean(f.bytes));
    }
    bursts++;
  }
  result['bursts'] = Object.fromEntries(Object.entries(burst).map(([k, v]) => [k, {
    bursts, changesPerBurst: BURST_SIZE, cpuMsPerBurstMedian: r1(median(v.cpuUs) / 1000), cpuUsPerChange: Math.round(median(v.cpuUs) / BURST_SIZE), bytesPerAgentPerBurstMean: Math.round(mean(v.perAgent)),
  }]));
  // A new agent's snapshot on each side.
  const snap: Record<string, unknown> = {};
  for (const s of sides) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const sock = connect(s, 'worker-17');
    await settled(s);
    const c = process.cpuUsage(c0);
    snap[s.name] = { bytes: sock.bytes, MB: r1(sock.bytes / 2 ** 20), cpuMs: r1((c.user + c.system) / 1000), wallMs: r1(performance.now() - t0) };
  }
  result['newAgentSnapshot'] = snap;
  result['loadavgEnd'] = loadavg()[0];
  result['wallS'] = r1((Date.now() - started) / 1000);
  result['deadlineHit'] = !timeLeft();
  writeFileSync(`${OUT}.json`, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  for (const s of sides) s.fanout.stop();
  // --no-exit: let the process end by itself (so that --cpu-prof writes its profile).
  if (!process.argv.includes('--no-exit')) process.exit(0);
}

void main();
