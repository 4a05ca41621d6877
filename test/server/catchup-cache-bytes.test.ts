/**
 * `cattail_catchup_cache_bytes` (ServiceQueue.cachedCatchUps): each cached Buffer counts once. A
 * scoped feed's catch-up for a node is its shared part's Buffers (cached once more on their own,
 * for the next node) and the node's own part; summed per cache entry, the shared part counted
 * once per node plus once (tens of GB reported for 5,000 nodes behind at one revision).
 */
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/clock.js';
import type { FanOutContext } from '../../src/server/fanout/context.js';
import { ServiceQueue } from '../../src/server/fanout/service.js';

describe('the catch-up cache\'s byte count', () => {
  it('counts the shared part of scoped catch-ups once, however many nodes\' catch-ups hold it', () => {
    const q = new ServiceQueue({ o: { clock: new FakeClock() } } as unknown as FanOutContext);
    const caches = q as unknown as { catchUpCache: Map<string, Buffer[]>; sharedPartCache: Map<string, Buffer[]> };
    const shared = [Buffer.alloc(10_000), Buffer.alloc(5_000)];
    caches.sharedPartCache.set('felix|1|2|deflate', shared);
    for (let n = 0; n < 100; n++) caches.catchUpCache.set(`felix|1|2|deflate|node-${n}`, [...shared, Buffer.alloc(100)]);
    // An unscoped catch-up beside them: its own frames.
    caches.catchUpCache.set('bgp|4|5|deflate', [Buffer.alloc(700)]);
    expect(q.cachedCatchUps()).toEqual({ entries: 102, bytes: 15_000 + 100 * 100 + 700 });
  });
});
