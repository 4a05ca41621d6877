/**
 * A snapshot build that a newer one of its kind superseded and that no agent reads stops at its
 * next slice (snapshot-cache.ts run): run to its end, a hostile agent bought a whole build per
 * connection (a resume, one REPAIR_REQUEST whose snapshot fallback must be at least its revision,
 * then goodbye). A build someone reads runs to its end, superseded or not.
 */
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/clock.js';
import { FeedRuntime } from '../../src/server/fanout/feeds.js';
import { SnapshotCache, type SnapshotBuild } from '../../src/server/fanout/snapshot-cache.js';
import { FanOutStats } from '../../src/server/fanout/stats.js';
import { createMetrics } from '../../src/server/ops/metrics.js';
import type { ServedStore } from '../../src/server/pipeline/store-port.js';
import { FeedStore, encodeValue } from '../../src/snapshot/index.js';
import { waitUntil } from '../support/wait.js';

function setup(): { feed: FeedRuntime; store: FeedStore; cache: SnapshotCache; metrics: ReturnType<typeof createMetrics> } {
  const store = new FeedStore({ feed: 'felix', epoch: '0123456789abcdef', logMaxAgeMs: 600_000 });
  store.apply({ updates: Array.from({ length: 2_000 }, (_, i) => ({ key: `/pods/ns/p${String(i).padStart(5, '0')}`, value: encodeValue({ i, pad: 'x'.repeat(200) }) })), status: 'in-sync', watermarks: { pods: '1' } }, 0);
  const metrics = createMetrics(new FanOutStats(), { defaultMetrics: false });
  const feed = new FeedRuntime(0, { name: 'felix', resources: ['pods'], projectionVersion: 1 }, store as unknown as ServedStore, 'test', metrics.fanout.feed('felix'));
  // Small slices and chunks: a build takes many loop turns.
  const cache = new SnapshotCache({ clock: new FakeClock(), reuseWindowMs: 1_000, sliceEntries: 50, sliceMs: 1_000, chunkBytes: 4_096, compressMinBytes: 1_024, metrics });
  return { feed, store, cache, metrics };
}

/** A newer build than `a` of the same kind: the store moves, and the caller needs its revision. */
function supersede(store: FeedStore, feed: FeedRuntime, cache: SnapshotCache): SnapshotBuild {
  store.apply({ updates: [{ key: '/pods/ns/p00000', value: encodeValue({ moved: true }) }], watermarks: { pods: '2' } }, 0);
  return cache.acquire(feed, 'deflate', 1 << 20, store.revision);
}

describe('snapshot builds nobody reads', () => {
  it('a superseded build whose agent left stops at its next slice; the newer one runs to its end', async () => {
    const { feed, store, cache, metrics } = setup();
    const a = cache.acquire(feed, 'deflate', 1 << 20);
    a.subscribe(() => undefined)(); // its agent went away at once
    const b = supersede(store, feed, cache);
    expect(b).not.toBe(a);
    await waitUntil(() => b.done, 'the newer build done');
    expect(b.failed).toBeUndefined();
    expect(a.done).toBe(true);
    expect(a.failed).toMatchObject({ code: 'CATTAIL_INTERNAL' });
    expect(a.frames.length).toBeLessThan(b.frames.length);
    expect(cache.cancelledCount).toBe(1);
    expect((await metrics.snapshotsStopped.get()).values.reduce((n, v) => n + v.value, 0)).toBe(1);
  });

  it('a superseded build that an agent still reads runs to its end', async () => {
    const { feed, store, cache } = setup();
    const a = cache.acquire(feed, 'deflate', 1 << 20);
    const stop = a.subscribe(() => undefined);
    const b = supersede(store, feed, cache);
    await waitUntil(() => a.done && b.done, 'both builds done');
    expect(a.failed).toBeUndefined();
    expect(a.frames.length).toBeGreaterThan(2);
    expect(cache.cancelledCount).toBe(0);
    stop();
  });
});
