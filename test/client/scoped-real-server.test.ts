/**
 * Per-node scoping (#20) with the client library against the real server: the library advertises
 * scope.node, applies scoped units and snapshots, verifies the per-node digests, and resumes a
 * scoped feed after a network blip; its state is always its node's scoped view of the store.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Client } from '../../src/client/index.js';
import { FakeClock } from '../../src/clock.js';
import { decodeValue } from '../../src/snapshot/index.js';
import { SCOPE_POLICIES, type ScopePolicy } from '../../src/server/scoping/policy.js';
import { scopedView } from '../../src/server/scoping/view.js';
import { hostConfigKey, ipPoolKey, workloadEndpointKey } from '../../src/server/upstream/projections/calico-keys.js';
import { scriptedReplica, type ScriptedReplica } from '../support/replica.js';
import { waitUntil } from '../support/wait.js';
import { on, skipWait, start, type Setup } from './helpers/harness.js';
import { TcpProxy } from './helpers/tcp-proxy.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

const felix = SCOPE_POLICIES.get('felix') as ScopePolicy;

function wep(node: string, pod: number, gen = 0): [string, Record<string, unknown>] {
  return [workloadEndpointKey(node, 'demo', `p${pod}`), {
    state: 'active', name: `cali${pod}`, active_instance_id: `${node}-${gen}`, mac: null, profile_ids: ['kns.demo'], ipv4_nets: [`10.${pod}.1.${gen}/32`], ipv6_nets: null,
    labels: { app: `a${pod % 2}`, gen: String(gen) }, annotations: { owner: node, gen: String(gen) },
  }];
}

function cluster(gen: number, pods = 6): Record<string, unknown> {
  const out: Record<string, unknown> = { [ipPoolKey('10.0.0.0/8')]: { cidr: '10.0.0.0/8', gen } };
  for (const n of ['n1', 'n2', 'n3']) {
    for (let p = 0; p < pods; p++) { const [k, v] = wep(n, p, gen); out[k] = v; }
    out[hostConfigKey(n, 'IpInIpTunnelAddr')] = `10.9.0.${gen}`;
  }
  return out;
}

function setup(opts: Parameters<typeof start>[0]): Setup {
  const s = start(opts);
  cleanups.push(() => s.client.destroy());
  return s;
}

function expectView(r: ScriptedReplica, client: Client, node: string): void {
  const store = r.server.stores.get('felix')!;
  const want = scopedView(felix, store.current().entries(), node);
  const got = new Map([...client.feed('felix').entries()]);
  expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
  for (const [k, v] of want) expect(got.get(k), k).toEqual(decodeValue(v));
}

async function caughtUp(r: ScriptedReplica, client: Client): Promise<void> {
  await waitUntil(() => client.inSync && client.feed('felix').revision === r.server.stores.get('felix')!.revision, 'caught up', on(client));
}

describe('client library on a scoped feed (real server)', () => {
  it('holds its node\'s view through snapshot, churn and a resume after a blip; digests verified; never another node\'s full endpoint', async () => {
    const r = await scriptedReplica('scoped-a', cleanups, { scopedFeeds: ['felix'] });
    r.upstream.apply('felix', cluster(0), { status: 'in-sync', watermarks: { pods: '1' } });
    const proxy = await TcpProxy.start(r.port);
    cleanups.push(() => proxy.stop());
    const a = setup({ endpoints: [proxy.url], node: 'n1' });
    const b = setup({ endpoints: [r.server.url], node: 'n2' });
    a.guard.allow('CATTAIL_CLIENT_SERVER_CLOSED', 'CATTAIL_CLIENT_CONNECT_FAILED');
    await a.client.whenInSync();
    await b.client.whenInSync();
    expectView(r, a.client, 'n1');
    expectView(r, b.client, 'n2');
    for (let gen = 1; gen <= 3; gen++) {
      r.upstream.apply('felix', { ...Object.fromEntries([wep('n1', gen, gen), wep('n2', gen, gen), wep('n3', gen, gen)]), [wep('n2', 5)[0]]: gen === 2 ? null : wep('n2', 5, gen)[1] }, { watermarks: { pods: String(1 + gen) } });
      await caughtUp(r, a.client);
      await caughtUp(r, b.client);
      expectView(r, a.client, 'n1');
      expectView(r, b.client, 'n2');
    }
    // A blip: a resumes with the scoped catch-up of what it missed, no second snapshot.
    proxy.cut();
    await waitUntil(() => a.client.state === 'reconnecting', 'reconnecting', on(a.client));
    r.upstream.apply('felix', { ...cluster(7, 3), [wep('n1', 0)[0]]: null }, { watermarks: { pods: '9' } });
    await skipWait(a.clock);
    await caughtUp(r, a.client);
    await caughtUp(r, b.client);
    expect(a.client.stats.resumes).toBe(1);
    expect(a.client.stats.snapshotsApplied).toBe(1);
    expectView(r, a.client, 'n1');
    expectView(r, b.client, 'n2');
    // Everything a was handed of other nodes' endpoints was slim.
    for (const c of a.rec.changes) {
      for (const u of c.upserts) {
        const owner = felix.nodeOf(u.key, undefined);
        if (owner === undefined || owner === 'n1') continue;
        expect(Object.keys(decodeValue(u.raw) as object).sort(), u.key).toEqual(['ipv4_nets', 'ipv6_nets', 'labels', 'profile_ids']);
      }
    }
    expect(a.guard.problems()).toEqual([]);
    expect(b.guard.problems()).toEqual([]);
  });

  it('when its replica crashes within the second a digest STATUS is held back, the agent still presents the watermarks of what it applied: a lagging replica refuses it (4015) instead of serving an older view', async () => {
    // A's clock stands still: the digest STATUS it holds back never comes due, as if A crashed
    // within that second (the real cadence would send it within ~1 s of wall time).
    const a = await scriptedReplica('scoped-a', cleanups, { scopedFeeds: ['felix'], clock: new FakeClock(), flushWindowMs: 0, pingIntervalMs: 600_000, pongTimeoutMs: 600_000 });
    const b = await scriptedReplica('scoped-b', cleanups, { scopedFeeds: ['felix'] });
    for (const r of [a, b]) r.upstream.apply('felix', cluster(0), { status: 'in-sync', watermarks: { pods: '1' } });
    const proxy = await TcpProxy.start(a.port);
    cleanups.push(() => proxy.stop());
    const s = setup({ endpoints: [proxy.url, b.server.url], node: 'n1', random: () => 0.999999 });
    s.guard.allow('CATTAIL_CLIENT_SERVER_CLOSED', 'CATTAIL_CLIENT_CONNECT_FAILED', 'CATTAIL_CLIENT_REPLICA_BEHIND');
    await s.client.whenInSync();
    expect(s.client.stats.serverId).toBe('scoped-a');
    // Two changes within a second of the last digest STATUS: A holds the next one back (§4.7). The
    // second changes n1's own endpoint, which must never come back in its old form.
    const own = wep('n1', 0)[0];
    const genOf = (v: unknown): number => Number((v as { labels: { gen: string } }).labels.gen);
    a.upstream.apply('felix', Object.fromEntries([wep('n2', 0, 1)]), { watermarks: { pods: '2' } });
    a.upstream.apply('felix', Object.fromEntries([wep('n1', 0, 2)]), { watermarks: { pods: '3' } });
    await caughtUp(a, s.client);
    expect(genOf(s.client.feed('felix').get(own))).toBe(2);
    // scope.watermarks: each unit ended with the revision's watermarks, digest or not.
    await waitUntil(() => s.client.feed('felix').status.watermarks['pods'] === '3', 'watermarks of the applied state', on(s.client));
    // B has only the first change. A then crashes: cut, unreachable, no GOODBYE, no owed STATUS.
    b.upstream.apply('felix', Object.fromEntries([wep('n2', 0, 1)]), { watermarks: { pods: '2' } });
    proxy.cut();
    await proxy.stop();
    for (let i = 0; i < 8 && s.rec.last('behind') === undefined; i++) {
      await waitUntil(() => s.client.state === 'reconnecting' || s.client.state === 'behind', 'left A', on(s.client));
      if (s.rec.last('behind') === undefined) await skipWait(s.clock);
      await waitUntil(() => s.client.state !== 'connecting' && s.client.state !== 'syncing', 'attempt settled', on(s.client));
    }
    expect(s.rec.last('behind')?.reason?.details).toMatchObject({ endpoint: b.server.url, closeCode: 4015 });
    expect(s.client.stats.snapshotsApplied).toBe(1);
    expect(genOf(s.client.feed('felix').get(own))).toBe(2);
    // B catches up; the agent moves there and holds B's view of n1.
    b.upstream.apply('felix', Object.fromEntries([wep('n1', 0, 2)]), { watermarks: { pods: '3' } });
    for (let i = 0; i < 8 && !(s.client.inSync && s.client.stats.serverId === 'scoped-b'); i++) {
      await skipWait(s.clock);
      await waitUntil(() => s.client.state !== 'connecting' && s.client.state !== 'syncing', 'attempt settled', on(s.client));
    }
    await caughtUp(b, s.client);
    expectView(b, s.client, 'n1');
    // Never an older state after a newer one: no change ever took n1's endpoint back to gen 0.
    const gens = s.rec.changes.flatMap((c) => c.upserts.filter((u) => u.key === own).map((u) => genOf(decodeValue(u.raw))));
    expect(gens).toEqual(gens.slice().sort((x, y) => x - y));
    expect(s.guard.problems()).toEqual([]);
  });

  it('a client that does not accept scoped feeds (a tier-2 relay) is refused with 4006, not given one node\'s view', async () => {
    const r = await scriptedReplica('scoped-b', cleanups, { scopedFeeds: ['felix'] });
    r.upstream.apply('felix', cluster(0), { status: 'in-sync' });
    const relay = setup({ endpoints: [r.server.url], node: 'relay', acceptScopedFeeds: false, raw: true });
    relay.guard.allow('CATTAIL_CLIENT_REJECTED');
    const refused = (): boolean => relay.rec.events.some((e) => e.reason?.code === 'CATTAIL_CLIENT_REJECTED' && (e.reason.details as { closeCode?: number; serverError?: { code?: string } } | undefined)?.serverError?.code === 'CATTAIL_SERVER_SCOPE_UNSUPPORTED');
    await waitUntil(refused, 'refused with 4006', on(relay.client));
    expect(relay.rec.events.at(-1)?.reason?.details).toMatchObject({ closeCode: 4006 });
    expect(relay.client.feed('felix').size).toBe(0);
  });
});
