/**
 * The server's side of range repair (PROTOCOL.md §7.2) with a scripted agent: the answer is
 * REPAIR + DELTA holding the entries of the mismatching bucket only + STATUS; a second request
 * for the feed within REPAIR_MIN_INTERVAL_MS gets the in-band snapshot; the interval is judged on
 * the server's (fake) clock.
 */
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/clock.js';
import { bucketOfHashHi } from '../../proto/index.js';
import { entryHash } from '../../proto/digest.js';
import { REPAIR_MIN_INTERVAL_MS } from '../../src/server/fanout/repair.js';
import { type Harness, harness } from './helpers/harness.js';
import type { TestAgent } from './helpers/agent.js';
import { waitUntil } from '../support/wait.js';

/** A FakeClock server with 40 pods in sync and an agent with `repair.buckets` at revision 1; no liveness deadlines in the way. */
async function repairingAgent(): Promise<{ clock: FakeClock; h: Harness; a: TestAgent }> {
  const clock = new FakeClock();
  const h = await harness({ clock, flushWindowMs: 0, pingIntervalMs: 600_000, pongTimeoutMs: 600_000, handshakeTimeoutMs: 600_000 });
  const pods: Record<string, unknown> = {};
  for (let i = 0; i < 40; i++) pods[`/pods/ns/p${i}`] = { i };
  h.upstream.apply('felix', pods, { status: 'in-sync' });
  const a = h.agent({ feeds: [{ name: 'felix' }], caps: ['repair.buckets'] });
  await a.untilRevision('felix', 1);
  return { clock, h, a };
}

describe('server - range repair', () => {
  it('answers with the mismatching bucket only, then rate-limits the feed to a snapshot', async () => {
    const { clock, h, a } = await repairingAgent();
    expect(a.welcome?.caps).toContain('repair.buckets');

    const store = h.server.stores.get('felix')!;
    const view = store.current();
    const key = '/pods/ns/p7';
    const bucket = bucketOfHashHi(Number(entryHash(key, view.get(key)!) >> 32n));
    const inBucket = [...view.entries()].filter(([k, v]) => bucketOfHashHi(Number(entryHash(k, v) >> 32n)) === bucket).map(([k]) => k);
    const sums = Buffer.from(store.bucketSums!());
    sums[bucket * 8 + 7] = (sums[bucket * 8 + 7] as number) ^ 1;
    const deltasBefore = a.feeds.get(0)!.deltas.length;

    a.sendMessage({ type: 'repairRequest', feedId: 0, revision: 1, sums });
    await waitUntil(async () => (await h.metric('cattail_repairs_total', { feed: 'felix', outcome: 'repaired' })) === 1, 'repaired');
    await waitUntil(() => a.feeds.get(0)!.deltas.length === deltasBefore + 1, 'repair DELTA applied');
    expect(a.received).toContain('repair');
    expect(a.feeds.get(0)!.deltas.at(-1)).toEqual({ from: 1, to: 1 });
    expect(await h.metric('cattail_repair_bytes_total', { feed: 'felix' })).toBeGreaterThan(0);
    expect(inBucket.length).toBeLessThan(40);

    a.sendMessage({ type: 'repairRequest', feedId: 0, revision: 1, sums });
    await waitUntil(async () => (await h.metric('cattail_repairs_total', { feed: 'felix', outcome: 'too-soon' })) === 1, 'too soon');
    await waitUntil(() => a.feeds.get(0)!.snapshots === 2, 'in-band snapshot');

    clock.advance(REPAIR_MIN_INTERVAL_MS);
    a.sendMessage({ type: 'repairRequest', feedId: 0, revision: 1, sums });
    await waitUntil(async () => (await h.metric('cattail_repairs_total', { feed: 'felix', outcome: 'repaired' })) === 2, 'repaired again');
    expect(a.violations).toEqual([]);
  });

  it('ignores a request for a revision below a snapshot already sent whole (it predates the snapshot, which ended the agent\'s repair)', async () => {
    const { clock, h, a } = await repairingAgent();
    h.upstream.apply('felix', { '/pods/ns/p1': { moved: true } });
    await a.untilRevision('felix', 2);
    const store = h.server.stores.get('felix')!;
    const sums = Buffer.from(store.bucketSums!());
    sums[7] = (sums[7] as number) ^ 1;
    const outcome = (o: string): Promise<number> => h.metric('cattail_repairs_total', { feed: 'felix', outcome: o });
    a.sendMessage({ type: 'repairRequest', feedId: 0, revision: 2, sums });
    await waitUntil(async () => (await outcome('repaired')) === 1, 'repaired');
    // Within the rate limit: an in-band snapshot at revision 2, sent whole.
    a.sendMessage({ type: 'repairRequest', feedId: 0, revision: 2, sums });
    await waitUntil(() => a.feeds.get(0)!.snapshots === 2, 'in-band snapshot');
    const repairs = a.received.filter((t) => t === 'repair').length;
    clock.advance(REPAIR_MIN_INTERVAL_MS);
    // A request the agent sent at revision 1, before it read that snapshot.
    a.sendMessage({ type: 'repairRequest', feedId: 0, revision: 1, sums });
    await waitUntil(async () => (await outcome('ignored')) === 1, 'ignored');
    expect(await outcome('repaired')).toBe(1);
    expect(a.received.filter((t) => t === 'repair')).toHaveLength(repairs);
  });

  it('answers a repair above half the agent\'s maxClientBytes (though under maxRepairBytes) with a snapshot, not a repair that closes it with 4008', async () => {
    const h = await harness({ flushWindowMs: 0, maxClientBytes: 4_096 });
    const pods: Record<string, unknown> = {};
    for (let i = 0; i < 40; i++) pods[`/pods/ns/p${i}`] = { i };
    pods['/pods/ns/big'] = { pad: 'x'.repeat(3_000) };
    h.upstream.apply('felix', pods, { status: 'in-sync' });
    const a = h.agent({ feeds: [{ name: 'felix' }], caps: ['repair.buckets'] });
    await a.untilRevision('felix', 1);
    // The big entry's bucket wrong: a repair of a few entries (far from half of them), ~3 KB,
    // under maxRepairBytes (4 MiB) but above half of this agent's 4 KiB budget.
    const store = h.server.stores.get('felix')!;
    const bucket = bucketOfHashHi(Number(entryHash('/pods/ns/big', store.current().get('/pods/ns/big')!) >> 32n));
    const sums = Buffer.from(store.bucketSums!());
    sums[bucket * 8 + 7] = (sums[bucket * 8 + 7] as number) ^ 1;
    a.sendMessage({ type: 'repairRequest', feedId: 0, revision: 1, sums });
    await waitUntil(async () => (await h.metric('cattail_repairs_total', { feed: 'felix', outcome: 'too-large' })) === 1, 'too large');
    await waitUntil(() => a.feeds.get(0)!.snapshots === 2, 'in-band snapshot');
    expect(await h.metric('cattail_repairs_total', { feed: 'felix', outcome: 'repaired' })).toBe(0);
    expect(await h.metric('cattail_connections_closed_total')).toBe(0);
    expect(a.violations).toEqual([]);
  });

  it('falls back to a snapshot with today\'s watermarks, not a build of the same revision made before a watermark-only change', async () => {
    const clock = new FakeClock();
    const h = await harness({ clock, flushWindowMs: 0, pingIntervalMs: 600_000, pongTimeoutMs: 600_000, handshakeTimeoutMs: 600_000 });
    const pods: Record<string, unknown> = {};
    for (let i = 0; i < 40; i++) pods[`/pods/ns/p${i}`] = { i };
    h.upstream.apply('felix', pods, { status: 'in-sync', watermarks: { pods: '10' } });
    const a = h.agent({ feeds: [{ name: 'felix' }], caps: ['repair.buckets'] });
    await a.untilRevision('felix', 1);
    expect(a.feeds.get(0)!.snapshotEnds).toEqual([{ revision: 1, watermarks: { pods: '10' } }]);
    // Watermarks move on, the revision does not (an event that changed no entry).
    h.upstream.apply('felix', {}, { watermarks: { pods: '20' } });
    const store = h.server.stores.get('felix')!;
    expect(store.revision).toBe(1);
    const sums = Buffer.from(store.bucketSums!());
    sums[7] = (sums[7] as number) ^ 1;
    a.sendMessage({ type: 'repairRequest', feedId: 0, revision: 1, sums });
    await waitUntil(async () => (await h.metric('cattail_repairs_total', { feed: 'felix', outcome: 'repaired' })) === 1, 'repaired');
    a.sendMessage({ type: 'repairRequest', feedId: 0, revision: 1, sums });
    await waitUntil(() => a.feeds.get(0)!.snapshots === 2, 'in-band snapshot');
    // Revision 1's build of the connect still exists, with pods 10; the agent may hold 20 by now.
    expect(a.feeds.get(0)!.snapshotEnds.at(-1)).toEqual({ revision: 1, watermarks: { pods: '20' } });
    expect(await h.metric('cattail_snapshots_generated_total', { feed: 'felix' })).toBe(2);
    // The cache keeps only the newest build of the feed and encoding.
    expect(await h.metric('cattail_snapshot_cache_builds')).toBe(1);
  });
});
