/**
 * Balanced replicas with real processes on loopback (issue: "replicas left unbalanced after a
 * rollout"): the simulator serves the cluster and the Service's EndpointSlice; three replicas
 * (`cattail serve --service calico-system/cattail`) start one after another while 1,000 agents
 * (one discard worker) are connected to the first. The replicas read the slice and each other's
 * /v1/load, and shed one agent per interval towards the peers with room: the counts end within
 * 20 % of each other with few more moves than the minimum (two thirds of the agents), every agent
 * connected. Then a rollout: one replica drains (SIGTERM) and its agents move without a storm.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { AgentWorker, ReplicaProc, SimProc, loopbackBlock } from '../../src/bench/procs.js';
import { waitUntil } from '../support/wait.js';

const AGENTS = 1_000;
const hostOf = loopbackBlock(4242);
const procs: { stop(): Promise<unknown> }[] = [];
afterAll(async () => {
  for (const p of procs.reverse()) await p.stop().catch(() => undefined);
}, 60_000);

async function load(r: ReplicaProc): Promise<number> {
  const res = await fetch(`${r.httpUrl}/v1/load`);
  return ((await res.json()) as { connections: number }).connections;
}

function slice(replicas: { r: ReplicaProc; ready: boolean }[]): Record<string, unknown> {
  const u = new URL(replicas[0]!.r.url);
  const m = new URL(replicas[0]!.r.httpUrl);
  return {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: 'IPv4',
    metadata: { name: 'cattail-x7k2p', namespace: 'calico-system', labels: { 'kubernetes.io/service-name': 'cattail' } },
    ports: [{ name: 'agents', port: Number(u.port), protocol: 'TCP' }, { name: 'metrics', port: Number(m.port), protocol: 'TCP' }],
    endpoints: replicas.map(({ r, ready }) => ({
      addresses: [new URL(r.url).hostname], nodeName: `node-${r.name}`, targetRef: { kind: 'Pod', namespace: 'calico-system', name: r.name },
      conditions: { ready, serving: ready, terminating: !ready },
    })),
  };
}

describe('fleet - replicas balance themselves', () => {
  it('three replicas started one after another end within 20 % of each other, with few moves; a drain moves agents without a storm', async () => {
    const sim = await SimProc.start({ host: hostOf(1), nodes: AGENTS, podsPerNode: 1, seed: 7 });
    procs.push(sim);
    const args = ['--service', 'calico-system/cattail', '--balance-interval-ms', '500', '--shed-interval-ms', '10', '--refuse-retry-after-ms', '1000', '--shutdown-timeout-ms', '20000'];
    const replicas = ['cattail-a', 'cattail-b', 'cattail-c'].map((n, i) => new ReplicaProc(n, hostOf(10 + i), sim.kubeconfig, ['felix'], args));
    const [a, b, c] = replicas as [ReplicaProc, ReplicaProc, ReplicaProc];
    procs.push({ stop: async () => Promise.all(replicas.map((r) => (r.running ? r.kill('SIGKILL') : undefined))) });

    await a.start();
    await a.ready();
    await sim.admin('POST', '/objects/endpointslices.discovery.k8s.io', slice([{ r: a, ready: true }]));
    // Agents know only the first replica, as a static --server would: every later move is the
    // replicas' doing (GOODBYE and 503 hints), not the agents' own rotation.
    const agents = await AgentWorker.start({ servers: [a.url], feeds: ['felix'], agents: AGENTS, nodePrefix: 'sim-node-', durationMs: 170_000 });
    procs.push(agents);
    await waitUntil(() => agents.last?.inSync === AGENTS, 'every agent in sync on A', { timeoutMs: 60_000, pollMs: 100 });
    const reconnectsBefore = agents.last?.reconnects ?? 0;

    await b.start();
    await b.ready();
    await sim.admin('PUT', '/objects/endpointslices.discovery.k8s.io', slice([{ r: a, ready: true }, { r: b, ready: true }]));
    await c.start();
    await c.ready();
    await sim.admin('PUT', '/objects/endpointslices.discovery.k8s.io', slice(replicas.map((r) => ({ r, ready: true }))));

    let counts: number[] = [];
    await waitUntil(async () => {
      counts = await Promise.all(replicas.map(load));
      return counts.reduce((x, y) => x + y, 0) === AGENTS && Math.max(...counts) <= 1.2 * Math.min(...counts) && agents.last?.inSync === AGENTS;
    }, 'three replicas within 20 % of each other', { detail: () => `now ${counts.join('/')}, ${agents.last?.inSync ?? 0} in sync`, timeoutMs: 60_000, pollMs: 250 });
    const moves = (agents.last?.reconnects ?? 0) - reconnectsBefore;
    // 667 is the least that moves 1,000 agents from one replica to three; refusals of an agent
    // that was redirected to a replica that just filled up add some, a storm adds hundreds.
    expect(moves, `counts ${counts.join('/')}`).toBeGreaterThanOrEqual(600);
    expect(moves).toBeLessThan(1_000);

    // A rollout: B turns not-ready in the slice and drains; its agents spread over A and C.
    const onB = counts[1]!;
    await sim.admin('PUT', '/objects/endpointslices.discovery.k8s.io', slice([{ r: a, ready: true }, { r: b, ready: false }, { r: c, ready: true }]));
    const drainStart = agents.last?.reconnects ?? 0;
    const t0 = Date.now();
    expect(await b.kill('SIGTERM')).toBe(0);
    const drainMs = Date.now() - t0;
    await waitUntil(async () => {
      counts = await Promise.all([a, c].map(load));
      return counts[0]! + counts[1]! === AGENTS && agents.last?.inSync === AGENTS;
    }, "B's agents on A and C", { detail: () => `now ${counts.join('/')}`, timeoutMs: 60_000, pollMs: 250 });
    // Paced, not all at once: the drain took a while for ~333 agents, and B's agents (plus the
    // few refused once by a peer at its target) are what moved.
    expect(drainMs).toBeGreaterThan(1_000);
    expect((agents.last?.reconnects ?? 0) - drainStart).toBeLessThan(onB * 2);
    expect(Math.max(...counts)).toBeLessThanOrEqual(1.2 * Math.min(...counts) + 20);
    expect(agents.last?.violations ?? 0).toBe(0);
    console.log(`balance: 3 replicas, ${AGENTS} agents: balanced with ${moves} moves; drain of ${onB} agents took ${drainMs} ms and ${(agents.last?.reconnects ?? 0) - drainStart} reconnects; now ${counts.join('/')}`);
  }, 240_000);
});
