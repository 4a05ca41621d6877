/**
 * Load counters (what a fan-out cache saves the API server): Prometheus text at /metrics,
 * JSON at /_sim/counters, reset.
 */
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/clock.js';
import { getJson, RawWatch } from './helpers.js';
import { simFixture } from '../support/sim.js';
import { waitUntil } from '../support/wait.js';

const { start, track } = simFixture();

describe('sim counters', () => {
  it('§5.24-28 requests by verb and code, list pages and items, watches opened/open/closed, events, bookmarks, bytes by kind, 410s', async () => {
    const clock = new FakeClock();
    const s = await start({ clock, nodes: 2, podsPerNode: 3, bookmarkIntervalMs: 1_000 });
    const h = { 'x-client-id': 'agent-1' };
    await getJson(`${s.url}/api/v1/pods?limit=4`, { headers: h });
    const page1 = await getJson(`${s.url}/api/v1/pods?limit=4`, { headers: h });
    await getJson(`${s.url}/api/v1/pods?limit=4&continue=${page1.body.metadata.continue}`, { headers: h });
    await getJson(`${s.url}/api/v1/pods?resourceVersion=abc`, { headers: h });
    const rv = s.admin.currentRv();
    const w = await RawWatch.open(`${s.url}/api/v1/pods?watch=true&resourceVersion=${rv}&allowWatchBookmarks=true`, h);
    track(w);
    s.admin.create('pods', { metadata: { name: 'c1', namespace: 'default' }, spec: { containers: [] } });
    s.admin.create('namespaces', { metadata: { name: 'bump' } });
    clock.advance(1_300);
    await w.until(() => w.events.length === 2);
    s.admin.compact();
    const old = await RawWatch.open(`${s.url}/api/v1/pods?watch=true&resourceVersion=${rv}`, h);
    await old.untilEnded();
    w.close();
    await w.untilEnded();
    // The server sees the client's close asynchronously: wait on the counter (bounded).
    await waitUntil(() => JSON.stringify(s.admin.counters().watchesOpen) === '{"pods":0}', 'the server to count the closed watch', { detail: () => JSON.stringify(s.admin.counters().watchesOpen) });
    const c = (await getJson(`${s.url}/_sim/counters`)).body;
    expect(c.requests).toMatchObject({ 'LIST,pods,200': 3, 'LIST,pods,400': 1, 'WATCH,pods,200': 2 });
    expect(c.listPages).toEqual({ pods: 3 });
    expect(c.listItems).toEqual({ pods: 4 + 4 + 2 });
    expect(c.watchesOpened).toEqual({ pods: 2 });
    expect(c.watchesOpen).toEqual({ pods: 0 });
    expect(c.watchesClosed).toEqual({ 'pods,client': 1, 'pods,error410': 1 });
    expect(c.watchEvents).toEqual({ ADDED: 1, BOOKMARK: 1, ERROR: 1 });
    expect(c.bookmarks).toEqual({ pods: 1 });
    expect(c.status410).toEqual({ event: 1 });
    expect(c.bytesSent.list).toBeGreaterThan(1000);
    expect(c.bytesSent.watch).toBe(w.text().length);
    expect(c.bytesSent.error).toBeGreaterThan(0);
    expect(c.encodeOps).toBe(1);
    const text = await fetch(`${s.url}/metrics`).then((r) => r.text());
    expect(text).toContain('# TYPE sim_requests_total counter');
    expect(text).toContain('sim_requests_total{verb="LIST",resource="pods",code="200"} 3');
    expect(text).toContain('sim_watches_closed_total{resource="pods",reason="error410"} 1');
    expect(text).toMatch(/sim_current_rv \d+/);
    // The closed watch was open 1.3 s of clock time; the 410 one for none.
    expect(c.watchDurationSeconds).toMatchObject({ count: 2, buckets: { '0.1': 1, '1': 1, '10': 2 } });
    expect(c.listResponseBytes.count).toBe(3);
    expect(text).toContain('sim_watch_duration_seconds_bucket{le="+Inf"} 2');
    expect(text).toMatch(/sim_history_capacity\{resource="pods"\} 100/);
    await getJson(`${s.url}/_sim/counters/reset`, { method: 'POST' });
    const z = s.admin.counters();
    expect(z.requests).toEqual({});
    expect(z.listItems).toEqual({});
  });

  it('§5.27 an event shared by N watchers is encoded once', async () => {
    const s = await start({ nodes: 1, podsPerNode: 2 });
    const rv = s.admin.currentRv();
    const ws = await Promise.all(Array.from({ length: 5 }, () => RawWatch.open(`${s.url}/api/v1/namespaces?watch=true&resourceVersion=${rv}`)));
    ws.forEach(track);
    s.admin.create('namespaces', { metadata: { name: 'shared' } });
    await Promise.all(ws.map((w) => w.until(() => w.events.length === 1)));
    expect(s.admin.counters().encodeOps).toBe(1);
    expect(s.admin.counters().watchEvents).toEqual({ ADDED: 5 });
  });

  it('§5.29 relists, reconnects and the shortest interval between one client\'s watch requests', async () => {
    const clock = new FakeClock();
    const s = await start({ clock, nodes: 1, podsPerNode: 2 });
    const rv = s.admin.currentRv();
    const open = async (id: string): Promise<void> => {
      const w = await RawWatch.open(`${s.url}/api/v1/pods?watch=true&resourceVersion=${rv}`, { 'user-agent': id });
      track(w);
    };
    await getJson(`${s.url}/api/v1/pods`, { headers: { 'user-agent': 'hot' } }); // first list: not a relist
    await open('hot');
    clock.advance(250);
    await open('hot');
    clock.advance(40);
    await open('hot');
    await getJson(`${s.url}/api/v1/pods`, { headers: { 'user-agent': 'hot' } }); // after a watch: a relist
    await open('calm');
    clock.advance(5_000);
    await open('calm');
    const c = s.admin.counters();
    expect(c.relists).toEqual({ pods: 1 });
    expect(c.reconnects).toEqual({ pods: 3 });
    expect(c.minWatchIntervalMs).toBe(40);
    expect(c.clients['hot']).toMatchObject({ watchRequests: 3, lists: 2, minWatchIntervalMs: 40, watchesOpen: 3 });
    expect(c.clients['calm']).toMatchObject({ watchRequests: 2, minWatchIntervalMs: 5_000 });
  });
});
