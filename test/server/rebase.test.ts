/**
 * The server side of a rebase (PROTOCOL.md §7.1): two in-process replicas fed the same upstream
 * events in different batch groupings; an agent synced on one presents its token and watermarks
 * to the other. Which answers it gets, and that the DELTA it gets makes its state the store's.
 */
import { describe, expect, it } from 'vitest';
import { encodeToken } from '../../src/server/transport/tokens.js';
import { harness, type Harness } from './helpers/harness.js';

const CAPS = ['resume.watermarks'];

/** Upstream events at rv 500 + i, each changing one of 50 pods; every fourth deletes one that exists. */
function events(n: number, from = 0): { key: string; value: unknown; rv: number }[] {
  return Array.from({ length: n }, (_, j) => {
    const i = from + j;
    const deleting = i >= 50 && i % 4 === 0;
    return { key: `/pods/ns/p${i % 50}`, value: deleting ? null : { i }, rv: 500 + i };
  });
}

function feed(h: Harness, evs: ReturnType<typeof events>, size: number): void {
  for (let i = 0; i < evs.length; i += size) {
    const part = evs.slice(i, i + size);
    h.upstream.apply('felix', Object.fromEntries(part.map((e) => [e.key, e.value])), { status: 'in-sync', watermarks: { pods: String(part.at(-1)!.rv) } });
  }
}

async function syncedAgent(h: Harness): Promise<{ token: Buffer; entries: Map<string, Buffer>; revision: number }> {
  const first = h.agent({ feeds: [{ name: 'felix' }] });
  await first.untilRevision('felix', h.storeRevision('felix'));
  await first.until(() => first.feed('felix').status === 'in-sync', 'in sync');
  const kept = first.feed('felix');
  first.close();
  await first.closed;
  return { token: kept.token!, entries: kept.entries, revision: kept.revision };
}

describe('server - rebase', () => {
  it('continues another replica\'s agent from its watermarks with the compacted difference', async () => {
    const a = await harness({ serverId: 'replica-a' });
    const b = await harness({ serverId: 'replica-b' });
    const evs = events(120);
    feed(a, evs.slice(0, 90), 30);
    feed(b, evs, 7);
    const kept = await syncedAgent(a);
    const again = b.agent({ feeds: [{ name: 'felix', token: kept.token, watermarks: { pods: '589' }, entries: kept.entries }], caps: CAPS });
    await again.untilRevision('felix', b.storeRevision('felix'));
    await again.until(() => again.feed('felix').status === 'in-sync', 'STATUS after the rebase DELTA');
    // B's batches end at rv 506, 513, …: the newest at or below 589 is the 12th (events 77..83).
    expect(again.welcome?.feeds[0]).toEqual({ name: 'felix', id: 0, mode: 'rebase', revision: 12 });
    expect(again.feed('felix').snapshots).toBe(0);
    expect(again.feed('felix').deltas).toEqual([{ from: 12, to: b.storeRevision('felix') }]);
    expect(again.violations).toEqual([]);
    expect(again.digest('felix').equals(b.storeDigest('felix'))).toBe(true);
    expect(await b.metric('cattail_handshake_feeds_total', { feed: 'felix', mode: 'rebase', reason: '' })).toBe(1);
  });

  it('answers a snapshot with the token\'s reason without the capability, without watermarks, or for another projection', async () => {
    const a = await harness({ serverId: 'replica-a' });
    const b = await harness({ serverId: 'replica-b' });
    feed(a, events(60), 60);
    feed(b, events(60), 5);
    const kept = await syncedAgent(a);
    const epoch = String(a.server.stores.get('felix')!.epoch);
    const otherProjection = encodeToken({ serverId: 'replica-a', epoch, feed: 'felix', revision: 1, projectionVersion: 9 });
    const cases: [Parameters<Harness['agent']>[0], string][] = [
      [{ feeds: [{ name: 'felix', token: kept.token, watermarks: { pods: '559' } }] }, 'other-server'],
      [{ feeds: [{ name: 'felix', token: kept.token }], caps: CAPS }, 'other-server'],
      [{ feeds: [{ name: 'felix', token: otherProjection, watermarks: { pods: '559' } }], caps: CAPS }, 'projection-changed'],
      [{ feeds: [{ name: 'felix', token: kept.token, watermarks: { pods: 'not-a-version' } }], caps: CAPS }, 'other-server'],
    ];
    for (const [opts, reason] of cases) {
      const agent = b.agent(opts);
      await agent.untilRevision('felix', b.storeRevision('felix'));
      expect(agent.welcome?.feeds[0]).toMatchObject({ mode: 'snapshot', reason });
      expect(agent.digest('felix').equals(b.storeDigest('felix'))).toBe(true);
      agent.close();
      await agent.closed;
    }
  });

  it('refuses an agent whose watermarks are ahead of it (ERROR + close 4015) before WELCOME and any snapshot byte', async () => {
    const a = await harness({ serverId: 'replica-a' });
    const b = await harness({ serverId: 'replica-b' });
    feed(a, events(60), 60);
    feed(b, events(60), 5);
    const kept = await syncedAgent(a);
    const agent = b.agent({ feeds: [{ name: 'felix', token: kept.token, watermarks: { pods: '9999' } }], caps: CAPS });
    await agent.closed;
    expect(agent.closeCode).toBe(4015);
    expect(agent.errors.map((e) => e.code)).toEqual(['CATTAIL_SERVER_REPLICA_BEHIND']);
    // No WELCOME, so no feed was opened and no snapshot frame could follow.
    expect(agent.welcome).toBeUndefined();
    expect(await b.metric('cattail_handshake_feeds_total', { feed: 'felix', mode: 'refused', reason: 'behind' })).toBe(1);
    // Other agents are not affected: one at B's watermarks still rebases.
    const fine = b.agent({ feeds: [{ name: 'felix', token: kept.token, watermarks: { pods: '559' } }], caps: CAPS });
    await fine.untilRevision('felix', b.storeRevision('felix'));
    expect(fine.welcome?.feeds[0]).toMatchObject({ mode: 'rebase' });
    // Watermarks naming a resource the feed does not carry here (§8 "A feed's resources") are
    // no state of this feed: a snapshot, held to the carried resources only, never a refusal.
    const other = b.agent({ feeds: [{ name: 'felix', token: kept.token, watermarks: { pods: '559', nodes: '9999' } }], caps: [...CAPS, 'feed.resources'] });
    await other.untilRevision('felix', b.storeRevision('felix'));
    expect(other.welcome?.feeds[0]).toEqual({ name: 'felix', id: 0, mode: 'snapshot', reason: 'other-server', resources: ['pods'] });
    expect(other.closeCode).toBeUndefined();
  });

  it('prefers a snapshot when the difference is larger than the state', async () => {
    const a = await harness({ serverId: 'replica-a' });
    const b = await harness({ serverId: 'replica-b' });
    feed(a, events(10), 10);
    // B: the same ten pods, then everything rewritten and 40 pods more, most of them deleted again.
    feed(b, events(10), 10);
    b.upstream.apply('felix', Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`/pods/ns/p${i}`, { big: 'y'.repeat(300), i }])), { watermarks: { pods: '600' } });
    b.upstream.apply('felix', Object.fromEntries(Array.from({ length: 45 }, (_, i) => [`/pods/ns/p${i + 5}`, null])), { watermarks: { pods: '601' } });
    const kept = await syncedAgent(a);
    const agent = b.agent({ feeds: [{ name: 'felix', token: kept.token, watermarks: { pods: '509' }, entries: kept.entries }], caps: CAPS });
    await agent.untilRevision('felix', b.storeRevision('felix'));
    expect(agent.welcome?.feeds[0]).toMatchObject({ mode: 'snapshot', reason: 'too-large' });
    expect(agent.digest('felix').equals(b.storeDigest('felix'))).toBe(true);
  });
});

describe('server - another cluster (PROTOCOL.md §8 "Another cluster")', () => {
  it('takes an agent whose state came from another cluster as holding nothing: a snapshot (other-cluster), never 4015 for its watermarks', async () => {
    const b = await harness({ serverId: 'replica-b' });
    b.upstream.clusterName = 'ca:new';
    feed(b, events(60), 5); // watermarks: pods 559
    // A cluster rebuilt on the same hosts: resourceVersions started again, the agent's are older ones.
    const kept = b.agent({ feeds: [{ name: 'felix', token: Buffer.alloc(40, 1), watermarks: { pods: '99999' }, notBefore: { pods: '99999' } }], caps: CAPS, cluster: 'ca:old' });
    await kept.untilRevision('felix', b.storeRevision('felix'));
    expect(kept.welcome?.cluster).toBe('ca:new');
    expect(kept.welcome?.feeds[0]).toEqual({ name: 'felix', id: 0, mode: 'snapshot', reason: 'other-cluster' });
    expect(kept.digest('felix').equals(b.storeDigest('felix'))).toBe(true);
    expect(await b.metric('cattail_handshake_feeds_total', { feed: 'felix', mode: 'snapshot', reason: 'other-cluster' })).toBe(1);
    // The same watermarks from this cluster (or from a client that names none) are still a floor.
    for (const cluster of ['ca:new', undefined]) {
      const ahead = b.agent({ feeds: [{ name: 'felix', notBefore: { pods: '99999' } }], ...(cluster !== undefined ? { cluster } : {}) });
      await ahead.closed;
      expect(ahead.closeCode).toBe(4015);
    }
    expect(kept.violations).toEqual([]);
  });
});

describe('server - notBefore (PROTOCOL.md §8)', () => {
  it('refuses an agent without a token whose notBefore is ahead of it (4015, before any snapshot byte), and asks the upstream to look again', async () => {
    const b = await harness({ serverId: 'replica-b' });
    feed(b, events(60), 5); // watermarks: pods 559
    const ahead = b.agent({ feeds: [{ name: 'felix', notBefore: { pods: '9999' } }] });
    await ahead.closed;
    expect(ahead.closeCode).toBe(4015);
    expect(ahead.errors.map((e) => e.code)).toEqual(['CATTAIL_SERVER_REPLICA_BEHIND']);
    expect(ahead.welcome).toBeUndefined();
    expect(await b.metric('cattail_handshake_feeds_total', { feed: 'felix', mode: 'refused', reason: 'behind' })).toBe(1);
    // The resource it is ahead on goes to the upstream, which may look again at once (not-served.ts).
    expect(b.upstream.rechecks).toEqual([['pods']]);
    // At or below the replica's watermarks, or not a decimal resourceVersion (ignored): the snapshot.
    for (const notBefore of [{ pods: '559' }, { pods: '17' }, { pods: 'not-a-version' }]) {
      const fine = b.agent({ feeds: [{ name: 'felix', notBefore }] });
      await fine.untilRevision('felix', b.storeRevision('felix'));
      expect(fine.welcome?.feeds[0]).toEqual({ name: 'felix', id: 0, mode: 'snapshot', reason: 'no-token' });
      expect(fine.digest('felix').equals(b.storeDigest('felix'))).toBe(true);
      fine.close();
      await fine.closed;
    }
    expect(b.upstream.rechecks).toHaveLength(1);
    // A resource the feed does not carry here: a client without `feed.resources` would refuse the
    // snapshot after the whole download, so it is refused at once, as before (4015). Resources
    // named like Object.prototype members are resources like any other, never an internal error.
    const unlisted: Record<string, string>[] = [{ pods: '559', nodes: '1' }, { __defineGetter__: '1' }];
    for (const notBefore of unlisted) {
      const old = b.agent({ feeds: [{ name: 'felix', notBefore }] });
      await old.closed;
      expect(old.closeCode).toBe(4015);
    }
    const odd = b.agent({ feeds: [{ name: 'felix', token: Buffer.from('x'), watermarks: { toString: '1' } }], caps: CAPS });
    await odd.closed;
    expect(odd.closeCode).toBe(4015);
    // With it (§8 "A feed's resources"), such a resource is not held against the replica: the
    // snapshot, whose WELCOME lists what the feed carries so that the agent retires the others.
    for (const notBefore of unlisted) {
      const fine = b.agent({ feeds: [{ name: 'felix', notBefore }], caps: ['feed.resources'] });
      await fine.untilRevision('felix', b.storeRevision('felix'));
      expect(fine.welcome?.feeds[0]).toEqual({ name: 'felix', id: 0, mode: 'snapshot', reason: 'no-token', resources: ['pods'] });
      expect(fine.digest('felix').equals(b.storeDigest('felix'))).toBe(true);
      fine.close();
      await fine.closed;
    }

    // A resource the feed carries but the replica has no watermark for is behind (not listed yet),
    // whether the agent names it in notBefore or beside its rebase watermarks (a retired resource).
    const c = await harness({ serverId: 'replica-c', resources: ['pods', 'nodes', 'toString'] });
    feed(c, events(60), 5); // pods 559, nothing for nodes
    const feeds = [
      [{ name: 'felix', notBefore: { pods: '559', nodes: '1' } }],
      [{ name: 'felix', token: Buffer.from('x'), watermarks: { pods: '559' }, notBefore: { nodes: '1' } }],
      [{ name: 'felix', notBefore: { toString: '1' } }],
    ];
    for (const f of feeds) {
      const other = c.agent({ feeds: f, caps: [...CAPS, 'feed.resources'] });
      await other.closed;
      expect(other.closeCode).toBe(4015);
    }
    expect(c.upstream.rechecks).toEqual([['nodes'], ['nodes'], ['toString']]);

    // A rollback: a replica carrying a retired resource again, behind the agent's retired
    // watermark, is held to it even where a rebase from the agent's watermarks would be possible
    // (its log has records from before it listed the resource, naming the agent's resources).
    const d = await harness({ serverId: 'replica-d' });
    const e = await harness({ serverId: 'replica-e', resources: ['pods', 'nodes'] });
    feed(d, events(60), 60);
    const kept = await syncedAgent(d);
    feed(e, events(60), 5);
    e.upstream.apply('felix', { '/nodes//n1': { n: 1 } }, { status: 'in-sync', watermarks: { nodes: '40' } });
    const held = e.agent({ feeds: [{ name: 'felix', token: kept.token, watermarks: { pods: '559' }, notBefore: { nodes: '41' }, entries: kept.entries }], caps: [...CAPS, 'feed.resources'] });
    await held.closed;
    expect(held.closeCode).toBe(4015);
    expect(e.upstream.rechecks).toEqual([['nodes']]);
  });

  it('gives an agent with notBefore no shared snapshot made before its watermarks; others still share it', async () => {
    const h = await harness({ serverId: 'replica-b', snapshotReuseWindowMs: 600_000 });
    feed(h, events(30), 30); // revision 1 at pods 529
    const first = h.agent({ feeds: [{ name: 'felix' }] });
    await first.untilRevision('felix', 1);
    feed(h, events(30, 30), 30); // revision 2 at pods 559
    // Without notBefore: the build of revision 1, still reusable, then the DELTA to 2.
    const plain = h.agent({ feeds: [{ name: 'felix' }] });
    await plain.untilRevision('felix', 2);
    expect(plain.feed('felix').snapshotEnds).toEqual([{ revision: 1, watermarks: { pods: '529' } }]);
    // notBefore at revision 1's watermarks: the shared build of revision 1 will do.
    const older = h.agent({ feeds: [{ name: 'felix', notBefore: { pods: '529' } }] });
    await older.untilRevision('felix', 2);
    expect(older.feed('felix').snapshotEnds).toEqual([{ revision: 1, watermarks: { pods: '529' } }]);
    expect(await h.metric('cattail_snapshots_generated_total', { feed: 'felix' })).toBe(1);
    // With notBefore above revision 1's watermarks: a snapshot at or past them, built for it.
    const later = h.agent({ feeds: [{ name: 'felix', notBefore: { pods: '559' } }] });
    await later.untilRevision('felix', 2);
    expect(later.feed('felix').snapshotEnds).toEqual([{ revision: 2, watermarks: { pods: '559' } }]);
    expect(later.violations).toEqual([]);
    expect(later.digest('felix').equals(h.storeDigest('felix'))).toBe(true);
    expect(await h.metric('cattail_snapshots_generated_total', { feed: 'felix' })).toBe(2);
    // Watermarks that moved on without a new revision (an event that changed no entry): no build
    // of revision 2 has them, so one is made from today's state.
    h.upstream.apply('felix', {}, { watermarks: { pods: '600' } });
    const moved = h.agent({ feeds: [{ name: 'felix', notBefore: { pods: '600' } }] });
    await moved.untilRevision('felix', 2);
    expect(moved.feed('felix').snapshotEnds).toEqual([{ revision: 2, watermarks: { pods: '600' } }]);
    expect(await h.metric('cattail_snapshots_generated_total', { feed: 'felix' })).toBe(3);
  });

  it('takes a rebase agent\'s watermarks as its notBefore when the rebase falls back to a snapshot', async () => {
    const a = await harness({ serverId: 'replica-a' });
    const b = await harness({ serverId: 'replica-b', snapshotReuseWindowMs: 600_000 });
    feed(a, events(60), 60);
    feed(b, events(30), 30); // revision 1 at pods 529
    const first = b.agent({ feeds: [{ name: 'felix' }] });
    await first.untilRevision('felix', 1);
    feed(b, events(30, 30), 30); // revision 2 at pods 559
    const kept = await syncedAgent(a);
    // Another projection's token: no rebase, a snapshot; A's watermarks (559) keep it off revision 1's build.
    const epoch = String(a.server.stores.get('felix')!.epoch);
    const otherProjection = encodeToken({ serverId: 'replica-a', epoch, feed: 'felix', revision: 1, projectionVersion: 9 });
    const agent = b.agent({ feeds: [{ name: 'felix', token: otherProjection, watermarks: { pods: '559' }, entries: kept.entries }], caps: CAPS });
    await agent.untilRevision('felix', 2);
    expect(agent.welcome?.feeds[0]).toMatchObject({ mode: 'snapshot', reason: 'projection-changed' });
    expect(agent.feed('felix').snapshotEnds).toEqual([{ revision: 2, watermarks: { pods: '559' } }]);
    // Both maps (not what PROTOCOL.md has a client send): per resource the newer is the floor.
    const both = b.agent({ feeds: [{ name: 'felix', token: otherProjection, watermarks: { pods: '529' }, notBefore: { pods: '9999' } }], caps: CAPS });
    await both.closed;
    expect(both.closeCode).toBe(4015);
  });
});
