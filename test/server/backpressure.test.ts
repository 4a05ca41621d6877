import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/clock.js';
import type { TestAgent } from './helpers/agent.js';
import { CATCH_UP_CACHE_MAX_AGE_MS } from '../../src/server/fanout/service.js';
import { SCOPED_DIGEST_INTERVAL_MS } from '../../src/server/fanout/feeds.js';
import { PINNED_IDLE_MS } from '../../src/server/fanout/sweep.js';
import { type Harness, harness } from './helpers/harness.js';
import { waitUntil } from '../support/wait.js';

const BIG = 'x'.repeat(32 * 1024);

/**
 * Pushes batches of big values until the fan-out skips `stalled` (its socket is paused, so the
 * kernel buffers fill and then the server's own buffer passes the high-water mark). Bounded.
 */
async function fillUntilSkipped(h: Harness, stalled: TestAgent, fast: TestAgent[]): Promise<void> {
  stalled.socket.pause();
  const start = h.server.fanoutStats().skips;
  for (let i = 0; i < 400 && h.server.fanoutStats().skips === start; i++) {
    const batch: Record<string, unknown> = {};
    for (let k = 0; k < 16; k++) batch[`/pods/big/b${k}`] = { i, k, pad: BIG };
    h.upstream.apply('felix', batch);
    const rev = h.storeRevision('felix');
    // Fast agents keep up; waiting on them paces the loop by real delivery, not by time.
    await Promise.all(fast.map((a) => a.untilRevision('felix', rev)));
    await waitUntil(() => h.server.fanoutStats().flushes > 0 && h.server.stores.get('felix')?.revision === rev, 'flush');
  }
  expect(h.server.fanoutStats().skips).toBeGreaterThan(start);
}

function seed(h: Harness): void {
  const batch: Record<string, unknown> = {};
  for (let i = 0; i < 20; i++) batch[`/pods/ns/p${i}`] = { i };
  h.upstream.apply('felix', batch, { status: 'in-sync' });
}

/**
 * A FakeClock server with maxFallBehindMs 1,000 and the given grace, and two agents in sync at
 * clock 0, the slow one stalled behind (skipped by a flush). Only the fall-behind rule can close.
 */
async function stalledAgent(newClientGracePeriodMs: number): Promise<{ clock: FakeClock; h: Harness; slow: TestAgent; fast: TestAgent }> {
  const clock = new FakeClock();
  const h = await harness({ clock, flushWindowMs: 0, socketHighWaterBytes: 64 * 1024, maxFallBehindMs: 1_000, newClientGracePeriodMs, pingIntervalMs: 600_000, pongTimeoutMs: 600_000, handshakeTimeoutMs: 600_000 });
  seed(h);
  const slow = h.agent({ feeds: [{ name: 'felix' }] });
  const fast = h.agent({ feeds: [{ name: 'felix' }] });
  await Promise.all([slow.untilRevision('felix', 1), fast.untilRevision('felix', 1)]);
  await fillUntilSkipped(h, slow, [fast]);
  return { clock, h, slow, fast };
}

/**
 * A FakeClock server whose delta log keeps 1 s, and two agents in sync, the slow one skipped by a
 * flush (its socket paused) at `behindAt`: advancing the clock takes its revision out of the log.
 */
async function skippedWithShortLog(): Promise<{ clock: FakeClock; h: Harness; slow: TestAgent; fast: TestAgent; behindAt: number }> {
  const clock = new FakeClock();
  const h = await harness({ clock, flushWindowMs: 0, socketHighWaterBytes: 64 * 1024, deltaLogMaxAgeMs: 1_000 });
  seed(h);
  const slow = h.agent({ feeds: [{ name: 'felix' }] });
  const fast = h.agent({ feeds: [{ name: 'felix' }] });
  await Promise.all([slow.untilRevision('felix', 1), fast.untilRevision('felix', 1)]);
  await fillUntilSkipped(h, slow, [fast]);
  return { clock, h, slow, fast, behindAt: slow.feed('felix').revision };
}

/** `n` entries of 32 KiB each, in sync: more than the sockets' buffers hold. */
function seedBig(h: Harness, n: number): void {
  const batch: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) batch[`/pods/big/b${i}`] = { i, pad: BIG };
  h.upstream.apply('felix', batch, { status: 'in-sync' });
}

/** A scoped agent of `node` that starts its snapshot, then stops reading. */
async function stalledScoped(h: Harness, node: string): Promise<TestAgent> {
  const a = h.agent({ feeds: [{ name: 'felix' }], maxFrameBytes: 64 * 1024, node, caps: ['scope.node'] });
  await a.until(() => a.received.includes('snapshotChunk'), 'snapshot started');
  a.socket.pause();
  return a;
}

/**
 * A FakeClock server for the snapshot-stream tests: flush every change, 64 KiB high-water mark,
 * 1 s reuse window, every deadline out of the way; `extra` adds the test's own options.
 */
async function streamHarness(extra: Partial<Parameters<typeof harness>[0]> = {}): Promise<{ clock: FakeClock; h: Harness }> {
  const clock = new FakeClock();
  const h = await harness({
    clock, flushWindowMs: 0, socketHighWaterBytes: 64 * 1024, handshakeTimeoutMs: 600_000, snapshotReuseWindowMs: 1_000, maxFallBehindMs: 600_000,
    newClientGracePeriodMs: 600_000, pingIntervalMs: 600_000, pongTimeoutMs: 600_000, ...extra,
  });
  return { clock, h };
}

describe('server - backpressure', () => {
  it('skips a slow agent, then catches it up with one compacted DELTA; it never sees an older state', async () => {
    const h = await harness({ socketHighWaterBytes: 64 * 1024 });
    seed(h);
    const slow = h.agent({ feeds: [{ name: 'felix' }] });
    const fast = h.agent({ feeds: [{ name: 'felix' }] });
    await Promise.all([slow.untilRevision('felix', 1), fast.untilRevision('felix', 1)]);
    await fillUntilSkipped(h, slow, [fast]);
    const skippedAt = h.storeRevision('felix');
    for (let g = 0; g < 5; g++) h.upstream.apply('felix', { [`/pods/ns/p${g}`]: { g, changed: true }, '/pods/ns/p19': null });
    await fast.untilRevision('felix', skippedAt + 5);
    slow.socket.resume();
    await slow.untilRevision('felix', h.storeRevision('felix'));
    const d = slow.feed('felix').deltas;
    // One catch-up spanning several revisions (compacted), after which it is a normal follower.
    expect(d.some((x) => x.to - x.from > 1)).toBe(true);
    expect(slow.violations).toEqual([]);
    expect(fast.violations).toEqual([]);
    expect(slow.digest('felix').equals(h.storeDigest('felix'))).toBe(true);
    expect(fast.digest('felix').equals(h.storeDigest('felix'))).toBe(true);
    expect(await h.metric('cattail_client_catchups_total')).toBeGreaterThan(0);
    expect(await h.metric('cattail_clients_skipped_total')).toBeGreaterThan(0);
  });

  it('ends a scoped catch-up with the revision\'s watermarks (a STATUS without digest) for an agent with scope.watermarks', async () => {
    // The clock stands still, so the digest STATUS stays held back: only the catch-up's own STATUS can say where the agent is.
    const { h } = await streamHarness({ feeds: ['felix'], scopedFeeds: ['felix'] });
    h.upstream.apply('felix', { '/pods/ns/p0': { i: 0 } }, { status: 'in-sync', watermarks: { pods: '1' } });
    const slow = h.agent({ feeds: [{ name: 'felix' }], node: 'n1', caps: ['scope.node', 'scope.watermarks'], record: true });
    const fast = h.agent({ feeds: [{ name: 'felix' }], node: 'n2', caps: ['scope.node'] });
    await Promise.all([slow.untilRevision('felix', 1), fast.untilRevision('felix', 1)]);
    await fillUntilSkipped(h, slow, [fast]);
    h.upstream.apply('felix', { '/pods/ns/p0': { i: 1 } }, { watermarks: { pods: '99' } });
    const rev = h.storeRevision('felix');
    await fast.untilRevision('felix', rev);
    const seen = slow.messages.length;
    slow.socket.resume();
    await slow.untilRevision('felix', rev);
    await slow.until(() => slow.messages.slice(seen).some((m) => m.type === 'status' && m.revision === rev), 'a STATUS at the caught-up revision');
    const st = slow.messages.slice(seen).find((m): m is Extract<typeof m, { type: 'status' }> => m.type === 'status' && m.revision === rev);
    expect(st?.digest).toBeUndefined();
    expect(st?.watermarks).toEqual({ pods: '99' });
    expect(slow.feed('felix').deltas.some((x) => x.to - x.from > 1)).toBe(true);
    expect(slow.violations).toEqual([]);
  });

  it('ends a scoped catch-up with the digest STATUS it is owed in the same write (scope.watermarks): a later unit never comes between', async () => {
    // 10f4923: the owed STATUS was left to the STATUS check after the catch-up, skipped because the
    // catch-up (its held batch) took the socket past the high-water mark; the connection was
    // served again in a later turn, and a flush in between sent the agent the next unit first.
    const { clock, h } = await streamHarness({ feeds: ['felix'], scopedFeeds: ['felix'] });
    h.upstream.apply('felix', { '/pods/ns/p0': { i: 0 } }, { status: 'in-sync', watermarks: { pods: '1' } });
    const slow = h.agent({ feeds: [{ name: 'felix' }], node: 'n1', caps: ['scope.node', 'scope.watermarks'], record: true });
    const fast = h.agent({ feeds: [{ name: 'felix' }], node: 'n2', caps: ['scope.node'], record: true });
    await Promise.all([slow.untilRevision('felix', 1), fast.untilRevision('felix', 1)]);
    await fillUntilSkipped(h, slow, [fast]);
    h.upstream.apply('felix', { '/pods/ns/p0': { i: 1 } }, { watermarks: { pods: '99' } });
    const rev = h.storeRevision('felix');
    await fast.untilRevision('felix', rev);
    // The digest STATUS held back since clock 0 falls due: the fast agent gets it, the skipped one is owed it.
    await clock.advanceAsync(SCOPED_DIGEST_INTERVAL_MS);
    await fast.until(() => fast.messages.some((m) => m.type === 'status' && m.revision === rev && m.digest !== undefined), 'the digest STATUS that fell due');
    // A later change, applied and flushed in the first check phase that sees the catch-up written:
    // before any later service turn of the slow connection (setImmediate runs in order).
    const catchUps = h.server.fanoutStats().catchUps;
    const later = new Promise<number>((resolve, reject) => {
      const deadline = Date.now() + 10_000;
      const poll = (): void => {
        if (h.server.fanoutStats().catchUps > catchUps) {
          h.upstream.apply('felix', { '/pods/ns/p1': { later: true } }, { watermarks: { pods: '100' } });
          h.server.flushNow();
          resolve(h.storeRevision('felix'));
        } else if (Date.now() > deadline) reject(new Error('no catch-up within 10 s'));
        else setImmediate(poll);
      };
      setImmediate(poll);
    });
    const seen = slow.messages.length;
    slow.socket.resume();
    const next = await later;
    await slow.untilRevision('felix', next);
    await slow.until(() => slow.messages.slice(seen).some((m) => m.type === 'status' && m.revision === next), 'a STATUS at the later revision');
    const id = slow.feed('felix').id;
    const got = slow.messages.slice(seen).filter((m) => 'feedId' in m && m.feedId === id);
    const end = got.findIndex((m) => m.type === 'delta' && m.toRevision - m.fromRevision > 1 && !m.more);
    expect(got[end]).toMatchObject({ type: 'delta', toRevision: rev });
    // Right after the catch-up: its STATUS (the digest-bearing one it was owed), not the later DELTA.
    expect(got[end + 1]).toMatchObject({ type: 'status', revision: rev, status: 'in-sync', watermarks: { pods: '99' } });
    expect((got[end + 1] as Extract<(typeof got)[number], { type: 'status' }>).digest).toBeDefined();
    expect(got[end + 2]).toMatchObject({ type: 'delta', fromRevision: rev });
    expect(slow.violations).toEqual([]);
    expect(slow.digest('felix').equals(h.storeDigest('felix'))).toBe(true);
  });

  it('keeps a catch-up encoded for agents behind together until the next flush, at most CATCH_UP_CACHE_MAX_AGE_MS', async () => {
    const { clock, h, slow, fast } = await stalledAgent(600_000);
    const behind = h.storeRevision('felix');
    h.upstream.apply('felix', { '/pods/ns/p0': { changed: true } });
    await fast.untilRevision('felix', behind + 1);
    slow.socket.resume();
    await waitUntil(() => slow.feed('felix').revision === h.storeRevision('felix'), 'the slow agent caught up', { clock, stepMs: 10 });
    // No flush since: the round's catch-up frames are still referenced.
    expect(await h.metric('cattail_catchup_cache_bytes')).toBeGreaterThan(0);
    await clock.advanceAsync(CATCH_UP_CACHE_MAX_AGE_MS + 2_000); // sweeps run; still no change upstream
    expect(await h.metric('cattail_catchup_cache_bytes')).toBe(0);
    expect(slow.violations).toEqual([]);
  });

  it('sends an agent whose catch-up would pass half its maxClientBytes an in-band snapshot instead (as a resume that large gets), while others keep streaming', async () => {
    const h = await harness({ socketHighWaterBytes: 64 * 1024, maxClientBytes: 256 * 1024 });
    seed(h);
    const slow = h.agent({ feeds: [{ name: 'felix' }] });
    const fast = h.agent({ feeds: [{ name: 'felix' }] });
    await Promise.all([slow.untilRevision('felix', 1), fast.untilRevision('felix', 1)]);
    await fillUntilSkipped(h, slow, [fast]);
    // Many distinct keys while it is behind: its compacted catch-up is bigger than its budget.
    const batch: Record<string, unknown> = {};
    for (let k = 0; k < 40; k++) batch[`/pods/wide/w${k}`] = { k, pad: BIG };
    h.upstream.apply('felix', batch);
    const inBand = await h.metric('cattail_client_inband_snapshots_total');
    slow.socket.resume();
    // Before, the catch-up was built whole and closed the agent with 4008 (over-budget); it then
    // reconnected and its resume, as large, got a snapshot anyway.
    await slow.until(() => slow.feed('felix').snapshots === 2, 'the in-band snapshot');
    h.upstream.apply('felix', { '/pods/ns/p1': { after: true } });
    await Promise.all([fast.untilRevision('felix', h.storeRevision('felix')), slow.untilRevision('felix', h.storeRevision('felix'))]);
    for (const a of [fast, slow]) {
      expect(a.violations).toEqual([]);
      expect(a.digest('felix').equals(h.storeDigest('felix'))).toBe(true);
    }
    expect(slow.goodbyes).toEqual([]);
    expect(await h.metric('cattail_client_inband_snapshots_total')).toBe(inBand + 1);
    expect(await h.metric('cattail_connections_closed_total')).toBe(0);
    expect(h.server.connectionCount()).toBe(2);
  });

  it('sends a slow agent whose catch-up is too large a snapshot newer than its revision, not a fresh build at that revision', async () => {
    const h = await harness({ socketHighWaterBytes: 64 * 1024, maxClientBytes: 400 * 1024, snapshotReuseWindowMs: 60_000 });
    seed(h);
    const slow = h.agent({ feeds: [{ name: 'felix' }] });
    const fast = h.agent({ feeds: [{ name: 'felix' }] });
    await Promise.all([slow.untilRevision('felix', 1), fast.untilRevision('felix', 1)]);
    slow.socket.pause();
    // Before each batch an agent takes a snapshot (a build at the revision of that moment) and
    // leaves: when the slow agent is skipped, the newest build is at the revision it holds.
    const start = h.server.fanoutStats().skips;
    for (let i = 0; i < 200 && h.server.fanoutStats().skips === start; i++) {
      const probe = h.agent({ feeds: [{ name: 'felix' }] });
      await probe.untilRevision('felix', h.storeRevision('felix'));
      probe.close();
      await probe.closed;
      const batch: Record<string, unknown> = {};
      for (let k = 0; k < 8; k++) batch[`/pods/big/b${k}`] = { i, k, pad: BIG };
      h.upstream.apply('felix', batch);
      const rev = h.storeRevision('felix');
      await fast.untilRevision('felix', rev);
      await waitUntil(() => h.server.stores.get('felix')?.revision === rev && h.server.fanoutStats().flushes > 0, 'flush');
    }
    expect(h.server.fanoutStats().skips).toBeGreaterThan(start);
    // One batch behind (8 × 32 KiB): more than half its budget, so a snapshot, in band.
    slow.socket.resume();
    await slow.untilRevision('felix', h.storeRevision('felix'));
    // Before, its in-band snapshot was the build at its own revision; the catch-up after it was
    // as large, so the next was that build again, until the build's reuse window (60 s) ended.
    const ends = slow.feed('felix').snapshotEnds.map((e) => e.revision);
    expect(ends.length).toBe(2);
    expect(ends[1]).toBeGreaterThan(ends[0] as number);
    expect(slow.violations).toEqual([]);
    expect(slow.digest('felix').equals(h.storeDigest('felix'))).toBe(true);
    expect(slow.goodbyes).toEqual([]);
  });

  it('shares one build between slow agents whose catch-ups were too large, across a watermark-only change', async () => {
    const h = await harness({ socketHighWaterBytes: 64 * 1024, maxClientBytes: 256 * 1024 });
    seed(h);
    // Watermarks recorded from the start, as every upstream batch carries them.
    h.upstream.apply('felix', { '/pods/ns/p0': { wm: 1 } }, { watermarks: { pods: '100' } });
    const slow1 = h.agent({ feeds: [{ name: 'felix' }] });
    const slow2 = h.agent({ feeds: [{ name: 'felix' }] });
    const fast = h.agent({ feeds: [{ name: 'felix' }] });
    await Promise.all([slow1, slow2, fast].map((a) => a.untilRevision('felix', 2)));
    slow2.socket.pause();
    await fillUntilSkipped(h, slow1, [fast]);
    const batch: Record<string, unknown> = {};
    for (let k = 0; k < 40; k++) batch[`/pods/wide/w${k}`] = { k, pad: BIG };
    h.upstream.apply('felix', batch, { watermarks: { pods: '500' } });
    await fast.untilRevision('felix', h.storeRevision('felix'));
    slow1.socket.resume();
    await slow1.until(() => slow1.feed('felix').snapshots === 2, 'the first in-band snapshot');
    const built = h.server.snapshotStats().built;
    // Watermarks move with no new revision (a bookmark, an event that changes no entry).
    h.upstream.apply('felix', {}, { watermarks: { pods: '501' } });
    expect(h.server.stores.get('felix')!.meta().watermarks['pods']).toBe('501');
    slow2.socket.resume();
    await slow2.until(() => slow2.feed('felix').snapshots === 2, 'the second in-band snapshot');
    // Before, its floor was today's watermarks (501): no build before the change would do.
    expect(h.server.snapshotStats().built).toBe(built);
    for (const a of [slow1, slow2]) expect(a.violations).toEqual([]);
  });

  it('sends an in-band snapshot to a connected agent whose revision left the delta log', async () => {
    const { clock, h, slow, fast, behindAt } = await skippedWithShortLog();
    h.upstream.apply('felix', { '/pods/ns/p3': { moved: true }, '/pods/ns/p4': null });
    h.upstream.apply('felix', { '/pods/ns/p5': { moved: true } });
    await fast.untilRevision('felix', h.storeRevision('felix'));
    // The deletion ages out of the delta log: the slow agent's revision is no longer servable.
    clock.advance(2_500);
    expect(h.server.stores.get('felix')?.since(behindAt).kind).toBe('too-old');
    slow.socket.resume();
    await slow.untilRevision('felix', h.storeRevision('felix'));
    await slow.until(() => slow.feed('felix').snapshots === 2, 'second snapshot');
    expect(slow.violations).toEqual([]);
    expect(slow.digest('felix').equals(h.storeDigest('felix'))).toBe(true);
    expect(await h.metric('cattail_client_inband_snapshots_total')).toBe(1);
    expect(fast.feed('felix').snapshots).toBe(1);
  });

  it('an in-band snapshot done in one pump (a reused build) still brings the status that changed after the build', async () => {
    const { clock, h, slow, fast, behindAt } = await skippedWithShortLog();
    // The big values go again: the feed's snapshot fits under the high-water mark, one pump.
    const gone: Record<string, unknown> = {};
    for (let k = 0; k < 16; k++) gone[`/pods/big/b${k}`] = null;
    h.upstream.apply('felix', gone);
    // A later revision: the log keeps the current revision's deletions, never trimmed.
    h.upstream.apply('felix', { '/pods/ns/p1': { after: 1 } });
    await fast.untilRevision('felix', h.storeRevision('felix'));
    // A new agent's snapshot leaves a finished build at the current revision (the first build is
    // past the reuse window by then) ...
    clock.advance(1_500);
    const built = h.server.snapshotStats().built;
    const fresh = h.agent({ feeds: [{ name: 'felix' }] });
    await fresh.untilRevision('felix', h.storeRevision('felix'));
    expect(h.server.snapshotStats().built).toBe(built + 1);
    // ... and then the upstream goes stale: a status change with no new revision.
    h.upstream.apply('felix', {}, { stale: true });
    await fast.until(() => fast.feed('felix').stale === true, 'fast told stale');
    clock.advance(2_500);
    expect(h.server.stores.get('felix')?.since(behindAt).kind).toBe('too-old');
    slow.socket.resume();
    await slow.until(() => slow.feed('felix').snapshots === 2, 'the in-band snapshot');
    expect(h.server.snapshotStats().built).toBe(built + 1);
    // Its END carried the build's status (not stale); the STATUS after it says stale. Before, the
    // connection was left with nothing owed and heard of it only at the feed's next change.
    await slow.until(() => slow.feed('felix').stale === true, 'slow told stale');
    expect(slow.violations).toEqual([]);
    expect(slow.digest('felix').equals(h.storeDigest('felix'))).toBe(true);
  });

  it('closes an agent stalled beyond maxFallBehindMs after its grace period (4007); others keep streaming', async () => {
    const { clock, h, slow, fast } = await stalledAgent(500);
    clock.advance(900);
    expect(h.server.connectionCount()).toBe(2);
    clock.advance(1_100);
    // The stalled agent never reads its close frame; the sweep cuts it off after the close grace.
    clock.advance(2_500);
    await waitUntil(() => h.server.connectionCount() === 1, 'stalled agent terminated');
    expect(await h.metric('cattail_connections_closed_total', { code: '4007' })).toBe(1);
    h.upstream.apply('felix', { '/pods/ns/p2': { still: 'streaming' } });
    await fast.untilRevision('felix', h.storeRevision('felix'));
    expect(fast.digest('felix').equals(h.storeDigest('felix'))).toBe(true);
    slow.socket.resume();
    const code = await slow.closed;
    expect([4007, 1006]).toContain(code);
    expect(await h.metric('cattail_connections_active')).toBe(1);
  });

  it('keeps a new agent that falls behind inside its grace period longer than maxFallBehindMs, and closes it 4007 after', async () => {
    // The snapshot ended at clock 0: the grace runs to 6,000, far past maxFallBehindMs (1,000).
    const { clock, h, slow } = await stalledAgent(6_000);
    for (let t = 0; t < 5_500; t += 500) {
      clock.advance(500);
      // Real time for I/O: a close decided by this sweep (and the terminate two seconds of fake
      // time later) would show as a closed connection by now.
      await new Promise((r) => setTimeout(r, 10));
      expect(await h.metric('cattail_connections_closed_total')).toBe(0);
      expect(h.server.connectionCount()).toBe(2);
    }
    expect(await h.metric('cattail_connections_grace_used_total')).toBe(1);
    clock.advance(1_000);
    clock.advance(2_500);
    await waitUntil(() => h.server.connectionCount() === 1, 'stalled agent closed after its grace');
    expect(await h.metric('cattail_connections_closed_total', { code: '4007' })).toBe(1);
    slow.socket.resume();
    expect([4007, 1006]).toContain(await slow.closed);
  });

  const FALL_BEHIND_1S = { maxFallBehindMs: 1_000, newClientGracePeriodMs: 1_000, pingIntervalMs: 600_000, pongTimeoutMs: 600_000 };
  /** PINGs every 200 ms, PONG within 1 s; the fall-behind rule out of the way. */
  const PONG_1S = { maxFallBehindMs: 600_000, newClientGracePeriodMs: 600_000, pingIntervalMs: 200, pongTimeoutMs: 1_000 };

  /** A FakeClock server (by default maxFallBehindMs and the grace 1 s) holding 24 MiB of state: more than socket buffers hold. */
  async function bigFeed(deadlines: { maxFallBehindMs: number; newClientGracePeriodMs: number; pingIntervalMs: number; pongTimeoutMs: number } = FALL_BEHIND_1S): Promise<{ clock: FakeClock; h: Harness }> {
    const clock = new FakeClock();
    const h = await harness({ clock, flushWindowMs: 0, socketHighWaterBytes: 64 * 1024, handshakeTimeoutMs: 600_000, ...deadlines });
    seedBig(h, 768);
    return { clock, h };
  }

  /**
   * A slow reader: five virtual seconds (five times the deadlines) in which it reads a little
   * every 250 ms, so the stream keeps moving but does not finish.
   */
  async function readSlowly(clock: FakeClock, agent: TestAgent): Promise<void> {
    agent.socket.pause();
    for (let t = 0; t < 5_000; t += 250) {
      clock.advance(250);
      const before = agent.bytesReceived;
      agent.socket.resume();
      await agent.until(() => agent.bytesReceived > before, 'slow agent read more');
      agent.socket.pause();
    }
    expect(agent.feed('felix').pendingSnapshot).toBeDefined(); // still streaming: the case under test
    expect(agent.closeCode).toBeUndefined();
  }

  it('counts a build that only a slow reader still streams as pinned, beside the cache, until it is done', async () => {
    const { clock, h } = await streamHarness();
    seedBig(h, 256);
    const slow = h.agent({ feeds: [{ name: 'felix' }], maxFrameBytes: 64 * 1024 });
    await slow.until(() => slow.received.includes('snapshotChunk'), 'snapshot started');
    slow.socket.pause();
    expect(await h.metric('cattail_snapshot_pinned_builds')).toBe(0); // still held for reuse
    // Outdated and past the reuse window: the next agent's snapshot drops it from the cache.
    h.upstream.apply('felix', { '/pods/big/b0': { i: 0, pad: 'changed' } });
    await clock.advanceAsync(1_001);
    const next = h.agent({ feeds: [{ name: 'felix' }], maxFrameBytes: 64 * 1024, node: 'next' });
    await next.untilRevision('felix', 2);
    expect(await h.metric('cattail_snapshot_pinned_builds')).toBe(1);
    expect(await h.metric('cattail_snapshot_pinned_bytes')).toBeGreaterThan(1_000_000);
    slow.socket.resume();
    await waitUntil(() => slow.feed('felix').revision === 2, 'the slow agent done and caught up', { clock, stepMs: 20, timeoutMs: 20_000 });
    expect(await h.metric('cattail_snapshot_pinned_builds')).toBe(0);
    expect(await h.metric('cattail_snapshot_pinned_bytes')).toBe(0);
  });

  it('closes idle readers of outdated builds (4007) once pinned builds pass snapshotPinnedMaxBytes; moving readers stay', async () => {
    // One build of this feed is ~8.4 MB on the wire (uncompressed): one pinned fits, two do not.
    const { clock, h } = await streamHarness({ snapshotPinnedMaxBytes: 12 * 1024 * 1024 });
    seedBig(h, 256);
    /** An agent that starts its snapshot, then stops reading. */
    const stalled = async (node: string): Promise<TestAgent> => {
      const a = h.agent({ feeds: [{ name: 'felix' }], maxFrameBytes: 64 * 1024, node });
      await a.until(() => a.received.includes('snapshotChunk'), `${node}'s snapshot started`);
      a.ws.pause();
      return a;
    };
    const moving = await stalled('moving'); // the oldest build's reader: it will keep reading a little
    h.upstream.apply('felix', { '/pods/big/b0': { i: 0, pad: 'changed' } });
    await clock.advanceAsync(1_001);
    const idle = await stalled('idle'); // a newer build: the first one is outdated now
    await clock.advanceAsync(2_000);
    const pinnedOne = await h.metric('cattail_snapshot_pinned_bytes');
    expect(pinnedOne).toBeGreaterThan(4 * 1024 * 1024);
    expect(pinnedOne).toBeLessThan(12 * 1024 * 1024);
    h.upstream.apply('felix', { '/pods/big/b1': { i: 1, pad: 'changed' } });
    await clock.advanceAsync(1_001);
    const current = h.agent({ feeds: [{ name: 'felix' }], maxFrameBytes: 64 * 1024, node: 'current' });
    await current.untilRevision('felix', 3);
    // Two outdated builds pinned, above the bound, for longer than PINNED_IDLE_MS; one reader
    // reads a megabyte every 12 s (moving: the server sees its socket take frames), the other
    // nothing (idle).
    expect(await h.metric('cattail_snapshot_pinned_bytes')).toBeGreaterThan(12 * 1024 * 1024);
    const closes = (): Promise<number> => h.metric('cattail_snapshot_pinned_closes_total', { feed: 'felix' });
    let waited = 0;
    for (; waited < PINNED_IDLE_MS + 24_000 && (await closes()) === 0; waited += 12_000) {
      await clock.advanceAsync(12_000);
      const before = moving.bytesReceived;
      moving.ws.resume();
      await moving.until(() => moving.bytesReceived > before + 1_000_000, 'the moving reader read more');
      moving.ws.pause();
      expect(moving.feed('felix').pendingSnapshot).toBeDefined(); // still streaming: the case under test
    }
    expect(await closes()).toBe(1);
    expect(idle.feed('felix').pendingSnapshot).toBeDefined(); // closed in the middle of its snapshot
    expect(waited).toBeGreaterThanOrEqual(PINNED_IDLE_MS - 12_000); // not before the idle reader was idle that long
    // Its close waits behind the frames it did not read; the sweep ends the socket after the
    // closing grace (CLOSE_GRACE_MS), as for any agent that does not read its close.
    await waitUntil(() => h.server.connectionCount() === 2, 'the idle reader\'s connection gone', { clock, stepMs: 50 });
    // The oldest build's reader was moving: kept, although its build is the oldest. It ends in sync.
    expect(moving.closeCode).toBeUndefined();
    moving.ws.resume();
    await waitUntil(() => moving.feed('felix').revision === 3, 'the moving reader done and caught up', { clock, stepMs: 20, timeoutMs: 20_000 });
    expect(await h.metric('cattail_snapshot_pinned_closes_total', { feed: 'felix' })).toBe(1);
  });

  it('counts a scoped agent\'s snapshot of the current build as held, not pinned', async () => {
    const { clock, h } = await streamHarness({ scopedFeeds: ['felix'], snapshotPinnedMaxBytes: 0 });
    seedBig(h, 64);
    const a = await stalledScoped(h, 'n1');
    await clock.advanceAsync(PINNED_IDLE_MS + 5_000);
    // Its node snapshot wraps the current shared build: nothing outdated is pinned, nobody is closed.
    expect(await h.metric('cattail_snapshot_pinned_builds')).toBe(0);
    expect(await h.metric('cattail_snapshot_pinned_bytes')).toBe(0);
    expect(await h.metric('cattail_snapshot_pinned_closes_total', { feed: 'felix' })).toBe(0);
    a.socket.resume();
    await waitUntil(() => a.feed('felix').revision === 1, 'the scoped agent in sync', { clock, stepMs: 20, timeoutMs: 20_000 });
    expect(a.closeCode).toBeUndefined();
  });

  it('counts a scoped agent\'s snapshot of an outdated build with its shared build, and closes it when idle above the bound', async () => {
    const { clock, h } = await streamHarness({ scopedFeeds: ['felix'], snapshotPinnedMaxBytes: 1_000_000 });
    seedBig(h, 256);
    const old = await stalledScoped(h, 'n1');
    h.upstream.apply('felix', { '/pods/big/b0': { i: 0, pad: 'changed' } });
    await clock.advanceAsync(1_001);
    const fresh = h.agent({ feeds: [{ name: 'felix' }], maxFrameBytes: 64 * 1024, node: 'n2', caps: ['scope.node'] });
    await fresh.untilRevision('felix', 2);
    // The first agent's node snapshot wraps a shared build no longer held: pinned, with its bytes.
    expect(await h.metric('cattail_snapshot_pinned_builds')).toBe(1);
    expect(await h.metric('cattail_snapshot_pinned_bytes')).toBeGreaterThan(1_000_000);
    await clock.advanceAsync(PINNED_IDLE_MS + 2_000);
    await waitUntil(async () => (await h.metric('cattail_snapshot_pinned_closes_total', { feed: 'felix' })) === 1, 'the idle scoped reader closed', { clock, stepMs: 50, timeoutMs: 5_000 });
    expect(old.feed('felix').pendingSnapshot).toBeDefined(); // closed in the middle of its snapshot
    expect(fresh.closeCode).toBeUndefined();
  });

  it('keeps an agent whose snapshot stream is slow but moving past maxFallBehindMs and its grace', async () => {
    // A cold-start storm shares the replica among every agent, so each snapshot takes long. Judged
    // by age alone, every agent still streaming when the grace ran out was closed and started over.
    const { clock, h } = await bigFeed();
    // 64 KiB frames: each read the slow agent allows moves the stream by a frame or two.
    const slow = h.agent({ feeds: [{ name: 'felix' }], maxFrameBytes: 64 * 1024 });
    await slow.until(() => slow.received.includes('snapshotChunk'), 'snapshot started');
    await readSlowly(clock, slow);
    // Reading at full speed again, it ends in sync with the store's state, never closed.
    slow.socket.resume();
    await waitUntil(() => slow.feed('felix').revision === h.storeRevision('felix') && slow.feed('felix').pendingSnapshot === undefined, 'snapshot complete', { clock, stepMs: 20, timeoutMs: 20_000 });
    expect(slow.digest('felix').equals(h.storeDigest('felix'))).toBe(true);
    expect(slow.closeCode).toBeUndefined();
    expect(await h.metric('cattail_connections_closed_total')).toBe(0);
  });

  it('keeps an agent whose second feed\'s snapshot waits behind the first one\'s slow but moving stream', async () => {
    // Each service turn streams the agent's feeds in order: the big first one fills the socket,
    // the second takes no frame until it is done. Judged by its own stream, the second feed fell
    // behind and the whole connection was closed (4007) while the agent was reading.
    const clock = new FakeClock();
    const h = await harness({ clock, feeds: ['felix', 'bgp'], flushWindowMs: 0, socketHighWaterBytes: 64 * 1024, handshakeTimeoutMs: 600_000, ...FALL_BEHIND_1S });
    seedBig(h, 768);
    h.upstream.apply('bgp', { '/pods/small/s': { s: 1 } }, { status: 'in-sync' });
    const slow = h.agent({ feeds: [{ name: 'felix' }, { name: 'bgp' }], maxFrameBytes: 64 * 1024 });
    await slow.until(() => slow.received.includes('snapshotChunk'), 'snapshot started');
    await readSlowly(clock, slow);
    expect(slow.feed('bgp').revision).not.toBe(h.storeRevision('bgp')); // the second feed's snapshot still waits
    slow.socket.resume();
    await waitUntil(() => ['felix', 'bgp'].every((f) => slow.feed(f).revision === h.storeRevision(f) && slow.feed(f).pendingSnapshot === undefined), 'both snapshots complete', { clock, stepMs: 20, timeoutMs: 20_000 });
    expect(slow.closeCode).toBeUndefined();
    expect(await h.metric('cattail_connections_closed_total')).toBe(0);
  });

  it('runs the PONG deadline from the snapshot stream\'s last move: a silent agent is kept while its stream moves, closed 4005 after', async () => {
    // A PING written behind megabytes of snapshot reaches a slow reader only after them; this
    // agent never answers at all, so only the stream's movement can keep it.
    const { clock, h } = await bigFeed(PONG_1S);
    const silent = h.agent({ feeds: [{ name: 'felix' }], maxFrameBytes: 64 * 1024, autoPong: false });
    await silent.until(() => silent.received.includes('snapshotChunk'), 'snapshot started');
    await readSlowly(clock, silent);
    silent.socket.resume();
    await waitUntil(() => silent.feed('felix').pendingSnapshot === undefined && silent.feed('felix').revision === h.storeRevision('felix'), 'snapshot complete', { clock, stepMs: 20, timeoutMs: 20_000 });
    // The stream is done and no PONG ever came: pongTimeoutMs after its last move, the agent is closed.
    await waitUntil(() => h.server.connectionCount() === 0, 'silent agent closed', { clock, stepMs: 50, timeoutMs: 10_000 });
    expect(await h.metric('cattail_connections_closed_total', { code: '4005' })).toBe(1);
  });

  it.each([
    ['4007', 'maxFallBehindMs and its grace', FALL_BEHIND_1S],
    ['4005', 'pongTimeoutMs', PONG_1S],
  ])('closes an agent whose snapshot stream stopped moving (%s) once %s passed', async (code, _what, deadlines) => {
    const { clock, h } = await bigFeed(deadlines);
    const stalled = h.agent({ feeds: [{ name: 'felix' }], maxFrameBytes: 64 * 1024 });
    await stalled.until(() => stalled.received.includes('snapshotChunk'), 'snapshot started');
    stalled.socket.pause();
    // Virtual time moves (with real I/O between steps): the kernel's buffers fill, the stream stops
    // moving, and a second later the agent is closed; the sweep cuts the unread close off after 2 s.
    await waitUntil(() => h.server.connectionCount() === 0, 'stalled agent closed', { clock, stepMs: 50, timeoutMs: 60_000 });
    expect(await h.metric('cattail_connections_closed_total', { code })).toBe(1);
    expect(stalled.feed('felix').pendingSnapshot).toBeDefined(); // closed mid-snapshot
    stalled.socket.resume();
    expect([Number(code), 1006]).toContain(await stalled.closed);
  });
});
