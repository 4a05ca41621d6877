/**
 * Server-side disasters (DESIGN.md "Simulated API server"): compaction, slow-watcher
 * termination, mass termination + 429, restart with empty history, RV too large on a watch,
 * omitted CRDs, the /_sim/faults API and a replayable seeded timeline. Timed parts run on a FakeClock.
 */
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/clock.js';
import { TimeBudget } from '../../src/sim/faults/budget.js';
import { randomTimeline, type Sim } from '../../src/sim/index.js';
import { getJson, type Loose } from './helpers.js';
import { simFixture } from '../support/sim.js';
import { RawConn } from './raw-conn.js';
import { waitUntil } from '../support/wait.js';

const { start, track } = simFixture({ nodes: 2, podsPerNode: 3, seed: 13 });

async function open(s: Sim, path: string, client = 'c'): Promise<RawConn> {
  const c = await RawConn.open(s.port, path, { 'X-Client-Id': client });
  track(c);
  await c.until(() => c.parsed().status !== 0, 'headers');
  return c;
}

const lines = (c: RawConn): Loose[] => c.parsed().lines.map((l) => JSON.parse(l) as Loose);

describe('sim faults: server side', () => {
  it('compaction: the next resume from before it gets the in-stream 410; a continue token from before gets 410 with a fresh token', async () => {
    const s = await start();
    const before = s.admin.currentRv();
    const page = await getJson(`${s.url}/api/v1/pods?limit=2`);
    s.admin.create('namespaces', { metadata: { name: 'after' } });
    expect(s.faults.compact()).toBe(Number(s.admin.currentRv()));
    const w = await open(s, `/api/v1/namespaces?watch=true&resourceVersion=${before}`);
    await w.until(() => w.parsed().terminated, 'end');
    expect(lines(w)[0]).toMatchObject({ type: 'ERROR', object: { code: 410, reason: 'Expired' } });
    const cont = await getJson(`${s.url}/api/v1/pods?limit=2&continue=${page.body.metadata.continue}`);
    expect(cont.status).toBe(410);
    expect((await getJson(`${s.url}/api/v1/pods?limit=2&continue=${cont.body.metadata.continue}`)).status).toBe(200);
    expect(s.admin.counters().continueExpired).toBe(1);
    expect(s.admin.counters().faults).toEqual({ compact: 1 });
  });

  it('TimeBudget: 50 ms per second, at most 100 ms, shared by every waiter', () => {
    const clock = new FakeClock();
    const b = new TimeBudget(clock);
    expect(b.takeAvailable()).toBe(100);
    expect(b.takeAvailable()).toBe(0);
    clock.advance(1_000);
    expect(b.takeAvailable()).toBe(50);
    b.returnUnused(500);
    expect(b.takeAvailable()).toBe(100);
  });

  it('slow watcher: over its queue bytes it waits its budget share, then is closed cleanly and counted; a reader is not', async () => {
    const clock = new FakeClock();
    const s = await start({ clock, slowWatcherQueueMaxBytes: 65_536 });
    const path = `/api/v1/pods?watch=true&resourceVersion=${s.admin.currentRv()}`;
    const slow = await open(s, path, 'slow');
    const reader = await open(s, path, 'reader');
    slow.socket.pause();
    // One event at a time, each well under the limit, so the reader never queues more than one;
    // the paused client's kernel buffers fill, then its response queue grows past the limit.
    let n = 0;
    for (; n < 2_000 && (s.admin.counters().terminatedWatchers as Record<string, number>)['pods'] === undefined; n++) {
      s.faults.largeObject({ bytes: 25_000, name: `big-${n}` });
      await reader.until(() => reader.lineCount === n + 1, 'the reader to get the event');
      if (n % 50 === 49) {
        expect(s.admin.counters().terminatedWatchers).toEqual({}); // waiting for its budget share, not yet closed
        await clock.advanceAsync(100); // the budget share (100 ms banked) runs out
      }
    }
    expect(s.admin.counters().terminatedWatchers).toEqual({ pods: 1 });
    expect(s.admin.counters().watchesClosed).toEqual({ 'pods,slow': 1 });
    expect(s.admin.counters().faults).toMatchObject({ slow_watcher: 1 });
    s.faults.largeObject({ bytes: 25_000, name: 'after-termination' });
    await reader.until(() => reader.lineCount === n + 1, 'the reader to get the last event');
    slow.socket.resume();
    await slow.until(() => slow.parsed().terminated, 'the clean end', 20_000);
    expect(lines(slow).every((e) => e.type === 'ADDED')).toBe(true); // no ERROR event
    expect(lines(slow).length).toBe(n); // what was queued before the close, nothing after
    expect(reader.closed).toBe(false);
  });

  it('mass termination: every watch of the resource ends, then LIST/WATCH get 429 + Retry-After until the window passes', async () => {
    const clock = new FakeClock();
    const s = await start({ clock });
    const rv = s.admin.currentRv();
    const pods = await open(s, `/api/v1/pods?watch=true&resourceVersion=${rv}`);
    const nodes = await open(s, `/api/v1/nodes?watch=true&resourceVersion=${rv}`);
    expect(s.faults.terminateWatches('pods', 3_000)).toBe(1);
    await pods.until(() => pods.parsed().terminated, 'clean end');
    for (const q of ['', '?watch=true']) {
      const r = await getJson(`${s.url}/api/v1/pods${q}`);
      expect(r.status).toBe(429);
      expect(r.headers.get('retry-after')).toBe('3');
      expect(r.body).toMatchObject({ reason: 'TooManyRequests', code: 429, details: { retryAfterSeconds: 3 } });
    }
    expect((await getJson(`${s.url}/api/v1/nodes`)).status).toBe(200);
    expect(nodes.closed).toBe(false);
    clock.advance(3_000);
    expect((await getJson(`${s.url}/api/v1/pods`)).status).toBe(200);
    const c = s.admin.counters();
    expect(c.status429).toBe(2);
    expect(c.faults).toEqual({ terminate_watches: 1, throttle_429: 2 });
    expect(c.watchesClosed).toEqual({ 'pods,admin': 1 });
  });

  it('restart: connections dropped, refused for a while, same port and data, history empty', async () => {
    const clock = new FakeClock();
    const s = await start({ clock });
    const old = s.admin.currentRv();
    s.admin.create('namespaces', { metadata: { name: 'before-restart' } });
    const count = s.admin.count('namespaces');
    const w = await open(s, `/api/v1/namespaces?watch=true&resourceVersion=${old}`);
    const restarted = s.faults.restart({ refuseMs: 1_000 });
    await w.until(() => w.closed, 'the watch to drop');
    let refused = false;
    for (let i = 0; i < 200 && !refused; i++) refused = await fetch(`${s.url}/api/v1/namespaces`).then(() => false, () => true);
    expect(refused).toBe(true);
    await clock.advanceAsync(1_000);
    await restarted;
    const list = await getJson(`${s.url}/api/v1/namespaces`);
    expect(list.status).toBe(200);
    expect(list.body.items.length).toBe(count);
    const stale = await open(s, `/api/v1/namespaces?watch=true&resourceVersion=${old}`);
    await stale.until(() => stale.parsed().terminated, 'the 410');
    expect(lines(stale)[0]).toMatchObject({ type: 'ERROR', object: { code: 410 } });
    const exact = await getJson(`${s.url}/api/v1/namespaces?resourceVersion=${old}&resourceVersionMatch=Exact`);
    expect(exact.status).toBe(410);
    const fresh = await open(s, `/api/v1/namespaces?watch=true&resourceVersion=${s.admin.currentRv()}`);
    s.admin.create('namespaces', { metadata: { name: 'after-restart' } });
    await fresh.until(() => fresh.parsed().lines.length === 1, 'a live event');
    expect(s.admin.counters().faults).toEqual({ restart: 1 });
  });

  it('RV ahead: a plain watch is answered 200 and stays silent (events and bookmarks at or below its RV dropped) until the server passes it; a WatchList waits (clock time), then 200 + ERROR 504', async () => {
    const clock = new FakeClock();
    const s = await start({ clock, rvWaitMs: 3_000 });
    const cur = Number(s.admin.currentRv());
    const ahead = await open(s, `/api/v1/pods?watch=true&allowWatchBookmarks=true&resourceVersion=${cur + 2}`);
    expect(ahead.parsed().status).toBe(200);
    const list = await RawConn.open(s.port, `/api/v1/pods?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&resourceVersion=${cur + 50}`, { 'X-Client-Id': 'wl' });
    track(list);
    await waitUntil(() => s.admin.counters().clients['wl'] !== undefined, 'the server to hold the WatchList');
    expect(list.parsed().status).toBe(0); // waiting: no headers yet
    // Two writes reach the ahead watch's RV: neither is sent, nor is a bookmark at them.
    s.admin.create('pods', { metadata: { name: 'below', namespace: 'default' }, spec: { containers: [] } });
    s.admin.create('pods', { metadata: { name: 'at', namespace: 'default' }, spec: { containers: [] } });
    await clock.advanceAsync(120_000);
    s.admin.create('pods', { metadata: { name: 'after-it', namespace: 'default' }, spec: { containers: [] } });
    await ahead.until(() => ahead.parsed().lines.length >= 1, 'the first event past the RV');
    expect(lines(ahead).map((l) => [l.type, l.object.metadata.name ?? null])).toEqual([['ADDED', 'after-it']]);
    // The WatchList from far ahead: no headers while it waits, then one in-stream ERROR 504.
    await list.until(() => list.parsed().terminated, 'the WatchList answered');
    expect(list.parsed().status).toBe(200);
    expect(lines(list)).toHaveLength(1);
    expect(lines(list)[0]).toMatchObject({ type: 'ERROR', object: { code: 504, details: { causes: [{ reason: 'ResourceVersionTooLarge' }] } } });
    expect(s.admin.counters().status504).toBe(1);
  });

  it('omitResources: an omitted CRD answers 404 and is absent from discovery; the rest of its group is served', async () => {
    const s = await start({ omitResources: ['ippools.crd.projectcalico.org'] });
    expect((await getJson(`${s.url}/apis/crd.projectcalico.org/v1/ippools`)).status).toBe(404);
    expect((await getJson(`${s.url}/apis/crd.projectcalico.org/v1/tiers`)).status).toBe(200);
    const disc = await getJson(`${s.url}/apis/crd.projectcalico.org/v1`);
    const names = disc.body.resources.map((r: Loose) => r.name);
    expect(names).toContain('tiers');
    expect(names).not.toContain('ippools');
  });

  it('/_sim/faults: add, list and remove rules over HTTP; a bad rule is a coded 400', async () => {
    const s = await start();
    const post = (path: string, body: unknown): Promise<{ status: number; body: Loose }> =>
      getJson(`${s.url}${path}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
    const added = await post('/_sim/faults', { kind: 'forbidden', resource: 'pods' });
    expect(added.status).toBe(200);
    expect((await getJson(`${s.url}/_sim/faults`)).body.rules).toMatchObject([{ id: added.body.id, kind: 'forbidden', resource: 'pods' }]);
    expect((await getJson(`${s.url}/api/v1/pods`)).status).toBe(403);
    expect((await getJson(`${s.url}/_sim/faults/${added.body.id}`, { method: 'DELETE' })).body).toEqual({ removed: true });
    expect((await getJson(`${s.url}/api/v1/pods`)).status).toBe(200);
    const bad = await post('/_sim/faults', { kind: 'nope' });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toBe('CATTAIL_SIM_FAULT_INVALID');
    const term = await post('/_sim/faults/terminate', { resource: 'pods', retryAfterMs: 1000 });
    expect(term.body).toEqual({ closed: 0 });
    expect((await getJson(`${s.url}/api/v1/pods`)).status).toBe(429);
    expect((await getJson(`${s.url}/_sim/faults`)).body.log.map((e: Loose) => e.kind)).toEqual(['forbidden', 'terminate_watches', 'throttle_429']);
  });

  it('/_sim/faults/backup and /restore: etcd restored without a revision bump (objects and revision back, history empty from there, watches ended); an unknown backup is a coded 400', async () => {
    const s = await start();
    const post = (path: string, body: unknown = {}): Promise<{ status: number; body: Loose }> =>
      getJson(`${s.url}${path}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
    const backup = await post('/_sim/faults/backup');
    expect(backup.body).toEqual({ id: 'b1', resourceVersion: s.admin.currentRv() });
    s.admin.create('namespaces', { metadata: { name: 'after-backup' } });
    const ahead = s.admin.currentRv();
    const w = await open(s, `/api/v1/namespaces?watch=true&resourceVersion=${ahead}`);
    expect((await post('/_sim/faults/restore', { id: 'b1' })).body).toEqual({ resourceVersion: backup.body.resourceVersion });
    await w.until(() => w.parsed().terminated || w.closed, 'the watch ended by the restart');
    await waitUntil(() => s.admin.currentRv() === backup.body.resourceVersion, 'the revision back');
    await waitUntil(async () => (await getJson(`${s.url}/api/v1/namespaces?limit=1`).catch(() => ({ status: 0 }))).status === 200, 'serving again after the restart');
    const names = (await getJson(`${s.url}/api/v1/namespaces`)).body.items.map((n: Loose) => n.metadata.name);
    expect(names).not.toContain('after-backup');
    // The history starts empty at the restored revision: a resume from before it is expired.
    const old = await open(s, `/api/v1/namespaces?watch=true&resourceVersion=${Number(backup.body.resourceVersion) - 1}`);
    await old.until(() => old.parsed().terminated, 'the 410');
    expect(lines(old)[0]).toMatchObject({ type: 'ERROR', object: { code: 410 } });
    // A watch from the pre-restore RV is silent until the revision passes it, then carries what follows.
    const again = await open(s, `/api/v1/namespaces?watch=true&resourceVersion=${ahead}`);
    s.admin.create('namespaces', { metadata: { name: 'restored-timeline' } });
    expect(Number(s.admin.currentRv())).toBeLessThanOrEqual(Number(ahead));
    s.admin.create('namespaces', { metadata: { name: 'past-it' } });
    await again.until(() => again.parsed().lines.length >= 1, 'the first event past the old RV');
    expect(lines(again).map((l) => l.object.metadata.name)).toEqual(['past-it']);
    expect(s.admin.counters().faults).toEqual({ restore: 1 });
    const unknown = await post('/_sim/faults/restore', { id: 'b9' });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error).toBe('CATTAIL_INVALID_ARGUMENT');
    expect((await post('/_sim/faults/restore', { id: 'b1', refuseMs: -1 })).status).toBe(400);
  });

  it('randomTimeline: a pure function of its seed, sorted by time, and every entry it draws is runnable', async () => {
    const a = randomTimeline(3, { count: 300 });
    expect(randomTimeline(3, { count: 300 })).toEqual(a);
    expect(randomTimeline(4, { count: 300 })).not.toEqual(a);
    expect(a.map((e) => e.atMs)).toEqual([...a.map((e) => e.atMs)].sort((x, y) => x - y));
    const s = await start({ clock: new FakeClock() });
    expect(() => s.faults.runTimeline(a)).not.toThrow();
    s.faults.stopTimeline();
  });

  it('a seeded timeline replays: same seed, same faults, events and statuses; another seed differs', async () => {
    async function run(seed: number): Promise<unknown> {
      const clock = new FakeClock();
      const s = await start({ clock, seed });
      s.faults.add({ kind: 'forbidden', verb: 'LIST', resource: 'nodes', probability: 0.3 });
      // Kinds that answer a LIST (a black hole would leave the probe waiting forever).
      const kinds = ['http_410', 'unauthorized', 'forbidden', 'expire_continue', 'reset', 'error_500', 'malformed_json'] as const;
      const entries = randomTimeline(seed, { durationMs: 10_000, count: 30, resources: ['pods', 'nodes'], kinds });
      s.faults.runTimeline(entries);
      const statuses: number[] = [];
      for (let t = 0; t < 22; t++) {
        await clock.advanceAsync(500);
        for (const r of ['pods', 'nodes']) statuses.push((await fetch(`${s.url}/api/v1/${r}`, { headers: { 'x-client-id': 'probe' } }).then((x) => x.status)));
      }
      const out = { entries, statuses, log: s.faults.log(), faults: s.admin.counters().faults, rv: s.admin.currentRv(), pods: s.admin.list('pods').map((p: Loose) => `${p.metadata.name}@${p.metadata.resourceVersion}`) };
      await s.close();
      return out;
    }
    const a = await run(5);
    const b = await run(5);
    expect(b).toEqual(a);
    expect((a as Loose).log.length).toBeGreaterThan(3);
    expect(new Set((a as Loose).statuses).size).toBeGreaterThan(1);
    const c = await run(6);
    expect(c).not.toEqual(a);
  });
});
