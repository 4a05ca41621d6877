import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/clock.js';
import { encodeToken } from '../../src/server/transport/tokens.js';
import { type Harness, harness } from './helpers/harness.js';
import type { TestAgent } from './helpers/agent.js';

function pods(n: number, gen = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) out[`/pods/ns/p${i}`] = { i, gen };
  return out;
}

/**
 * `a` leaves with its token; 40 entries of 2 KB change while it is away (more than half of a
 * 64 KiB maxClientBytes); it comes back presenting what it held. Returns the agent that came back.
 */
async function awayWhileTooMuchChanges(h: Harness, a: TestAgent): Promise<TestAgent> {
  const kept = a.feed('felix');
  a.close();
  await a.closed;
  const big: Record<string, unknown> = {};
  for (let i = 0; i < 40; i++) big[`/pods/ns/big${i}`] = { pad: 'x'.repeat(2_000), i };
  h.upstream.apply('felix', big);
  return h.agent({ feeds: [{ name: 'felix', token: kept.token, entries: kept.entries, revision: kept.revision }] });
}

describe('server - resume', () => {
  it('resumes inside the log with only the compacted changes since the token', async () => {
    const h = await harness();
    h.upstream.apply('felix', pods(300), { status: 'in-sync' });
    const first = h.agent({ feeds: [{ name: 'felix' }] });
    await first.untilRevision('felix', 1);
    h.upstream.apply('felix', pods(5, 1));
    await first.untilRevision('felix', 2);
    const kept = first.feed('felix');
    first.close();
    await first.closed;
    // While it is away: three revisions touching the same keys, compacted into one DELTA.
    h.upstream.apply('felix', pods(3, 2));
    h.upstream.apply('felix', pods(3, 3));
    h.upstream.apply('felix', { '/pods/ns/p0': null, '/pods/ns/new': { n: 1 } });
    const again = h.agent({ feeds: [{ name: 'felix', token: kept.token, entries: kept.entries, revision: kept.revision }] });
    await again.untilRevision('felix', 5);
    await again.until(() => again.feed('felix').status === 'in-sync', 'STATUS after the resume DELTA');
    expect(again.welcome?.feeds[0]).toMatchObject({ name: 'felix', mode: 'resume' });
    expect(again.feed('felix').snapshots).toBe(0);
    expect(again.feed('felix').deltas).toEqual([{ from: 2, to: 5 }]);
    expect(again.violations).toEqual([]);
    expect(again.digest('felix').equals(h.storeDigest('felix'))).toBe(true);
    expect(h.server.snapshotStats().built).toBe(1);
    // O(changes): the resume cost a fraction of the 300-entry snapshot.
    expect(again.bytesReceived).toBeLessThan(first.bytesReceived / 5);
  });

  it('never answers a too-large resume with a shared build older than the token, also to a client that sends no notBefore', async () => {
    const h = await harness({ maxClientBytes: 64 * 1024, snapshotReuseWindowMs: 60_000 });
    h.upstream.apply('felix', pods(50), { status: 'in-sync' });
    // A shared build at revision 1, reusable for the next minute.
    const other = h.agent({ feeds: [{ name: 'felix' }] });
    await other.untilRevision('felix', 1);
    const a = h.agent({ feeds: [{ name: 'felix' }] });
    await a.untilRevision('felix', 1);
    h.upstream.apply('felix', pods(5, 1));
    await a.untilRevision('felix', 2);
    await a.until(() => a.feed('felix').token !== undefined && a.feed('felix').status === 'in-sync', 'the token at revision 2');
    expect(a.feed('felix').revision).toBe(2);
    // More than half the agent's budget changes while it is away: its resume becomes a snapshot.
    const again = await awayWhileTooMuchChanges(h, a);
    await again.untilRevision('felix', h.storeRevision('felix'));
    expect(again.welcome?.feeds[0]).toMatchObject({ mode: 'snapshot', reason: 'too-large' });
    // Its snapshot is at or after the revision it held (the build at 1 was not reused for it).
    expect(again.feed('felix').snapshotEnds.every((e) => e.revision >= 2)).toBe(true);
    expect(again.violations).toEqual([]);
    expect(again.digest('felix').equals(h.storeDigest('felix'))).toBe(true);
  });

  it('answers a too-large resume with a snapshot newer than the token, not a fresh build at the token\'s own revision (which would give it nothing)', async () => {
    const h = await harness({ maxClientBytes: 64 * 1024, snapshotReuseWindowMs: 60_000 });
    h.upstream.apply('felix', pods(50), { status: 'in-sync' });
    // The agent takes the build at revision 1, reusable for the next minute, and leaves.
    const a = h.agent({ feeds: [{ name: 'felix' }] });
    await a.untilRevision('felix', 1);
    await a.until(() => a.feed('felix').token !== undefined && a.feed('felix').status === 'in-sync', 'the token at revision 1');
    const again = await awayWhileTooMuchChanges(h, a);
    // Before, it was sent the build at 1 again; its catch-up from 1 was as large, so the in-band
    // snapshot that followed was that build too, and so on until the build's reuse window ended.
    await again.untilRevision('felix', h.storeRevision('felix'));
    expect(again.welcome?.feeds[0]).toMatchObject({ mode: 'snapshot', reason: 'too-large' });
    expect(again.feed('felix').snapshotEnds.map((e) => e.revision)).toEqual([h.storeRevision('felix')]);
    expect(again.violations).toEqual([]);
    expect(again.digest('felix').equals(h.storeDigest('felix'))).toBe(true);
  });

  it('answers a token whose revision left the log with a snapshot (too-old)', async () => {
    const clock = new FakeClock();
    const h = await harness({ clock, flushWindowMs: 0, deltaLogMaxAgeMs: 1_000 });
    h.upstream.apply('felix', pods(20), { status: 'in-sync' });
    const first = h.agent({ feeds: [{ name: 'felix' }] });
    await first.untilRevision('felix', 1);
    const kept = first.feed('felix');
    first.close();
    // A deletion is what the delta log remembers; once it ages out, revision 1 is too old.
    h.upstream.apply('felix', { ...pods(20, 1), '/pods/ns/p7': null });
    h.upstream.apply('felix', { '/pods/ns/p8': { later: true } });
    clock.advance(2_500);
    expect(h.server.stores.get('felix')?.since(1).kind).toBe('too-old');
    const again = h.agent({ feeds: [{ name: 'felix', token: kept.token, entries: kept.entries, revision: kept.revision }] });
    await again.untilRevision('felix', 3);
    expect(again.welcome?.feeds[0]).toMatchObject({ mode: 'snapshot', reason: 'too-old' });
    expect(again.feed('felix').snapshots).toBe(1);
    expect(again.violations).toEqual([]);
    expect(again.digest('felix').equals(h.storeDigest('felix'))).toBe(true);
  });

  it('treats garbage, foreign and restarted-store tokens as a snapshot with a reason, never an error', async () => {
    const h = await harness();
    h.upstream.apply('felix', pods(10), { status: 'in-sync' });
    const store = h.server.stores.get('felix');
    const epoch = String(store?.epoch);
    const cases: [Buffer, string][] = [
      [Buffer.from('not a token at all'), 'bad-token'],
      [Buffer.alloc(0), 'bad-token'],
      [encodeToken({ serverId: 'other', epoch, feed: 'felix', revision: 1, projectionVersion: 1 }), 'other-server'],
      [encodeToken({ serverId: 'test-server', epoch: 'old-epoch', feed: 'felix', revision: 1, projectionVersion: 1 }), 'epoch-changed'],
      [encodeToken({ serverId: 'test-server', epoch, feed: 'felix', revision: 1, projectionVersion: 9 }), 'projection-changed'],
      [encodeToken({ serverId: 'test-server', epoch, feed: 'felix', revision: 99, projectionVersion: 1 }), 'bad-token'],
      [encodeToken({ serverId: 'test-server', epoch, feed: 'bgp', revision: 1, projectionVersion: 1 }), 'bad-token'],
    ];
    for (const [token, reason] of cases) {
      const a = h.agent({ feeds: [{ name: 'felix', token }] });
      await a.untilRevision('felix', 1);
      expect(a.welcome?.feeds[0]).toMatchObject({ mode: 'snapshot', reason });
      expect(a.digest('felix').equals(h.storeDigest('felix'))).toBe(true);
      a.close();
    }
  });
});
