import { describe, expect, it } from 'vitest';
import { computeDigest, encodeValue, FeedStore, type Update } from '../../src/snapshot/index.js';
import { applyDelta, sortedEntries, viewState, type State } from './helpers.js';

// Typha's snapcache spec, made stricter: followers reading at different speeds over a long run of
// odd-sized batches must all end with exactly the store's state, each catching up by compacted
// deltas (and by snapshot when they fall off the retained history).

/** Deterministic xorshift so failures reproduce. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x / 0x100000000;
  };
}

interface Follower {
  /** Reads once every `every` batches. */
  readonly every: number;
  revision: number;
  state: State;
  snapshots: number;
  deltas: number;
}

describe('followers at different speeds', () => {
  it('all converge over 12,000+ updates in batches of 1, 100 and 101', () => {
    const random = rng(42);
    const store = new FeedStore({ feed: 'felix', epoch: '0123456789abcdef', logMaxAgeMs: 20_000, logMaxBytes: 600 });
    const keyCount = 700;
    const followers: Follower[] = [1, 2, 7, 25, 90].map((every) => ({ every, revision: 0, state: new Map(), snapshots: 0, deltas: 0 }));
    const sizes = [1, 100, 101];
    let updates = 0;
    let now = 0;
    for (let batchNo = 0; updates < 12_000; batchNo++) {
      const size = sizes[batchNo % sizes.length] as number;
      const batch: Update[] = [];
      for (let i = 0; i < size; i++) {
        const k = Math.floor(random() * keyCount);
        const roll = random();
        // ~15% deletions, ~15% byte-identical rewrites of a small value set, the rest fresh values.
        const value = roll < 0.15 ? null : roll < 0.3 ? encodeValue({ k, v: 0 }) : encodeValue({ k, v: updates + i });
        batch.push({ key: `/pods/ns-${k % 7}/p-${k}`, value });
      }
      updates += size;
      now += 1_000;
      store.apply({ updates: batch, status: updates >= 12_000 ? 'in-sync' : undefined }, now);
      for (const f of followers) {
        if (batchNo % f.every !== 0) continue;
        const d = store.since(f.revision);
        if (d.kind === 'delta') {
          applyDelta(f.state, d);
          f.revision = d.to;
          f.deltas++;
        } else {
          expect(d.kind).toBe('too-old');
          const view = store.current();
          f.state = viewState(view);
          f.revision = view.revision;
          f.snapshots++;
        }
      }
    }
    // Final catch-up for everyone, then compare entries and digests.
    const expected = viewState(store.current());
    for (const f of followers) {
      const d = store.since(f.revision);
      if (d.kind === 'delta') applyDelta(f.state, d);
      else f.state = viewState(store.current());
      expect(sortedEntries(f.state)).toEqual(sortedEntries(expected));
      expect(computeDigest(f.state).equals(store.digest())).toBe(true);
    }
    // The fast followers never needed a snapshot; the slowest fell off the bounded history.
    expect(followers[0]?.snapshots).toBe(0);
    expect(followers[4]?.snapshots).toBeGreaterThan(0);
    expect(store.meta().status).toBe('in-sync');
  });
});
