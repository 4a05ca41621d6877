/**
 * The process-wide bound of frames built for one agent alone (transport/own-frames.ts,
 * maxOwnHeldBytes): what it counts, when a catch-up is answered with the shared snapshot instead,
 * and that what agents were sent is let go.
 */
import { describe, expect, it } from 'vitest';
import { FeedRuntime } from '../../src/server/fanout/feeds.js';
import { planFeeds } from '../../src/server/fanout/handshake.js';
import { FanOutStats } from '../../src/server/fanout/stats.js';
import { createMetrics } from '../../src/server/ops/metrics.js';
import type { ServedStore } from '../../src/server/pipeline/store-port.js';
import { OwnFrames } from '../../src/server/transport/own-frames.js';
import { FeedStore, encodeValue } from '../../src/snapshot/index.js';
import { harness } from './helpers/harness.js';
import { waitUntil } from '../support/wait.js';

function pods(n: number, pad: number, gen = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) out[`/pods/ns/p${i}`] = { i, gen, pad: 'x'.repeat(pad) };
  return out;
}

/** A feed of 20 pods of ~1 KB, a token at its first revision, then `changes` revisions rewriting them all. */
function tokenThenChanges(changes: number): { store: FeedStore; feed: FeedRuntime; token: Buffer } {
  const store = new FeedStore({ feed: 'felix', epoch: '0123456789abcdef', logMaxAgeMs: 600_000 });
  const put = (gen: number): void => {
    store.apply({ updates: Object.entries(pods(20, 1_000, gen)).map(([key, v]) => ({ key, value: encodeValue(v) })), status: 'in-sync', watermarks: { pods: String(10 + gen) } }, 0);
  };
  put(0);
  const metrics = createMetrics(new FanOutStats(), { defaultMetrics: false });
  const feed = new FeedRuntime(0, { name: 'felix', resources: ['pods'], projectionVersion: 1, model: 'calico.v1' }, store as unknown as ServedStore, 'replica-a', metrics.fanout.feed('felix'));
  const token = feed.token(store.revision);
  for (let gen = 1; gen <= changes; gen++) put(gen);
  return { store, feed, token };
}

describe('frames built for one agent alone, process-wide', () => {
  it('counts each frame once however many sockets hold it, until the last lets it go', () => {
    const own = new OwnFrames(1_000);
    const a = Buffer.alloc(400);
    const b = Buffer.alloc(500);
    own.add(a);
    own.add(a);
    own.add(b);
    expect(own.heldBytes).toBe(900);
    expect(own.newBytes([a, b, Buffer.alloc(7)])).toBe(7);
    expect(own.admits(100)).toBe(true);
    expect(own.admits(101)).toBe(false);
    expect(own.refused).toBe(1);
    own.release(a);
    expect(own.heldBytes).toBe(900);
    own.release(a);
    own.release(a); // one release too many changes nothing
    expect(own.heldBytes).toBe(500);
    own.release(b);
    expect(own.heldBytes).toBe(0);
  });

  it('answers a resume whose delta does not fit beside what is held with a snapshot (too-large); one that fits resumes', () => {
    const { store, feed, token } = tokenThenChanges(1); // ~20 KB changed since the token
    const hello = { node: 'n1', clientId: 'c', caps: [], maxFrameBytes: undefined, feeds: [{ name: 'felix', token, watermarks: undefined, notBefore: undefined }] };
    const feeds = new Map([['felix', feed]]);
    const own = new OwnFrames(64 * 1024);
    expect(planFeeds(hello, feeds, 'replica-a', 16 * 1024 * 1024, undefined, own)[0]).toMatchObject({ mode: 'resume' });
    // Other agents' own frames, unsent, fill most of the bound.
    own.add(Buffer.alloc(60 * 1024));
    expect(planFeeds(hello, feeds, 'replica-a', 16 * 1024 * 1024, undefined, own)[0]).toMatchObject({ mode: 'snapshot', reason: 'too-large', minRevision: store.revision });
    expect(own.refused).toBe(1);
  });

  it('a too-large resume of a scoped feed without scope.watermarks takes a snapshot of the current revision (the client may hold more than its token says)', () => {
    const { store, feed, token } = tokenThenChanges(3);
    const feeds = new Map([['felix', feed]]);
    const hello = (caps: string[], t: Buffer) => ({ node: 'n1', clientId: 'c', caps, maxFrameBytes: undefined, feeds: [{ name: 'felix', token: t, watermarks: undefined, notBefore: undefined }] });
    // A 16 KiB budget: the ~60 KB since the token is too large.
    const budget = 16 * 1024;
    // Unscoped: the token is what the client applied; any build after it will do.
    expect(planFeeds(hello([], token), feeds, 'replica-a', budget)[0]).toMatchObject({ mode: 'snapshot', reason: 'too-large', minRevision: 2 });
    // Scoped (its tokens name the scoped projection: made after the feed is; revision 2, as the
    // unscoped one of revision 1 is cached).
    feed.scope = {} as NonNullable<typeof feed.scope>;
    const scopedToken = feed.token(2);
    expect(planFeeds(hello(['scope.node'], scopedToken), feeds, 'replica-a', budget)[0]).toMatchObject({ mode: 'snapshot', reason: 'too-large', minRevision: store.revision });
    // With scope.watermarks every unit ends with a STATUS: the token does not trail.
    expect(planFeeds(hello(['scope.node', 'scope.watermarks'], scopedToken), feeds, 'replica-a', budget)[0]).toMatchObject({ mode: 'snapshot', reason: 'too-large', minRevision: 3 });
  });

  it('sends a resume larger than the bound a snapshot, counts it, and holds nothing once agents are served', async () => {
    const h = await harness({ maxOwnHeldBytes: 1_048_576, maxClientBytes: 64 * 1024 * 1024 });
    h.upstream.apply('felix', pods(10, 100), { status: 'in-sync' });
    const first = h.agent({ feeds: [{ name: 'felix' }] });
    await first.untilRevision('felix', 1);
    await first.until(() => first.feed('felix').token !== undefined && first.feed('felix').status === 'in-sync', 'its token');
    const kept = first.feed('felix');
    first.close();
    await first.closed;
    // ~1.6 MB of changes: more than the whole bound, far less than half the agent's budget.
    h.upstream.apply('felix', pods(50, 32 * 1024, 1));
    const big = h.agent({ feeds: [{ name: 'felix', token: kept.token, entries: kept.entries, revision: kept.revision }] });
    await big.untilRevision('felix', h.storeRevision('felix'));
    expect(big.welcome?.feeds[0]).toMatchObject({ mode: 'snapshot', reason: 'too-large' });
    expect(await h.metric('cattail_own_frames_refused_total')).toBe(1);
    await big.until(() => big.feed('felix').status === 'in-sync', 'in sync');
    const again = big.feed('felix');
    big.close();
    await big.closed;
    // A small change since: resumed, and its frames are let go once sent.
    h.upstream.apply('felix', { '/pods/ns/p0': { small: true } });
    const small = h.agent({ feeds: [{ name: 'felix', token: again.token, entries: again.entries, revision: again.revision }] });
    await small.untilRevision('felix', h.storeRevision('felix'));
    expect(small.welcome?.feeds[0]).toMatchObject({ mode: 'resume' });
    expect(small.digest('felix').equals(h.storeDigest('felix'))).toBe(true);
    await waitUntil(async () => (await h.metric('cattail_own_frames_held_bytes')) === 0, 'nothing held');
    expect(await h.metric('cattail_own_frames_refused_total')).toBe(1);
  });
});
