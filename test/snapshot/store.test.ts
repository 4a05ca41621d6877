import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CattailError } from '../../src/errors.js';
import { computeDigest, FeedStore, TOMBSTONE_HEAP_BYTES, type StoreView, type Update } from '../../src/snapshot/index.js';
import { applyDelta, sameState, sortedEntries, viewState, type State } from './helpers.js';

const EPOCH = '00112233445566ff';
const KEYS = ['/pods/a/p0', '/pods/a/p1', '/pods/b/p2', '/nodes//n0', 'crd.projectcalico.org/ippools//pool', '/pods/c/ü-é', '/pods/c/p6', '/pods/c/p7'];
const VALUES = [Buffer.from([0x01]), Buffer.from([0x02]), Buffer.from([0x81, 0xa1, 0x61, 0x01]), Buffer.alloc(0), Buffer.alloc(40, 9)];

// Fresh Buffers with the same bytes: the store must compare bytes, not identities.
const updateArb: fc.Arbitrary<Update> = fc.record({
  key: fc.constantFrom(...KEYS),
  value: fc.option(fc.constantFrom(...VALUES).map((v) => Buffer.from(v)), { freq: 4, nil: null }),
});
const stepArb = fc.record({
  updates: fc.array(updateArb, { maxLength: 7 }),
  advanceMs: fc.constantFrom(0, 0, 1_000, 400_000),
  readFrom: fc.nat(),
  // Views are taken now and then, not after every batch: the tree is brought up to date lazily.
  takeView: fc.boolean(),
});

describe('FeedStore against a model', () => {
  it('revisions, views, since() and the digest agree with a plain Map for random batches', () => {
    fc.assert(fc.property(fc.array(stepArb, { minLength: 1, maxLength: 40 }), (steps) => {
      const store = new FeedStore({ feed: 'f', epoch: EPOCH, logMaxAgeMs: 600_000 });
      const model: State = new Map();
      const history: State[] = [new Map()]; // model state at each revision
      const views: Array<[StoreView, State]> = [];
      let now = 0;
      for (const step of steps) {
        now += step.advanceMs;
        const before = new Map(model);
        for (const u of step.updates) {
          if (u.value === null) model.delete(u.key);
          else model.set(u.key, Buffer.from(u.value));
        }
        // A key given twice whose earlier value differs from its last, the last an upsert, went
        // A→B→A within the batch: a change even when the state ends the same (Update.force).
        const lastOf = new Map(step.updates.map((u) => [u.key, u.value]));
        const bounced = step.updates.some((u) => {
          const last = lastOf.get(u.key);
          return last !== null && last !== undefined && (u.value === null || !Buffer.from(u.value).equals(Buffer.from(last)));
        });
        const changed = !sameState(before, model) || bounced;
        const result = store.apply({ updates: step.updates }, now);
        expect(result.changed).toBe(changed);
        expect(result.revision).toBe(history.length - (changed ? 0 : 1));
        if (changed) history.push(new Map(model));
        expect(store.revision).toBe(history.length - 1);

        expect(store.digest().toString('hex')).toBe(computeDigest(model).toString('hex'));
        if (step.takeView) {
          const view = store.current();
          expect(view.revision).toBe(store.revision);
          expect(sortedEntries(viewState(view))).toEqual(sortedEntries(model));
          expect(view.size).toBe(model.size);
          expect(view.digest.toString('hex')).toBe(computeDigest(model).toString('hex'));
          views.push([view, new Map(model)]);
        }

        // current() at r1 plus since(r1) equals current() at r2.
        const from = step.readFrom % history.length;
        const delta = store.since(from);
        if (delta.kind === 'delta') {
          const state = new Map(history[from]);
          applyDelta(state, delta);
          expect(sortedEntries(state)).toEqual(sortedEntries(model));
          expect(delta.to).toBe(store.revision);
          // Compacted: one entry per key.
          const keys = [...delta.upserts.map(([k]) => k), ...delta.deletes];
          expect(new Set(keys).size).toBe(keys.length);
        } else {
          expect(delta).toEqual({ kind: 'too-old', oldestRevision: store.stats().oldestRevision });
          expect(from).toBeLessThan(store.stats().oldestRevision);
        }
        expect(store.since(store.revision)).toMatchObject({ kind: 'delta', upserts: [], deletes: [], bytes: 0 });
        expect(store.since(Math.max(0, store.revision - 1)).kind).toBe('delta');
      }
      expect(sortedEntries(viewState(store.current()))).toEqual(sortedEntries(model));
      // Views never change after later applies.
      for (const [view, state] of views) expect(sortedEntries(viewState(view))).toEqual(sortedEntries(state));
      const s = store.stats();
      expect(s.entries).toBe(model.size);
      expect(s.valueBytes).toBe([...model.values()].reduce((n, v) => n + v.length, 0));
      expect(s.keyBytes).toBe([...model.keys()].reduce((n, k) => n + Buffer.byteLength(k), 0));
    }), { numRuns: 300 });
  });
});

describe('FeedStore.apply', () => {
  const v = (s: string): Buffer => Buffer.from(s);

  it('creates no revision for byte-identical upserts and counts them', () => {
    const store = new FeedStore({ feed: 'f', epoch: EPOCH });
    expect(store.apply({ updates: [{ key: 'k', value: v('a') }] }, 0)).toMatchObject({ revision: 1, changed: true, applied: 1 });
    const view = store.current();
    const r = store.apply({ updates: [{ key: 'k', value: v('a') }, { key: 'k', value: v('a') }] }, 0);
    expect(r).toMatchObject({ revision: 1, changed: false, applied: 0, skippedNoOp: 1, superseded: 1 });
    expect(store.current()).toBe(view);
  });

  it('counts a key set A→B→A within one batch as a change (last wins, but a rebase must see it), and a repeated A→A as none', () => {
    const store = new FeedStore({ feed: 'f', epoch: EPOCH });
    store.apply({ updates: [{ key: 'k', value: v('A') }] }, 0);
    const r = store.apply({ updates: [{ key: 'k', value: v('B') }, { key: 'k', value: v('A') }] }, 0);
    expect(r).toMatchObject({ changed: true, revision: 2, skippedNoOp: 0, superseded: 1 });
    expect(store.since(1)).toMatchObject({ kind: 'delta', upserts: [['k', v('A')]] });
    expect(store.apply({ updates: [{ key: 'k', value: v('A') }, { key: 'k', value: v('A') }] }, 0)).toMatchObject({ changed: false, revision: 2, skippedNoOp: 1, superseded: 1 });
    expect(store.apply({ updates: [{ key: 'k', value: v('B') }, { key: 'k', value: null }] }, 0)).toMatchObject({ revision: 3, deleted: 1, superseded: 1 });
    expect(store.current().size).toBe(0);
  });

  it('counts deletions of unknown keys and changes nothing', () => {
    const store = new FeedStore({ feed: 'f', epoch: EPOCH });
    expect(store.apply({ updates: [{ key: 'nope', value: null }] }, 0)).toMatchObject({ revision: 0, changed: false, deletedUnknown: 1 });
    store.apply({ updates: [{ key: 'k', value: v('a') }] }, 0);
    store.apply({ updates: [{ key: 'k', value: null }] }, 0);
    expect(store.apply({ updates: [{ key: 'k', value: null }] }, 0)).toMatchObject({ revision: 2, changed: false, deletedUnknown: 1 });
    expect(store.digest().toString('hex')).toBe(computeDigest([]).toString('hex'));
  });

  it('copies values that share a backing store, and keeps exact Buffers as they are', () => {
    const store = new FeedStore({ feed: 'f', epoch: EPOCH });
    const slab = Buffer.alloc(8192, 7);
    const exact = Buffer.allocUnsafeSlow(3).fill(1);
    const r = store.apply({ updates: [{ key: 'a', value: slab.subarray(10, 20) }, { key: 'b', value: exact }, { key: 'c', value: new Uint8Array([1, 2]) }] }, 0);
    expect(r.copied).toBe(2);
    const view = store.current();
    expect(view.get('a')?.buffer.byteLength).toBe(10);
    expect(view.get('b')).toBe(exact);
    expect(view.get('c')).toEqual(Buffer.from([1, 2]));
  });

  it('rejects a malformed batch with a coded error and applies none of it', () => {
    const store = new FeedStore({ feed: 'f', epoch: EPOCH });
    const bad: unknown[] = [
      { updates: [{ key: 'ok', value: v('x') }, { key: '', value: v('x') }] },
      { updates: [{ key: 'ok', value: v('x') }, { key: 'k', value: 'text' }] },
      { updates: [{ key: 'ok', value: v('x') }], status: 'synced' },
      { updates: [{ key: 'ok', value: v('x') }], watermarks: { pods: '12a' } },
      { updates: [{ key: 'ok', value: v('x') }], stale: 'yes' },
      { updates: 'nope' },
      null,
    ];
    for (const batch of bad) {
      let err: unknown;
      try { store.apply(batch as never, 0); } catch (e) { err = e; }
      expect(CattailError.is(err) && err.code).toBe('CATTAIL_SNAPSHOT_INVALID_BATCH');
    }
    expect(store.revision).toBe(0);
    expect(store.meta().seq).toBe(0);
    expect(() => store.apply({ updates: [] }, Number.NaN)).toThrow(CattailError);
    expect(() => store.since(-1)).toThrow(CattailError);
    expect(() => new FeedStore({ feed: 'f', logMaxAgeMs: -1 })).toThrow(CattailError);
    expect(() => new FeedStore({ feed: 'f', epoch: 'XYZ' })).toThrow(CattailError);
  });

  it('has a random 16-hex-digit epoch unless one is injected', () => {
    const a = new FeedStore({ feed: 'f' });
    const b = new FeedStore({ feed: 'f' });
    expect(a.epoch).toMatch(/^[0-9a-f]{16}$/);
    expect(a.epoch).not.toBe(b.epoch);
    expect(new FeedStore({ feed: 'f', epoch: EPOCH }).current().epoch).toBe(EPOCH);
  });
});

describe('FeedStore metadata', () => {
  const v = (s: string): Buffer => Buffer.from(s);

  it('attaches a status to the revision its batch produced, after the batch\'s updates', () => {
    const store = new FeedStore({ feed: 'f', epoch: EPOCH });
    store.apply({ updates: [{ key: 'a', value: v('1') }], status: 'resyncing' }, 0);
    const r = store.apply({ updates: [{ key: 'b', value: v('2') }], status: 'in-sync', watermarks: { pods: '100' } }, 0);
    expect(r).toMatchObject({ revision: 2, metaChanged: true });
    expect(store.meta()).toMatchObject({ status: 'in-sync', statusRevision: 2, revision: 2, watermarks: { pods: '100' } });
    const view = store.current();
    expect(view.meta.status).toBe('in-sync');
    expect(view.get('b')).toBeDefined();
    const delta = store.since(1);
    expect(delta.kind === 'delta' && delta.meta.status).toBe('in-sync');
  });

  it('records metadata-only batches at the current revision without creating one', () => {
    const store = new FeedStore({ feed: 'f', epoch: EPOCH });
    store.apply({ updates: [{ key: 'a', value: v('1') }] }, 0);
    const before = store.current();
    const r = store.apply({ updates: [], status: 'in-sync', stale: true, watermarks: { pods: '5', nodes: '7' } }, 0);
    expect(r).toMatchObject({ revision: 1, changed: false, metaChanged: true });
    expect(store.meta()).toMatchObject({ status: 'in-sync', statusRevision: 1, stale: true, seq: 1, revision: 1 });
    const after = store.current();
    expect(after).not.toBe(before);
    expect(before.meta.status).toBe('waiting');
    expect(after.meta).toMatchObject({ status: 'in-sync', stale: true });
    expect(after.revision).toBe(1);
    // The same values again change nothing.
    expect(store.apply({ updates: [], status: 'in-sync', watermarks: { pods: '5' } }, 0).metaChanged).toBe(false);
    expect(Object.isFrozen(store.meta().watermarks)).toBe(true);
  });

  it('records watermarks as given and counts regressions (compared as integers)', () => {
    const store = new FeedStore({ feed: 'f', epoch: EPOCH });
    store.apply({ updates: [], watermarks: { pods: '900' } }, 0);
    expect(store.apply({ updates: [], watermarks: { pods: '1000' } }, 0).watermarkRegressions).toBe(0);
    expect(store.apply({ updates: [], watermarks: { pods: '999' } }, 0).watermarkRegressions).toBe(1);
    expect(store.meta().watermarks).toEqual({ pods: '999' });
  });
});

describe('FeedStore history (since and trim)', () => {
  const v = (s: string): Buffer => Buffer.from(s);

  it('answers future for a revision it has not reached', () => {
    const store = new FeedStore({ feed: 'f', epoch: EPOCH });
    store.apply({ updates: [{ key: 'a', value: v('1') }] }, 0);
    expect(store.since(5)).toEqual({ kind: 'future', revision: 1 });
  });

  it('trims deletions by age and then answers too-old for revisions before them', () => {
    const store = new FeedStore({ feed: 'f', epoch: EPOCH, logMaxAgeMs: 1_000 });
    store.apply({ updates: [{ key: 'a', value: v('1') }, { key: 'b', value: v('1') }] }, 0); // r1
    const r1 = store.current();
    store.apply({ updates: [{ key: 'a', value: null }] }, 100); // r2
    store.apply({ updates: [{ key: 'c', value: v('1') }] }, 200); // r3
    // A deletion counts its key's bytes and the heap it holds besides (TOMBSTONE_HEAP_BYTES).
    expect(store.stats()).toMatchObject({ tombstones: 1, logBytes: 1 + TOMBSTONE_HEAP_BYTES, oldestRevision: 0 });
    expect(store.trim(1_100)).toEqual({ droppedTombstones: 0, droppedBytes: 0, oldestRevision: 0 });
    expect(store.trim(1_101)).toEqual({ droppedTombstones: 1, droppedBytes: 1 + TOMBSTONE_HEAP_BYTES, oldestRevision: 2 });
    expect(store.since(1)).toEqual({ kind: 'too-old', oldestRevision: 2 });
    const d = store.since(2);
    expect(d.kind === 'delta' && d.upserts.map(([k]) => k)).toEqual(['c']);
    expect(store.current().has('a')).toBe(false);
    expect(r1.has('a')).toBe(true);
  });

  it('trims deletions by bytes, oldest first, but keeps the latest revision\'s', () => {
    const each = 5 + TOMBSTONE_HEAP_BYTES;
    const store = new FeedStore({ feed: 'f', epoch: EPOCH, logMaxBytes: 2 * each });
    const keys = ['k0000', 'k0001', 'k0002', 'k0003'];
    store.apply({ updates: keys.map((key) => ({ key, value: v('x') })) }, 0);
    store.apply({ updates: [{ key: 'k0000', value: null }] }, 0); // r2, one deletion
    store.apply({ updates: [{ key: 'k0001', value: null }] }, 0); // r3, two: at the cap
    expect(store.stats()).toMatchObject({ tombstones: 2, logBytes: 2 * each, oldestRevision: 0 });
    const r = store.apply({ updates: [{ key: 'k0002', value: null }] }, 0); // r4: three, above it
    expect(r.trimmed).toBe(1);
    expect(store.stats()).toMatchObject({ tombstones: 2, logBytes: 2 * each, oldestRevision: 2 });
    expect(store.since(1).kind).toBe('too-old');
    const d = store.since(2);
    expect(d.kind === 'delta' && d.deletes).toEqual(['k0001', 'k0002']);
    // One batch bigger than the cap is still kept whole: since(revision - 1) always answers.
    store.apply({ updates: [{ key: 'k0003', value: null }, { key: 'zzzzzzzzzzzzzzzzzz', value: v('y') }] }, 0);
    store.apply({ updates: [{ key: 'zzzzzzzzzzzzzzzzzz', value: null }] }, 0);
    expect(store.since(store.revision - 1)).toMatchObject({ kind: 'delta', deletes: ['zzzzzzzzzzzzzzzzzz'] });
  });

  it('clamps a clock that steps backwards, so deletions stay in order', () => {
    const store = new FeedStore({ feed: 'f', epoch: EPOCH, logMaxAgeMs: 1_000 });
    store.apply({ updates: [{ key: 'a', value: v('1') }, { key: 'b', value: v('1') }] }, 5_000);
    store.apply({ updates: [{ key: 'a', value: null }] }, 5_000);
    store.apply({ updates: [{ key: 'b', value: null }] }, 0); // clock stepped back: counts as 5 000
    store.apply({ updates: [{ key: 'c', value: v('1') }] }, 6_001);
    expect(store.stats().tombstones).toBe(0);
  });

  it('since() shares the stored Buffers', () => {
    const store = new FeedStore({ feed: 'f', epoch: EPOCH });
    const value = Buffer.allocUnsafeSlow(4).fill(3);
    store.apply({ updates: [{ key: 'a', value }] }, 0);
    const d = store.since(0);
    expect(d.kind === 'delta' && d.upserts[0]?.[1]).toBe(value);
    expect(d.kind === 'delta' && d.bytes).toBe(5);
  });
});

describe('FeedStore lazy snapshot index', () => {
  it('replays the tree from apply once enough keys changed, so views stay cheap and nothing stale piles up', () => {
    const store = new FeedStore({ feed: 'f', epoch: EPOCH });
    const initial = store.current();
    // Far more distinct keys than the replay threshold, without ever asking for a view.
    const pending: number[] = [];
    for (let i = 0; i < 20_000; i += 500) {
      store.apply({ updates: Array.from({ length: 500 }, (_, j) => ({ key: `k${i + j}`, value: Buffer.from([j & 255]) })) }, 0);
      const { unflushedKeys, entries } = store.stats();
      expect(unflushedKeys).toBeLessThanOrEqual(4096 + entries / 8);
      pending.push(unflushedKeys);
    }
    // It grew, and apply replayed it (more than once) without any current().
    expect(Math.max(...pending)).toBeGreaterThan(4096);
    expect(pending.filter((n, i) => i > 0 && n < (pending[i - 1] as number)).length).toBeGreaterThan(1);
    const view = store.current();
    expect(view.size).toBe(20_000);
    expect(view.get('k19999')).toEqual(Buffer.from([19_999 % 500 & 255]));
    expect(view.digest.equals(computeDigest(view.entries()))).toBe(true);
    expect(initial.size).toBe(0);
  });
});
