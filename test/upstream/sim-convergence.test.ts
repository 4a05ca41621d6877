import { describe, expect, it } from 'vitest';
import type { FakeClock } from '../../src/clock.js';
import { RESOURCES, SYNCER_FEEDS } from '../../src/registry.js';
import { MsgReader } from '../../proto/msgpack.js';
import { replicaListRequests } from '../../src/sim/counters.js';
import type { Sim, SimOptions } from '../../src/sim/index.js';
import { builtinFeed, type UpstreamHandle, type UpstreamOptions } from '../../src/server/upstream/index.js';
import { WATCHLIST_RETRY_AFTER_MS } from '../../src/server/upstream/reflector-core.js';
import type { KubeObject } from '../../src/server/upstream/types.js';
import { upstreamOnSim } from '../support/upstream.js';
import { waitUntil } from '../support/wait.js';
import { RecordingSink } from './helpers.js';
import { converged as convergedOn } from './sim-oracle.js';

/**
 * The upstream against the simulated API server (src/sim), sharing one FakeClock: after every
 * scenario, every feed's state (batches applied to a Map) equals the simulator's state projected.
 */
const FEEDS = Object.keys(SYNCER_FEEDS);
// Serve every resource but these optional ones: they answer 404 (CRD not installed).
const NOT_INSTALLED = ['bgpfilters.crd.projectcalico.org', 'virtualmachineinstancemigrations.kubevirt.io', 'clusternetworkpolicies.policy.networking.k8s.io'];

const converged = (sink: RecordingSink, s: Sim, clock: FakeClock, feeds: readonly string[] = FEEDS): Promise<void> => convergedOn(sink, s, clock, feeds, NOT_INSTALLED);

async function setup(opts: Partial<UpstreamOptions> = {}, simOpts: SimOptions = {}): Promise<{ clock: FakeClock; sink: RecordingSink; up: UpstreamHandle; s: Sim }> {
  const { sim, clock, up } = await upstreamOnSim({
    sim: { nodes: 4, podsPerNode: 5, seed: 7, resources: RESOURCES.map((r) => r.id).filter((id) => !NOT_INSTALLED.includes(id)), ...simOpts },
    up: { replicaId: 'sim-test', ...opts },
  });
  return { clock, sink: new RecordingSink(), up, s: sim };
}

describe('upstream against the simulator', () => {
  it('syncs every built-in feed (WatchList), missing CRDs in sync, and follows churn', async () => {
    const { clock, sink, up, s } = await setup();
    up.start(sink);
    await waitUntil(() => FEEDS.every((f) => sink.status.get(f) === 'in-sync'), { clock });
    // WatchList served the initial lists: no LIST request at all.
    const lists = s.admin.counters().listPages;
    expect(typeof lists === 'number' ? lists : Object.values(lists).reduce((a, b) => a + b, 0)).toBe(0);
    await converged(sink, s, clock);
    expect(sink.state.get('felix')?.size).toBeGreaterThan(10);
    // Every value (IPAMBlocks' 2^60 sequence numbers included) is read by the strict decoder.
    for (const v of sink.state.get('felix')?.values() ?? []) new MsgReader(v).read();
    const missing = up.health().filter((h) => h.missing).map((h) => h.id).sort();
    expect(missing).toEqual([...NOT_INSTALLED].filter((id) => up.health().some((h) => h.id === id)).sort());
    s.admin.churnSteps(400);
    await converged(sink, s, clock);
    expect(up.ready()).toBe(true);
  });

  it('WatchList on a server that ends the initial events a second later, changes flowing in between (Kubernetes 1.27-1.31): every resource synced by WatchList, none falls back to LIST', async () => {
    const { clock, sink, up, s } = await setup({ feeds: ['felix'] }, { watchListEndDelayMs: 1_000 });
    up.start(sink);
    // Changes while the end bookmarks are still to come.
    await waitUntil(() => (s.admin.counters().watchesOpen as Record<string, number>)['pods'] !== undefined, { clock, stepMs: 10 });
    s.admin.churnSteps(60);
    await waitUntil(() => sink.status.get('felix') === 'in-sync', { clock, stepMs: 100 });
    s.admin.churnSteps(60);
    await converged(sink, s, clock, ['felix']);
    // No relist but the not-installed CRDs' looks.
    expect((await up.metrics.relists.get()).values.filter((v) => v.value > 0 && v.labels.reason !== 'missing-retry')).toEqual([]);
    expect(replicaListRequests(s.admin.counters(), 'sim-test')).toBe(0);
  });

  it('etcd restored without a revision bump (the simulator\'s restore): the resources it took back go stale instead of serving the old state, then the restored timeline is converged once its revision passes the applied one', async () => {
    const { clock, sink, up, s } = await setup({ feeds: ['felix'] });
    up.start(sink);
    await waitUntil(() => sink.status.get('felix') === 'in-sync', { clock });
    const backup = s.admin.faults.backup();
    s.admin.churnSteps(150);
    await converged(sink, s, clock, ['felix']);
    const applied = Number(s.admin.currentRv());
    const updates = sink.updates('felix');
    // The restore, then writes of the restored timeline at revisions the replica already applied.
    await s.admin.faults.restore(backup);
    s.admin.churnSteps(40);
    expect(Number(s.admin.currentRv())).toBeLessThan(applied);
    // Pods (churned up to the applied revision) go stale; a resource whose last event came before
    // the backup is resumed from an RV the restored server has compacted (410) and relisted.
    await waitUntil(() => up.health().find((h) => h.id === 'pods')?.stale === true && !up.ready(), { clock, stepMs: 1_000, timeoutMs: 900_000 });
    // Nothing of it reached the feed while the server was behind.
    expect(sink.updates('felix')).toBe(updates);
    expect((await up.metrics.revisionProbes.get()).values.filter((v) => v.labels.result === 'behind').length).toBeGreaterThan(1);
    // The revision passes the applied one: the feed ends on the restored timeline's state.
    while (Number(s.admin.currentRv()) <= applied) s.admin.churnSteps(20);
    await converged(sink, s, clock, ['felix']);
    await waitUntil(() => up.ready(), { clock, stepMs: 1_000 });
  });

  it('lists in pages when WatchList is off', async () => {
    const { clock, sink, up, s } = await setup({ watchList: false, listPageSize: 7, feeds: ['felix'] });
    up.start(sink);
    await waitUntil(() => sink.status.get('felix') === 'in-sync', { clock });
    const pages = s.admin.counters().listPages as Record<string, number>;
    const podPages = Object.entries(pages).find(([k]) => k.includes('pods'))?.[1];
    expect(podPages).toBe(Math.ceil(s.admin.count('pods') / 7));
    await converged(sink, s, clock, ['felix']);
  });

  it('a simulator without WatchList (the feature gate off): each resource is refused once, listed in pages, in sync, and never asks WatchList again', async () => {
    const { clock, sink, up, s } = await setup({ listPageSize: 7, feeds: ['felix'] }, { watchList: false });
    const ids = builtinFeed('felix').resources.filter((id) => !NOT_INSTALLED.includes(id));
    const refusals = (): Record<string, number> => {
      const requests = s.admin.counters().requests as Record<string, number>;
      return Object.fromEntries(ids.map((id) => [id, requests[`WATCH,${id},422`] ?? 0]));
    };
    const relists = async (reason: string): Promise<number> => (await up.metrics.relists.get()).values.filter((v) => v.labels.reason === reason).reduce((n, v) => n + v.value, 0);
    const once = Object.fromEntries(ids.map((id) => [id, 1]));
    up.start(sink);
    await waitUntil(() => sink.status.get('felix') === 'in-sync', { clock });
    expect(refusals()).toEqual(once);
    expect(await relists('watchlist-fallback')).toBe(ids.length);
    // Read before the oracle lists: every pods page is the replica's.
    expect((s.admin.counters().listPages as Record<string, number>)['pods']).toBe(Math.ceil(s.admin.count('pods') / 7));
    expect(s.admin.counters().initialEvents).toEqual({});
    await converged(sink, s, clock, ['felix']);
    // Past the hour after which a relist retries an ambiguous WatchList failure (a 422 is not
    // one), a relist (watches dropped, the changes compacted away) is a paged LIST again.
    const end = clock.monotonic() + 2 * WATCHLIST_RETRY_AFTER_MS;
    await waitUntil(() => clock.monotonic() >= end, 'two hours of virtual time', { clock, stepMs: 30_000, timeoutMs: 2 * WATCHLIST_RETRY_AFTER_MS + 60_000 });
    const listsBefore = replicaListRequests(s.admin.counters(), 'sim-test');
    s.admin.closeWatches();
    s.admin.churnSteps(200);
    s.admin.compact();
    await waitUntil(async () => (await relists('expired')) >= ids.length && replicaListRequests(s.admin.counters(), 'sim-test') >= listsBefore + ids.length, 'every resource relisted after the compaction', { clock, stepMs: 100 });
    await converged(sink, s, clock, ['felix']);
    expect(refusals()).toEqual(once);
    expect(await relists('watchlist-fallback')).toBe(ids.length);
    expect(s.admin.counters().initialEvents).toEqual({});
    expect(sink.status.get('felix')).toBe('in-sync');
  });

  it('relists after compaction with exactly the real differences (no spurious updates)', async () => {
    const { clock, sink, up, s } = await setup({ feeds: ['felix'] });
    up.start(sink);
    await waitUntil(() => sink.status.get('felix') === 'in-sync', { clock });
    const before = new Map(sink.state.get('felix'));
    const updatesBefore = sink.updates('felix');
    // Changes nobody sees live: watches closed, history compacted past them.
    s.admin.closeWatches();
    s.admin.churnSteps(300);
    s.admin.compact();
    await converged(sink, s, clock, ['felix']);
    const after = sink.state.get('felix') ?? new Map<string, Buffer>();
    let differing = 0;
    for (const [k, v] of after) if (!before.get(k)?.equals(v)) differing++;
    for (const k of before.keys()) if (!after.has(k)) differing++;
    expect(differing).toBeGreaterThan(0);
    expect(sink.updates('felix') - updatesBefore).toBe(differing);
    expect(sink.status.get('felix')).toBe('in-sync');
    // Status never went back: no batch after the first in-sync one says resyncing.
    const firstInSync = sink.batches.findIndex((b) => b.batch.status === 'in-sync');
    expect(sink.batches.slice(firstInSync).filter((b) => b.batch.status === 'resyncing')).toEqual([]);
    const relists = (await up.metrics.relists.get()).values.filter((v) => v.labels.reason === 'expired').reduce((n, v) => n + v.value, 0);
    expect(relists).toBeGreaterThan(0);
    // The relist's batch is a rebase barrier (its diff cannot show what came and went in the gap);
    // the first lists' batches are not.
    expect(sink.batches.slice(0, firstInSync + 1).some((b) => b.batch.barrier === true)).toBe(false);
    expect(sink.batches.slice(firstInSync + 1).some((b) => b.batch.barrier === true)).toBe(true);
  });

  it('10,000 status-only pod updates yield zero feed updates and zero store revisions', async () => {
    const { clock, sink, up, s } = await setup({ feeds: ['felix'] });
    up.start(sink);
    await waitUntil(() => sink.status.get('felix') === 'in-sync', { clock });
    const pods = (s.admin.list('pods') as KubeObject[]).filter((p) => (p['status'] as { phase?: string })?.phase === 'Running');
    const before = sink.updates('felix');
    const revisionBefore = sink.revision('felix');
    const N = 10_000;
    for (let i = 0; i < N; i++) {
      const p = pods[i % pods.length] as KubeObject;
      s.admin.patch('pods', p.metadata?.namespace, p.metadata?.name ?? '', { status: { conditions: [{ type: 'Ready', status: i % 2 ? 'True' : 'False', lastTransitionTime: `2026-04-14T10:${String(i % 60).padStart(2, '0')}:00Z` }] } }, { status: true });
    }
    const unchanged = async (): Promise<number> => (await up.metrics.unchanged.get()).values.filter((v) => v.labels.resource === 'pods').reduce((n, v) => n + v.value, 0);
    await waitUntil(async () => (await unchanged()) >= N, `${N} unchanged pod updates counted`);
    expect(await unchanged()).toBe(N);
    expect(sink.updates('felix') - before).toBe(0);
    expect(sink.revision('felix')).toBe(revisionBefore); // zero store revisions
    await converged(sink, s, clock, ['felix']);
    // Our values are exact-size Buffers (the store never had to copy) and watermarks never regressed.
    expect(sink.storeTotals).toEqual({ copied: 0, watermarkRegressions: 0 });
  });

  it('bookmarks keep an idle resource fresh and move the resume RV', async () => {
    const { clock, sink, up, s } = await setup({ feeds: ['node-status', 'tunnel-ip-allocation'], upstreamStaleAfterMs: 120_000 }, { bookmarkIntervalMs: 5_000 });
    up.start(sink);
    await waitUntil(() => sink.status.get('node-status') === 'in-sync' && sink.status.get('tunnel-ip-allocation') === 'in-sync', { clock });
    const h0 = up.health().find((h) => h.id === 'caliconodestatuses.crd.projectcalico.org')?.lastHealthyMs ?? 0;
    // Writes elsewhere move the global RV, so bookmarks are due to every watcher.
    const node = (s.admin.list('nodes') as KubeObject[])[0] as KubeObject;
    s.admin.patch('nodes', undefined, node.metadata?.name ?? '', { metadata: { labels: { touched: 'yes' } } });
    await waitUntil(() => (up.health().find((h) => h.id === 'caliconodestatuses.crd.projectcalico.org')?.lastHealthyMs ?? 0) > h0 + 4_000, { clock, stepMs: 250 });
    const bookmarks = s.admin.counters().bookmarks;
    expect(typeof bookmarks === 'number' ? bookmarks : Object.values(bookmarks).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    expect(up.health().every((h) => !h.stale)).toBe(true);
    await converged(sink, s, clock, ['node-status', 'tunnel-ip-allocation']);
  });

  it('an apiserver restart with empty history costs a relist and zero updates, zero store revisions', async () => {
    const { clock, sink, up, s } = await setup({ feeds: ['felix', 'bgp'] });
    up.start(sink);
    await waitUntil(() => sink.status.get('felix') === 'in-sync' && sink.status.get('bgp') === 'in-sync', { clock });
    const updates = sink.updates();
    const revisions = ['felix', 'bgp'].map((f) => sink.revision(f));
    // Every watch dropped, history gone: each resource must relist from scratch. A status-only
    // write while nobody watches moves the RV past every resume point (and must stay invisible).
    s.admin.closeWatches();
    const p = (s.admin.list('pods') as KubeObject[]).find((o) => (o['status'] as { phase?: string })?.phase === 'Running') as KubeObject;
    s.admin.patch('pods', p.metadata?.namespace, p.metadata?.name ?? '', { status: { conditions: [{ type: 'Ready', status: 'False' }] } }, { status: true });
    s.admin.compact();
    const relists = async (): Promise<number> => (await up.metrics.relists.get()).values.filter((v) => v.labels.reason === 'expired').reduce((n, v) => n + v.value, 0);
    await waitUntil(async () => (await relists()) >= 10, 'ten relists after the expired history', { clock, stepMs: 100 });
    expect(await relists()).toBeGreaterThanOrEqual(10);
    await converged(sink, s, clock, ['felix', 'bgp']);
    expect(sink.updates()).toBe(updates);
    expect(['felix', 'bgp'].map((f) => sink.revision(f))).toEqual(revisions);
    expect(up.ready()).toBe(true);
  });
});
