/**
 * Pins the exact bytes the simulator loads for a small seeded cluster. The bulk-load path is
 * optimised (templates, slabs); any change that alters a single byte of any stored object, its
 * key, RV, labels or nodeName changes this hash. The hash was recorded before the optimisations
 * of the load path, so it proves they kept the output byte-identical.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/clock.js';
import { loadCluster } from '../../src/sim/load.js';
import { Store } from '../../src/sim/store.js';

function storeDigest(seed: number, nodes: number, podsPerNode: number): { sha256: string; objects: number; rv: number } {
  const store = new Store({ clock: new FakeClock(0), minCapacity: 100, maxCapacity: 1000, windowMs: 75_000, snapshotCacheSize: 8 });
  loadCluster(store, { nodes, podsPerNode, seed });
  const h = createHash('sha256');
  let objects = 0;
  for (const rs of store.all()) {
    h.update(`#${rs.def.id} lastRv=${rs.lastRv}\n`);
    const snap = store.snapshot(rs.def, store.currentRv);
    for (const o of snap.items) {
      objects++;
      h.update(`${o.key} ${o.namespace} ${o.name} ${o.rv} ${o.nodeName ?? '-'} ${JSON.stringify(o.labels)}\n`);
      h.update(o.bytes);
      h.update('\n');
    }
  }
  return { sha256: h.digest('hex'), objects, rv: store.currentRv };
}

describe('sim generator: pinned bytes', () => {
  it('a seeded 12-node × 25-pod cluster loads exactly the recorded bytes', () => {
    expect(storeDigest(7, 12, 25)).toEqual({ sha256: '21b141956458eabb80fc5bbe6956be3aca9942d20195431e8f9f6bf05ee902ce', objects: 403, rv: 403 });
  });
});
