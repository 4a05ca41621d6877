/**
 * The Felix-style syncer adapter (src/client/syncer.ts) against the real fan-out server fed by a
 * scripted upstream: update types new / updated / deleted and the status edges
 * wait-for-datastore → resync → in-sync, as a consumer of Typha's client sees them.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { attachSyncer, type SyncerUpdate, type SyncStatus } from '../../src/client/index.js';
import { startServer } from '../../src/server/server.js';
import { ScriptedUpstream } from '../support/scripted-upstream.js';
import { TEST_TRANSPORT } from '../support/transport.js';
import { waitUntil } from '../support/wait.js';
import { on, skipWait, start } from './helpers/harness.js';
import { TcpProxy } from './helpers/tcp-proxy.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

const WEP = '/calico/v1/host/worker-1/workload/k8s/demo%2fweb-1/endpoint/eth0';
const PROFILE = '/calico/v1/policy/profile/kns.demo/rules';

describe('client syncer adapter (Felix callback shape)', () => {
  it('reports new, updated and deleted KVs and the wait-for-datastore → resync → in-sync edges', async () => {
    const upstream = ScriptedUpstream.withFeeds('felix');
    const server = await startServer({ upstream, defaultMetrics: false, flushWindowMs: 1, serverId: 'syncer-a', transport: TEST_TRANSPORT });
    cleanups.push(() => server.close());
    upstream.apply('felix', { [WEP]: { state: 'active', ipv4_nets: ['192.168.226.66/32'] }, [PROFILE]: { inbound_rules: [{ action: 'allow' }] } }, { status: 'in-sync', watermarks: { pods: '10' } });

    const { client } = start({ endpoints: [server.url] });
    cleanups.push(() => client.destroy());
    const statuses: SyncStatus[] = [];
    const updates: SyncerUpdate[][] = [];
    const detach = attachSyncer(client, { onUpdates: (u) => updates.push(u), onStatusUpdated: (s) => statuses.push(s) });
    await client.whenInSync();
    expect(statuses).toEqual(['wait-for-datastore', 'resync', 'in-sync']);
    expect(updates.flat().map((u) => [u.key, u.updateType]).sort()).toEqual([[WEP, 'new'], [PROFILE, 'new']]);

    upstream.apply('felix', { [WEP]: { state: 'active', ipv4_nets: ['192.168.226.67/32'] } }, { watermarks: { pods: '11' } });
    await waitUntil(() => updates.length === 2, on(client));
    expect(updates[1]).toEqual([{ feed: 'felix', key: WEP, value: { state: 'active', ipv4_nets: ['192.168.226.67/32'] }, updateType: 'updated' }]);

    upstream.apply('felix', { [WEP]: null }, { watermarks: { pods: '12' } });
    await waitUntil(() => updates.length === 3, on(client));
    expect(updates[2]).toEqual([{ feed: 'felix', key: WEP, value: null, updateType: 'deleted' }]);

    // A second adapter attached late gets resync, the held state as new, and only then in-sync.
    const seen: string[] = [];
    attachSyncer(client, { onUpdates: (u) => seen.push(...u.map((x) => `${x.updateType} ${x.key}`)), onStatusUpdated: (s) => seen.push(s) })();
    expect(seen).toEqual(['resync', `new ${PROFILE}`, 'in-sync']);


    detach();
    upstream.apply('felix', { [WEP]: { state: 'active' } }, { watermarks: { pods: '13' } });
    await waitUntil(() => client.feed('felix').has(WEP), on(client));
    expect(updates).toHaveLength(3);
  });

  it('reports nothing new for a blip after in-sync: the state is kept and resumed', async () => {
    const upstream = ScriptedUpstream.withFeeds('felix');
    const server = await startServer({ upstream, defaultMetrics: false, flushWindowMs: 1, serverId: 'syncer-b', transport: TEST_TRANSPORT });
    cleanups.push(() => server.close());
    upstream.apply('felix', { [WEP]: { state: 'active' } }, { status: 'in-sync', watermarks: { pods: '10' } });
    const proxy = await TcpProxy.start(Number(new URL(server.url).port));
    cleanups.push(() => proxy.stop());
    const { client, clock } = start({ endpoints: [proxy.url] });
    cleanups.push(() => client.destroy());
    const statuses: SyncStatus[] = [];
    attachSyncer(client, { onUpdates: () => undefined, onStatusUpdated: (s) => statuses.push(s) });
    await client.whenInSync();
    proxy.cut();
    await waitUntil(() => client.state === 'reconnecting', 'reconnecting', on(client));
    await skipWait(clock);
    await waitUntil(() => client.inSync && client.stats.resumes === 1, 'resumed', on(client));
    expect(statuses).toEqual(['wait-for-datastore', 'resync', 'in-sync']);
  });
});
