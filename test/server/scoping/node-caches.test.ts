/**
 * The per-node caches of a scoped feed are bounded (MAX_CACHED_NODES) however many node names
 * HELLOs bring on a quiet cluster (no new revision ever clears them): the per-node STATUS frames
 * of FeedRuntime and the node snapshots kept per shared build. What they hand out stays right.
 * (The third, ScopeIndex's digest cache, is tested in scope.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../../src/clock.js';
import { FeedRuntime } from '../../../src/server/fanout/feeds.js';
import { type NodeSnapshot, SnapshotCache } from '../../../src/server/fanout/snapshot-cache.js';
import { FanOutStats } from '../../../src/server/fanout/stats.js';
import { createMetrics } from '../../../src/server/ops/metrics.js';
import type { FeedDefinition } from '../../../src/server/pipeline/seams.js';
import type { ServedStore } from '../../../src/server/pipeline/store-port.js';
import { MAX_CACHED_NODES, ScopeIndex } from '../../../src/server/scoping/index.js';
import { SCOPE_POLICIES, type ScopePolicy } from '../../../src/server/scoping/policy.js';
import { ipPoolKey, workloadEndpointKey } from '../../../src/server/upstream/projections/calico-keys.js';
import { FeedStore, encodeValue } from '../../../src/snapshot/index.js';

const def: FeedDefinition = { name: 'felix', resources: ['pods'], projectionVersion: 1, model: 'libcalico.v2' };

function scopedFeed(): { feed: FeedRuntime; metrics: ReturnType<typeof createMetrics> } {
  const store = new FeedStore({ feed: 'felix', epoch: '0123456789abcdef', logMaxAgeMs: 600_000 });
  store.apply({
    updates: [
      { key: workloadEndpointKey('n1', 'demo', 'p0'), value: encodeValue({ labels: { app: 'a' }, ipv4_nets: ['10.0.0.1/32'], name: 'cali0' }) },
      { key: ipPoolKey('10.0.0.0/16'), value: encodeValue({ cidr: '10.0.0.0/16' }) },
    ],
    status: 'in-sync',
    watermarks: { pods: '7' },
  }, 0);
  const metrics = createMetrics(new FanOutStats(), { defaultMetrics: false });
  const feed = new FeedRuntime(0, def, store as unknown as ServedStore, 'test', metrics.fanout.feed('felix'));
  feed.scope = new ScopeIndex(SCOPE_POLICIES.get('felix') as ScopePolicy, store as unknown as ServedStore);
  return { feed, metrics };
}

describe('per-node caches of a scoped feed', () => {
  it('bounds the per-node STATUS frames, and a node\'s frame stays its own', () => {
    const { feed } = scopedFeed();
    const n1 = Buffer.from(feed.statusFrame(0, 'n1').frame);
    for (let i = 0; i <= MAX_CACHED_NODES + 10; i++) feed.statusFrame(0, `nobody-${i}`);
    expect(feed.nodeStatusCached).toBeLessThanOrEqual(MAX_CACHED_NODES);
    expect(feed.statusFrame(0, 'n1').frame.equals(n1)).toBe(true);
    // n1 holds an entry of its own, so its digest (and frame) differs from a node without any.
    expect(n1.equals(feed.statusFrame(0, 'nobody-0').frame)).toBe(false);
  });

  it('keeps at most MAX_CACHED_NODES node snapshots per shared build; beyond, each is the agent\'s alone', async () => {
    const { feed, metrics } = scopedFeed();
    const cache = new SnapshotCache({ clock: new FakeClock(), reuseWindowMs: 1_000, sliceEntries: 1_000, sliceMs: 1_000, compressMinBytes: 1_024, metrics });
    const first = cache.acquireScoped(feed, 'n1', 'none', 1_048_576) as NodeSnapshot;
    for (let i = 0; i <= MAX_CACHED_NODES + 10; i++) cache.acquireScoped(feed, `nobody-${i}`, 'none', 1_048_576);
    expect(first.shared.scoped?.nodes.size).toBeLessThanOrEqual(MAX_CACHED_NODES);
    expect(cache.builtCount).toBe(1);
    // The first node's snapshot is still the one kept for it.
    expect(cache.acquireScoped(feed, 'n1', 'none', 1_048_576)).toBe(first);
    // One past the bound: a snapshot of its own each time (not kept), of the same shared build.
    const a = cache.acquireScoped(feed, 'late-node', 'none', 1_048_576) as NodeSnapshot;
    const b = cache.acquireScoped(feed, 'late-node', 'none', 1_048_576) as NodeSnapshot;
    expect(a).not.toBe(b);
    expect(a.shared).toBe(first.shared);
    // An agent reading a node snapshot kept in no map still counts as a reader of the shared build
    // (the cache stops a superseded build only when none is left): before, past the bound, none did.
    expect(a.shared.nodeReaders).toBe(0);
    const stop = a.subscribe(() => undefined);
    const stopFirst = first.subscribe(() => undefined);
    expect(a.shared.nodeReaders).toBe(2);
    stop();
    stop(); // a second call changes nothing
    expect(a.shared.nodeReaders).toBe(1);
    stopFirst();
    expect(a.shared.nodeReaders).toBe(0);
  });

  it('a node snapshot reads the shared chunks from its shared build (no list of them per node), and held() counts what cached ones hold of their own', async () => {
    const { feed, metrics } = scopedFeed();
    // Enough shared entries for many small chunks.
    const updates = Array.from({ length: 300 }, (_, i) => ({ key: ipPoolKey(`10.${i >> 8}.${i & 255}.0/24`), value: encodeValue({ cidr: `10.${i}.0.0/24`, pad: 'x'.repeat(100) }) }));
    (feed.store as unknown as FeedStore).apply({ updates, watermarks: { pods: '8' } }, 0);
    const cache = new SnapshotCache({ clock: new FakeClock(), reuseWindowMs: 1_000, sliceEntries: 50, sliceMs: 1_000, chunkBytes: 4_096, compressMinBytes: 1_024, metrics });
    const n1 = cache.acquireScoped(feed, 'n1', 'none', 4_096) as NodeSnapshot;
    const n2 = cache.acquireScoped(feed, 'n2', 'none', 4_096) as NodeSnapshot;
    // While the shared build runs, the node snapshots' own parts (encoded already) count too.
    expect(n1.shared.done).toBe(false);
    const heldWhileRunning = cache.held().bytes;
    const sharedWhileRunning = n1.shared.wireBytes;
    await new Promise<void>((resolve) => {
      const stop = n2.subscribe(() => {
        if (n1.done && n2.done) {
          stop();
          resolve();
        }
      });
    });
    const shared = n1.shared;
    expect(shared.frames.length).toBeGreaterThan(10);
    for (const n of [n1, n2]) {
      const all = Array.from({ length: n.frameCount }, (_, i) => n.frameAt(i));
      // BEGIN, every shared chunk (the same Buffers), then its own chunks and END.
      expect(all.slice(1, 1 + shared.frames.length)).toEqual(shared.frames);
      expect(all.slice(1, 1 + shared.frames.length).every((f, i) => f === shared.frames[i])).toBe(true);
      expect(n.frames).toEqual([all[0], ...all.slice(1 + shared.frames.length)]);
      expect(n.wireBytes).toBe(all.reduce((sum, f) => sum + f.length, 0));
      expect(n.ownBytes).toBe(n.frames.reduce((sum, f) => sum + f.length, 0));
    }
    // n1 has an endpoint of its own: a chunk more than n2's BEGIN and END.
    expect(n1.frames.length).toBe(3);
    expect(heldWhileRunning).toBe(sharedWhileRunning + n1.ownBytes + n2.ownBytes);
    expect(n2.frames.length).toBe(2);
    expect(cache.held().bytes).toBe(shared.wireBytes + n1.ownBytes + n2.ownBytes);
  });

  it('a node snapshot that fails on its own part follows nothing of its shared build', async () => {
    const { feed, metrics } = scopedFeed();
    // n1's own endpoint carries a value larger than the agent's frames; its slim copy in the
    // shared part (other nodes' view) fits, so the shared build goes on and only n1's part fails.
    feed.store.apply({ updates: [{ key: workloadEndpointKey('n1', 'demo', 'big'), value: encodeValue({ labels: { app: 'a' }, name: 'cali1', annotations: { big: 'x'.repeat(4_000) } }) }], status: 'in-sync', watermarks: { pods: '8' } }, 0);
    const cache = new SnapshotCache({ clock: new FakeClock(), reuseWindowMs: 1_000, sliceEntries: 1, sliceMs: 1_000, compressMinBytes: 1_024, metrics });
    const failed = cache.acquireScoped(feed, 'n1', 'none', 2_048) as NodeSnapshot;
    expect(failed.failed?.message).toMatch(/above this connection.s maxFrameBytes/);
    expect(failed.done).toBe(true);
    const shared = failed.shared;
    expect(shared.done).toBe(false);
    // Before, its listener stayed on the shared build (a closure over its frames) until that
    // build was dropped: a failed snapshot returned from follow before unsubscribing.
    expect(shared.readers).toBe(0);
    const ok = cache.acquireScoped(feed, 'n2', 'none', 2_048) as NodeSnapshot;
    expect(ok.shared).toBe(shared);
    expect(shared.readers).toBe(1);
    while (!shared.done) await new Promise((r) => setImmediate(r));
    expect(ok.done).toBe(true);
    expect(ok.failed).toBeUndefined();
    expect(shared.readers).toBe(0);
  });
});
