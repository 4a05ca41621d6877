import { describe, expect, it } from 'vitest';
import { Histogram } from 'prom-client';
import { FeedRuntime } from '../../src/server/fanout/feeds.js';
import { FanOutStats, newFeedStats } from '../../src/server/fanout/stats.js';
import { OBSERVATION_BATCH_MAX, ObservationBatch, createMetrics, registerStateGauges } from '../../src/server/ops/metrics.js';
import { defaultStoreFactory } from '../../src/server/pipeline/store-factory.js';
import { seededRandom } from '../../src/random.js';

/** Observation count of a histogram without labels, as a scrape reads it (get() runs collect). */
async function count(h: Histogram): Promise<number> {
  const m = await h.get();
  return m.values.find((v) => v.metricName?.endsWith('_count'))?.value ?? 0;
}

describe('metrics kept off the flush hot path', () => {
  it('an observation batch hands every observation to its histogram when full, and a scrape drains the rest', async () => {
    const h = new Histogram({ name: 'x_seconds', help: 'x', buckets: [0.001, 0.01], registers: [] });
    const b = new ObservationBatch<never>(h);
    // prom-client's own get() (no collect here): what the histogram holds, without a drain.
    const held = async (): Promise<number> => count(h);
    for (let i = 0; i < OBSERVATION_BATCH_MAX - 1; i++) b.observe(0.005);
    expect(await held()).toBe(0);
    b.observe(0.005);
    expect(await held()).toBe(OBSERVATION_BATCH_MAX);
    b.observe(0.02);
    b.drain();
    const m = await h.get();
    expect(m.values.find((v) => v.metricName === 'x_seconds_count')?.value).toBe(OBSERVATION_BATCH_MAX + 1);
    expect(m.values.find((v) => v.metricName === 'x_seconds_bucket' && v.labels['le'] === 0.01)?.value).toBe(OBSERVATION_BATCH_MAX);
    expect(m.values.find((v) => v.metricName === 'x_seconds_sum')?.value).toBeCloseTo(OBSERVATION_BATCH_MAX * 0.005 + 0.02, 9);
  });

  it('a labelled batch keeps each observation\'s label value through a full hand-over and a scrape', async () => {
    const stats = new FanOutStats();
    const metrics = createMetrics(stats, { defaultMetrics: false });
    // One past a full batch: the first OBSERVATION_BATCH_MAX go over in the hand-over, the last at the scrape.
    for (let i = 0; i < OBSERVATION_BATCH_MAX; i++) metrics.clientLag.observe(i % 2 === 0 ? 0.002 : 2, i % 2 === 0 ? 'felix' : 'bgp');
    metrics.clientLag.observe(60, 'bgp');
    const text = await metrics.registry.metrics();
    expect(text).toContain(`cattail_client_lag_seconds_count{feed="felix"} ${OBSERVATION_BATCH_MAX / 2}`);
    expect(text).toContain(`cattail_client_lag_seconds_count{feed="bgp"} ${OBSERVATION_BATCH_MAX / 2 + 1}`);
    // Each value landed under its own label: felix's all at or below 5 ms, bgp's none.
    expect(text).toContain(`cattail_client_lag_seconds_bucket{le="0.005",feed="felix"} ${OBSERVATION_BATCH_MAX / 2}`);
    expect(text).toContain('cattail_client_lag_seconds_bucket{le="0.005",feed="bgp"} 0');
    expect(text).toContain(`cattail_client_lag_seconds_bucket{le="5",feed="bgp"} ${OBSERVATION_BATCH_MAX / 2}`);
    expect(text).toContain(`cattail_client_lag_seconds_sum{feed="bgp"} ${OBSERVATION_BATCH_MAX + 60}`);
  });

  it('the flush-duration histogram, the update counters and the feed revision show the hot path\'s numbers at scrape time', async () => {
    const stats = new FanOutStats();
    const metrics = createMetrics(stats, { defaultMetrics: false });
    const store = defaultStoreFactory({ feed: 'felix', logMaxAgeMs: 60_000, logMaxBytes: 1 << 20 });
    registerStateGauges(metrics, {
      connections: () => [], serviceQueueLength: () => 0, catchUpCache: () => ({ entries: 0, bytes: 0 }), handshakeQueueLength: () => 0,
      snapshotCache: () => ({ builds: 0, bytes: 0 }), transportWaiting: () => 0, snapshotPinned: () => ({ builds: 0, bytes: 0 }),
      feeds: [{ name: 'felix', store }],
    });
    metrics.flushDuration.observe(0.002);
    metrics.flushDuration.observe(0.003);
    const s = stats.feed('felix');
    s.updates += 7;
    s.updatesSkipped += 2;
    store.apply({ updates: [{ key: 'a', value: Buffer.from([1]) }] }, 0);
    const text = await metrics.registry.metrics();
    expect(text).toContain('cattail_flush_duration_seconds_count 2');
    expect(text).toContain('cattail_updates_total{feed="felix"} 7');
    expect(text).toContain('cattail_updates_skipped_total{feed="felix"} 2');
    expect(text).toContain(`cattail_feed_revision{feed="felix"} ${store.revision}`);
    // A second scrape counts each observation once.
    metrics.flushDuration.observe(0.004);
    expect(await metrics.registry.metrics()).toContain('cattail_flush_duration_seconds_count 3');
  });
});

describe('FeedRuntime.lagMs', () => {
  it('is the time since the first flush past the revision, from a trimmed history, as a linear scan finds it', () => {
    const store = defaultStoreFactory({ feed: 'felix', logMaxAgeMs: 60_000, logMaxBytes: 1 << 20 });
    const feed = new FeedRuntime(0, { name: 'felix', resources: [], projectionVersion: 1 }, store, 'srv', newFeedStats());
    const flushes: { revision: number; atMs: number }[] = [];
    const rand = seededRandom(3);
    let revision = 0;
    // More flushes than are kept (trimmed at 8,192 to 4,096), revisions with gaps (coalesced changes).
    for (let i = 0; i < 10_000; i++) {
      revision += 1 + Math.floor(rand() * 3);
      flushes.push({ revision, atMs: i * 10 });
      feed.recordFlush(revision, i * 10);
    }
    feed.flushedRevision = revision;
    const now = 200_000;
    const kept = flushes.slice(8_192 - 4_096);
    const reference = (r: number): number => {
      if (r >= revision) return 0;
      const f = kept.find((x) => x.revision > r) ?? kept[0];
      return now - (f as { atMs: number }).atMs;
    };
    for (const r of [0, 1, (kept[0] as { revision: number }).revision - 1, (kept[0] as { revision: number }).revision, revision - 1, revision, revision + 5]) {
      expect(feed.lagMs(r, now)).toBe(reference(r));
    }
    for (let i = 0; i < 500; i++) {
      const r = Math.floor(rand() * (revision + 2));
      expect(feed.lagMs(r, now)).toBe(reference(r));
    }
    // Older than every flush kept: counted from the oldest kept.
    expect(feed.lagMs(0, now)).toBe(now - 4_096 * 10);
  });
});
