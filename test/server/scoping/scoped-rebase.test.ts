/**
 * Per-node scoping (#20) across replicas: an agent holding node N's view from one scoping replica
 * rebases on another (PROTOCOL.md §7.1: a key's view depends on its value alone, so the argument
 * holds key by key); a token of a cluster-wide replica never resumes or rebases a scoped feed
 * (nor the reverse): the projection version differs, so it gets a snapshot.
 */
import { describe, expect, it } from 'vitest';
import { SCOPE_POLICIES, type ScopePolicy } from '../../../src/server/scoping/policy.js';
import { scopedView } from '../../../src/server/scoping/view.js';
import { workloadEndpointKey } from '../../../src/server/upstream/projections/calico-keys.js';
import { harness, type Harness } from '../helpers/harness.js';

const CAPS = ['resume.watermarks', 'scope.node'];
const felix = SCOPE_POLICIES.get('felix') as ScopePolicy;

const keyOf = (i: number): string => workloadEndpointKey(`n${1 + (i % 3)}`, 'demo', `p${i % 10}`);

/** Upstream events at rv 500 + i, each changing one endpoint of n1..n3; every fifth from 30 on deletes the one the event before set. */
function events(n: number): { key: string; value: unknown; rv: number }[] {
  return Array.from({ length: n }, (_, i) => {
    if (i >= 30 && i % 5 === 0) return { key: keyOf(i - 1), value: null, rv: 500 + i };
    return { key: keyOf(i), value: { labels: { i: String(i) }, ipv4_nets: [`10.0.0.${i % 250}/32`], annotations: { owner: `n${1 + (i % 3)}` } }, rv: 500 + i };
  });
}

function feed(h: Harness, evs: ReturnType<typeof events>, size: number): void {
  for (let i = 0; i < evs.length; i += size) {
    const part = evs.slice(i, i + size);
    h.upstream.apply('felix', Object.fromEntries(part.map((e) => [e.key, e.value])), { status: 'in-sync', watermarks: { pods: String(part.at(-1)!.rv) } });
  }
}

async function synced(h: Harness, node: string, caps: string[]): Promise<{ token: Buffer; entries: Map<string, Buffer> }> {
  const a = h.agent({ feeds: [{ name: 'felix' }], node, caps });
  await a.untilRevision('felix', h.storeRevision('felix'));
  await a.until(() => a.feed('felix').status === 'in-sync' && a.feed('felix').revision === h.storeRevision('felix'), 'in sync');
  // Its token is at the revision it holds: the snapshot's END carried it (no delta came after).
  expect(a.feed('felix').snapshots).toBe(1);
  expect(a.feed('felix').deltas).toEqual([]);
  const kept = a.feed('felix');
  a.close();
  await a.closed;
  return { token: kept.token!, entries: kept.entries };
}

describe('per-node scoping - across replicas', () => {
  it('rebases an agent\'s scoped state on another scoping replica', async () => {
    const a = await harness({ serverId: 'replica-a', scopedFeeds: ['felix'] });
    const b = await harness({ serverId: 'replica-b', scopedFeeds: ['felix'] });
    const evs = events(90);
    feed(a, evs.slice(0, 60), 12);
    feed(b, evs, 5);
    const kept = await synced(a, 'n2', CAPS);
    const again = b.agent({ feeds: [{ name: 'felix', token: kept.token, watermarks: { pods: '559' }, entries: kept.entries }], node: 'n2', caps: CAPS });
    await again.untilRevision('felix', b.storeRevision('felix'));
    await again.until(() => again.feed('felix').status === 'in-sync', 'STATUS after the rebase DELTA');
    expect(again.welcome?.feeds[0], JSON.stringify(again.welcome?.feeds[0])).toMatchObject({ mode: 'rebase' });
    expect(again.feed('felix').snapshots).toBe(0);
    const want = scopedView(felix, b.server.stores.get('felix')!.current().entries(), 'n2');
    expect([...again.feed('felix').entries].map(([k, v]) => [k, v.toString('hex')]).sort()).toEqual([...want].map(([k, v]) => [k, v.toString('hex')]).sort());
    expect(again.violations).toEqual([]);
  });

  it('gives a snapshot (projection-changed) to a cluster-wide token on a scoped replica, and to a scoped token on a cluster-wide one', async () => {
    const wide = await harness({ serverId: 'replica-wide' });
    const scoped = await harness({ serverId: 'replica-scoped', scopedFeeds: ['felix'] });
    const evs = events(40);
    feed(wide, evs, 10);
    feed(scoped, evs, 10);
    const fromWide = await synced(wide, 'n1', CAPS);
    const x = scoped.agent({ feeds: [{ name: 'felix', token: fromWide.token, watermarks: { pods: '539' }, entries: fromWide.entries }], node: 'n1', caps: CAPS });
    await x.untilRevision('felix', scoped.storeRevision('felix'));
    expect(x.welcome?.feeds[0]).toMatchObject({ mode: 'snapshot', reason: 'projection-changed' });
    const want = scopedView(felix, scoped.server.stores.get('felix')!.current().entries(), 'n1');
    expect([...x.feed('felix').entries].map(([k, v]) => [k, v.toString('hex')]).sort()).toEqual([...want].map(([k, v]) => [k, v.toString('hex')]).sort());
    const fromScoped = await synced(scoped, 'n1', CAPS);
    const y = wide.agent({ feeds: [{ name: 'felix', token: fromScoped.token, watermarks: { pods: '539' }, entries: fromScoped.entries }], node: 'n1', caps: CAPS });
    await y.untilRevision('felix', wide.storeRevision('felix'));
    expect(y.welcome?.feeds[0]).toMatchObject({ mode: 'snapshot', reason: 'projection-changed' });
    expect(y.digest('felix').equals(wide.storeDigest('felix'))).toBe(true);
    expect([x.violations, y.violations]).toEqual([[], []]);
  });
});
