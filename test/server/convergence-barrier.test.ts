/**
 * The convergence barrier's tracker (src/server/fanout/convergence.ts) without sockets: real feed
 * stores and their watermark history, connections reduced to what the tracker reads (node, client
 * id, cursors), ACKs recorded as the session records them, time on a FakeClock.
 */
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/clock.js';
import { agentApplied, recordAck, spreadByResource } from '../../src/server/fanout/applied-watermarks.js';
import { quantile } from '../../src/server/ops/convergence-metrics.js';
import { ConvergenceTracker, type ConvergenceReport } from '../../src/server/fanout/convergence.js';
import { FeedRuntime } from '../../src/server/fanout/feeds.js';
import { FeedStore, WatermarkLog } from '../../src/snapshot/index.js';
import { newFeedStats } from '../../src/server/fanout/stats.js';
import type { Connection, FeedCursor } from '../../src/server/transport/connection.js';
import { CattailError } from '../../src/errors.js';

const NP = 'networkpolicies.networking.k8s.io';

function feed(name: string, resources: string[], id = 0): FeedRuntime {
  return new FeedRuntime(id, { name, resources, projectionVersion: 1 }, new FeedStore({ feed: name, logMaxAgeMs: 60_000, logMaxBytes: 1 << 20, watermarkRecords: 4_096 }), 's1', newFeedStats());
}

/** Applies a batch as the pipeline does, returning the new revision. */
function apply(f: FeedRuntime, watermarks: Record<string, string>, key?: string): number {
  f.store.apply({ updates: key === undefined ? [] : [{ key, value: Buffer.from([0x90 + (Math.random() * 8) | 0]) }], watermarks, status: 'in-sync' }, 0);
  return f.store.revision;
}

function agent(node: string, feeds: FeedRuntime[]): Connection & { cursors: FeedCursor[] } {
  const conn = { node, clientId: `c-${node}`, cursors: [] as FeedCursor[] };
  for (const f of feeds) conn.cursors.push({ feed: f, conn, ackedRevision: 0, appliedFloor: undefined } as unknown as FeedCursor);
  return conn as unknown as Connection & { cursors: FeedCursor[] };
}

function setup(feeds: FeedRuntime[], maxWaiters?: number, maxWaitingAgents?: number) {
  const clock = new FakeClock();
  const conns = new Set<Connection>();
  const tracker = new ConvergenceTracker({ clock, serverId: 's1', feeds, connections: () => conns, ...(maxWaiters !== undefined ? { maxWaiters } : {}), ...(maxWaitingAgents !== undefined ? { maxWaitingAgents } : {}) });
  const ack = (c: Connection, revision: number, i = 0): void => {
    recordAck(c.cursors[i] as FeedCursor, revision);
    tracker.onAgentChanged(c);
  };
  const join = (c: Connection): void => {
    conns.add(c);
    tracker.onAgentChanged(c);
  };
  const leave = (c: Connection): void => {
    conns.delete(c);
    tracker.onAgentLeft(c);
  };
  return { clock, tracker, conns, ack, join, leave };
}

/** A promise's outcome so far, without waiting for it. */
function settled<T>(p: Promise<T>): { value: T | undefined } {
  const s: { value: T | undefined } = { value: undefined };
  void p.then((v) => (s.value = v), () => undefined);
  return s;
}

describe('convergence barrier: revision → watermark history', () => {
  it('maps a revision to the newest watermarks recorded at or below it; older than kept is unknown', () => {
    const h = new WatermarkLog(4);
    h.record(1, { a: '10' });
    h.record(1, { a: '12' }); // a watermark-only batch at the same revision
    h.record(3, { a: '20' });
    expect(h.at(0)).toBeUndefined();
    expect(h.at(1)).toEqual({ a: '12' });
    expect(h.at(2)).toEqual({ a: '12' });
    expect(h.at(9)).toEqual({ a: '20' });
    for (let r = 4; r < 20; r++) h.record(r, { a: String(100 + r) });
    expect(h.size).toBeLessThanOrEqual(5);
    expect(h.at(3)).toBeUndefined();
    expect(h.at(19)).toEqual({ a: '119' });
  });
});

describe('convergence barrier: tracker', () => {
  it('resolves when the last agent ACKs a revision whose watermarks reach the RV, not before', async () => {
    const f = feed('policy', [NP]);
    const { tracker, ack, join } = setup([f]);
    const r1 = apply(f, { [NP]: '100' }, '/np/a');
    const a = agent('node-a', [f]);
    const b = agent('node-b', [f]);
    join(a);
    join(b);
    ack(a, r1);
    ack(b, r1);
    const r2 = apply(f, { [NP]: '105' }, '/np/b');
    const res = settled(tracker.wait({ resource: NP, resourceVersion: '105', timeoutMs: 10_000 }));
    ack(a, r2);
    await Promise.resolve();
    expect(res.value).toBeUndefined();
    ack(b, r2);
    await Promise.resolve();
    expect(res.value).toMatchObject({ converged: true, timedOut: false, agents: 2, convergedAgents: 2, laggardCount: 0, laggards: [], replicaResourceVersion: '105' });
    expect(tracker.waiting).toBe(0);
  });

  it('never moves an agent back: an older ACK arriving after a newer one changes nothing', async () => {
    const f = feed('policy', [NP]);
    const { tracker, ack, join } = setup([f]);
    const r1 = apply(f, { [NP]: '100' }, '/np/a');
    const r2 = apply(f, { [NP]: '200' }, '/np/b');
    const a = agent('node-a', [f]);
    join(a);
    ack(a, r2);
    ack(a, r1);
    expect(await tracker.wait({ resource: NP, resourceVersion: '200', timeoutMs: 0 })).toMatchObject({ converged: true });
  });

  it('times out on the injected clock and names the laggard with what it applied', async () => {
    const f = feed('policy', [NP]);
    const { clock, tracker, ack, join } = setup([f]);
    const r1 = apply(f, { [NP]: '100' }, '/np/a');
    const a = agent('node-a', [f]);
    const stalled = agent('node-stalled', [f]);
    const silent = agent('node-silent', [f]);
    join(a);
    join(stalled);
    join(silent);
    ack(stalled, r1);
    const r2 = apply(f, { [NP]: '150' }, '/np/b');
    const res = settled(tracker.wait({ resource: NP, resourceVersion: '150', timeoutMs: 5_000 }));
    ack(a, r2);
    clock.advance(4_999);
    await Promise.resolve();
    expect(res.value).toBeUndefined();
    clock.advance(1);
    await Promise.resolve();
    const report = res.value as ConvergenceReport;
    expect(report).toMatchObject({ converged: false, timedOut: true, agents: 3, convergedAgents: 1, laggardCount: 2, waitedMs: 5_000 });
    expect(report.laggards).toEqual([
      { node: 'node-silent', clientId: 'c-node-silent', appliedResourceVersion: null, connected: true },
      { node: 'node-stalled', clientId: 'c-node-stalled', appliedResourceVersion: '100', connected: true },
    ]);
    expect(tracker.waiting).toBe(0);
  });

  it('keeps the last known watermarks (a lower bound) when an ACK names a revision the history no longer maps', () => {
    const f = feed('policy', [NP]);
    const { tracker, ack, join } = setup([f]);
    const a = agent('node-a', [f]);
    join(a);
    ack(a, apply(f, { [NP]: '100' }, '/np/a'));
    // Push the agent's revision out of the history window (4,096 revisions), then let it ACK a
    // later revision that is also gone: it keeps 100, it is not credited with anything newer.
    const old = f.store.revision;
    for (let i = 0; i < 6_000; i++) apply(f, { [NP]: String(101 + i) }, `/np/k${i % 50}`);
    expect(f.store.watermarksAt(old + 10)).toBeUndefined();
    ack(a, old + 10);
    return tracker.wait({ resource: NP, resourceVersion: '101', timeoutMs: 0 }).then((r) => {
      expect(r).toMatchObject({ converged: false, laggards: [{ node: 'node-a', appliedResourceVersion: '100' }] });
    });
  });

  it('credits watermark-only advances at the revision an agent already holds', async () => {
    const f = feed('policy', [NP]);
    const { tracker, ack, join } = setup([f]);
    const a = agent('node-a', [f]);
    join(a);
    ack(a, apply(f, { [NP]: '100' }, '/np/a'));
    const res = settled(tracker.wait({ resource: NP, resourceVersion: '120', timeoutMs: 10_000 }));
    apply(f, { [NP]: '120' }); // no entry changed: same revision, newer watermark
    tracker.onWatermarks();
    await new Promise((r) => setImmediate(r));
    expect(res.value).toMatchObject({ converged: true });
  });

  it('an agent on two feeds converges without an ACK when the second feed\'s watermark reaches the RV; a watermark that went back and came again counts again', async () => {
    const f1 = feed('policy', [NP], 0);
    const f2 = feed('all', [NP], 1);
    const { tracker, ack, join } = setup([f1, f2]);
    const a = agent('node-a', [f1, f2]);
    join(a);
    ack(a, apply(f1, { [NP]: '100' }, '/np/a'), 0);
    ack(a, apply(f2, { [NP]: '100' }, '/np/a'), 1);
    const res = settled(tracker.wait({ resource: NP, resourceVersion: '150', timeoutMs: 10_000 }));
    const turn = async (): Promise<void> => {
      tracker.onWatermarks();
      await new Promise((r) => setImmediate(r));
    };
    apply(f1, { [NP]: '150' }); // f1 reaches the RV: the agent still has f2 at 100
    await turn();
    expect(res.value).toBeUndefined();
    apply(f2, { [NP]: '149' });
    await turn();
    expect(res.value).toBeUndefined();
    apply(f2, { [NP]: '160' });
    await turn();
    expect(res.value).toMatchObject({ converged: true, agents: 1, convergedAgents: 1 });

    // An upstream regression takes a feed's watermark back below the RV; its coming back is a new
    // transition, so an agent that acked the current revision in between is credited then.
    const b = agent('node-b', [f1]);
    join(b);
    const again = settled(tracker.wait({ resource: NP, resourceVersion: '300', timeoutMs: 10_000, nodes: ['node-b'] }));
    apply(f1, { [NP]: '300' }, '/np/b');
    await turn();
    apply(f1, { [NP]: '250' }, '/np/c'); // gone back (the store takes what the upstream says)
    await turn();
    ack(b, f1.store.revision);
    expect(again.value).toBeUndefined();
    apply(f1, { [NP]: '300' });
    await turn();
    expect(again.value).toMatchObject({ converged: true });
  });

  it('bounds its own work: batches re-judge no agent until a feed reaches the RV, and an ACK is judged only for the waiters it concerns', async () => {
    const f = feed('policy', [NP]);
    const { tracker, ack, join } = setup([f]);
    const agents = Array.from({ length: 50 }, (_, i) => agent(`node-${i}`, [f]));
    for (const a of agents) join(a);
    const r0 = apply(f, { [NP]: '100' }, '/np/a');
    for (const a of agents) ack(a, r0);
    // 20 whole-fleet requests and 200 naming one node each, all for a resourceVersion the
    // replica has not seen (a caller ahead of a lagging replica, or a typo).
    const fleet = Array.from({ length: 20 }, () => settled(tracker.wait({ resource: NP, resourceVersion: '1000', timeoutMs: 60_000 })));
    for (let i = 0; i < 200; i++) void tracker.wait({ resource: NP, resourceVersion: '1000', timeoutMs: 60_000, nodes: [`node-${i % 50}`] });
    const afterWaits = tracker.checks;
    for (let i = 1; i <= 30; i++) {
      apply(f, { [NP]: String(100 + i) }, i % 2 === 0 ? `/np/k${i}` : undefined);
      tracker.onWatermarks();
      await new Promise((r) => setImmediate(r));
    }
    // Before: every turn with a batch judged every waiter's pending agents (30 × (20 × 50 + 200) = 36,000).
    expect(tracker.checks).toBe(afterWaits);

    // One ACK: the 20 whole-fleet waiters and the 4 naming its node, not all 220.
    const before = tracker.checks;
    ack(agents[7] as Connection, f.store.revision);
    expect(tracker.checks - before).toBe(20 + 4);

    // The replica reaches the RV with a watermark-only batch: agents at its current revision are
    // credited in one pass, the one that did not ACK it stays a laggard.
    for (const a of agents) if (a !== agents[3]) ack(a, f.store.revision);
    const beforeReach = tracker.checks;
    apply(f, { [NP]: '1000' });
    tracker.onWatermarks();
    await new Promise((r) => setImmediate(r));
    expect(tracker.checks - beforeReach).toBe(20 * 50 + 200); // one pass over the pending agents
    expect(fleet[0]?.value).toBeUndefined(); // node-3 holds an older revision
    apply(f, { [NP]: '1001' });
    tracker.onWatermarks();
    await new Promise((r) => setImmediate(r));
    expect(tracker.checks - beforeReach).toBe(20 * 50 + 200); // reached once: no second pass
    expect(fleet[0]?.value).toBeUndefined();
    ack(agents[3] as Connection, f.store.revision);
    await Promise.resolve();
    expect(fleet.every((x) => x.value?.converged === true)).toBe(true);
    expect(tracker.waiting).toBe(0);
  });

  it('credits an agent at a revision that mapped to no watermarks once a batch records them, though the feed reached the RV before', async () => {
    // Tier 2's batches may carry no watermarks of their own; trimming the log can then drop the
    // only record below the current revision.
    const f = new FeedRuntime(0, { name: 'policy', resources: [NP], projectionVersion: 1 }, new FeedStore({ feed: 'policy', logMaxAgeMs: 1_000, logMaxBytes: 1 << 20, watermarkRecords: 4_096 }), 's1', newFeedStats());
    const { tracker, ack, join, leave } = setup([f]);
    const a = agent('node-a', [f]);
    const gone = agent('node-gone', [f]);
    join(a);
    join(gone);
    f.store.apply({ updates: [{ key: '/np/a', value: Buffer.from([0x91]) }], watermarks: { [NP]: '100' }, status: 'in-sync' }, 0);
    ack(a, f.store.revision); // applied 100
    ack(gone, f.store.revision);
    f.store.apply({ updates: [{ key: '/np/c', value: Buffer.from([0x93]) }], watermarks: { [NP]: '101' }, status: 'in-sync' }, 0);
    const res = settled(tracker.wait({ resource: NP, resourceVersion: '101', timeoutMs: 10_000 })); // the feed is at 101 already
    f.store.apply({ updates: [{ key: '/np/a', value: null }], status: 'in-sync' }, 0);
    f.store.apply({ updates: [{ key: '/np/b', value: Buffer.from([0x92]) }], status: 'in-sync' }, 0);
    f.store.trim(5_000);
    expect(f.store.watermarksAt(f.store.revision)).toBeUndefined();
    ack(a, f.store.revision); // maps to nothing: the agent keeps what it was known to have (100)
    ack(gone, f.store.revision);
    leave(gone); // kept aside no longer: not judged again
    await Promise.resolve();
    expect(res.value).toBeUndefined();
    const before = tracker.checks;
    f.store.apply({ updates: [], watermarks: { [NP]: '102' }, status: 'in-sync' }, 5_000);
    tracker.onWatermarks();
    await new Promise((r) => setImmediate(r));
    expect(res.value).toMatchObject({ converged: true, agents: 1 });
    expect(tracker.checks - before).toBe(1);
  });

  it('credits an agent whose first ACK mapped to no watermarks once a batch records them', async () => {
    const f = new FeedRuntime(0, { name: 'policy', resources: [NP], projectionVersion: 1 }, new FeedStore({ feed: 'policy', logMaxAgeMs: 1_000, logMaxBytes: 1 << 20, watermarkRecords: 4_096 }), 's1', newFeedStats());
    const { tracker, ack, join } = setup([f]);
    f.store.apply({ updates: [{ key: '/np/a', value: Buffer.from([0x91]) }], watermarks: { [NP]: '100' }, status: 'in-sync' }, 0);
    f.store.apply({ updates: [{ key: '/np/c', value: Buffer.from([0x93]) }], watermarks: { [NP]: '101' }, status: 'in-sync' }, 0);
    f.store.apply({ updates: [{ key: '/np/a', value: null }], status: 'in-sync' }, 0);
    f.store.apply({ updates: [{ key: '/np/b', value: Buffer.from([0x92]) }], status: 'in-sync' }, 0);
    f.store.trim(5_000);
    expect(f.store.watermarksAt(f.store.revision)).toBeUndefined();
    // A new agent: its snapshot at the current revision, and its first ACK, map to nothing.
    const a = agent('node-new', [f]);
    join(a);
    ack(a, f.store.revision);
    const res = settled(tracker.wait({ resource: NP, resourceVersion: '101', timeoutMs: 10_000 }));
    await Promise.resolve();
    expect(res.value).toBeUndefined();
    // The agent does not ACK the same revision again; a watermark-only batch records it.
    f.store.apply({ updates: [], watermarks: { [NP]: '102' }, status: 'in-sync' }, 5_000);
    tracker.onWatermarks();
    await new Promise((r) => setImmediate(r));
    // Before, its floor stayed unknown (set from the first ACK only) and it stayed pending for good.
    expect(res.value).toMatchObject({ converged: true, agents: 1 });
  });

  it('drops a disconnected agent from the scope; a named node that is not connected is a laggard', async () => {
    const f = feed('policy', [NP]);
    const { tracker, join, leave, ack } = setup([f]);
    const r = apply(f, { [NP]: '100' }, '/np/a');
    const a = agent('node-a', [f]);
    const gone = agent('node-gone', [f]);
    join(a);
    join(gone);
    ack(a, r);
    const all = settled(tracker.wait({ resource: NP, resourceVersion: '100', timeoutMs: 10_000 }));
    const named = settled(tracker.wait({ resource: NP, resourceVersion: '100', timeoutMs: 0, nodes: ['node-a', 'node-gone', 'node-never'] }));
    leave(gone);
    await Promise.resolve();
    expect(all.value).toMatchObject({ converged: true, agents: 1 });
    expect(named.value).toMatchObject({ converged: false, laggardCount: 2 });
    const byNode = await tracker.wait({ resource: NP, resourceVersion: '100', timeoutMs: 0, nodes: ['node-a'] });
    expect(byNode).toMatchObject({ converged: true, agents: 1 });
    const missing = await tracker.wait({ resource: NP, resourceVersion: '100', timeoutMs: 0, nodes: ['node-gone'] });
    expect(missing.laggards).toEqual([{ node: 'node-gone', clientId: null, appliedResourceVersion: null, connected: false }]);
  });

  it('a named node that connects while the request waits joins it', async () => {
    const f = feed('policy', [NP]);
    const { tracker, join, ack } = setup([f]);
    const r = apply(f, { [NP]: '100' }, '/np/a');
    const res = settled(tracker.wait({ resource: NP, resourceVersion: '100', timeoutMs: 10_000, nodes: ['node-late'] }));
    const late = agent('node-late', [f]);
    join(late);
    await Promise.resolve();
    expect(res.value).toBeUndefined();
    ack(late, r);
    await Promise.resolve();
    expect(res.value).toMatchObject({ converged: true, agents: 1 });
  });

  it('only agents on a feed carrying the resource count; an agent on two such feeds needs both', async () => {
    const policy = feed('policy', [NP, 'namespaces'], 0);
    const all = feed('all', [NP], 1);
    const other = feed('other', ['nodes'], 2);
    const { tracker, join, ack } = setup([policy, all, other]);
    const rp = apply(policy, { [NP]: '100', namespaces: '90' }, '/np/a');
    const ra = apply(all, { [NP]: '100' }, '/np/a');
    const both = agent('node-both', [policy, all]);
    const unrelated = agent('node-other', [other]);
    join(both);
    join(unrelated);
    ack(both, rp, 0);
    expect(await tracker.wait({ resource: NP, resourceVersion: '100', timeoutMs: 0 })).toMatchObject({ converged: false, agents: 1, laggards: [{ node: 'node-both', appliedResourceVersion: null }] });
    ack(both, ra, 1);
    expect(await tracker.wait({ resource: NP, resourceVersion: '100', timeoutMs: 0 })).toMatchObject({ converged: true, agents: 1 });
  });

  it('resolves plurals, refuses unknown or ambiguous resources, and caps the waiters', async () => {
    const f = feed('policy', [NP, 'networkpolicies.crd.projectcalico.org', 'pods', 'widgets.a.example', 'widgets.b.example']);
    const { tracker, join } = setup([f], 1);
    expect(tracker.resolveResource('pods')).toBe('pods');
    expect(tracker.resolveResource(NP)).toBe(NP);
    const code = (fn: () => unknown): string | undefined => {
      try {
        fn();
      } catch (err) {
        return CattailError.is(err) ? err.code : 'not coded';
      }
      return undefined;
    };
    // Kubernetes' own resource wins a shared plural, as in kubectl; two others stay ambiguous.
    expect(tracker.resolveResource('networkpolicies')).toBe(NP);
    expect(code(() => tracker.resolveResource('widgets'))).toBe('CATTAIL_CONVERGENCE_BAD_REQUEST');
    expect(code(() => tracker.resolveResource('ippools'))).toBe('CATTAIL_CONVERGENCE_BAD_REQUEST');
    // No agent in scope: vacuously converged at once, never waiting.
    void tracker.wait({ resource: 'pods', resourceVersion: '1', timeoutMs: 1_000 });
    expect(tracker.waiting).toBe(0);
    join(agent('node-a', [f]));
    void tracker.wait({ resource: 'pods', resourceVersion: '1', timeoutMs: 1_000 });
    expect(tracker.waiting).toBe(1);
    expect(code(() => tracker.wait({ resource: 'pods', resourceVersion: '1', timeoutMs: 1_000 }))).toBe('CATTAIL_CONVERGENCE_TOO_MANY_WAITERS');
    // One that does not wait takes no place: answered at the bound (cattail converge --node's first ask).
    const now = await tracker.wait({ resource: 'pods', resourceVersion: '1', timeoutMs: 0, nodes: ['node-a'] });
    expect(now).toMatchObject({ converged: false, agents: 1 });
    expect(tracker.waiting).toBe(1);
    tracker.close();
    expect(tracker.waiting).toBe(0);
  });

  it('refuses a request whose agents would take all waiting scopes past maxWaitingAgents; a node filter fits', () => {
    const f = feed('felix', ['pods']);
    const { tracker, join } = setup([f], undefined, 3);
    for (const n of ['node-a', 'node-b']) join(agent(n, [f]));
    void tracker.wait({ resource: 'pods', resourceVersion: '1', timeoutMs: 1_000 }); // 2 agents
    expect(tracker.waiting).toBe(1);
    expect(() => tracker.wait({ resource: 'pods', resourceVersion: '1', timeoutMs: 1_000 })).toThrow(expect.objectContaining({ code: 'CATTAIL_CONVERGENCE_TOO_MANY_WAITERS' }));
    void tracker.wait({ resource: 'pods', resourceVersion: '1', timeoutMs: 1_000, nodes: ['node-a'] }); // 1 more: 3
    expect(tracker.waiting).toBe(2);
    tracker.close();
  });

  it('drops a waiting request (TOO_MANY_WAITERS) whose scope grows past maxWaitingAgents as agents connect; the others keep waiting', async () => {
    const f = feed('felix', ['pods']);
    const { tracker, join } = setup([f], undefined, 3);
    for (const n of ['node-a', 'node-b']) join(agent(n, [f]));
    const fleet = tracker.wait({ resource: 'pods', resourceVersion: '1', timeoutMs: 60_000 }); // 2 agents
    const outcome = fleet.then(() => 'answered', (err: unknown) => (err as { code?: string }).code);
    const one = settled(tracker.wait({ resource: 'pods', resourceVersion: '1', timeoutMs: 60_000, nodes: ['node-a'] })); // 1 more: 3
    expect(tracker.waiting).toBe(2);
    join(agent('node-c', [f])); // the whole-fleet request would follow a fourth
    expect(await outcome).toBe('CATTAIL_CONVERGENCE_TOO_MANY_WAITERS');
    expect(tracker.waiting).toBe(1);
    // Its agents no longer count: a new request fits again (the filtered one follows 1 of 3).
    void tracker.wait({ resource: 'pods', resourceVersion: '1', timeoutMs: 60_000, nodes: ['node-b', 'node-c'] });
    expect(tracker.waiting).toBe(2);
    expect(one.value).toBeUndefined();
    tracker.close();
  });

  it('an aborted request stops waiting and frees its slot', () => {
    const f = feed('policy', [NP]);
    const { tracker, join } = setup([f]);
    join(agent('node-a', [f]));
    const asker = new AbortController();
    void tracker.wait({ resource: NP, resourceVersion: '1', timeoutMs: 60_000 }, asker.signal);
    expect(tracker.waiting).toBe(1);
    asker.abort();
    expect(tracker.waiting).toBe(0);
  });
});

describe('convergence barrier: the metrics\' one-pass spread', () => {
  it('agrees with the per-agent judgement for every resource, and takes nearest-rank quantiles', () => {
    const policy = feed('policy', [NP, 'namespaces'], 0);
    const all = feed('all', [NP], 1);
    const { ack, join, conns } = setup([policy, all]);
    const r1 = apply(policy, { [NP]: '100', namespaces: '90' }, '/np/a');
    const ra = apply(all, { [NP]: '100' }, '/np/a');
    const r2 = apply(policy, { [NP]: '130', namespaces: '95' }, '/np/b');
    const agents = [agent('n1', [policy]), agent('n2', [policy, all]), agent('n3', [all]), agent('n4', [policy])];
    for (const a of agents) join(a);
    ack(agents[0]!, r2);
    ack(agents[1]!, r1, 0);
    ack(agents[1]!, ra, 1);
    ack(agents[2]!, ra);
    const spread = spreadByResource(conns);
    for (const resource of [NP, 'namespaces']) {
      const judged = agents.map((a) => agentApplied(a, resource)).filter((x) => x !== undefined);
      expect(spread.get(resource)?.behind, resource).toBe(judged.filter((j) => j.behind).length);
      expect([...(spread.get(resource)?.applied ?? [])].sort(), resource).toEqual(judged.flatMap((j) => (j.rv === undefined ? [] : [j.rv])).sort());
    }
    expect(spread.get(NP)).toEqual({ applied: expect.arrayContaining(['130', '100', '100']) as unknown, behind: 2 });
    expect(quantile(['1', '2', '3', '4'], 0)).toBe('1');
    expect(quantile(['1', '2', '3', '4'], 0.5)).toBe('2');
    expect(quantile(['1', '2', '3', '4'], 0.99)).toBe('4');
    expect(quantile([], 0.5)).toBeUndefined();
  });
});
