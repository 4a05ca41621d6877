/**
 * The cluster's name for agents (cluster-name.ts; PROTOCOL.md §8 "Another cluster"): the UID of
 * the kube-system namespace, the same for every replica of one cluster, another for a cluster
 * built again.
 */
import { describe, expect, it } from 'vitest';
import { clusterNameOfUid, kubeSystemUidOf } from '../../src/server/upstream/cluster-name.js';
import { anotherUpstreamOnSim, upstreamOnSim } from '../support/upstream.js';
import { RecordingSink } from './helpers.js';
import { waitUntil } from '../support/wait.js';

const PODS_FEED = { name: 'pods', resources: [{ resource: 'pods' }] };

describe('the cluster name', () => {
  it('is kube-system\'s UID, read from the API server: the same for two replicas of one cluster', async () => {
    const { sim, clock, up } = await upstreamOnSim({ sim: { nodes: 2, podsPerNode: 2, seed: 5 }, up: { replicaId: 'r1', feeds: [], customFeeds: [PODS_FEED] } });
    const uid = sim.admin.get('namespaces', undefined, 'kube-system')?.['metadata'] as { uid: string };
    expect(up.cluster?.()).toBeUndefined();
    up.start(new RecordingSink());
    await waitUntil(() => up.cluster?.() !== undefined, 'the cluster named', { clock });
    expect(up.cluster?.()).toBe(clusterNameOfUid(uid.uid));
    const other = anotherUpstreamOnSim(sim, clock, { replicaId: 'r2', feeds: [], customFeeds: [PODS_FEED] });
    other.start(new RecordingSink());
    await waitUntil(() => other.cluster?.() !== undefined, 'the second replica named it', { clock });
    expect(other.cluster?.()).toBe(up.cluster?.());
    await Promise.all([up.stop(), other.stop()]);
  });

  it('is read again after a failure, and unknown until then', async () => {
    const { sim, clock, up } = await upstreamOnSim({ sim: { nodes: 1, podsPerNode: 1, seed: 5 }, up: { replicaId: 'r1', feeds: [], customFeeds: [PODS_FEED] } });
    const kubeSystem = sim.admin.get('namespaces', undefined, 'kube-system') as Record<string, unknown>;
    const gets = (): number => Number(/sim_requests_total\{verb="GET",resource="namespaces",code="200"\} (\d+)/.exec(sim.admin.metricsText())?.[1] ?? 0);
    // Not there for a while (a real API server always has it; here it stands for a read that fails).
    sim.admin.delete('namespaces', undefined, 'kube-system');
    up.start(new RecordingSink());
    // Read when first asked (an agent's HELLO), not at start.
    await clock.advanceAsync(5_000);
    expect(up.cluster?.()).toBeUndefined();
    await clock.advanceAsync(5_000);
    expect(up.cluster?.()).toBeUndefined();
    const meta = kubeSystem['metadata'] as Record<string, unknown>;
    sim.admin.create('namespaces', { ...kubeSystem, metadata: { name: 'kube-system', uid: meta['uid'] } });
    await waitUntil(() => up.cluster?.() !== undefined, 'named at a later read', { clock, stepMs: 1_000, timeoutMs: 120_000 });
    expect(up.cluster?.()).toBe(clusterNameOfUid(meta['uid'] as string));
    expect(gets()).toBe(1);
    await up.stop();
  });

  it('with clusterEpoch, is kube-system\'s UID in that epoch (another cluster to agents), and a checkpoint from before it is not used', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'cattail-epoch-'));
    try {
      const { sim, clock, up } = await upstreamOnSim({ sim: { nodes: 2, podsPerNode: 2, seed: 5 }, up: { replicaId: 'r1', feeds: [], customFeeds: [PODS_FEED], stateDir: dir } });
      const uid = (sim.admin.get('namespaces', undefined, 'kube-system')?.['metadata'] as { uid: string }).uid;
      const sink = new RecordingSink();
      up.start(sink);
      await waitUntil(() => sink.status.get('pods') === 'in-sync' && up.cluster?.() !== undefined, 'in sync and named', { clock });
      expect(up.cluster?.()).toBe(clusterNameOfUid(uid));
      await up.finalCheckpoint();
      await up.stop();
      // The same replica again, in an epoch the operator declared: named in it, started cold.
      const again = anotherUpstreamOnSim(sim, clock, { replicaId: 'r1', feeds: [], customFeeds: [PODS_FEED], stateDir: dir, clusterEpoch: 'restore-1' });
      again.start(new RecordingSink());
      expect(await again.warmStart()).not.toBe('warm');
      await waitUntil(() => again.cluster?.() !== undefined, 'named', { clock });
      expect(again.cluster?.()).toBe(`kube-system/${uid}@restore-1`);
      expect(again.cluster?.()).not.toBe(up.cluster?.());
      await again.finalCheckpoint();
      await again.stop();
      // Another epoch while kube-system cannot be read (no name to compare): the epoch in the
      // checkpoint's identity still tells the checkpoint of restore-1 from one of restore-2.
      sim.admin.delete('namespaces', undefined, 'kube-system');
      const third = anotherUpstreamOnSim(sim, clock, { replicaId: 'r1', feeds: [], customFeeds: [PODS_FEED], stateDir: dir, clusterEpoch: 'restore-2' });
      third.start(new RecordingSink());
      expect(await third.warmStart()).not.toBe('warm');
      await third.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('takes the UID of kube-system only, bounded, from the object', () => {
    expect(kubeSystemUidOf({ metadata: { name: 'kube-system', uid: 'u'.repeat(116) } }, 'e')).toBeUndefined(); // 118 + 12 bytes with the epoch
    expect(kubeSystemUidOf({ metadata: { name: 'kube-system', uid: 'a1b2' } })).toBe('a1b2');
    expect(kubeSystemUidOf({ metadata: { name: 'default', uid: 'x' } })).toBeUndefined();
    expect(kubeSystemUidOf({ metadata: { name: 'kube-system', uid: 'u'.repeat(116) } })).toBe('u'.repeat(116)); // 128 bytes named
    expect(kubeSystemUidOf({ metadata: { name: 'kube-system', uid: 'u'.repeat(117) } })).toBeUndefined();
    expect(kubeSystemUidOf({ metadata: { name: 'kube-system', uid: 'é'.repeat(60) } })).toBeUndefined(); // 60 characters, 120 bytes + 12
    expect(kubeSystemUidOf({ metadata: { name: 'kube-system' } })).toBeUndefined();
    expect(kubeSystemUidOf({ kind: 'Status', code: 404 })).toBeUndefined();
    expect(kubeSystemUidOf('garbage')).toBeUndefined();
    expect(kubeSystemUidOf(null)).toBeUndefined();
  });
});
