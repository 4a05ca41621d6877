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
