import { execFileSync } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FakeClock } from '../../src/clock.js';
import { REPLICA_CHECKPOINT_FILE } from '../../src/server/state/replica-checkpoint.js';
import type { UpstreamHandle } from '../../src/server/upstream/index.js';
import type { Sim } from '../../src/sim/index.js';
import { counterTotal, replicaListRequests } from '../../src/sim/counters.js';
import { anotherUpstreamOnSim, upstreamOnSim } from '../support/upstream.js';
import { waitUntil } from '../support/wait.js';
import { RecordingSink } from './helpers.js';
import { converged } from './sim-oracle.js';

/**
 * Warm restarts (`--state-dir`, DESIGN.md "Warm restart") against the simulator's load counters:
 * a replica restarted with its checkpoint makes no LIST and no WatchList (initial events), only
 * watches from the saved resourceVersions; its feeds end equal to the API server's state; what it
 * sends after the restored state is only what changed meanwhile.
 */
const FEEDS = ['felix', 'bgp'];
let dir: string;
beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'cattail-warm-')); });
afterEach(async () => { await rm(dir, { recursive: true, force: true }); });

/**
 * LIST requests of one replica (the oracle's own GETs are LISTs too, so counted per client) and
 * WatchList initial events served in all (only replicas watch): what a cold start costs.
 */
function listCost(s: Sim, replicaId: string): { lists: number; initialEvents: number } {
  const c = s.admin.counters();
  return { lists: replicaListRequests(c, replicaId), initialEvents: counterTotal(c.initialEvents) };
}
const metric = async (up: UpstreamHandle, name: string, labels: Record<string, string> = {}): Promise<number> =>
  ((await up.metrics.registry.getSingleMetric(name)?.get())?.values ?? [])
    .filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))
    .reduce((n, v) => n + v.value, 0);

async function firstRun(): Promise<{ s: Sim; clock: FakeClock; up: UpstreamHandle; sink: RecordingSink }> {
  const { sim: s, clock, up } = await upstreamOnSim({ sim: { nodes: 4, podsPerNode: 6, seed: 11 }, up: { replicaId: 'r1', feeds: FEEDS, stateDir: dir } });
  const sink = new RecordingSink();
  up.start(sink);
  await waitUntil(() => FEEDS.every((f) => sink.status.get(f) === 'in-sync'), { clock });
  await converged(sink, s, clock, FEEDS);
  return { s, clock, up, sink };
}

async function restart(s: Sim, clock: FakeClock, replicaId = 'r1b'): Promise<{ up: UpstreamHandle; sink: RecordingSink }> {
  const up = anotherUpstreamOnSim(s, clock, { replicaId, feeds: FEEDS, stateDir: dir });
  const sink = new RecordingSink();
  up.start(sink);
  await waitUntil(() => FEEDS.every((f) => sink.status.get(f) === 'in-sync'), { clock });
  await converged(sink, s, clock, FEEDS);
  return { up, sink };
}

describe('warm restart of a replica (--state-dir)', () => {
  it('a final checkpoint given up on before it started writes nothing (it would be newer than the drained agents\' state), nor does any periodic one after it', async () => {
    const { s, clock, up } = await firstRun();
    const ac = new AbortController();
    ac.abort();
    await up.finalCheckpoint(ac.signal);
    expect(await metric(up, 'cattail_state_checkpoint_writes_total', { result: 'ok' })).toBe(0);
    // The drain goes on for minutes; the state moves; the interval passes more than once.
    s.admin.churnSteps(10);
    await clock.advanceAsync(3 * 300_000);
    await new Promise((r) => setTimeout(r, 50));
    expect(await metric(up, 'cattail_state_checkpoint_writes_total', { result: 'ok' })).toBe(0);
    await up.stop();
  });

  it('a state volume that stops answering at start costs a cold start after STATE_LOAD_MAX_MS, not the replica', async () => {
    // A FIFO where the checkpoint is: reading it blocks until a writer comes, as a hung volume would.
    const fifo = join(dir, REPLICA_CHECKPOINT_FILE);
    execFileSync('mkfifo', [fifo]);
    try {
      // The bound is wall-clock time (a stall is real I/O): 300 ms here instead of STATE_LOAD_MAX_MS.
      const { sim: s, clock, up } = await upstreamOnSim({ sim: { nodes: 2, podsPerNode: 2, seed: 5 }, up: { replicaId: 'r-stall', feeds: FEEDS, stateDir: dir, stateLoadMaxMs: 300 } });
      const sink = new RecordingSink();
      up.start(sink);
      let result: string | undefined;
      const t0 = Date.now();
      void up.warmStart().then((r) => (result = r));
      await new Promise((r) => setTimeout(r, 100));
      expect(result).toBeUndefined();
      await waitUntil(() => result !== undefined, { timeoutMs: 5_000 });
      expect(Date.now() - t0).toBeGreaterThanOrEqual(280);
      expect(result).toBe('invalid');
      await waitUntil(() => FEEDS.every((f) => sink.status.get(f) === 'in-sync'), { clock });
      await converged(sink, s, clock, FEEDS);
      expect(await metric(up, 'cattail_state_starts_total', { result: 'invalid' })).toBe(1);
      await up.stop();
    } finally {
      // Let the blocked read end (a writer opens and closes the FIFO).
      await new Promise<void>((resolve) => {
        const w = createWriteStream(fifo);
        w.on('error', () => resolve());
        w.end(() => resolve());
      });
    }
  });

  it('restores the checkpoint, watches from its resourceVersions: no LIST but a one-item revision probe per resource, only the changes after it', async () => {
    const { s, clock, up, sink: first } = await firstRun();
    await up.finalCheckpoint();
    expect(await metric(up, 'cattail_state_checkpoint_writes_total', { result: 'ok' })).toBe(1);
    const sizes = new Map(FEEDS.map((f) => [f, first.state.get(f)?.size ?? 0]));
    await up.stop();
    // Changes while the replica is down.
    s.admin.churnSteps(40);
    const before = listCost(s, 'r1b');
    const { up: up2, sink } = await restart(s, clock);
    expect(await up2.warmStart()).toBe('warm');
    // The only LISTs are the revision probes (limit=1), one per restored resource, each proving
    // the server has reached the checkpoint's resourceVersion.
    const restoredResources = up2.health().filter((h) => !h.missing).length;
    expect(await metric(up2, 'cattail_upstream_requests_total', { verb: 'list' })).toBe(0);
    expect(await metric(up2, 'cattail_upstream_revision_probes_total', { result: 'ok' })).toBe(restoredResources);
    expect(listCost(s, 'r1b')).toEqual({ lists: restoredResources, initialEvents: before.initialEvents });
    expect(await metric(up2, 'cattail_upstream_relists_total')).toBe(0);
    expect(await metric(up2, 'cattail_state_restored_resources')).toBe(up2.health().filter((h) => !h.missing).length);
    // The first batch of each feed is the restored state; everything after it is the churn's
    // difference: far less than the state, and no more than one update per changed key.
    for (const f of FEEDS) {
      const batches = sink.batches.filter((b) => b.feed === f && b.batch.updates.length > 0);
      const restored = batches[0]?.batch.updates.length ?? 0;
      const after = batches.slice(1).reduce((n, b) => n + b.batch.updates.length, 0);
      // The restored batch is the whole checkpointed state (restores change nothing below it).
      expect(restored).toBe(sizes.get(f));
      if (f === 'felix') expect(after).toBeGreaterThan(0);
      expect(after).toBeLessThan(restored / 2);
    }
  });

  it('a resourceVersion the API server no longer serves (410) relists that resource and converges', async () => {
    const { s, clock, up } = await firstRun();
    await up.finalCheckpoint();
    await up.stop();
    s.admin.churnSteps(30);
    s.admin.compact();
    const before = listCost(s, 'r1b');
    const { up: up2, sink } = await restart(s, clock);
    expect(await up2.warmStart()).toBe('warm');
    // The watch from a compacted RV opens (200) and then says 410 in an ERROR event: the restored
    // state is not in sync until the relist is in. Nothing changes after the restart, so once a
    // feed said in-sync, no update may follow (one did: the relist's diff, after an in-sync that
    // vouched for the old state).
    for (const f of FEEDS) {
      const batches = sink.batches.filter((b) => b.feed === f);
      const firstInSync = batches.findIndex((b) => b.batch.status === 'in-sync');
      expect(firstInSync).toBeGreaterThanOrEqual(0);
      expect(batches.slice(firstInSync + 1).reduce((n, b) => n + b.batch.updates.length, 0)).toBe(0);
    }
    // Relisted, but against the restored state: the relists are counted as expired, not initial.
    const expired = await metric(up2, 'cattail_upstream_relists_total', { reason: 'expired' });
    expect(expired).toBeGreaterThan(0);
    const after = listCost(s, 'r1b');
    expect(after.lists + after.initialEvents).toBeGreaterThan(before.lists + before.initialEvents);
  });

  it('writes periodically only when a resourceVersion moved, and a corrupt or foreign checkpoint is ignored (cold start)', async () => {
    const { s, clock, up, sink: sinkOf } = await firstRun();
    // Default interval 300 s: two intervals without changes write once; a change writes again.
    const writes = (): Promise<number> => metric(up, 'cattail_state_checkpoint_writes_total', { result: 'ok' });
    await clock.advanceAsync(300_000);
    await waitUntil(async () => (await writes()) === 1, 'the first periodic checkpoint');
    await clock.advanceAsync(300_000);
    await new Promise((r) => setImmediate(r));
    expect(await writes()).toBe(1);
    s.admin.churnSteps(5);
    await converged(sinkOf, s, clock, FEEDS);
    await clock.advanceAsync(300_000);
    await waitUntil(async () => (await writes()) === 2, 'a checkpoint after the change');
    await up.stop();
    await writeFile(join(dir, REPLICA_CHECKPOINT_FILE), Buffer.from('CTLRSTA\n\0\0\0\x02garbage'));
    const before = listCost(s, 'r1b');
    const { up: up2 } = await restart(s, clock);
    expect(await up2.warmStart()).toBe('invalid');
    expect(await metric(up2, 'cattail_state_starts_total', { result: 'invalid' })).toBe(1);
    const after = listCost(s, 'r1b');
    expect(after.lists + after.initialEvents).toBeGreaterThan(before.lists + before.initialEvents);
    // A checkpoint of another cluster (another identity) is not restored either.
    await up2.finalCheckpoint();
    await up2.stop();
    const other = anotherUpstreamOnSim(s, clock, { replicaId: 'r3', feeds: FEEDS, stateDir: dir, clusterId: 'https://other-cluster:6443' });
    other.start(new RecordingSink());
    expect(await other.warmStart()).toBe('invalid');
  });

  it('a checkpoint of a cluster built again at the same address and CA (another kube-system UID) is not restored; with the namespace unreadable it is trusted and keeps its cluster', async () => {
    const { s, clock, up } = await firstRun();
    await up.finalCheckpoint();
    await up.stop();
    const kubeSystem = s.admin.get('namespaces', undefined, 'kube-system') as { metadata: { uid: string } };
    const rebuild = (uid: string | undefined): void => {
      if (s.admin.get('namespaces', undefined, 'kube-system') !== undefined) s.admin.delete('namespaces', undefined, 'kube-system');
      if (uid !== undefined) s.admin.create('namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'kube-system', uid } });
    };
    // Unreadable at the restart (a real API server always has it: this stands for a GET that
    // fails): the checkpoint is restored on its identity alone, as before the name was compared.
    rebuild(undefined);
    const { up: up2 } = await restart(s, clock);
    expect(await up2.warmStart()).toBe('warm');
    // Its next checkpoint keeps the name the restored one was saved under (the state is that one).
    await up2.finalCheckpoint();
    await up2.stop();
    // The same API server address and CA, another cluster: what kubeadm reset and init leave.
    rebuild('0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0');
    const before = listCost(s, 'r1b');
    const { up: up3 } = await restart(s, clock);
    expect(await up3.warmStart()).toBe('invalid');
    expect(await metric(up3, 'cattail_state_starts_total', { result: 'invalid' })).toBe(1);
    expect(await metric(up3, 'cattail_state_restored_resources')).toBe(0);
    const after = listCost(s, 'r1b');
    expect(after.lists + after.initialEvents).toBeGreaterThan(before.lists + before.initialEvents);
    expect(up3.cluster?.()).not.toContain(kubeSystem.metadata.uid);
    // Its own checkpoint names this cluster: the next restart is warm again.
    await up3.finalCheckpoint();
    await up3.stop();
    const { up: up4 } = await restart(s, clock, 'r1c');
    expect(await up4.warmStart()).toBe('warm');
    await up4.stop();
  });

  it('checkpoints a missing CRD\'s evidence: the restored revision names it at the value agents hold, so they can still rebase', async () => {
    const PEERS = 'bgppeers.crd.projectcalico.org';
    const { sim: s, clock, up } = await upstreamOnSim({ sim: { nodes: 4, podsPerNode: 6, seed: 11, omitResources: [PEERS] }, up: { replicaId: 'r1', feeds: FEEDS, stateDir: dir } });
    const first = new RecordingSink();
    up.start(first);
    await waitUntil(() => FEEDS.every((f) => first.status.get(f) === 'in-sync') && first.batches.some((b) => b.feed === 'bgp' && b.batch.watermarks?.[PEERS] !== undefined), { clock });
    await converged(first, s, clock, FEEDS);
    await up.finalCheckpoint();
    // What an agent of this replica holds for the bgp feed: its last watermarks, the peers' evidence among them.
    const held = first.stores.get('bgp')?.meta().watermarks ?? {};
    expect(held[PEERS]).toMatch(/^[1-9][0-9]*$/);
    await up.stop();
    s.admin.churnSteps(20); // the cluster moves on: a fresh look finds a newer resourceVersion
    const { up: up2, sink } = await restart(s, clock);
    expect(await up2.warmStart()).toBe('warm');
    const bgp = sink.batches.filter((b) => b.feed === 'bgp');
    expect(bgp.find((b) => b.batch.updates.length > 0)?.batch.watermarks?.[PEERS]).toBe(held[PEERS]);
    await waitUntil(() => Number(sink.stores.get('bgp')?.meta().watermarks[PEERS]) > Number(held[PEERS]), 'looked again after the restart', { clock });
    // The agent rebases: a revision of the restarted replica stands for watermarks at or below its own.
    expect(sink.stores.get('bgp')?.rebase(held)).toMatchObject({ kind: 'revision' });
    await up2.stop();
  });

  it('the checkpoint is never ahead of the store: watermark-only changes the dispatcher holds (up to a second) are handed over first, so a drained agent can rebase after the restart', async () => {
    const { sim: s, clock, up } = await upstreamOnSim({ sim: { nodes: 3, podsPerNode: 2, seed: 7 }, up: { replicaId: 'r1', feeds: ['bgp'], stateDir: dir } });
    const first = new RecordingSink();
    up.start(first);
    await waitUntil(() => first.status.get('bgp') === 'in-sync', { clock });
    await clock.advanceAsync(5_000);
    const node = (s.admin.list('nodes')[0] as { metadata: { name: string } }).metadata.name;
    const events = (): Promise<number> => metric(up, 'cattail_upstream_watch_events_total', { resource: 'nodes' });
    const seen = await events();
    // Two heartbeats (status-only: no bgp entry moves, only the feed's nodes watermark), the
    // second within the dispatcher's one-second hold after the first. The fake clock stands still
    // while they arrive (real I/O), so the second is held.
    const beat = (at: string): unknown => s.admin.patch('nodes', undefined, node, { status: { conditions: [{ type: 'Ready', status: 'True', lastHeartbeatTime: at }] } }, { status: true });
    beat('2030-01-01T00:00:00Z');
    await waitUntil(async () => (await events()) > seen, 'the first heartbeat seen', { timeoutMs: 10_000 });
    beat('2030-01-01T00:00:10Z');
    await waitUntil(async () => (await events()) > seen + 1, 'the second heartbeat seen', { timeoutMs: 10_000 });
    await up.finalCheckpoint();
    // What an agent drained now holds: the store's watermarks.
    const held = { ...first.stores.get('bgp')!.meta().watermarks };
    expect(held['nodes']).toBe(String(s.admin.currentRv()));
    await up.stop();
    const up2 = anotherUpstreamOnSim(s, clock, { replicaId: 'r1b', feeds: ['bgp'], stateDir: dir });
    const sink = new RecordingSink();
    up2.start(sink);
    expect(await up2.warmStart()).toBe('warm');
    await waitUntil(() => sink.status.get('bgp') === 'in-sync', { clock });
    expect(sink.stores.get('bgp')!.rebase(held)).toMatchObject({ kind: 'revision' });
    await up2.stop();
  });

  it('a CRD deleted while the replica was down: its emptying is a rebase barrier, so an agent holding an object created after the checkpoint is not rebased past its deletion', async () => {
    const PEERS = 'bgppeers.crd.projectcalico.org';
    const { sim: s, clock, up } = await upstreamOnSim({ sim: { nodes: 3, podsPerNode: 2, seed: 7 }, up: { replicaId: 'r1', feeds: ['bgp'], stateDir: dir } });
    const first = new RecordingSink();
    up.start(first);
    await waitUntil(() => first.status.get('bgp') === 'in-sync', { clock });
    await up.finalCheckpoint();
    // After the checkpoint, while agents are still on r1: a BGPPeer is created and reaches them.
    const before = new Set(first.state.get('bgp')!.keys());
    s.admin.create(PEERS, { apiVersion: 'crd.projectcalico.org/v1', kind: 'BGPPeer', metadata: { name: 'peer-x' }, spec: { peerIP: '10.9.9.9', asNumber: 64512 } });
    await waitUntil(() => [...first.state.get('bgp')!.keys()].some((k) => !before.has(k)), { clock });
    await clock.advanceAsync(2_000);
    const agentState = new Map(first.state.get('bgp')!);
    const agentMarks = { ...first.stores.get('bgp')!.meta().watermarks };
    await up.stop();
    // While it is down the CRD goes, and its objects with it: the restored view never held peer-x.
    s.admin.setCrdInstalled(PEERS, false);
    s.admin.churnSteps(5);
    const up2 = anotherUpstreamOnSim(s, clock, { replicaId: 'r1b', feeds: ['bgp'], stateDir: dir });
    const sink = new RecordingSink();
    up2.start(sink);
    expect(await up2.warmStart()).toBe('warm');
    await waitUntil(() => sink.status.get('bgp') === 'in-sync' && Number(sink.stores.get('bgp')!.meta().watermarks[PEERS]) > Number(agentMarks[PEERS]), { clock });
    await clock.advanceAsync(3_000);
    const store = sink.stores.get('bgp')!;
    const found = store.rebase(agentMarks);
    // Either a snapshot, or a rebase whose difference leaves the agent equal to the replica.
    if (found.kind === 'revision') {
      const d = store.since(found.revision);
      if (d.kind !== 'delta') throw new Error(`since(${found.revision}) is ${d.kind}`);
      const after = new Map(agentState);
      for (const [k, v] of d.upserts) after.set(k, v);
      for (const k of d.deletes) after.delete(k);
      expect([...after.keys()].filter((k) => !sink.state.get('bgp')!.has(k))).toEqual([]);
    }
    expect(found.kind).toBe('none');
    await up2.stop();
  });
});
