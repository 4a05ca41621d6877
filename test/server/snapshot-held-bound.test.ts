/**
 * The bound on snapshot builds held for reuse (snapshotHeldMaxBytes, snapshot-cache.ts
 * evictOverBound). A build of the current revision is held while the feed does not change, one per
 * feed, compression and frame size: without the bound a quiet feed kept every variant an agent
 * ever asked for. Above it, finished builds no agent streams go, least recently handed out first;
 * a build being streamed, or still running, stays.
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

function setup(heldMaxBytes: number | undefined, sliceEntries = 100) {
  const clock = new FakeClock();
  const store = new FeedStore({ feed: 'felix', epoch: '0123456789abcdef', logMaxAgeMs: 600_000 });
  store.apply({ updates: Array.from({ length: 500 }, (_, i) => ({ key: `/pods/ns/p${String(i).padStart(5, '0')}`, value: encodeValue({ i, pad: 'x'.repeat(200) }) })), status: 'in-sync', watermarks: { pods: '1' } }, 0);
  const metrics = createMetrics(new FanOutStats(), { defaultMetrics: false });
  const feed = new FeedRuntime(0, { name: 'felix', resources: ['pods'], projectionVersion: 1 }, store as unknown as ServedStore, 'test', metrics.fanout.feed('felix'));
  const cache = new SnapshotCache({ clock, reuseWindowMs: 1_000, sliceEntries, sliceMs: 1_000, chunkBytes: 16_384, compressMinBytes: 1_024, metrics, ...(heldMaxBytes === undefined ? {} : { heldMaxBytes }) });
  return { clock, feed, cache, metrics };
}

/** An agent that streams `b` to its end and leaves. */
async function streamed(b: SnapshotBuild): Promise<void> {
  const stop = b.subscribe(() => undefined);
  await waitUntil(() => b.done, 'build done');
  expect(b.failed).toBeUndefined();
  stop();
}

describe('snapshot builds held for reuse: snapshotHeldMaxBytes', () => {
  it('unbounded, a quiet feed holds every variant agents asked for (what the bound is for)', async () => {
    const { feed, cache } = setup(undefined);
    for (const size of [4_096, 8_192, 16_384, 32_768]) await streamed(cache.acquire(feed, 'none', size));
    cache.purge();
    expect(cache.held().builds).toBe(4);
  });

  it('above the bound the least recently used idle build goes; the next agent of its kind gets a new build', async () => {
    const probe = setup(undefined);
    const one = probe.cache.acquire(probe.feed, 'none', 4_096);
    await streamed(one);
    // Room for two uncompressed builds of this feed, not three.
    const { clock, feed, cache, metrics } = setup(Math.floor(one.wireBytes * 2.5));
    const a = cache.acquire(feed, 'none', 4_096);
    await streamed(a);
    clock.advance(10);
    const b = cache.acquire(feed, 'none', 8_192);
    await streamed(b);
    clock.advance(10);
    // a is used again: b is now the least recently used.
    expect(cache.acquire(feed, 'none', 4_096)).toBe(a);
    clock.advance(10);
    const c = cache.acquire(feed, 'none', 16_384);
    await streamed(c);
    expect(cache.held().builds).toBe(2);
    expect(cache.held().bytes).toBeLessThanOrEqual(Math.floor(one.wireBytes * 2.5));
    expect(cache.evictedCount).toBe(1);
    expect((await metrics.snapshotsEvicted.get()).values.reduce((n, v) => n + v.value, 0)).toBe(1);
    expect(cache.acquire(feed, 'none', 4_096)).toBe(a);
    expect(cache.acquire(feed, 'none', 16_384)).toBe(c);
    const built = cache.builtCount;
    const b2 = cache.acquire(feed, 'none', 8_192);
    expect(b2).not.toBe(b);
    expect(cache.builtCount).toBe(built + 1);
    await streamed(b2);
  });

  it('an idle build an agent can reuse is not dropped for it while another build runs (the bound applies after the choice)', async () => {
    const probe = setup(undefined);
    const one = probe.cache.acquire(probe.feed, 'none', 4_096);
    await streamed(one);
    // Builds of 5 entries a turn: the second one runs for a hundred turns.
    const { feed, cache } = setup(Math.floor(one.wireBytes * 1.5), 5);
    const k = cache.acquire(feed, 'none', 4_096);
    await streamed(k);
    // Another kind runs with a reader and takes the cache above the bound as it grows.
    const r = cache.acquire(feed, 'none', 8_192);
    const stopR = r.subscribe(() => undefined);
    while (!r.done && r.wireBytes <= one.wireBytes * 0.6) await new Promise((resolve) => setImmediate(resolve));
    expect(r.done).toBe(false);
    expect(cache.held().bytes).toBeGreaterThan(Math.floor(one.wireBytes * 1.5));
    const built = cache.builtCount;
    // An agent of k's kind reuses it; nothing else is idle, so nothing goes.
    expect(cache.acquire(feed, 'none', 4_096)).toBe(k);
    expect(cache.builtCount).toBe(built);
    expect(cache.evictedCount).toBe(0);
    await waitUntil(() => r.done, 'r done');
    stopR();
  });

  it('a build an agent still streams is never dropped, however far above the bound', async () => {
    const { feed, cache } = setup(1);
    const a = cache.acquire(feed, 'none', 4_096);
    const stopA = a.subscribe(() => undefined);
    const b = cache.acquire(feed, 'none', 8_192);
    const stopB = b.subscribe(() => undefined);
    await waitUntil(() => a.done && b.done, 'both done');
    cache.purge();
    expect(cache.held().builds).toBe(2);
    expect(cache.acquire(feed, 'none', 4_096)).toBe(a);
    stopA();
    cache.purge();
    // a's agent left: it goes; b is still read and stays.
    expect(cache.held().builds).toBe(1);
    expect(cache.acquire(feed, 'none', 8_192)).toBe(b);
    stopB();
  });
});
