/**
 * FeedStore's range-repair support (PROTOCOL.md §7.2): bucketSums() are the sums the digest
 * hashes, and repair(r, B) is since(r) plus every live entry of the buckets in B, each key once.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FeedStore } from '../../src/snapshot/index.js';
import { addBucket, bucketOfHashHi, emptyBucketSet, hasBucket } from '../../proto/index.js';
import { entryHash } from '../../proto/digest.js';

const keyArb = fc.constantFrom(...Array.from({ length: 60 }, (_, i) => `/pods/ns/p${i}`));
const batchArb = fc.array(fc.tuple(keyArb, fc.option(fc.uint8Array({ minLength: 1, maxLength: 8 }).map((a) => Buffer.from(a)), { nil: null })), { minLength: 1, maxLength: 15 });

const bucketOf = (key: string, value: Buffer): number => bucketOfHashHi(Number(entryHash(key, value) >> 32n));

describe('FeedStore range repair support', () => {
  it('bucketSums hash to the digest; repair = since + the live entries of the buckets', () => {
    fc.assert(fc.property(fc.array(batchArb, { minLength: 1, maxLength: 8 }), fc.nat(), fc.uniqueArray(fc.integer({ min: 0, max: 255 }), { maxLength: 40 }), (batches, pick, buckets) => {
      const store = new FeedStore({ feed: 'felix' });
      let t = 0;
      for (const b of batches) store.apply({ updates: b.map(([key, value]) => ({ key, value })) }, t++);
      expect(createHash('sha256').update(store.bucketSums()).digest().subarray(0, 8)).toEqual(store.digest());
      const from = pick % (store.revision + 1);
      const set = emptyBucketSet();
      for (const b of buckets) addBucket(set, b);
      const r = store.repair(from, set);
      const s = store.since(from);
      if (r.kind !== 'delta' || s.kind !== 'delta') throw new Error('log');
      const expected = new Map(s.upserts);
      for (const [k, v] of store.current().entries()) if (hasBucket(set, bucketOf(k, v))) expected.set(k, v);
      expect(new Map(r.upserts)).toEqual(expected);
      expect(r.upserts.length).toBe(expected.size);
      expect(r.deletes).toEqual(s.deletes);
      expect(r.to).toBe(store.revision);
    }), { numRuns: 200, seed: 20261205 });
  });

  it('refuses a bucket set of the wrong size with a coded error, and answers too-old like since()', () => {
    const store = new FeedStore({ feed: 'felix', logMaxAgeMs: 0 });
    store.apply({ updates: [{ key: 'a', value: Buffer.from([1]) }] }, 0);
    store.apply({ updates: [{ key: 'a', value: null }] }, 10);
    store.apply({ updates: [{ key: 'b', value: Buffer.from([1]) }] }, 20);
    expect(() => store.repair(0, Buffer.alloc(31))).toThrow(expect.objectContaining({ code: 'CATTAIL_INVALID_ARGUMENT' }));
    expect(store.repair(0, emptyBucketSet()).kind).toBe('too-old');
  });

  it('stops collecting once the upserts pass maxBytes (a request naming every bucket)', () => {
    const store = new FeedStore({ feed: 'felix' });
    store.apply({ updates: Array.from({ length: 1_000 }, (_, i) => ({ key: `/pods/ns/p${i}`, value: Buffer.alloc(100, i % 251) })) }, 0);
    const all = emptyBucketSet();
    for (let b = 0; b < 256; b++) addBucket(all, b);
    const full = store.repair(1, all);
    expect(full.kind === 'delta' && full.upserts.length).toBe(1_000);
    const capped = store.repair(1, all, 1_000);
    if (capped.kind !== 'delta') throw new Error('log');
    expect(capped.bytes).toBeGreaterThan(1_000);
    // Entries of ~110 bytes: the pass ends at the first that takes the total past 1,000.
    expect(capped.upserts.length).toBeLessThanOrEqual(10);
  });
});
