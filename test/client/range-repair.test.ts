/**
 * Range repair (PROTOCOL.md §7.2) end to end over the pure pieces: the store (bucket sums, repair
 * sets), the bucket comparison (proto/bucket-set.ts) and the client's FeedState. Random divergent
 * client states (missing keys, extra keys, changed values, in random buckets), with or without
 * the server moving between the request and the answer, always converge to the server's state,
 * and what is sent is bounded by the entries of the buckets that really differ.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FeedState } from '../../src/client/internal.js';
import { FeedStore } from '../../src/snapshot/index.js';
import { bucketCount, bucketOfHashHi, computeDigest, hasBucket, mismatchedBuckets } from '../../proto/index.js';
import { entryHash } from '../../proto/digest.js';

const TOKEN = Buffer.from('t');

function bucketOf(key: string, value: Buffer): number {
  return bucketOfHashHi(Number(entryHash(key, value) >> 32n));
}

/** A client holding exactly `entries` at `revision`, as after a snapshot, allowed to repair. */
function clientWith(entries: ReadonlyMap<string, Buffer>, revision: number): FeedState {
  const fs = new FeedState('felix');
  const list = [...entries];
  fs.snapshotBegin(revision, list.length, 0);
  fs.snapshotChunk(revision, list);
  const r = fs.snapshotEnd({ revision, digest: computeDigest(list), watermarks: {}, status: 'in-sync', stale: false, token: TOKEN });
  expect(r.kind).toBe('applied');
  fs.canRepair = true;
  return fs;
}

function status(store: FeedStore): Parameters<FeedState['status']>[0] {
  return { revision: store.revision, status: 'in-sync', stale: false, watermarks: {}, digest: store.digest(), token: TOKEN };
}

function stateOf(store: FeedStore): Map<string, Buffer> {
  return new Map([...store.current().entries()].map(([k, v]) => [k, Buffer.from(v)]));
}

const keyArb = fc.string({ minLength: 1, maxLength: 6 }).map((s) => `/pods/ns/${s}`);
const valueArb = fc.uint8Array({ minLength: 1, maxLength: 12 }).map((a) => Buffer.from(a));
const stateArb = fc.uniqueArray(fc.tuple(keyArb, valueArb), { selector: ([k]) => k, minLength: 0, maxLength: 300 });
const batchArb = fc.array(fc.tuple(keyArb, fc.option(valueArb, { nil: null })), { maxLength: 20 });

describe('range repair (PROTOCOL.md §7.2)', () => {
  it('converges from random divergent states, sending only the buckets that differ', () => {
    fc.assert(fc.property(
      stateArb,
      // Divergence: indexes of server entries the client lacks or holds changed, plus extra keys.
      fc.array(fc.tuple(fc.nat(), fc.boolean()), { maxLength: 8 }),
      fc.uniqueArray(fc.tuple(keyArb.map((k) => `${k}/extra`), valueArb), { selector: ([k]) => k, maxLength: 5 }),
      batchArb, batchArb,
      (serverEntries, damage, extras, moveBefore, moveAfter) => {
        const store = new FeedStore({ feed: 'felix' });
        store.apply({ updates: serverEntries.map(([key, value]) => ({ key, value })), status: 'in-sync' }, 0);
        const server = stateOf(store);
        const client = new Map(server);
        const diverged = new Set<string>();
        for (const [i, drop] of damage) {
          if (serverEntries.length === 0) break;
          const [key, value] = serverEntries[i % serverEntries.length]!;
          diverged.add(key);
          if (drop) client.delete(key);
          else client.set(key, Buffer.concat([value, Buffer.from([0xee])]));
        }
        for (const [key, value] of extras) {
          client.set(key, value);
          diverged.add(key);
        }
        const r0 = store.revision;
        const fs = clientWith(client, r0);
        const ask = fs.status(status(store));
        const same = computeDigest([...client]).equals(store.digest());
        if (same) {
          expect(ask.kind).toBe('applied');
          return;
        }
        if (ask.kind !== 'repair') throw new Error(`expected a repair request, got ${ask.kind}`);
        expect(ask.revision).toBe(r0);

        // The server moves before the request arrives: the connection was sent R0 → S.
        store.apply({ updates: moveBefore.map(([key, value]) => ({ key, value })) }, 1);
        const s = store.since(r0);
        if (s.kind !== 'delta') throw new Error('log');
        const sentS = store.revision;
        if (sentS > r0) {
          fs.deltaFrame(r0, sentS, false, s.upserts, s.deletes);
          // A STATUS before the answer still sees the divergence and is not an error.
          expect(fs.status(status(store)).kind).toBe('applied');
        }
        // ... and moves again before it answers: the answer runs S → C.
        store.apply({ updates: moveAfter.map(([key, value]) => ({ key, value })) }, 2);

        const buckets = mismatchedBuckets(ask.sums, store.bucketSums());
        const rep = store.repair(sentS, buckets);
        if (rep.kind !== 'delta') throw new Error('log');
        fs.repairFrame(sentS, store.revision, buckets);
        fs.deltaFrame(sentS, store.revision, false, rep.upserts, rep.deletes);
        expect(fs.lastRepair).toBeDefined();
        expect(fs.status(status(store)).kind).toBe('applied');
        expect(fs.currentDigest()).toEqual(store.digest());
        expect(new Map(fs.entries)).toEqual(stateOf(store));

        // Bytes proportional to the divergence: when the server did not move, only buckets holding
        // a diverged key are sent, and only the server's entries of those buckets.
        if (moveBefore.length === 0 && moveAfter.length === 0) {
          const divergedBuckets = new Set<number>();
          for (const key of diverged) {
            const v = server.get(key) ?? client.get(key)!;
            divergedBuckets.add(bucketOf(key, v));
            const cv = client.get(key);
            if (cv !== undefined) divergedBuckets.add(bucketOf(key, cv));
          }
          for (let b = 0; b < 256; b++) if (hasBucket(buckets, b)) expect(divergedBuckets.has(b)).toBe(true);
          expect(bucketCount(buckets)).toBeLessThanOrEqual(2 * diverged.size);
          let bound = 0;
          for (const [key, value] of server) if (hasBucket(buckets, bucketOf(key, value))) bound++;
          expect(rep.upserts.length).toBe(bound);
          expect(rep.deletes).toEqual([]);
        }
      },
    ), { numRuns: 200, seed: 20261205 });
  });

  it('asks for no repair without the capability, and fails a repair that does not verify (4014)', () => {
    const store = new FeedStore({ feed: 'felix' });
    store.apply({ updates: [{ key: 'a', value: Buffer.from([1]) }, { key: 'b', value: Buffer.from([2]) }], status: 'in-sync' }, 0);
    const noCap = clientWith(new Map([['a', Buffer.from([1])]]), store.revision);
    noCap.canRepair = false;
    expect(() => noCap.status(status(store))).toThrow(expect.objectContaining({ code: 'CATTAIL_CLIENT_DIGEST_MISMATCH' }));

    const fs = clientWith(new Map([['a', Buffer.from([1])]]), store.revision);
    const ask = fs.status(status(store));
    if (ask.kind !== 'repair') throw new Error('expected a repair');
    // A second mismatch while the request is outstanding asks for nothing more.
    expect(fs.status(status(store)).kind).toBe('applied');
    // A buggy (or hostile) server that names no bucket: the STATUS after it cannot verify.
    const none = Buffer.alloc(32);
    fs.repairFrame(store.revision, store.revision, none);
    fs.deltaFrame(store.revision, store.revision, false, [], []);
    expect(() => fs.status(status(store))).toThrow(expect.objectContaining({ code: 'CATTAIL_CLIENT_REPAIR_FAILED' }));
  });

  it('refuses a REPAIR nobody asked for, one at the wrong revision, and a DELTA that does not follow it', () => {
    const store = new FeedStore({ feed: 'felix' });
    store.apply({ updates: [{ key: 'a', value: Buffer.from([1]) }], status: 'in-sync' }, 0);
    const fs = clientWith(new Map([['a', Buffer.from([1])]]), store.revision);
    expect(() => fs.repairFrame(1, 1, Buffer.alloc(32))).toThrow(expect.objectContaining({ code: 'CATTAIL_CLIENT_PROTOCOL_ERROR' }));
    const bad = clientWith(new Map([['a', Buffer.from([9])]]), store.revision);
    expect(bad.status(status(store)).kind).toBe('repair');
    expect(() => bad.repairFrame(0, 1, Buffer.alloc(32))).toThrow(expect.objectContaining({ code: 'CATTAIL_CLIENT_REVISION_GAP' }));
    bad.repairFrame(1, 2, Buffer.alloc(32));
    expect(() => bad.deltaFrame(1, 3, false, [], [])).toThrow(expect.objectContaining({ code: 'CATTAIL_CLIENT_PROTOCOL_ERROR' }));
    // A wrong `from` too is "not the REPAIR's revisions" (4002), not a revision gap (4014).
    expect(() => bad.deltaFrame(0, 2, false, [], [])).toThrow(expect.objectContaining({ code: 'CATTAIL_CLIENT_PROTOCOL_ERROR' }));
    expect(() => bad.deltaFrame(2, 2, false, [], [])).toThrow(expect.objectContaining({ code: 'CATTAIL_CLIENT_PROTOCOL_ERROR' }));
  });
});
