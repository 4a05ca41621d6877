import type { ServerResponse } from 'node:http';
import { describe, expect, it } from 'vitest';
import type { FakeClock } from '../../src/clock.js';
import type { UpstreamHandle, UpstreamOptions } from '../../src/server/upstream/index.js';
import { WATERMARK_ONLY_INTERVAL_MS } from '../../src/server/upstream/dispatcher.js';
import { EARLY_LOOK_MIN_MS } from '../../src/server/upstream/reflector.js';
import { WATCHLIST_END_GRACE_MS } from '../../src/server/upstream/watch.js';
import type { KubeObject } from '../../src/server/upstream/types.js';
import type { FakeApiServer } from '../support/fake-apiserver.js';
import { upstreamOnFakeApi } from '../support/upstream.js';
import { builtinFeed, customFeed, expectedState, node, pod, RecordingSink, sameState } from './helpers.js';
import { waitUntil } from '../support/wait.js';

const PODS_FEED = { name: 'pods', resources: [{ resource: 'pods' }] };

let server: FakeApiServer;

async function setup(opts: Partial<UpstreamOptions> = {}): Promise<{ clock: FakeClock; sink: RecordingSink; up: UpstreamHandle }> {
  const started = await upstreamOnFakeApi({ customFeeds: [PODS_FEED], random: () => 0.5, ...opts });
  server = started.server;
  return { clock: started.clock, sink: new RecordingSink(), up: started.up };
}

const objects = (id: string): KubeObject[] => [...(server.store.get(id)?.values() ?? [])];
const podsFeed = customFeed(PODS_FEED);

describe('reflector against a scripted API server', () => {
  it('lists in pages, reaches in-sync with the last update, then follows the watch', async () => {
    const { clock, sink, up } = await setup({ watchList: false, listPageSize: 2 });
    for (let i = 0; i < 5; i++) server.upsert('pods', pod(`p${i}`, { ip: `10.0.0.${i + 1}` }));
    up.start(sink);
    await waitUntil(() => sink.status.get('pods') === 'in-sync', { clock });
    expect(server.count('pods', false)).toBe(3); // 2 + 2 + 1
    expect(server.requests[0]?.query).not.toContain('resourceVersion'); // first list: consistent
    expect(server.requests[0]?.userAgent).toMatch(/^cattail\/.* \(replica r1\)$/);
    // in-sync rides on the batch carrying the list's updates, not a later empty one.
    const synced = sink.batches.find((b) => b.batch.status === 'in-sync');
    expect(synced?.batch.updates.length).toBe(5);
    expect(synced?.batch.watermarks?.['pods']).toBe(String(server.rv));
    expect(sameState(sink.state.get('pods'), expectedState(podsFeed, objects))).toBe(true);

    await waitUntil(() => server.openWatches === 1, { clock });
    const watchQuery = server.requests.find((r) => r.watch)?.query ?? '';
    expect(watchQuery).toContain('allowWatchBookmarks=true');
    const timeout = Number(new URLSearchParams(watchQuery).get('timeoutSeconds'));
    expect(timeout).toBeGreaterThanOrEqual(300);
    expect(timeout).toBeLessThan(600);

    server.upsert('pods', pod('p5', { ip: '10.0.0.9' }));
    server.upsert('pods', pod('p0', { ip: '10.0.0.10' }));
    server.remove('pods', 'default', 'p1');
    await waitUntil(() => sameState(sink.state.get('pods'), expectedState(podsFeed, objects)), { clock });
    expect(up.ready()).toBe(true);
  });

  it('status-only pod updates and node heartbeats produce zero updates (10,000 against the simulator)', async () => {
    const { clock, sink, up } = await setup({ watchList: false, feeds: ['tunnel-ip-allocation'] });
    server.upsert('pods', pod('a'));
    server.upsert('nodes', node('n1'));
    up.start(sink);
    await waitUntil(() => sink.status.get('pods') === 'in-sync' && sink.status.get('tunnel-ip-allocation') === 'in-sync' && server.openWatches === 3, { clock });
    const before = sink.updates();
    for (let i = 0; i < 2_000; i++) server.upsert('pods', pod('a', { ready: i % 2 === 0, restarts: i }));
    for (let i = 0; i < 100; i++) server.upsert('nodes', node('n1', { heartbeat: `2026-01-01T00:${String(i % 60).padStart(2, '0')}:00Z` }));
    const unchanged = async (): Promise<number> => (await up.metrics.unchanged.get()).values.reduce((n, v) => n + v.value, 0);
    await waitUntil(async () => (await unchanged()) >= 2_100, '2,100 unchanged updates counted');
    expect(await unchanged()).toBe(2_100);
    expect(sink.updates() - before).toBe(0);
    // A real change still gets through.
    server.upsert('pods', pod('a', { labels: { app: 'db' } }));
    await waitUntil(() => sink.updates() - before === 1, { clock });
  });

  it('delivers the watermarks of events that change no entry, at most once per WATERMARK_ONLY_INTERVAL_MS and within it', async () => {
    const { clock, sink, up } = await setup({ watchList: false });
    const at: number[] = [];
    const onBatch = sink.onBatch.bind(sink);
    sink.onBatch = (feed, batch) => {
      at.push(clock.monotonic());
      onBatch(feed, batch);
    };
    server.upsert('pods', pod('a'));
    up.start(sink);
    await waitUntil(() => sink.status.get('pods') === 'in-sync' && server.openWatches === 1, { clock });
    const first = sink.batches.length;
    const unchanged = async (): Promise<number> => (await up.metrics.unchanged.get()).values.reduce((n, v) => n + v.value, 0);
    // Six waves of status-only updates, 400 ms of virtual time apart: none changes the feed.
    let lastEventAt = 0;
    for (let wave = 0; wave < 6; wave++) {
      for (let i = 0; i < 10; i++) server.upsert('pods', pod('a', { ready: i % 2 === 0, restarts: wave * 10 + i }));
      for (let i = 0; i < 100_000 && (i % 50 !== 0 || (await unchanged()) < (wave + 1) * 10); i++) await new Promise<void>((r) => setImmediate(r));
      lastEventAt = clock.monotonic();
      await clock.advanceAsync(400);
    }
    // The feed's watermark follows the upstream although its entries never changed ...
    await waitUntil(() => sink.batches.at(-1)?.batch.watermarks?.['pods'] === String(server.rv), { clock });
    const later = sink.batches.slice(first);
    expect(later.every((b) => b.batch.updates.length === 0)).toBe(true);
    expect(sink.revision('pods')).toBe(1);
    // ... in batches at least WATERMARK_ONLY_INTERVAL_MS apart (not one per event), the last one
    // at most that long after the last event.
    const times = at.slice(first - 1);
    expect(later.length).toBeGreaterThanOrEqual(2);
    expect(later.length).toBeLessThan(6);
    for (let i = 1; i < times.length; i++) expect((times[i] as number) - (times[i - 1] as number)).toBeGreaterThanOrEqual(WATERMARK_ONLY_INTERVAL_MS);
    expect((times.at(-1) as number) - lastEventAt).toBeLessThanOrEqual(WATERMARK_ONLY_INTERVAL_MS);
  });

  for (const form of ['ERROR event', 'HTTP 410'] as const) {
    it(`relists after a 410 (${form}) with exactly the real differences`, async () => {
      const { clock, sink, up } = await setup({ watchList: false });
      server.http410 = form === 'HTTP 410';
      for (let i = 0; i < 6; i++) server.upsert('pods', pod(`p${i}`, { ip: `10.0.0.${i + 1}` }));
      up.start(sink);
      await waitUntil(() => sink.status.get('pods') === 'in-sync' && server.openWatches === 1, { clock });
      const before = sink.updates();
      server.changeWhileDisconnected(() => {
        server.remove('pods', 'default', 'p0'); // → deletion
        server.upsert('pods', pod('p1', { ip: '10.9.9.9' })); // → update
        server.upsert('pods', pod('p9', { ip: '10.0.0.99' })); // → addition
        server.upsert('pods', pod('p2', { ip: '10.0.0.3', ready: false, restarts: 5 })); // status only → nothing
      });
      server.endWatches();
      await waitUntil(() => sameState(sink.state.get('pods'), expectedState(podsFeed, objects)) && server.openWatches === 1, { clock });
      expect(sink.updates() - before).toBe(3);
      const relistQuery = server.requests.filter((r) => !r.watch).at(-1)?.query ?? '';
      expect(relistQuery).toContain('resourceVersionMatch=NotOlderThan');
      expect(sink.status.get('pods')).toBe('in-sync');
      expect(sink.batches.filter((b) => b.batch.status !== 'in-sync' && b.batch.status !== undefined && sink.batches.indexOf(b) > 1)).toEqual([]);
      const restarts = (await up.metrics.watchRestarts.get()).values.find((v) => v.labels.reason === 'expired');
      expect(restarts?.value).toBe(1);
    });
  }

  it('re-watches from the bookmark RV', async () => {
    const { clock, sink, up } = await setup({ watchList: false });
    server.upsert('pods', pod('a'));
    up.start(sink);
    await waitUntil(() => server.openWatches === 1, { clock });
    server.upsert('nodes', node('elsewhere')); // RV moves on another resource
    server.bookmark();
    await waitUntil(() => up.health()[0]?.lastHealthyMs !== undefined, { clock });
    const rvAtBookmark = server.rv;
    server.endWatches();
    await waitUntil(() => server.openWatches === 1, { clock });
    const q = new URLSearchParams(server.requests.filter((r) => r.watch).at(-1)?.query);
    expect(q.get('resourceVersion')).toBe(String(rvAtBookmark));
  });

  it('streams the initial list with WatchList and keeps the stream for live events', async () => {
    const { clock, sink, up } = await setup();
    for (let i = 0; i < 4; i++) server.upsert('pods', pod(`p${i}`, { ip: `10.0.0.${i + 1}` }));
    up.start(sink);
    await waitUntil(() => sink.status.get('pods') === 'in-sync', { clock });
    expect(server.count('pods', false)).toBe(0);
    expect(server.requests[0]?.query).toContain('sendInitialEvents=true');
    server.upsert('pods', pod('p9', { ip: '10.0.0.99' }));
    await waitUntil(() => sameState(sink.state.get('pods'), expectedState(podsFeed, objects)), { clock });
    expect(server.count('pods')).toBe(1);
  });

  it('takes live events that come before the end of a WatchList\'s initial events into the list (Kubernetes 1.27-1.31 send the end at their next bookmark tick)', async () => {
    const { clock, sink, up } = await setup();
    server.endBookmarkOnTick = true;
    for (let i = 0; i < 4; i++) server.upsert('pods', pod(`p${i}`, { ip: `10.0.0.${i + 1}` }));
    up.start(sink);
    await waitUntil(() => server.openWatches === 1, { clock });
    server.upsert('pods', pod('p1', { ip: '10.0.1.1' }));
    server.remove('pods', 'default', 'p2');
    server.upsert('pods', pod('p9', { ip: '10.0.0.99' }));
    await clock.advanceAsync(1_000);
    expect(sink.status.get('pods')).not.toBe('in-sync');
    server.bookmark();
    await waitUntil(() => sink.status.get('pods') === 'in-sync' && sameState(sink.state.get('pods'), expectedState(podsFeed, objects)), { clock });
    // One WatchList, kept for live events: no paged LIST, no fallback.
    expect(server.count('pods')).toBe(1);
    expect((await up.metrics.relists.get()).values.filter((v) => v.labels.reason === 'watchlist-fallback')).toEqual([]);
    // Nothing of the live events before the end was sent as an update before the list committed.
    expect(sink.batches.filter((b) => b.batch.updates.length > 0)).toHaveLength(1);
    // The grace for the end is over with the end: past it, the same WatchList, no fallback.
    const until = clock.monotonic() + 2 * WATCHLIST_END_GRACE_MS;
    await waitUntil(() => clock.monotonic() >= until, { clock, stepMs: 500 });
    expect(server.count('pods')).toBe(1);
    expect(server.openWatches).toBe(1);
    expect((await up.metrics.relists.get()).values.filter((v) => v.labels.reason === 'watchlist-fallback')).toEqual([]);
  });

  it('a WatchList that carries live events but never its end (a server ignoring sendInitialEvents) turns to paged LIST after WATCHLIST_END_GRACE_MS', async () => {
    const { clock, sink, up } = await setup();
    server.endBookmarkOnTick = true;
    server.upsert('pods', pod('a', { ip: '10.0.0.1' }));
    up.start(sink);
    await waitUntil(() => server.openWatches === 1, { clock });
    server.upsert('pods', pod('a', { ip: '10.0.0.2' }));
    await waitUntil(async () => (await up.metrics.events.get()).values.some((v) => v.labels.type === 'MODIFIED'), { clock, stepMs: 10 });
    const t0 = clock.monotonic();
    await waitUntil(() => server.count('pods', false) === 1, { clock, stepMs: 100 });
    // Not at the live event (as once), nor at the inactivity watchdog: at the grace's end.
    expect(clock.monotonic() - t0).toBeGreaterThanOrEqual(WATCHLIST_END_GRACE_MS - 200);
    expect(clock.monotonic() - t0).toBeLessThanOrEqual(WATCHLIST_END_GRACE_MS + 2_000);
    await waitUntil(() => sink.status.get('pods') === 'in-sync' && sameState(sink.state.get('pods'), expectedState(podsFeed, objects)), { clock });
    expect((await up.metrics.relists.get()).values.find((v) => v.labels.reason === 'watchlist-fallback')?.value).toBe(1);
  });

  it.each([
    ['storage is (re)initializing', 'lists from etcd at once, and tries WatchList again at the next list'],
    ['Too many requests, please try again later.', 'waits out the Retry-After and asks for the WatchList again (a LIST would add load to a throttling server)'],
  ])('a WatchList refused with 429 "%s" %s', async (message) => {
    const { clock, sink, up } = await setup();
    const initializing = message.includes('initializing');
    server.upsert('pods', pod('a', { ip: '10.0.0.1' }));
    let refused = 0;
    server.intercept = (info, _req, res) => {
      if (info.query.get('sendInitialEvents') !== 'true' || refused >= 2) return false;
      refused++;
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '5' });
      res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message, reason: 'TooManyRequests', code: 429, details: { retryAfterSeconds: 5 } }));
      return true;
    };
    up.start(sink);
    await waitUntil(() => sink.status.get('pods') === 'in-sync' && server.openWatches === 1 && sameState(sink.state.get('pods'), expectedState(podsFeed, objects)), { clock });
    const reasons = async (): Promise<Record<string, number>> => Object.fromEntries((await up.metrics.relists.get()).values.map((v) => [v.labels.reason, v.value]));
    if (initializing) {
      // One WatchList refused, then a paged LIST in the same attempt; WatchList is still on.
      expect(refused).toBe(1);
      expect(server.count('pods', false)).toBe(1);
      expect(await reasons()).toEqual({ 'watchlist-initializing': 1 });
      server.intercept = undefined;
      // Expired (410): the relist is a WatchList again, served this time.
      server.changeWhileDisconnected(() => server.upsert('pods', pod('b', { ip: '10.0.0.2' })));
      server.endWatches();
      await waitUntil(() => server.requests.filter((r) => r.query.includes('sendInitialEvents=true')).length === 2 && server.openWatches === 1 && sameState(sink.state.get('pods'), expectedState(podsFeed, objects)), { clock });
      expect(server.requests.filter((r) => !r.watch && !r.query.includes('limit=1')).length).toBe(1);
    } else {
      // Throttled: no LIST at all, the WatchList asked again after the Retry-After.
      expect(refused).toBe(2);
      expect(server.count('pods', false)).toBe(0);
      expect(await reasons()).toEqual({});
    }
  });

  it('falls back to a paged LIST when WatchList is refused', async () => {
    const { clock, sink, up } = await setup();
    server.watchListSupported = false;
    server.upsert('pods', pod('a'));
    up.start(sink);
    await waitUntil(() => sink.status.get('pods') === 'in-sync' && server.openWatches === 1, { clock });
    expect(server.count('pods', false)).toBe(1);
    expect(sameState(sink.state.get('pods'), expectedState(podsFeed, objects))).toBe(true);
  });

  it('treats a missing CRD as empty and in sync, and picks it up once installed', async () => {
    const { clock, sink, up } = await setup({ watchList: false, feeds: ['tunnel-ip-allocation'], customFeeds: [], missingResourceRetryMs: 60_000 });
    server.missing.add('ippools.crd.projectcalico.org');
    server.upsert('nodes', node('n1'));
    up.start(sink);
    await waitUntil(() => sink.status.get('tunnel-ip-allocation') === 'in-sync', { clock });
    const ippools = up.health().find((h) => h.id === 'ippools.crd.projectcalico.org');
    expect(ippools).toMatchObject({ synced: true, missing: true, stale: false });
    expect(ippools?.authError).toBeUndefined();
    server.missing.delete('ippools.crd.projectcalico.org');
    server.upsert('ippools.crd.projectcalico.org', { metadata: { name: 'default-ipv4-ippool' }, spec: { cidr: '192.168.0.0/16' } });
    const feed = builtinFeed('tunnel-ip-allocation');
    await waitUntil(() => sameState(sink.state.get('tunnel-ip-allocation'), expectedState(feed, objects)), { clock, stepMs: 500 });
    expect(up.health().find((h) => h.id === 'ippools.crd.projectcalico.org')?.missing).toBeUndefined();
  });

  describe('a missing CRD\'s watermark (not-served.ts)', () => {
    const POOLS = 'ippools.crd.projectcalico.org';
    const poolsMark = (sink: RecordingSink): string | undefined => sink.batches.filter((b) => b.feed === 'tunnel-ip-allocation').at(-1)?.batch.watermarks?.[POOLS];
    const probes = async (up: UpstreamHandle, result: string): Promise<number> => {
      const m = (up.metrics as unknown as { notServedProbes: { get(): Promise<{ values: { labels: Record<string, unknown>; value: number }[] }> } }).notServedProbes;
      return (await m.get()).values.filter((v) => v.labels['resource'] === POOLS && v.labels['result'] === result).reduce((n, v) => n + v.value, 0);
    };

    /** The pools' CRD not installed, looked at once (evidence reported); `looks` counts the pools' LISTs. */
    async function missingPools(): Promise<{ clock: FakeClock; sink: RecordingSink; up: UpstreamHandle; looks: () => number; first: number }> {
      const { clock, sink, up } = await setup({ watchList: false, feeds: ['tunnel-ip-allocation'], customFeeds: [], missingResourceRetryMs: 600_000 });
      server.missing.add(POOLS);
      server.upsert('nodes', node('n1'));
      up.start(sink);
      await waitUntil(() => poolsMark(sink) === String(server.rv), { clock });
      const looks = (): number => server.count(POOLS, false);
      return { clock, sink, up, looks, first: looks() };
    }

    /** Pools served and synced, then the CRD removed (its objects deleted, watches ended, 404 from then on). */
    async function removedAfterSync(prepare: () => void = () => undefined): Promise<{ clock: FakeClock; sink: RecordingSink; up: UpstreamHandle; before: string }> {
      const { clock, sink, up } = await setup({ watchList: false, feeds: ['tunnel-ip-allocation'], customFeeds: [], missingResourceRetryMs: 60_000 });
      server.upsert('nodes', node('n1'));
      server.upsert(POOLS, { metadata: { name: 'default-ipv4-ippool' }, spec: { cidr: '192.168.0.0/16' } });
      up.start(sink);
      await waitUntil(() => sink.status.get('tunnel-ip-allocation') === 'in-sync' && server.openWatches === 2, { clock });
      const before = poolsMark(sink) as string;
      expect(before).toBe(String(server.rv));
      prepare();
      server.changeWhileDisconnected(() => server.remove(POOLS, undefined, 'default-ipv4-ippool'));
      server.missing.add(POOLS);
      for (let i = 0; i < 3; i++) server.upsert('nodes', node(`n${i + 2}`)); // the cluster moves on
      server.endWatches();
      await waitUntil(() => up.health().find((h) => h.id === POOLS)?.missing === true, { clock, stepMs: 200 });
      return { clock, sink, up, before };
    }

    it('is the resourceVersion of a CRD list without the CRD: an agent that applied the pools moves forward to the empty state', async () => {
      const { clock, sink, up, before } = await removedAfterSync();
      const evidence = String(server.rv);
      await waitUntil(() => poolsMark(sink) === evidence, { clock, stepMs: 200 });
      expect(Number(evidence)).toBeGreaterThan(Number(before));
      // The pools' entries are gone at that watermark: the state a replica started now would serve.
      const feed = builtinFeed('tunnel-ip-allocation');
      expect(sameState(sink.state.get('tunnel-ip-allocation'), expectedState(feed, objects))).toBe(true);
      const crdList = server.requests.filter((r) => r.resource === 'customresourcedefinitions.apiextensions.k8s.io');
      expect(crdList.length).toBeGreaterThan(0);
      expect(new URLSearchParams(crdList[0]?.query).get('fieldSelector')).toBe(`metadata.name=${POOLS}`);
      expect(await probes(up, 'absent')).toBeGreaterThan(0);
      // Each later look (missingResourceRetryMs) brings fresher evidence; the watermark follows it.
      server.upsert('nodes', node('n9'));
      const later = String(server.rv);
      await clock.advanceAsync(61_000);
      await waitUntil(() => poolsMark(sink) === later, { clock, stepMs: 500 });
      expect(sink.storeTotals.watermarkRegressions).toBe(0);
    });

    it('a replica that never saw the CRD reports the evidence too, and picks the resource up once it is installed', async () => {
      const { clock, sink, up } = await setup({ watchList: false, feeds: ['tunnel-ip-allocation'], customFeeds: [], missingResourceRetryMs: 60_000 });
      server.missing.add(POOLS);
      server.upsert('nodes', node('n1'));
      up.start(sink);
      await waitUntil(() => sink.status.get('tunnel-ip-allocation') === 'in-sync', { clock });
      expect(poolsMark(sink)).toBe(String(server.rv));
      server.missing.delete(POOLS);
      server.upsert(POOLS, { metadata: { name: 'p' }, spec: { cidr: '10.0.0.0/8' } });
      const installed = String(server.rv);
      const seen = sink.batches.length;
      await clock.advanceAsync(61_000);
      await waitUntil(() => poolsMark(sink) === installed, { clock, stepMs: 500 });
      expect(up.health().find((h) => h.id === POOLS)?.missing).toBeUndefined();
      // Revisions before this list stood for the evidence's watermark; the list's diff cannot show
      // what was created and deleted since (no tombstones): it is a rebase barrier, as any relist.
      expect(sink.batches.slice(seen).some((b) => b.batch.barrier === true)).toBe(true);
    });

    it('without evidence (the CRD list is forbidden) the watermark stays where it was, and the reason is counted', async () => {
      const { clock, sink, up, before } = await removedAfterSync(() => {
        server.crdListStatus = 403;
      });
      await waitUntil(async () => (await probes(up, 'unknown')) > 0, { clock, stepMs: 200 });
      await clock.advanceAsync(2_000);
      expect(poolsMark(sink)).toBe(before);
      expect(sameState(sink.state.get('tunnel-ip-allocation'), expectedState(builtinFeed('tunnel-ip-allocation'), objects))).toBe(true);
      expect(await probes(up, 'absent')).toBe(0);
    });

    it('an agent ahead of us makes the replica look again at once, at most once per EARLY_LOOK_MIN_MS, never during a backoff', async () => {
      const { clock, sink, up, looks, first } = await missingPools();
      server.upsert('nodes', node('n2')); // the cluster moves on
      up.recheckMissing([POOLS]);
      await waitUntil(() => poolsMark(sink) === String(server.rv), 'looked again', { clock, stepMs: 100, timeoutMs: 5_000 });
      expect(looks()).toBe(first + 1);
      /** Past the attempt gate, with real time for a request the look would send to arrive. */
      const settle = async (): Promise<void> => {
        await clock.advanceAsync(1_500);
        await new Promise((r) => setTimeout(r, 150));
      };
      // A second agent right after: within EARLY_LOOK_MIN_MS, no new look.
      await clock.advanceAsync(2_000);
      up.recheckMissing([POOLS]);
      await settle();
      expect(looks()).toBe(first + 1);
      await clock.advanceAsync(EARLY_LOOK_MIN_MS - 5_000);
      // After it, the next one is honoured; that look is throttled (429, Retry-After 120 s).
      server.intercept = ({ def }, _req, res) => {
        if (def.id !== POOLS) return false;
        res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '120' }).end(JSON.stringify({ kind: 'Status', code: 429, reason: 'TooManyRequests' }));
        return true;
      };
      await clock.advanceAsync(2_000);
      up.recheckMissing([POOLS]);
      await waitUntil(() => looks() === first + 2, 'the throttled look', { clock, stepMs: 100, timeoutMs: 5_000 });
      // Agents ahead of us during the Retry-After do not cut it short.
      for (let i = 0; i < 6; i++) {
        await clock.advanceAsync(EARLY_LOOK_MIN_MS);
        up.recheckMissing([POOLS]);
        await settle();
      }
      expect(looks()).toBe(first + 2);
      // Nor for a resource that is not missing, or that no feed here carries.
      up.recheckMissing(['nodes', 'nothing.example.com']);
      expect(server.count('nodes', false)).toBe(1);
    });

    it('an agent ahead of us during a look (the look may predate its evidence) gets one more look right after it', async () => {
      const { clock, sink, up, looks, first } = await missingPools();
      // The next look hangs in its LIST; an agent ahead of us arrives meanwhile.
      let held: ServerResponse | undefined;
      server.intercept = ({ def }, _req, res) => {
        if (def.id !== POOLS || held !== undefined) return false;
        held = res;
        return true;
      };
      up.recheckMissing([POOLS]);
      await waitUntil(() => held !== undefined, 'the look is in its LIST', { clock, stepMs: 100, timeoutMs: 5_000 });
      await clock.advanceAsync(EARLY_LOOK_MIN_MS);
      server.upsert('nodes', node('n2')); // the agent's replica looked after this
      up.recheckMissing([POOLS]);
      held?.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', code: 404, reason: 'NotFound' }));
      // Not missingResourceRetryMs later: right after that look, one more.
      await waitUntil(() => looks() === first + 2 && poolsMark(sink) === String(server.rv), 'one more look at once', { clock, stepMs: 100, timeoutMs: 5_000 });
    });

    /** Pools served, listed and watched; `answer404()` then answers every request for them 404 and ends the watches. */
    async function listedPools(upstreamStaleAfterMs: number): Promise<{ clock: FakeClock; sink: RecordingSink; up: UpstreamHandle; answer404: () => void }> {
      const { clock, sink, up } = await setup({ watchList: false, feeds: ['tunnel-ip-allocation'], customFeeds: [], missingResourceRetryMs: 600_000, upstreamStaleAfterMs });
      server.upsert('nodes', node('n1'));
      server.upsert(POOLS, { metadata: { name: 'default-ipv4-ippool' }, spec: { cidr: '192.168.0.0/16' } });
      up.start(sink);
      await waitUntil(() => sink.status.get('tunnel-ip-allocation') === 'in-sync' && server.openWatches === 2, { clock });
      const answer404 = (): void => {
        server.intercept = ({ def }, _req, res) => {
          if (def.id !== POOLS) return false;
          res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', code: 404, reason: 'NotFound' }));
          return true;
        };
        server.endWatches();
      };
      return { clock, sink, up, answer404 };
    }

    it('an existing CRD whose path answers 404 for a while (an upgrade, a lagging instance) keeps the listed state instead of deleting it', async () => {
      const { clock, sink, up } = await setup({ watchList: false, feeds: ['tunnel-ip-allocation'], customFeeds: [], missingResourceRetryMs: 600_000 });
      server.upsert('nodes', node('n1'));
      server.upsert(POOLS, { metadata: { name: 'default-ipv4-ippool' }, spec: { cidr: '192.168.0.0/16' } });
      up.start(sink);
      await waitUntil(() => sink.status.get('tunnel-ip-allocation') === 'in-sync' && server.openWatches === 2, { clock });
      const feed = builtinFeed('tunnel-ip-allocation');
      const before = new Map(sink.state.get('tunnel-ip-allocation'));
      expect(sameState(before, expectedState(feed, objects))).toBe(true);
      let blip = true;
      server.intercept = ({ def }, _req, res) => {
        if (!blip || def.id !== POOLS) return false;
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', code: 404, reason: 'NotFound' }));
        return true;
      };
      server.endWatches();
      await waitUntil(async () => (await probes(up, 'present')) >= 3, 'a few failed looks', { clock, stepMs: 500, timeoutMs: 120_000 });
      // Nothing deleted, not missing: the agents keep their pools.
      expect(sameState(sink.state.get('tunnel-ip-allocation'), before)).toBe(true);
      expect(up.health().find((h) => h.id === POOLS)?.missing).toBeUndefined();
      blip = false;
      server.upsert(POOLS, { metadata: { name: 'default-ipv4-ippool' }, spec: { cidr: '192.168.0.0/17' } });
      await waitUntil(() => sameState(sink.state.get('tunnel-ip-allocation'), expectedState(feed, objects)) && !sameState(sink.state.get('tunnel-ip-allocation'), before), 'follows again', { clock, stepMs: 500, timeoutMs: 120_000 });
    });

    it('a 404 blip of an existing CRD that outlasts upstreamStaleAfterMs ends as missing (the replica must not stay unready)', async () => {
      const { clock, sink, up, answer404 } = await listedPools(20_000);
      answer404();
      await waitUntil(async () => (await probes(up, 'present')) >= 1, 'the blip began', { clock, stepMs: 200, timeoutMs: 10_000 });
      expect(up.health().find((h) => h.id === POOLS)?.missing).toBeUndefined();
      await waitUntil(() => up.health().find((h) => h.id === POOLS)?.missing === true, 'given up as missing', { clock, stepMs: 500, timeoutMs: 120_000 });
      // The pools are gone from the feed; the node's entries stay.
      expect([...(sink.state.get('tunnel-ip-allocation')?.keys() ?? [])].some((k) => k.includes('ippool') || k.includes('192.168'))).toBe(false);
      expect(up.ready()).toBe(true);
    });

    it('a 404 whose CRD probe fails too (a restarting API server: throttled, 5xx) keeps the listed state until upstreamStaleAfterMs, then ends as missing', async () => {
      const { clock, sink, up, answer404 } = await listedPools(60_000);
      const before = new Map(sink.state.get('tunnel-ip-allocation'));
      expect([...before.keys()].some((k) => k.includes('default-ipv4-ippool'))).toBe(true);
      server.crdListStatus = 503;
      answer404();
      await waitUntil(async () => (await probes(up, 'unknown')) >= 3, 'a few failed looks', { clock, stepMs: 500, timeoutMs: 50_000 });
      // Nothing deleted, not missing, no probe taken for proof of absence.
      expect(sameState(sink.state.get('tunnel-ip-allocation'), before)).toBe(true);
      expect(up.health().find((h) => h.id === POOLS)?.missing).toBeUndefined();
      expect(await probes(up, 'absent')).toBe(0);
      // Past the bound it gives up as missing: the pools are gone, the node's entries stay.
      await waitUntil(() => up.health().find((h) => h.id === POOLS)?.missing === true, 'given up as missing', { clock, stepMs: 500, timeoutMs: 120_000 });
      expect([...(sink.state.get('tunnel-ip-allocation')?.keys() ?? [])].some((k) => k.includes('ippool') || k.includes('192.168'))).toBe(false);
      expect(sink.state.get('tunnel-ip-allocation')?.size).toBeGreaterThan(0);
    });

    it('a CRD that exists while its path answers 404 (not established yet) proves nothing', async () => {
      const { clock, sink, up } = await setup({ watchList: false, feeds: ['tunnel-ip-allocation'], customFeeds: [], missingResourceRetryMs: 60_000 });
      server.intercept = ({ def }, _req, res) => {
        if (def.id !== POOLS) return false;
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', code: 404, reason: 'NotFound' }));
        return true;
      };
      server.upsert('nodes', node('n1'));
      up.start(sink);
      await waitUntil(() => sink.status.get('tunnel-ip-allocation') === 'in-sync', { clock });
      await waitUntil(async () => (await probes(up, 'present')) > 0, { clock, stepMs: 200 });
      expect(poolsMark(sink)).toBeUndefined();
    });
  });

  it('fans one watch per resource out to every feed, with client-side selectors', async () => {
    const custom = { name: 'web-pods', resources: [{ resource: 'pods', labelSelector: 'app in (web)', projection: 'strip' }] };
    const { clock, sink, up } = await setup({ watchList: false, feeds: ['bgp', 'tunnel-ip-allocation'], customFeeds: [PODS_FEED, custom] });
    server.missing.add('bgppeers.crd.projectcalico.org');
    server.upsert('nodes', node('n1'));
    server.upsert('pods', pod('w', { labels: { app: 'web' } }));
    server.upsert('pods', pod('d', { labels: { app: 'db' } }));
    up.start(sink);
    await waitUntil(() => ['bgp', 'tunnel-ip-allocation', 'pods', 'web-pods'].every((f) => sink.status.get(f) === 'in-sync'), { clock });
    expect(server.count('nodes', false)).toBe(1);
    expect(server.count('pods', false)).toBe(1);
    // A label flip out of the selector is a deletion in that feed only.
    server.upsert('pods', pod('w', { labels: { app: 'db' } }));
    const webFeed = customFeed(custom);
    await waitUntil(() => sameState(sink.state.get('web-pods'), expectedState(webFeed, objects)), { clock });
    expect(sink.state.get('web-pods')?.size).toBe(0);
    expect(sink.state.get('pods')?.size).toBe(2);
    for (const f of ['bgp', 'tunnel-ip-allocation']) expect(sameState(sink.state.get(f), expectedState(builtinFeed(f), objects))).toBe(true);
  });
});
