/**
 * `connect({ service })`: the client discovers the replicas from the Service's EndpointSlices
 * before each attempt, follows a replica that drains (its endpoint turns not-ready) to one that is
 * ready, waits (reconnecting, coded) while the Service has none, and says in its status when it
 * had to fall back to not-ready replicas. Real servers on loopback; the EndpointSlices come from
 * the simulated API server (the agent's real client-node path) or, for timing, an in-memory source.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { EndpointSliceLike, EndpointSliceSource } from '../../src/client/discovery.js';
import { startSim, type Sim } from '../../src/sim/index.js';
import type { JsonObject } from '../../src/sim/encode.js';
import { waitUntil } from '../support/wait.js';
import { on, skipWait, start } from './helpers/harness.js';
import { type ScriptedReplica, scriptedReplica } from '../support/replica.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

async function replica(serverId: string): Promise<ScriptedReplica> {
  const r = await scriptedReplica(serverId, cleanups);
  // Different data is a different upstream point: B is ahead (same watermarks would claim the
  // same state, and an agent would rebase onto B and fail its digest check).
  r.upstream.apply('felix', { [`/pods/demo/${serverId}`]: { serverId } }, { status: 'in-sync', watermarks: { pods: serverId === 'real-b' ? '11' : '10' } });
  return r;
}

/** One slice per replica (each replica has its own loopback port, and a slice has one port set). */
function sliceOf(name: string, port: number, node: string, ready: boolean): EndpointSliceLike & JsonObject {
  return {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: 'IPv4',
    metadata: { name, namespace: 'calico-system', labels: { 'kubernetes.io/service-name': 'cattail' } },
    ports: [{ name: 'agents', port }, { name: 'metrics', port: 1 }],
    endpoints: [{ addresses: ['127.0.0.1'], nodeName: node, conditions: { ready, terminating: !ready } }],
  };
}

class MemorySource implements EndpointSliceSource {
  slices: EndpointSliceLike[] = [];
  lists = 0;
  async list(namespace: string, service: string): Promise<readonly EndpointSliceLike[]> {
    this.lists++;
    expect([namespace, service]).toEqual(['calico-system', 'cattail']);
    return this.slices;
  }
}

describe('client - replicas discovered from the Service', () => {
  let sim: Sim | undefined;
  afterEach(async () => {
    await sim?.close();
    sim = undefined;
  });

  it('reads the slices with its kubeconfig, and moves to a ready replica when its own drains', async () => {
    const a = await replica('real-a');
    const b = await replica('real-b');
    sim = await startSim({ nodes: 1, podsPerNode: 1, churnPerSec: 0, seed: 5 });
    const eps = 'endpointslices.discovery.k8s.io';
    // Replica A runs on the agent's own node: discovery puts it first.
    sim.admin.create(eps, sliceOf('cattail-a', a.port, 'test-node', true));
    sim.admin.create(eps, sliceOf('cattail-b', b.port, 'node-2', true));
    const { client, clock, guard, rec } = start({ endpoints: [], service: 'calico-system/cattail', kubeconfig: sim.kubeconfigPath, discoveryMinIntervalMs: 0 });
    cleanups.push(() => client.destroy());
    guard.allow('CATTAIL_CLIENT_SERVER_CLOSED', 'CATTAIL_CLIENT_CONNECT_FAILED');
    await client.whenInSync();
    expect(client.stats.serverId).toBe('real-a');
    // A rollout: A's endpoint turns not-ready (terminating), then A drains its agents.
    sim.admin.update(eps, sliceOf('cattail-a', a.port, 'test-node', false));
    await a.server.close();
    await waitUntil(() => rec.last('reconnecting') !== undefined, 'left A', on(client));
    for (let i = 0; i < 6 && !(client.inSync && client.stats.serverId === 'real-b'); i++) {
      await waitUntil(() => (client.state === 'reconnecting' && clock.nextDelay() !== undefined) || client.inSync, 'settled', on(client));
      if (!client.inSync) await skipWait(clock);
      // The look at the slices is a real request: the attempt starts when it answers.
      await waitUntil(() => client.inSync || (client.state === 'reconnecting' && clock.nextDelay() !== undefined), 'attempt settled', on(client));
    }
    expect(client.stats.serverId, JSON.stringify(rec.events.map((e) => [e.state, e.endpoint, e.reason?.code, e.discovery]))).toBe('real-b');
    expect(client.feed('felix').get('/pods/demo/real-b')).toEqual({ serverId: 'real-b' });
    expect(guard.problems()).toEqual([]);
  });

  it('waits, coded, while the Service has no replica; looks again before each attempt; reports the not-ready fallback', async () => {
    const a = await replica('real-a');
    const source = new MemorySource();
    const { client, clock, rec } = start({ endpoints: [], service: 'calico-system/cattail', endpointSliceSource: source, discoveryMinIntervalMs: 1_000 });
    cleanups.push(() => client.destroy());
    await waitUntil(() => client.state === 'reconnecting', 'no replica yet', on(client));
    const waiting = rec.last('reconnecting')!;
    expect(waiting.reason?.code).toBe('CATTAIL_CLIENT_DISCOVERY_FAILED');
    expect(waiting.discovery).toEqual({ endpoints: 0, fallbackNotReady: false, error: undefined });
    expect(source.lists).toBe(1);
    // Only a not-ready replica (e.g. every replica is stale because the API server is down):
    // better its last known state than nothing, and the status says so.
    source.slices = [sliceOf('cattail-a', a.port, 'node-1', false)];
    // Reconnect waits are shorter than discoveryMinIntervalMs at first: the empty answer is
    // reused (no API request) until the interval has passed, then looked at again.
    for (let i = 0; i < 12 && client.state === 'reconnecting'; i++) {
      await skipWait(clock);
      await waitUntil(() => client.state !== 'connecting', 'attempt settled', on(client));
    }
    await client.whenInSync();
    expect(source.lists).toBe(2);
    expect(clock.monotonic()).toBeGreaterThanOrEqual(1_000);
    expect(rec.last('connecting')!.discovery).toMatchObject({ endpoints: 1, fallbackNotReady: true });
  });

  it('keeps the last list when a look fails, and says why', async () => {
    const a = await replica('real-a');
    let fail = false;
    const source: EndpointSliceSource = {
      list: async () => {
        if (fail) throw new Error('apiserver unreachable');
        return [sliceOf('cattail-a', a.port, 'node-1', true)];
      },
    };
    const { client, clock, rec, guard } = start({ endpoints: [], service: 'calico-system/cattail', endpointSliceSource: source, discoveryMinIntervalMs: 0 });
    cleanups.push(() => client.destroy());
    guard.allow('CATTAIL_CLIENT_SERVER_CLOSED', 'CATTAIL_CLIENT_CONNECT_FAILED');
    await client.whenInSync();
    fail = true;
    await a.server.close();
    await waitUntil(() => client.state === 'reconnecting', 'lost A', on(client));
    await skipWait(clock);
    await waitUntil(() => rec.last('connecting')!.discovery?.error !== undefined, 'failed look reported', on(client));
    const d = rec.last('connecting')!.discovery!;
    expect(d.error?.code).toBe('CATTAIL_CLIENT_DISCOVERY_FAILED');
    expect(d.error?.message).toContain('apiserver unreachable');
    expect(d.endpoints).toBe(1); // the previous list, kept
  });

  it('gives up a look that hangs after discoveryTimeoutMs and reconnects with the last list', async () => {
    const a = await replica('real-a');
    const b = await replica('real-b');
    let hang = false;
    let lists = 0;
    const source: EndpointSliceSource = {
      // A black-holed API server: the request never answers (client-node sets no deadline).
      list: () => {
        lists++;
        return hang ? new Promise(() => undefined) : Promise.resolve([sliceOf('cattail-a', a.port, 'node-1', true), sliceOf('cattail-b', b.port, 'node-2', true)]);
      },
    };
    const { client, clock, rec, guard } = start({ endpoints: [], service: 'calico-system/cattail', endpointSliceSource: source, discoveryMinIntervalMs: 0, discoveryTimeoutMs: 5_000 });
    cleanups.push(() => client.destroy());
    guard.allow('CATTAIL_CLIENT_SERVER_CLOSED', 'CATTAIL_CLIENT_CONNECT_FAILED', 'CATTAIL_CLIENT_REPLICA_BEHIND');
    await client.whenInSync();
    const first = client.stats.serverId === 'real-a' ? a : b;
    hang = true;
    await first.server.close();
    await waitUntil(() => client.state === 'reconnecting', 'lost the first replica', on(client));
    for (let i = 0; i < 20 && !(client.inSync && client.stats.serverId !== first.server.serverId); i++) {
      await skipWait(clock);
      await waitUntil(() => client.state !== 'connecting' && client.state !== 'syncing', 'attempt settled', on(client));
    }
    expect(client.inSync).toBe(true);
    expect(client.stats.serverId).not.toBe(first.server.serverId);
    const d = rec.last('connecting')!.discovery!;
    expect(d.error?.code).toBe('CATTAIL_CLIENT_DISCOVERY_FAILED');
    expect(d.error?.message).toContain('did not come within 5000 ms');
    // The hung request is not joined by one per look.
    expect(lists).toBe(2);
  });
});
