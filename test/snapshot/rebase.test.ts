/**
 * FeedStore.rebase (PROTOCOL.md §7.1): the newest revision made at or below an agent's upstream
 * watermarks, and the cases where there is none. Two stores stand for two replicas fed the same
 * upstream events in different batch groupings; revisions differ, resourceVersions do not.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FeedStore, type Batch } from '../../src/snapshot/index.js';
import { applyDelta, sameState, viewState, type State } from './helpers.js';

function rebased(agent: State, s: ReturnType<FeedStore['since']>): State {
  if (s.kind !== 'delta') throw new Error(`since answered ${s.kind}`);
  applyDelta(agent, s);
  return agent;
}

const v = (n: number): Buffer => Buffer.from([0x90 | (n & 0x0f), n >> 4]);

/** One upstream event: an object changed (or was deleted) at a resourceVersion. */
interface Event { key: string; value: Buffer | null; rv: number }

function events(n: number): Event[] {
  return Array.from({ length: n }, (_, i) => ({ key: `/pods/ns/p${i % 7}`, value: i % 5 === 4 ? null : v(i), rv: 100 + i }));
}

/** Feeds the events to a store in groups of the given sizes (the last group takes the rest), each batch with the watermark of its last event. */
function feed(store: FeedStore, evs: readonly Event[], groups: readonly number[], nowMs = 0): void {
  let i = 0;
  for (let g = 0; i < evs.length; g++) {
    const size = Math.max(1, groups[g] ?? evs.length);
    const part = evs.slice(i, i + size);
    i += part.length;
    const batch: Batch = { updates: part.map((e) => ({ key: e.key, value: e.value })), watermarks: { pods: String((part.at(-1) as Event).rv) }, status: 'in-sync' };
    store.apply(batch, nowMs);
  }
}

describe('FeedStore.rebase', () => {
  it('finds the newest revision made at or below the agent watermarks, and since() brings the agent to the store', () => {
    const evs = events(40);
    const a = new FeedStore({ feed: 'f' });
    const b = new FeedStore({ feed: 'f' });
    feed(a, evs.slice(0, 25), [3, 3, 3, 3, 3, 3, 3, 4]);
    feed(b, evs, [5, 7, 2, 9, 1, 16]);
    const agent = viewState(a.current());
    const w = a.meta().watermarks;
    expect(w).toEqual({ pods: '124' });
    const found = b.rebase(w);
    expect(found.kind).toBe('revision');
    const r = (found as { revision: number }).revision;
    // B's batches ended at events 4, 11, 13, 22, 23, 39: the newest at or below rv 124 is the fifth.
    expect(r).toBe(5);
    const s = b.since(r);
    expect(s.kind).toBe('delta');
    expect(sameState(rebased(agent, s), viewState(b.current()))).toBe(true);
  });

  it('serves an agent between the first and the last watermarks of a revision (a warm-restarted replica\'s restored state)', () => {
    // The restored state is one batch at the checkpoint's watermarks; bookmarks then move the
    // watermarks without changing an entry, and a pod changes only later.
    const b = new FeedStore({ feed: 'f' });
    b.apply({ updates: [{ key: '/pods/ns/a', value: v(1) }, { key: '/nodes/n1', value: v(2) }], watermarks: { pods: '100', nodes: '90' }, status: 'in-sync' }, 0);
    b.apply({ updates: [], watermarks: { pods: '100', nodes: '130' }, status: 'in-sync' }, 0);
    b.apply({ updates: [{ key: '/pods/ns/a', value: v(3) }], watermarks: { pods: '140', nodes: '130' }, status: 'in-sync' }, 0);
    // The agent left the replica before the crash at nodes 110 (a bookmark the checkpoint missed),
    // pods 120 (a label change that changed no entry of the feed).
    const found = b.rebase({ pods: '120', nodes: '110' });
    expect(found).toEqual({ kind: 'revision', revision: 1 });
    const agent: State = new Map([['/pods/ns/a', v(1)], ['/nodes/n1', v(2)]]);
    expect(sameState(rebased(agent, b.since(1)), viewState(b.current()))).toBe(true);
  });

  it('a batch that changes entries without watermarks of its own is no rebase base at the previous ones', () => {
    // Tier 2 releasing a change whose STATUS never came: the store's watermarks are still 100.
    const b = new FeedStore({ feed: 'f' });
    b.apply({ updates: [{ key: '/pods/ns/a', value: v(1) }], watermarks: { pods: '100' }, status: 'in-sync' }, 0);
    b.apply({ updates: [{ key: '/pods/ns/c', value: v(2) }] }, 0);
    // An agent of another replica at 100 never saw c: it continues from revision 1, and gets c.
    expect(b.rebase({ pods: '100' })).toEqual({ kind: 'revision', revision: 1 });
    const agent: State = new Map([['/pods/ns/a', v(1)]]);
    expect(sameState(rebased(agent, b.since(1)), viewState(b.current()))).toBe(true);
    // The STATUS comes late (watermarks only): now revision 2 stands for 105.
    b.apply({ updates: [], watermarks: { pods: '105' }, status: 'in-sync' }, 0);
    expect(b.rebase({ pods: '105' })).toEqual({ kind: 'revision', revision: 2 });
    expect(b.rebase({ pods: '100' })).toEqual({ kind: 'revision', revision: 1 });
  });

  it('a stale- or status-only batch after a revision without watermarks does not make that revision a base at the previous ones', () => {
    // Tier 2 releasing a change whose STATUS never came, then marking itself stale (tier 1 lost).
    const b = new FeedStore({ feed: 'f' });
    b.apply({ updates: [{ key: '/pods/ns/a', value: v(1) }], watermarks: { pods: '100' }, status: 'in-sync' }, 0);
    b.apply({ updates: [{ key: '/pods/ns/c', value: v(2) }] }, 0);
    b.apply({ updates: [], stale: true }, 0);
    b.apply({ updates: [], stale: false }, 0); // the outage ends without a STATUS yet
    // Before, revision 2 was recorded at 100: an agent at 100 was rebased from 2 and never got c.
    expect(b.rebase({ pods: '100' })).toEqual({ kind: 'revision', revision: 1 });
    const agent: State = new Map([['/pods/ns/a', v(1)]]);
    expect(sameState(rebased(agent, b.since(1)), viewState(b.current()))).toBe(true);
    // Tier 1 back, its STATUS with the watermarks revision 2 stands for: now a base at them.
    b.apply({ updates: [], watermarks: { pods: '105' }, status: 'in-sync', stale: false }, 0);
    expect(b.rebase({ pods: '105' })).toEqual({ kind: 'revision', revision: 2 });
    expect(b.rebase({ pods: '100' })).toEqual({ kind: 'revision', revision: 1 });
  });

  it('a deletion of an unknown key without watermarks sets the barrier again at the next watermarks', () => {
    const b = new FeedStore({ feed: 'f' });
    b.apply({ updates: [{ key: '/pods/ns/a', value: v(1) }], watermarks: { pods: '100' }, status: 'in-sync' }, 0);
    // A key created and deleted upstream between two of tier 1's units, released without a STATUS.
    b.apply({ updates: [{ key: '/pods/ns/c', value: v(2) }, { key: '/pods/ns/gone', value: null }] }, 0);
    b.apply({ updates: [], watermarks: { pods: '110' }, status: 'in-sync' }, 0);
    // An agent at 105 may hold /pods/ns/gone: no rebase (before, the barrier stood at 100 and it passed).
    expect(b.rebase({ pods: '105' })).toEqual({ kind: 'none' });
    expect(b.rebase({ pods: '110' })).toEqual({ kind: 'revision', revision: 2 });
  });

  it('a barrier batch (the end of a relist) rebases no agent below its watermarks from before it', () => {
    const b = new FeedStore({ feed: 'f' });
    feed(b, events(20), [5, 5, 5, 5]);
    expect(b.rebase({ pods: '110' })).toEqual({ kind: 'revision', revision: 2 });
    b.apply({ updates: [{ key: '/pods/ns/x', value: v(9) }], watermarks: { pods: '200' }, status: 'in-sync', barrier: true }, 0);
    expect(b.rebase({ pods: '110' })).toEqual({ kind: 'none' });
    expect(b.rebase({ pods: '200' })).toEqual({ kind: 'revision', revision: 5 });
  });

  it('answers behind when the store has not reached the agent watermarks, or lacks a resource of them', () => {
    const b = new FeedStore({ feed: 'f' });
    feed(b, events(10), [10]);
    expect(b.rebase({ pods: '200' })).toEqual({ kind: 'behind' });
    expect(b.rebase({ pods: '105', nodes: '3' })).toEqual({ kind: 'behind' });
  });

  it('answers none before the first recorded revision, for other resources, and for watermarks that are not an agent\'s', () => {
    const b = new FeedStore({ feed: 'f' });
    b.apply({ updates: [], status: 'in-sync', watermarks: { pods: '1' } }, 0);
    feed(b, events(10), [5, 5]);
    // Recorded revisions: 1 at rv 104, 2 at rv 109; the agent is older than both.
    expect(b.rebase({ pods: '103' })).toEqual({ kind: 'none' });
    expect(b.rebase({ pods: '104' })).toEqual({ kind: 'revision', revision: 1 });
    for (const bad of [{}, null, 'pods', { pods: 'x1' }, { pods: 5 }, Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`r${i}`, '1']))]) {
      expect(b.rebase(bad)).toEqual({ kind: 'none' });
    }
  });

  it('answers none when the revision has left the delta log (too old), and behind while not in sync', () => {
    const b = new FeedStore({ feed: 'f', logMaxAgeMs: 1_000 });
    feed(b, events(10), [5, 5], 0);
    expect(b.rebase({ pods: '104' })).toEqual({ kind: 'revision', revision: 1 });
    b.apply({ updates: [{ key: '/pods/ns/p1', value: null }], watermarks: { pods: '300' } }, 5_000);
    b.trim(10_000);
    expect(b.since(1).kind).toBe('too-old');
    expect(b.rebase({ pods: '104' })).toEqual({ kind: 'none' });
    const waiting = new FeedStore({ feed: 'f' });
    waiting.apply({ updates: [{ key: '/pods/ns/p1', value: v(1) }], watermarks: { pods: '10' }, status: 'resyncing' }, 0);
    expect(waiting.rebase({ pods: '10' })).toEqual({ kind: 'behind' });
  });

  it('refuses to continue across a deletion of a key it never held (created and deleted inside one of its batches)', () => {
    const evs = events(20);
    const a = new FeedStore({ feed: 'f' });
    const b = new FeedStore({ feed: 'f' });
    feed(a, evs.slice(0, 6), [6]); // A holds p5, created by event 5
    feed(b, evs, [1, 19]); // B's second batch creates p5 and deletes it (event 19): no tombstone
    expect(b.stats().tombstones).toBe(1);
    expect(b.rebase(a.meta().watermarks)).toEqual({ kind: 'none' });
    // An agent at or past that deletion's batch is not affected.
    expect(b.rebase(b.meta().watermarks)).toEqual({ kind: 'revision', revision: 2 });
  });

  it('serves an agent that holds a value which went and came back inside one of its batches (A→B→A)', () => {
    // Both replicas hold k=A, o=X at rv 100. Replica A applied rv 101 (k=B) alone; replica B got
    // 101 (k=B) and 102 (k=A, o=Y) in one batch, in which k ends where it started.
    const k = '/pods/ns/k';
    const o = '/pods/ns/o';
    const start: Batch = { updates: [{ key: k, value: v(1) }, { key: o, value: v(2) }], watermarks: { pods: '100' }, status: 'in-sync' };
    const a = new FeedStore({ feed: 'f' });
    const b = new FeedStore({ feed: 'f' });
    a.apply(start, 0);
    b.apply(start, 0);
    a.apply({ updates: [{ key: k, value: v(3) }], watermarks: { pods: '101' } }, 0);
    b.apply({ updates: [{ key: k, value: v(3) }, { key: k, value: v(1) }, { key: o, value: v(4) }], watermarks: { pods: '102' } }, 0);
    const found = b.rebase(a.meta().watermarks);
    expect(found).toEqual({ kind: 'revision', revision: 1 });
    const s = b.since(1);
    // k is in the catch-up although its bytes did not change across the batch.
    expect(s.kind === 'delta' && s.upserts.map(([key]) => key).sort()).toEqual([k, o]);
    expect(sameState(rebased(viewState(a.current()), s), viewState(b.current()))).toBe(true);
    // The dispatcher merges events before the store sees them: it marks such a key (force).
    const c = new FeedStore({ feed: 'f' });
    c.apply(start, 0);
    c.apply({ updates: [{ key: k, value: v(1), force: true }, { key: o, value: v(4) }], watermarks: { pods: '102' } }, 0);
    const t = c.since(1);
    expect(t.kind === 'delta' && t.upserts.map(([key]) => key).sort()).toEqual([k, o]);
    // A value repeated unchanged (a heartbeat) is still no change.
    const before = c.revision;
    c.apply({ updates: [{ key: o, value: v(4) }, { key: o, value: v(4) }], watermarks: { pods: '103' } }, 0);
    expect(c.revision).toBe(before);
  });

  it('keeps a bounded number of records', () => {
    const b = new FeedStore({ feed: 'f', watermarkRecords: 4 });
    feed(b, events(10), [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    expect(b.rebase({ pods: '105' })).toEqual({ kind: 'none' });
    // Event 4 deletes an unknown key and makes no revision: rv 105 is revision 5, rv 106 is 6.
    expect(b.rebase({ pods: '106' })).toEqual({ kind: 'revision', revision: 6 });
  });

  it.each([
    ['distinct values', (i: number) => v(i)],
    // Values that come back (A→B→A inside one batch of one replica and not the other's).
    ['values from a set of three', (i: number) => v(i % 3)],
  ])('property (%s): for random groupings on two replicas the rebased state always equals the store', (_name, valueOf) => {
    const groupsArb = fc.array(fc.integer({ min: 1, max: 6 }), { maxLength: 30 });
    let rebasedRuns = 0;
    fc.assert(fc.property(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 0, max: 60 }), groupsArb, groupsArb, (n, cut, ga, gb) => {
      const evs = events(n).map((e, i) => (e.value === null ? e : { ...e, value: valueOf(i) }));
      const at = Math.min(cut, n);
      const a = new FeedStore({ feed: 'f' });
      const b = new FeedStore({ feed: 'f' });
      feed(a, evs.slice(0, at), ga);
      feed(b, evs, gb);
      if (at === 0) return;
      const found = b.rebase(a.meta().watermarks);
      // B has every event A has, in a grouping whose boundaries may fall after A's last one; it
      // always finds some revision unless its first batch already went past the agent.
      if (found.kind !== 'revision') {
        expect(found.kind).toBe('none');
        return;
      }
      const s = b.since(found.revision);
      expect(s.kind).toBe('delta');
      expect(sameState(rebased(viewState(a.current()), s), viewState(b.current()))).toBe(true);
      rebasedRuns++;
    }), { numRuns: 300 });
    // Not vacuous: most runs do rebase.
    expect(rebasedRuns).toBeGreaterThan(100);
  });
});
