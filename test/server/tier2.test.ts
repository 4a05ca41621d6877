/**
 * Replicas that feed replicas (`cattail serve --upstream-cattail`): tier 1 watches the simulated
 * API server, two tier-2 replicas follow tier 1 through the client library, agents connect to
 * tier 2. A tier-2 agent's state equals the API server's (checked against tier 1's store and the
 * simulator's objects through the digest), watermarks and status pass through (watermark-only
 * updates included), the API server sees tier 1's watches only however many tier-2 replicas run,
 * and losing tier 1 makes tier 2 stale (serving its last state) until tier 1 is back.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { connect, type Client } from '../../src/client/index.js';
import { realClock } from '../../src/clock.js';
import { startServer, type ServerHandle } from '../../src/server/server.js';
import { CattailUpstream } from '../../src/server/upstream-cattail.js';
import { createUpstream } from '../../src/server/upstream/index.js';
import { builtinFeed } from '../../src/server/upstream/feeds.js';
import type { Sim } from '../../src/sim/index.js';
import { simFixture } from '../support/sim.js';
import { TEST_TRANSPORT } from '../support/transport.js';
import { waitUntil } from '../support/wait.js';
import { ScriptedUpstream } from '../support/scripted-upstream.js';
import { encodeValue } from '../../src/snapshot/value.js';

const NP = 'networkpolicies.networking.k8s.io';
const sims = simFixture({ nodes: 3, podsPerNode: 2, seed: 21 });
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

async function tier1(sim: Sim, listen = '127.0.0.1:0'): Promise<ServerHandle> {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(sim.kubeconfigPath);
  const upstream = createUpstream({ kubeConfig, replicaId: 'tier1', feeds: ['felix'] });
  const server = await startServer({ upstream, defaultMetrics: false, flushWindowMs: 1, serverId: 'tier1', transport: TEST_TRANSPORT, listen });
  return server;
}

async function tier2(name: string, endpoints: string[], staleAfterMs = 60_000, discovery: { service: string; kubeconfig: string } | undefined = undefined, aheadPersistMs?: number): Promise<ServerHandle> {
  const upstream = new CattailUpstream({ endpoints, service: discovery?.service, ...(discovery !== undefined ? { kubeconfig: discovery.kubeconfig } : {}), feeds: ['felix'], replicaId: name, staleAfterMs, clock: realClock, ...(aheadPersistMs !== undefined ? { aheadPersistMs } : {}) });
  const server = await startServer({ upstream, defaultMetrics: false, flushWindowMs: 1, serverId: name, transport: TEST_TRANSPORT });
  cleanups.push(() => server.close());
  return server;
}

function agent(server: ServerHandle, node: string): Client {
  const c = connect({ endpoints: [server.url], feeds: ['felix'], node, ackIntervalMs: 0 });
  cleanups.push(() => c.destroy());
  return c;
}

const digestOf = (s: ServerHandle): string => s.stores.get('felix')!.current().digest.toString('hex');

describe('tier 2: replicas that follow a replica', () => {
  it('agents on tier 2 end equal to tier 1 (and the API server), watermarks pass through, the API server sees one set of watches', async () => {
    const sim = await sims.start();
    const t1 = await tier1(sim);
    cleanups.push(() => t1.close());
    const a = await tier2('tier2-a', [t1.url]);
    const b = await tier2('tier2-b', [t1.url]);
    const agents = [agent(a, 'n1'), agent(b, 'n2'), agent(b, 'n3')];
    await Promise.all(agents.map((c) => c.whenInSync()));
    // The model tier 1 announces is the one tier 2 announces (PROTOCOL.md 3.2).
    for (const c of agents) expect(c.feed('felix').model).toBe(builtinFeed('felix').model);
    const same = (): boolean => [a, b].every((t) => digestOf(t) === digestOf(t1)) && agents.every((c) => c.feed('felix').status.verifiedRevision === c.feed('felix').revision);
    await waitUntil(same, 'tier 2 equal to tier 1');
    // Churn: writes, a deletion, and a status-only change that only moves watermarks.
    const np = sim.admin.list(NP)[0] as { metadata: { namespace: string; name: string } };
    const rv = (sim.admin.patch(NP, np.metadata.namespace, np.metadata.name, { metadata: { labels: { tier: 'two' } } })['metadata'] as { resourceVersion: string }).resourceVersion;
    sim.admin.delete('namespaces', undefined, (sim.admin.list('namespaces').at(-1) as { metadata: { name: string } }).metadata.name);
    await waitUntil(() => same() && agents.every((c) => c.feed('felix').status.watermarks[NP] === rv), 'the change on every tier-2 agent, with tier 1\'s watermark');
    for (const c of agents) {
      expect(c.feed('felix').status.watermarks).toEqual(t1.stores.get('felix')!.meta().watermarks);
      // The entries themselves: the same keys and bytes as tier 1's store.
      const mine = new Map([...c.feed('felix').entries()].map(([k, v]) => [k, JSON.stringify(v)]));
      expect(mine.size).toBe(t1.stores.get('felix')!.current().size);
    }
    // One set of watches on the API server: tier 1's (tier-2 replicas are not its clients).
    const clients = Object.keys(sim.admin.counters().clients);
    expect(clients.some((id) => id.includes('tier1'))).toBe(true);
    expect(clients.some((id) => id.includes('tier2'))).toBe(false);
  });

  it('finds tier 1 through its Service\'s EndpointSlices (--upstream-cattail-service): no static URL', async () => {
    const sim = await sims.start();
    const t1 = await tier1(sim);
    cleanups.push(() => t1.close());
    // Tier 1's Service as the API server shows it: one ready endpoint with the named agent port.
    sim.admin.create('endpointslices.discovery.k8s.io', {
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: 'IPv4',
      metadata: { name: 'cattail-tier1-x', namespace: 'calico-system', labels: { 'kubernetes.io/service-name': 'cattail-tier1' } },
      ports: [{ name: 'agents', port: Number(new URL(t1.url).port) }],
      endpoints: [{ addresses: ['127.0.0.1'], nodeName: 'n1', conditions: { ready: true } }],
    });
    const t2 = await tier2('tier2-svc', [], 60_000, { service: 'calico-system/cattail-tier1', kubeconfig: sim.kubeconfigPath });
    const c = agent(t2, 'n1');
    await c.whenInSync();
    await waitUntil(() => digestOf(t2) === digestOf(t1) && c.feed('felix').status.verifiedRevision === c.feed('felix').revision, 'tier 2 equal to tier 1');
    expect(c.feed('felix').status.watermarks).toEqual(t1.stores.get('felix')!.meta().watermarks);
  });

  it('reports stale when tier 1 is gone for staleAfterMs, keeps serving, and recovers when it is back', async () => {
    const sim = await sims.start();
    let t1 = await tier1(sim);
    const port = new URL(t1.url).port;
    const t2 = await tier2('tier2-a', [t1.url], 500);
    const c = agent(t2, 'n1');
    await c.whenInSync();
    const held = c.feed('felix').size;
    await t1.close();
    await waitUntil(() => c.feed('felix').status.stale, 'the tier-2 agent told stale', { timeoutMs: 20_000 });
    expect(c.feed('felix').size).toBe(held);
    t1 = await tier1(sim, `127.0.0.1:${port}`);
    cleanups.push(() => t1.close());
    await waitUntil(() => !c.feed('felix').status.stale && digestOf(t2) === digestOf(t1), 'recovered from the new tier 1', { timeoutMs: 30_000 });
  });
});

describe('tier 2: a key that changed and came back at tier 1', () => {
  it('is a change in the tier-2 store too (A→B→A as one tier-1 unit, force): a rebase from before it sends the key', async () => {
    // Tier 1 announces felix as this release defines it: tier 2 follows only that (its own definition).
    const felix = builtinFeed('felix');
    const up1 = new ScriptedUpstream([{ name: 'felix', resources: felix.resources, projectionVersion: felix.projectionVersion, model: felix.model }]);
    const t1 = await startServer({ upstream: up1, defaultMetrics: false, flushWindowMs: 1, serverId: 'tier1', transport: TEST_TRANSPORT });
    cleanups.push(() => t1.close());
    const A = encodeValue({ v: 'A' });
    up1.apply('felix', { '/k': A, '/other': encodeValue({ v: 1 }) }, { status: 'in-sync', watermarks: { pods: '10' } });
    const x = await tier2('tier2-x', [t1.url]);
    const store = x.stores.get('felix')!;
    await waitUntil(() => store.current().size === 2 && store.meta().status === 'in-sync', 'tier 2 in sync');
    const before = store.revision;
    // Tier 1's upstream saw K go to B and back to A between two of its batches: it sends A,
    // marked force, and tier 1's store counts the key as changed.
    up1.push('felix', { updates: [{ key: '/k', value: Buffer.from(A), force: true }], watermarks: { pods: '12' } });
    await waitUntil(() => store.meta().watermarks['pods'] === '12', 'the unit reached tier 2');
    const s = store.since(before);
    expect(s.kind).toBe('delta');
    if (s.kind === 'delta') expect(s.upserts.map(([k]) => k)).toEqual(['/k']);
  });
});

describe('tier 2: an agent that holds newer state than the tier-1 replica followed', () => {
  it('is refused (4015), and tier 2 moves to another tier-1 replica, where the agent is then served', async () => {
    const felix = builtinFeed('felix');
    const def = [{ name: 'felix', resources: felix.resources, projectionVersion: felix.projectionVersion, model: felix.model }];
    const ups = [new ScriptedUpstream(def), new ScriptedUpstream(def)];
    const t1s: ServerHandle[] = [];
    for (const [i, up] of ups.entries()) {
      const t = await startServer({ upstream: up, defaultMetrics: false, flushWindowMs: 1, serverId: `tier1-${i}`, transport: TEST_TRANSPORT });
      cleanups.push(() => t.close());
      t1s.push(t);
      up.apply('felix', { '/k': encodeValue({ v: 1 }) }, { status: 'in-sync', watermarks: { pods: '10' } });
    }
    // Refusals must go on for 300 ms (10 s by default) before it moves.
    const x = await tier2('tier2-x', t1s.map((t) => t.url), 60_000, undefined, 300);
    const store = x.stores.get('felix')!;
    await waitUntil(() => store.meta().status === 'in-sync' && t1s.some((t) => t.connectionCount() === 1), 'tier 2 in sync on one tier-1 replica');
    const followed = t1s.findIndex((t) => t.connectionCount() === 1);
    const other = 1 - followed;
    // The other tier-1 replica moves on (its upstream is ahead); an agent of it applies that.
    ups[other]!.apply('felix', { '/k': encodeValue({ v: 2 }) }, { watermarks: { pods: '20' } });
    const dir = await mkdtemp(join(tmpdir(), 'cattail-tier2-move-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const first = connect({ endpoints: [t1s[other]!.url], feeds: ['felix'], node: 'n1', stateDir: dir, checkpointIntervalMs: 0 });
    await waitUntil(() => first.feed('felix').status.watermarks['pods'] === '20' && first.inSync, 'the agent at the newer state');
    await first.close();
    // The same agent, restarted from its checkpoint, meets tier 2: behind it, until tier 2 moved.
    const agentClient = connect({ endpoints: [x.url], feeds: ['felix'], node: 'n1', stateDir: dir, behindRetryDelayMs: 100 });
    cleanups.push(() => agentClient.destroy());
    await waitUntil(() => agentClient.stats.behind > 0, 'refused as ahead of tier 2');
    await waitUntil(() => t1s[other]!.connectionCount() === 1 && store.meta().watermarks['pods'] === '20', 'tier 2 moved to the other tier-1 replica');
    await waitUntil(() => agentClient.inSync && agentClient.feed('felix').status.watermarks['pods'] === '20', 'the agent served by tier 2');
    expect(agentClient.feed('felix').get('/k')).toEqual({ v: 2 });
  });
});

