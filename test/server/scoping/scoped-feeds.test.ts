/**
 * Per-node scoping (#20) against the real server on loopback: a scoped agent's state is its
 * node's scoped view of the store, under churn, resume and reconnect; it is never sent another
 * node's full object on a scoped feed; unscoped feeds and agents are unchanged; and the refusals
 * (no capability, HELLO node other than the certificate's) are coded.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../../src/clock.js';
import type { Message } from '../../../proto/index.js';
import { decodeValue } from '../../../src/snapshot/index.js';
import { SCOPE_POLICIES, NODE_STATUS_PREFIX, type ScopePolicy } from '../../../src/server/scoping/policy.js';
import { slimValue } from '../../../src/server/scoping/slim.js';
import { scopedView } from '../../../src/server/scoping/view.js';
import { hostConfigKey, ipPoolKey, workloadEndpointKey } from '../../../src/server/upstream/projections/calico-keys.js';
import { type Harness, harness } from '../helpers/harness.js';
import type { TestAgent } from '../helpers/agent.js';

const CAPS = ['scope.node'];
const policy = (f: string): ScopePolicy => SCOPE_POLICIES.get(f) as ScopePolicy;

function wep(node: string, pod: number, gen = 0): [string, Record<string, unknown>] {
  return [workloadEndpointKey(node, 'demo', `p${pod}`), {
    state: 'active', name: `cali${pod}`, active_instance_id: `${node}-${gen}`, mac: null, profile_ids: ['kns.demo'], ipv4_nets: [`10.${pod}.0.${gen}/32`], ipv6_nets: null,
    labels: { app: `a${pod % 3}`, gen: String(gen) }, ports: [{ name: 'http', protocol: 'tcp', port: 80 }], annotations: { secret: `${node}-only-${gen}` },
  }];
}

function cluster(nodes: string[], pods: number, gen = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const n of nodes) for (let p = 0; p < pods; p++) { const [k, v] = wep(n, p, gen); out[k] = v; }
  for (const n of nodes) out[hostConfigKey(n, 'IpInIpTunnelAddr')] = `10.99.0.${nodes.indexOf(n)}`;
  out[ipPoolKey('10.0.0.0/8')] = { cidr: '10.0.0.0/8', gen };
  return out;
}

function storeState(h: Harness, feed: string): Map<string, Buffer> {
  return new Map([...(h.server.stores.get(feed) as NonNullable<ReturnType<typeof h.server.stores.get>>).current().entries()]);
}

function expectScoped(h: Harness, a: TestAgent, feed: string, node: string): void {
  const want = scopedView(policy(feed), storeState(h, feed), node);
  const got = a.feed(feed).entries;
  expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
  for (const [k, v] of want) expect(got.get(k)?.equals(v), k).toBe(true);
}

/** Every entry the agent was sent on `feed` (snapshot chunks and delta upserts). */
function sentEntries(a: TestAgent, feedId: number): [string, Buffer][] {
  const out: [string, Buffer][] = [];
  for (const m of a.messages as Message[]) {
    if (m.type === 'snapshotChunk' && m.feedId === feedId) for (const [k, v] of m.entries) out.push([k, Buffer.from(v)]);
    if (m.type === 'delta' && m.feedId === feedId) for (const [k, v] of m.upserts) out.push([k, Buffer.from(v)]);
  }
  return out;
}

/** No other node's full value of a node-bound key reached the agent (slim or nothing only). */
function expectNoForeignFull(a: TestAgent, feed: string, node: string): void {
  const p = policy(feed);
  const id = a.feed(feed).id;
  for (const [k, v] of sentEntries(a, id)) {
    const owner = p.nodeOf(k, k.startsWith(NODE_STATUS_PREFIX) ? v : undefined);
    if (owner === undefined || owner === node) continue;
    if (k.startsWith(NODE_STATUS_PREFIX)) throw new Error(`another node's status ${k} reached ${node}`);
    expect(p.others, k).toBe('slim');
    const fields = Object.keys(decodeValue(v) as Record<string, unknown>);
    expect(fields.every((f) => ['labels', 'profile_ids', 'ipv4_nets', 'ipv6_nets', 'ports'].includes(f)), `${k}: ${fields.join(',')}`).toBe(true);
  }
}

async function scopedHarness(extra: Parameters<typeof harness>[0] = {}): Promise<Harness> {
  const h = await harness({ feeds: ['felix', 'node-status', 'bgp'], scopedFeeds: ['felix', 'node-status'], ...extra });
  h.upstream.apply('felix', cluster(['n1', 'n2', 'n3'], 4), { status: 'in-sync', watermarks: { pods: '1' } });
  h.upstream.apply('node-status', { [`${NODE_STATUS_PREFIX}s1`]: { spec: { node: 'n1' } }, [`${NODE_STATUS_PREFIX}s2`]: { spec: { node: 'n2' } }, [`${NODE_STATUS_PREFIX}orphan`]: { spec: {} } }, { status: 'in-sync' });
  h.upstream.apply('bgp', cluster(['n1', 'n2'], 2), { status: 'in-sync' });
  return h;
}

async function inStep(h: Harness, agents: TestAgent[], feeds = ['felix', 'node-status']): Promise<void> {
  for (const a of agents) for (const f of feeds) await a.untilRevision(f, h.storeRevision(f));
  for (const a of agents) for (const f of feeds) await a.until(() => a.feed(f).status === 'in-sync' && a.feed(f).pendingDelta === undefined, `${f} in sync`);
}

describe('per-node scoping - real server', () => {
  it('each agent holds its node\'s scoped view (snapshot, then churn), verified by per-node digests; never another node\'s full objects', async () => {
    const h = await scopedHarness();
    const a1 = h.agent({ feeds: [{ name: 'felix' }, { name: 'node-status' }], node: 'n1', caps: CAPS, record: true });
    const a2 = h.agent({ feeds: [{ name: 'felix' }, { name: 'node-status' }], node: 'n2', caps: CAPS, record: true });
    await inStep(h, [a1, a2]);
    expect(a1.welcome?.caps).toContain('scope.node');
    for (const [a, n] of [[a1, 'n1'], [a2, 'n2']] as const) {
      expectScoped(h, a, 'felix', n);
      expectScoped(h, a, 'node-status', n);
    }
    expect(a1.feed('node-status').entries.size).toBe(1);
    // Churn: own and remote endpoints change, one is deleted, a status moves from n1 to n2 and back.
    const steps: Record<string, Record<string, unknown>>[] = [
      { felix: Object.fromEntries([wep('n1', 0, 1), wep('n2', 1, 1), wep('n3', 2, 1)]), 'node-status': { [`${NODE_STATUS_PREFIX}s1`]: { spec: { node: 'n2' } } } },
      { felix: { [wep('n1', 3)[0]]: null, [wep('n2', 3)[0]]: null, [ipPoolKey('10.0.0.0/8')]: { cidr: '10.0.0.0/8', gen: 2 } }, 'node-status': { [`${NODE_STATUS_PREFIX}s2`]: null } },
      { felix: Object.fromEntries([wep('n1', 7, 2), wep('n3', 7, 2)]), 'node-status': { [`${NODE_STATUS_PREFIX}s1`]: { spec: { node: 'n1' }, status: { x: 1 } } } },
      { felix: cluster(['n1', 'n2', 'n3'], 5, 3) },
    ];
    for (const step of steps) {
      for (const [feed, changes] of Object.entries(step)) h.upstream.apply(feed, changes);
      await inStep(h, [a1, a2]);
      for (const [a, n] of [[a1, 'n1'], [a2, 'n2']] as const) {
        expectScoped(h, a, 'felix', n);
        expectScoped(h, a, 'node-status', n);
      }
    }
    for (const [a, n] of [[a1, 'n1'], [a2, 'n2']] as const) {
      expect(a.violations).toEqual([]);
      expectNoForeignFull(a, 'felix', n);
      expectNoForeignFull(a, 'node-status', n);
    }
    // The remote endpoints n1 holds are slim; its own are full.
    const remote = a1.feed('felix').entries.get(wep('n2', 0)[0]) as Buffer;
    expect(remote.equals(slimValue(storeState(h, 'felix').get(wep('n2', 0)[0]) as Buffer))).toBe(true);
    expect(decodeValue(a1.feed('felix').entries.get(wep('n1', 0)[0]) as Buffer)).toMatchObject({ annotations: { secret: 'n1-only-3' } });
  });

  it('holds back STATUSes that only carry a new revision, and sends every agent its digest at its revision within about a second', async () => {
    const h = await scopedHarness();
    const a = h.agent({ feeds: [{ name: 'felix' }], node: 'n1', caps: CAPS, record: true });
    await inStep(h, [a], ['felix']);
    const id = a.feed('felix').id;
    const statuses = (): Extract<Message, { type: 'status' }>[] => a.messages.filter((m): m is Extract<Message, { type: 'status' }> => m.type === 'status' && m.feedId === id);
    const before = statuses().length;
    for (let g = 1; g <= 6; g++) {
      h.upstream.apply('felix', Object.fromEntries([wep('n2', 0, g)]), { watermarks: { pods: String(10 + g) } });
      await a.untilRevision('felix', h.storeRevision('felix'));
    }
    const rev = h.storeRevision('felix');
    await a.until(() => statuses().some((m) => m.revision === rev), 'a STATUS at the last revision', 5_000);
    // Six deltas, far fewer STATUSes; the last one at the agent's revision, with its view's digest.
    expect(statuses().length - before).toBeLessThan(6);
    const last = statuses().at(-1);
    expect(last?.digest).toBeDefined();
    expect(Buffer.from(last?.digest ?? []).equals(a.digest('felix'))).toBe(true);
    expect(a.violations).toEqual([]);
  });

  it('scope.watermarks: every DELTA unit ends with a STATUS, without digest while the digest is held back; agents without the capability get none of those', async () => {
    // The clock stands still: every digest STATUS after the first is held back for good.
    const h = await scopedHarness({ clock: new FakeClock(), flushWindowMs: 0, pingIntervalMs: 600_000, pongTimeoutMs: 600_000, handshakeTimeoutMs: 600_000 });
    const w = h.agent({ feeds: [{ name: 'felix' }], node: 'n1', caps: [...CAPS, 'scope.watermarks'], record: true });
    const p = h.agent({ feeds: [{ name: 'felix' }], node: 'n2', caps: CAPS, record: true });
    await inStep(h, [w, p], ['felix']);
    const id = w.feed('felix').id;
    const start = { w: w.messages.length, p: p.messages.length };
    // Other nodes' changes (the shared Buffer of agents without own changes) and n1's own (its node part).
    const steps = [[wep('n3', 0, 1)], [wep('n1', 0, 2)], [wep('n2', 1, 3), wep('n3', 1, 3)], [wep('n1', 1, 4), wep('n2', 2, 4)]];
    const wmAt = new Map<number, string>();
    for (const [i, step] of steps.entries()) {
      h.upstream.apply('felix', Object.fromEntries(step), { watermarks: { pods: String(50 + i) } });
      wmAt.set(h.storeRevision('felix'), String(50 + i));
      await w.untilRevision('felix', h.storeRevision('felix'));
      await p.untilRevision('felix', h.storeRevision('felix'));
    }
    const of = (a: TestAgent, from: number): Message[] => (a.messages as Message[]).slice(from).filter((m) => 'feedId' in m && m.feedId === id);
    // w: after each unit's last frame, a STATUS at its revision with that revision's watermarks and token.
    const wm = of(w, start.w);
    const ends = wm.flatMap((m, i) => (m.type === 'delta' && !m.more ? [i] : []));
    expect(ends).toHaveLength(steps.length);
    for (const i of ends) {
      const d = wm[i] as Extract<Message, { type: 'delta' }>;
      const st = wm[i + 1] as Extract<Message, { type: 'status' }>;
      expect(st?.type, `after unit → ${d.toRevision}`).toBe('status');
      expect(st.revision).toBe(d.toRevision);
      expect(st.digest).toBeUndefined();
      expect(st.watermarks).toEqual({ pods: wmAt.get(d.toRevision) });
      expect(st.token.length).toBeGreaterThan(0);
    }
    // p: no STATUS at all while the digest is held back (the behaviour before the capability).
    expect(of(p, start.p).filter((m) => m.type === 'status')).toEqual([]);
    expect(w.violations).toEqual([]);
    expect(p.violations).toEqual([]);
    expectScoped(h, w, 'felix', 'n1');
  });

  it('an agent sent away (GOODBYE) gets the STATUS it is owed first: it leaves with the token and watermarks of what it applied', async () => {
    const h = await scopedHarness();
    const a = h.agent({ feeds: [{ name: 'felix' }], node: 'n1', caps: CAPS, record: true });
    await inStep(h, [a], ['felix']);
    const id = a.feed('felix').id;
    // Two revision-only changes in quick succession: the second one's STATUS is held back (the
    // first's went out, or was held too: either way a STATUS went out within the last second).
    h.upstream.apply('felix', Object.fromEntries([wep('n2', 0, 1)]), { watermarks: { pods: '21' } });
    await a.untilRevision('felix', h.storeRevision('felix'));
    h.upstream.apply('felix', Object.fromEntries([wep('n2', 0, 2)]), { watermarks: { pods: '22' } });
    const rev = h.storeRevision('felix');
    await a.untilRevision('felix', rev);
    const statusAt = (r: number): boolean => a.messages.some((m) => m.type === 'status' && m.feedId === id && m.revision === r);
    expect(statusAt(rev)).toBe(false); // held back: the case under test
    // close(): GOODBYE at once (a drain's first close comes about a second later, after the
    // held STATUS would have gone out anyway).
    const closed = h.server.close();
    await a.closed;
    await closed;
    const order = a.messages.filter((m) => (m.type === 'status' && m.feedId === id && m.revision === rev) || m.type === 'goodbye').map((m) => m.type);
    expect(order).toEqual(['status', 'goodbye']);
    const last = a.messages.filter((m): m is Extract<Message, { type: 'status' }> => m.type === 'status' && m.feedId === id).at(-1);
    expect(last?.watermarks).toMatchObject({ pods: '22' });
    expect(Buffer.from(last?.digest ?? []).equals(a.digest('felix'))).toBe(true);
    expect(a.violations).toEqual([]);
  });

  it('an agent sent away while behind (skipped by a flush, a STATUS held back) gets its catch-up and the STATUS of now before the GOODBYE', async () => {
    const h = await scopedHarness({ socketHighWaterBytes: 64 * 1024, flushWindowMs: 0 });
    const a = h.agent({ feeds: [{ name: 'felix' }], node: 'n1', caps: CAPS, record: true });
    const fast = h.agent({ feeds: [{ name: 'felix' }], node: 'n2', caps: CAPS });
    await inStep(h, [a, fast], ['felix']);
    const id = a.feed('felix').id;
    // A STATUS went out within the last second: the next units' STATUS is held back.
    h.upstream.apply('felix', Object.fromEntries([wep('n2', 0, 1)]), { watermarks: { pods: '21' } });
    await a.untilRevision('felix', h.storeRevision('felix'));
    // Then it stops reading, and big changes go on until a flush skips it (behind, owed a STATUS).
    a.socket.pause();
    const skips = h.server.fanoutStats().skips;
    for (let i = 0; i < 200 && h.server.fanoutStats().skips === skips; i++) {
      h.upstream.apply('felix', { [wep('n1', 0, 10 + i)[0]]: { ...wep('n1', 0, 10 + i)[1], pad: 'x'.repeat(32 * 1024) } }, { watermarks: { pods: String(100 + i) } });
      await fast.untilRevision('felix', h.storeRevision('felix'));
    }
    expect(h.server.fanoutStats().skips).toBeGreaterThan(skips);
    const rev = h.storeRevision('felix');
    const closed = h.server.close();
    a.socket.resume();
    await a.closed;
    await closed;
    // Before, it left at a revision behind, with the token and watermarks of an older one.
    expect(a.feed('felix').revision).toBe(rev);
    const order = a.messages.filter((m) => (m.type === 'status' && m.feedId === id && m.revision === rev) || m.type === 'goodbye').map((m) => m.type);
    expect(order).toEqual(['status', 'goodbye']);
    const last = a.messages.filter((m): m is Extract<Message, { type: 'status' }> => m.type === 'status' && m.feedId === id).at(-1);
    expect(Buffer.from(last?.digest ?? []).equals(a.digest('felix'))).toBe(true);
    expect(a.violations).toEqual([]);
  });

  it('the catch-ups GOODBYEs carry count against maxOwnHeldBytes: a shutdown sending every agent away does not pass it', async () => {
    const h = await scopedHarness({ socketHighWaterBytes: 64 * 1024, flushWindowMs: 0, maxOwnHeldBytes: 1_048_576 });
    const slow = [h.agent({ feeds: [{ name: 'felix' }], node: 'n1', caps: CAPS, record: true }), h.agent({ feeds: [{ name: 'felix' }], node: 'n3', caps: CAPS, record: true })];
    const fast = h.agent({ feeds: [{ name: 'felix' }], node: 'n2', caps: CAPS });
    await inStep(h, [...slow, fast], ['felix']);
    for (const a of slow) a.socket.pause();
    const skips = h.server.fanoutStats().skips;
    // Cluster-wide entries (every node gets them in full, in the shared part).
    const big = (i: number): Record<string, unknown> => ({ [`/calico/v1/config/big${i}`]: { i, pad: 'x'.repeat(32 * 1024) } });
    for (let i = 0; i < 200 && h.server.fanoutStats().skips < skips + 2; i++) {
      h.upstream.apply('felix', big(i), { watermarks: { pods: String(100 + i) } });
      await fast.untilRevision('felix', h.storeRevision('felix'));
    }
    // Both behind; then ~800 KB more of changes each would be sent as its catch-up.
    for (let i = 200; i < 225; i++) h.upstream.apply('felix', big(i), { watermarks: { pods: String(100 + i) } });
    await fast.untilRevision('felix', h.storeRevision('felix'));
    const rev = h.storeRevision('felix');
    const refused = await h.metric('cattail_own_frames_refused_total');
    const closed = h.server.close();
    for (const a of slow) a.socket.resume();
    await Promise.all(slow.map((a) => a.closed));
    await closed;
    // One catch-up fits the bound, the second does not: that agent leaves without (as one too far
    // behind does). Before, each passed the same unchanged count and both were written.
    const caughtUp = slow.filter((a) => a.feed('felix').revision === rev);
    expect(caughtUp).toHaveLength(1);
    expect(await h.metric('cattail_own_frames_refused_total')).toBeGreaterThan(refused);
    for (const a of slow) {
      expect(a.goodbyes).toHaveLength(1);
      expect(a.violations).toEqual([]);
    }
  });

  it('a change not yet flushed when the agent is sent away is flushed first, then its STATUS, then the GOODBYE', async () => {
    const h = await scopedHarness({ flushWindowMs: 1_000 });
    const a = h.agent({ feeds: [{ name: 'felix' }], node: 'n1', caps: CAPS, record: true });
    await inStep(h, [a], ['felix']);
    const id = a.feed('felix').id;
    // One flushed change first, so the agent is live at the flushed revision.
    h.upstream.apply('felix', Object.fromEntries([wep('n2', 0, 2)]), { watermarks: { pods: '32' } });
    await a.untilRevision('felix', h.storeRevision('felix'));
    h.upstream.apply('felix', Object.fromEntries([wep('n2', 0, 3)]), { watermarks: { pods: '33' } });
    const rev = h.storeRevision('felix');
    // The flush window is a second: without the early flush the agent would leave at the old revision.
    const closed = h.server.close();
    await a.closed;
    await closed;
    expect(a.feed('felix').revision).toBe(rev);
    const order = a.messages.filter((m) => (m.type === 'status' && m.feedId === id && m.revision === rev) || m.type === 'goodbye').map((m) => m.type);
    expect(order).toEqual(['status', 'goodbye']);
    expect(a.violations).toEqual([]);
  });

  it('resumes a scoped feed with a scoped catch-up, and a new agent of the same node shares the node snapshot', async () => {
    const h = await scopedHarness();
    const a = h.agent({ feeds: [{ name: 'felix' }], node: 'n2', caps: CAPS });
    await inStep(h, [a], ['felix']);
    const kept = a.feed('felix');
    a.close();
    await a.closed;
    h.upstream.apply('felix', Object.fromEntries([wep('n2', 0, 5), wep('n1', 0, 5)]));
    h.upstream.apply('felix', { [wep('n3', 1)[0]]: null, [wep('n2', 2)[0]]: null });
    const again = h.agent({ feeds: [{ name: 'felix', token: kept.token, entries: kept.entries, revision: kept.revision }], node: 'n2', caps: CAPS, record: true });
    await inStep(h, [again], ['felix']);
    expect(again.welcome?.feeds[0]).toMatchObject({ mode: 'resume' });
    expect(again.feed('felix').snapshots).toBe(0);
    expectScoped(h, again, 'felix', 'n2');
    expectNoForeignFull(again, 'felix', 'n2');
    expect(again.violations).toEqual([]);
    // Two fresh agents of one node and one of another: one shared build, served per node.
    const built = h.server.snapshotStats().built;
    const b1 = h.agent({ feeds: [{ name: 'felix' }], node: 'n3', caps: CAPS });
    const b2 = h.agent({ feeds: [{ name: 'felix' }], node: 'n3', caps: CAPS });
    const c = h.agent({ feeds: [{ name: 'felix' }], node: 'n1', caps: CAPS });
    await inStep(h, [b1, b2, c], ['felix']);
    expect(h.server.snapshotStats().built - built).toBeLessThanOrEqual(1);
    expectScoped(h, b1, 'felix', 'n3');
    expectScoped(h, b2, 'felix', 'n3');
    expectScoped(h, c, 'felix', 'n1');
    for (const x of [b1, b2, c]) expect(x.violations).toEqual([]);
  });

  it.each(['shared', '*'])('two agents of different nodes caught up from the same revision in one round get their own catch-ups, also when a node is named %j', async (odd) => {
    // The round's cache keeps a node's whole catch-up and the shared part of it side by side; a
    // node named like the shared part's key once read the other's frames from the cache (or left
    // the other with the shared part alone).
    const h = await harness({ feeds: ['felix'], scopedFeeds: ['felix'], socketHighWaterBytes: 64 * 1024 });
    // Snapshots far larger than what loopback buffers hold: both are still streaming when the change comes.
    const big: Record<string, unknown> = {};
    for (const n of [odd, 'n2']) {
      for (let p = 0; p < 1_500; p++) {
        const [k, v] = wep(n, p);
        big[k] = { ...v, annotations: { pad: randomBytes(3_000).toString('base64') } };
      }
    }
    h.upstream.apply('felix', { ...cluster(['n1'], 2), ...big }, { status: 'in-sync', watermarks: { pods: '1' } });
    const before = h.server.fanoutStats();
    const a = h.agent({ feeds: [{ name: 'felix' }], node: odd, caps: CAPS, record: true });
    const b = h.agent({ feeds: [{ name: 'felix' }], node: 'n2', caps: CAPS, record: true });
    for (const x of [a, b]) await x.until(() => x.welcome !== undefined, 'WELCOME');
    a.socket.pause();
    b.socket.pause();
    h.upstream.apply('felix', Object.fromEntries([wep(odd, 0, 5), wep('n2', 0, 5), wep('n1', 0, 5)]));
    a.socket.resume();
    b.socket.resume();
    await inStep(h, [a, b], ['felix']);
    const after = h.server.fanoutStats();
    // The scenario itself: both ended their snapshot behind the change and were caught up.
    expect(after.snapshotsSent - before.snapshotsSent).toBe(2);
    expect(after.catchUps - before.catchUps).toBe(2);
    for (const [x, node] of [[a, odd], [b, 'n2']] as const) {
      expect(x.feed('felix').snapshots).toBe(1);
      expectScoped(h, x, 'felix', node);
      expectNoForeignFull(x, 'felix', node);
      expect(x.violations).toEqual([]);
    }
  }, 30_000);

  it('a REPAIR_REQUEST on a scoped feed is answered with a scoped in-band snapshot', async () => {
    const h = await scopedHarness();
    const a = h.agent({ feeds: [{ name: 'felix' }], node: 'n1', caps: [...CAPS, 'repair.buckets'] });
    await inStep(h, [a], ['felix']);
    a.sendMessage({ type: 'repairRequest', feedId: a.feed('felix').id, revision: a.feed('felix').revision, sums: Buffer.alloc(2048) });
    await a.until(() => a.feed('felix').snapshots === 2, 'in-band snapshot');
    expectScoped(h, a, 'felix', 'n1');
    expect(a.violations).toEqual([]);
  });

  it('leaves unscoped feeds cluster-wide, on the same connection too', async () => {
    const h = await scopedHarness();
    const a = h.agent({ feeds: [{ name: 'felix' }, { name: 'bgp' }], node: 'n1', caps: CAPS });
    await inStep(h, [a], ['felix', 'bgp']);
    h.upstream.apply('bgp', Object.fromEntries([wep('n2', 0, 9)]));
    await inStep(h, [a], ['felix', 'bgp']);
    expect(a.digest('bgp').equals(h.storeDigest('bgp'))).toBe(true);
    expect(a.feed('bgp').entries.size).toBe(storeState(h, 'bgp').size);
    // An agent on unscoped feeds only needs no capability and sees no scope.node in WELCOME.
    const plain = h.agent({ feeds: [{ name: 'bgp' }], node: 'n1' });
    await inStep(h, [plain], ['bgp']);
    expect(plain.welcome?.caps).not.toContain('scope.node');
    expect(plain.violations).toEqual([]);
  });

  it('refuses a scoped feed to an agent without scope.node (4006) and a scoped HELLO without a node (4000)', async () => {
    const h = await scopedHarness();
    const old = h.agent({ feeds: [{ name: 'felix' }], node: 'n1' });
    expect(await old.closed).toBe(4006);
    expect(old.errors[0]?.code).toBe('CATTAIL_SERVER_SCOPE_UNSUPPORTED');
    expect(old.welcome).toBeUndefined();
    const anon = h.agent({ feeds: [{ name: 'node-status' }], node: '', caps: CAPS });
    expect(await anon.closed).toBe(4000);
    expect(anon.errors[0]?.code).toBe('CATTAIL_SERVER_BAD_HELLO');
  });

  it('tunnel-ip-allocation: an agent holds its own node\'s keys and the pools; other nodes\' changes reach it as an empty DELTA', async () => {
    const h = await harness({ feeds: ['tunnel-ip-allocation'], scopedFeeds: ['tunnel-ip-allocation'] });
    const nodeKey = (n: string): string => `/calico/resources/v3/projectcalico.org/nodes/${n}`;
    h.upstream.apply('tunnel-ip-allocation', {
      [nodeKey('n1')]: { spec: { bgp: { ipv4Address: '10.0.0.1/16' } } }, [nodeKey('n2')]: { spec: { bgp: { ipv4Address: '10.0.0.2/16' } } },
      [hostConfigKey('n1', 'IpInIpTunnelAddr')]: '10.9.0.1', [hostConfigKey('n2', 'IpInIpTunnelAddr')]: '10.9.0.2', [ipPoolKey('10.0.0.0/8')]: { cidr: '10.0.0.0/8' },
    }, { status: 'in-sync' });
    const a = h.agent({ feeds: [{ name: 'tunnel-ip-allocation' }], node: 'n1', caps: CAPS, record: true });
    await inStep(h, [a], ['tunnel-ip-allocation']);
    expect([...a.feed('tunnel-ip-allocation').entries.keys()].sort()).toEqual([hostConfigKey('n1', 'IpInIpTunnelAddr'), ipPoolKey('10.0.0.0/8'), nodeKey('n1')].sort());
    const before = a.bytesReceived;
    h.upstream.apply('tunnel-ip-allocation', { [nodeKey('n2')]: { spec: { bgp: { ipv4Address: '10.0.0.22/16' } } }, [hostConfigKey('n2', 'IpInIpTunnelAddr')]: null });
    await inStep(h, [a], ['tunnel-ip-allocation']);
    expectScoped(h, a, 'tunnel-ip-allocation', 'n1');
    expect(a.bytesReceived - before).toBeLessThan(400);
    h.upstream.apply('tunnel-ip-allocation', { [nodeKey('n1')]: null });
    await inStep(h, [a], ['tunnel-ip-allocation']);
    expectScoped(h, a, 'tunnel-ip-allocation', 'n1');
    expectNoForeignFull(a, 'tunnel-ip-allocation', 'n1');
    expect(a.violations).toEqual([]);
  });

  it('counts an agent whose node the feed has no Node for (a host name that is not the node name), and not one it knows', async () => {
    // The feed carries Nodes, as the built-in one does (so the server can tell).
    const h = await harness({ feeds: ['tunnel-ip-allocation'], scopedFeeds: ['tunnel-ip-allocation'], resources: ['nodes', 'ippools.crd.projectcalico.org'] });
    const nodeKey = (n: string): string => `/calico/resources/v3/projectcalico.org/nodes/${n}`;
    h.upstream.apply('tunnel-ip-allocation', {
      [nodeKey('ip-10-0-0-1.ec2.internal')]: { spec: {} }, [hostConfigKey('ip-10-0-0-1.ec2.internal', 'IpInIpTunnelAddr')]: '10.9.0.1', [ipPoolKey('10.0.0.0/8')]: { cidr: '10.0.0.0/8' },
    }, { status: 'in-sync' });
    const right = h.agent({ feeds: [{ name: 'tunnel-ip-allocation' }], node: 'ip-10-0-0-1.ec2.internal', caps: CAPS });
    await inStep(h, [right], ['tunnel-ip-allocation']);
    expect(await h.metric('cattail_scoped_unknown_node_total')).toBe(0);
    // Its host name: a view without its own keys, whose digests match; before, nothing said so.
    const wrong = h.agent({ feeds: [{ name: 'tunnel-ip-allocation' }], node: 'ip-10-0-0-1', caps: CAPS });
    await inStep(h, [wrong], ['tunnel-ip-allocation']);
    expect([...wrong.feed('tunnel-ip-allocation').entries.keys()]).toEqual([ipPoolKey('10.0.0.0/8')]);
    expect(await h.metric('cattail_scoped_unknown_node_total')).toBe(1);
    expect(wrong.violations).toEqual([]);
  });

  it('rejects a scopedFeeds entry the server does not serve', async () => {
    await expect(harness({ feeds: ['felix'], scopedFeeds: ['node-status'] })).rejects.toThrow(/scopedFeeds/);
  });
});


