/**
 * WATCH behaviours of the simulated API server, one test per numbered item of
 * the watch contract of k8s.io/apiserver. Timed behaviour runs on a FakeClock.
 */
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/clock.js';
import type { Sim, SimOptions } from '../../src/sim/index.js';
import { RawWatch, rvNum, type Loose } from './helpers.js';
import { simFixture } from '../support/sim.js';
import { waitUntil } from '../support/wait.js';

const sims = simFixture({ nodes: 3, podsPerNode: 4, seed: 3 });
let sim: Sim | undefined;
async function start(o: SimOptions = {}): Promise<Sim> {
  return (sim = await sims.start(o));
}

async function watch(path: string): Promise<RawWatch> {
  const w = await RawWatch.open(`${(sim as Sim).url}${path}`);
  return sims.track(w);
}

function anyPod(s: Sim): Loose {
  return s.admin.list('pods').find((p: Loose) => p.metadata.namespace !== 'kube-system');
}

describe('sim WATCH', () => {
  it('§5.10 200 application/json chunked, headers flushed before any event, one JSON object per line', async () => {
    const s = await start();
    const w = await watch(`/api/v1/pods?watch=true&resourceVersion=${s.admin.currentRv()}`);
    // Resolved on headers alone: nothing was written to the body yet.
    expect(w.status).toBe(200);
    expect(w.headers['content-type']).toBe('application/json');
    expect(w.headers['transfer-encoding']).toBe('chunked');
    expect(w.events.length).toBe(0);
    const p = anyPod(s);
    s.admin.patch('pods', p.metadata.namespace, p.metadata.name, { metadata: { labels: { touched: '1' } } });
    s.admin.patch('pods', p.metadata.namespace, p.metadata.name, { metadata: { labels: { touched: '2' } } });
    await w.until(() => w.events.length === 2);
    const text = w.text();
    expect(text.endsWith('\n')).toBe(true);
    expect(text.split('\n').filter(Boolean).map((l) => Object.keys(JSON.parse(l)))).toEqual([['type', 'object'], ['type', 'object']]);
    expect(w.events[0]?.object.kind).toBe('Pod');
    expect(w.events[0]?.object.apiVersion).toBe('v1');
  });

  it('§5.11 RV=X replays exactly the events after X, in RV order, without synthetic events', async () => {
    const s = await start();
    const from = Number(s.admin.currentRv());
    const p = anyPod(s);
    s.admin.patch('pods', p.metadata.namespace, p.metadata.name, { metadata: { labels: { step: 'one' } } });
    s.admin.create('pods', { metadata: { name: 'new-one', namespace: 'default' }, spec: { containers: [] } });
    s.admin.delete('pods', 'default', 'new-one');
    s.admin.create('namespaces', { metadata: { name: 'other-type' } }); // another resource: not in this stream
    const w = await watch(`/api/v1/pods?watch=1&resourceVersion=${from}`);
    await w.until(() => w.events.length === 3);
    expect(w.events.map((e) => e.type)).toEqual(['MODIFIED', 'ADDED', 'DELETED']);
    expect(w.events.map(rvNum)).toEqual([from + 1, from + 2, from + 3]);
    // DELETED carries the last state with the deletion's RV.
    expect(w.events[2]?.object.metadata.name).toBe('new-one');
  });

  it('§5.11 RV unset or 0: synthetic ADDED for every object, not in RV order, then live events', async () => {
    const s = await start({ watchListDefaulting: false });
    for (const rv of ['', '0']) {
      const n = s.admin.count('pods');
      expect(n).toBeGreaterThanOrEqual(12);
      const w = await watch(`/api/v1/pods?watch=true&resourceVersion=${rv}`);
      await w.until(() => w.events.length === n);
      expect(w.events.every((e) => e.type === 'ADDED')).toBe(true);
      const rvs = w.events.map(rvNum);
      const sortedRvs = [...rvs].sort((a, b) => a - b);
      expect(rvs).not.toEqual(sortedRvs);
      s.admin.create('pods', { metadata: { name: `live-${rv || 'unset'}`, namespace: 'default' }, spec: { containers: [] } });
      await w.until(() => w.events.length === n + 1);
      expect(w.events[n]?.type).toBe('ADDED');
      expect(rvNum(w.events[n] as Loose)).toBe(Number(s.admin.currentRv()));
    }
  });

  it('§5.11 entering a selector is ADDED, leaving it is DELETED with the prior object at the new RV', async () => {
    const s = await start();
    const p = anyPod(s);
    const w = await watch(`/api/v1/pods?watch=true&resourceVersion=${s.admin.currentRv()}&labelSelector=${encodeURIComponent('color=blue')}`);
    const { namespace, name } = p.metadata;
    s.admin.patch('pods', namespace, name, { metadata: { labels: { color: 'blue' } } });
    s.admin.patch('pods', namespace, name, { metadata: { labels: { color: 'blue', size: 'l' } } });
    const left = s.admin.patch('pods', namespace, name, { metadata: { labels: { color: 'red' } } });
    s.admin.patch('pods', namespace, name, { metadata: { labels: { color: 'green' } } }); // stays outside: nothing
    await w.until(() => w.events.length === 3);
    expect(w.events.map((e) => e.type)).toEqual(['ADDED', 'MODIFIED', 'DELETED']);
    const del = w.events[2] as Loose;
    expect(del.object.metadata.labels.color).toBe('blue'); // prior content
    expect(del.object.metadata.resourceVersion).toBe((left as Loose).metadata.resourceVersion); // new RV
    const w2 = await watch(`/api/v1/pods?watch=true&resourceVersion=${s.admin.currentRv()}&fieldSelector=spec.nodeName%3D${s.model.nodes[0]}`);
    const onOther = s.admin.list('pods').find((x: Loose) => x.spec.nodeName === s.model.nodes[1]) as Loose;
    const onFirst = s.admin.list('pods').find((x: Loose) => x.spec.nodeName === s.model.nodes[0]) as Loose;
    s.admin.patch('pods', onOther.metadata.namespace, onOther.metadata.name, { metadata: { labels: { x: '1' } } });
    s.admin.patch('pods', onFirst.metadata.namespace, onFirst.metadata.name, { metadata: { labels: { x: '1' } } });
    await w2.until(() => w2.events.length === 1);
    expect(w2.events[0]?.object.metadata.name).toBe(onFirst.metadata.name);
  });

  it('§5.12 a too-old RV gets HTTP 200, exactly one ERROR 410 Expired event, and a clean close', async () => {
    const s = await start();
    const old = Number(s.admin.currentRv());
    s.admin.create('namespaces', { metadata: { name: 'x1' } });
    s.admin.compact();
    const w = await watch(`/api/v1/namespaces?watch=true&resourceVersion=${old}`);
    await w.untilEnded();
    expect(w.status).toBe(200);
    expect(w.events).toHaveLength(1);
    expect(w.events[0]).toEqual({
      type: 'ERROR',
      object: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `too old resource version: ${old} (${old + 1})`, reason: 'Expired', code: 410 },
    });
    expect(s.admin.counters().status410).toEqual({ event: 1 });
    // Resuming at the compaction point itself is fine.
    const ok = await watch(`/api/v1/namespaces?watch=true&resourceVersion=${old + 1}`);
    expect(ok.status).toBe(200);
    expect(ok.ended).toBe(false);
  });

  it('§5.13 bookmarks only when asked, only when the RV advanced, with only metadata.resourceVersion', async () => {
    const clock = new FakeClock();
    const s = await start({ clock, bookmarkIntervalMs: 1_000 });
    const rv0 = s.admin.currentRv();
    const withBm = await watch(`/api/v1/pods?watch=true&resourceVersion=${rv0}&allowWatchBookmarks=true`);
    const without = await watch(`/api/v1/pods?watch=true&resourceVersion=${rv0}`);
    clock.advance(5_000); // RV unchanged: no bookmark
    s.admin.create('namespaces', { metadata: { name: 'elsewhere' } }); // advances the global RV only
    clock.advance(1_300);
    await withBm.until(() => withBm.events.length === 1);
    const bm = withBm.events[0] as Loose;
    expect(bm.type).toBe('BOOKMARK');
    expect(bm.object).toEqual({ kind: 'Pod', apiVersion: 'v1', metadata: { resourceVersion: s.admin.currentRv() }, spec: { containers: null }, status: {} });
    clock.advance(5_000); // nothing new: still one bookmark
    const p = anyPod(s);
    s.admin.patch('pods', p.metadata.namespace, p.metadata.name, { metadata: { labels: { b: '1' } } });
    await withBm.until(() => withBm.events.length === 2);
    await without.until(() => without.events.length === 1);
    clock.advance(1_300);
    s.admin.create('namespaces', { metadata: { name: 'sync' } });
    await withBm.until(() => withBm.events.length === 2);
    expect(withBm.events.map((e) => e.type)).toEqual(['BOOKMARK', 'MODIFIED']);
    expect(without.events.map((e) => e.type)).toEqual(['MODIFIED']);
    expect(s.admin.counters().bookmarks).toEqual({ pods: 1 });
  });

  it('§5.14 WatchList: initial ADDEDs, then the k8s.io/initial-events-end bookmark at the snapshot RV, then live events', async () => {
    const s = await start({ watchListDefaulting: false });
    const snapRv = s.admin.currentRv();
    const w = await watch('/api/v1/namespaces?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true');
    const n = s.admin.count('namespaces');
    await w.until(() => w.events.length === n + 1);
    expect(w.events.slice(0, n).every((e) => e.type === 'ADDED')).toBe(true);
    const end = w.events[n] as Loose;
    expect(end.type).toBe('BOOKMARK');
    expect(end.object.metadata).toEqual({ resourceVersion: snapRv, annotations: { 'k8s.io/initial-events-end': 'true' } });
    s.admin.create('namespaces', { metadata: { name: 'after' } });
    await w.until(() => w.events.length === n + 2);
    expect(w.events[n + 1]?.type).toBe('ADDED');
    // Plain RV-unset watch: no end bookmark without the 1.34+ defaulting switch.
    const plain = await watch('/api/v1/namespaces?watch=true&allowWatchBookmarks=true');
    await plain.until(() => plain.events.length === n + 1);
    s.admin.create('namespaces', { metadata: { name: 'after2' } });
    await plain.until(() => plain.events.length === n + 2);
    expect(plain.events.some((e) => e.type === 'BOOKMARK')).toBe(false);
  });

  it('§5.14 the 1.34+ defaulting switch turns an RV-unset watch into a WatchList; invalid combinations are 422', async () => {
    const s = await start({ watchListDefaulting: true });
    const w = await watch('/apis/crd.projectcalico.org/v1/tiers?watch=true&allowWatchBookmarks=true');
    await w.until(() => w.events.length === 4);
    expect(w.events.map((e) => e.type)).toEqual(['ADDED', 'ADDED', 'ADDED', 'BOOKMARK']);
    expect(w.events[3]?.object).toEqual({ apiVersion: 'crd.projectcalico.org/v1', kind: 'Tier', metadata: { annotations: { 'k8s.io/initial-events-end': 'true' }, resourceVersion: s.admin.currentRv() } });
    // sendInitialEvents=false: no initial events, only what happens from now on.
    const none = await watch('/apis/crd.projectcalico.org/v1/tiers?watch=true&sendInitialEvents=false&resourceVersionMatch=NotOlderThan');
    s.admin.create('tiers.crd.projectcalico.org', { metadata: { name: 'late' }, spec: { order: 5 } });
    await none.until(() => none.events.length === 1);
    expect(none.events[0]?.object.metadata.name).toBe('late');
    for (const q of ['sendInitialEvents=true', 'sendInitialEvents=true&resourceVersionMatch=Exact', 'resourceVersionMatch=NotOlderThan&resourceVersion=1']) {
      const bad = await watch(`/api/v1/pods?watch=true&${q}`);
      await bad.untilEnded();
      expect(bad.status, q).toBe(422);
      expect(JSON.parse(bad.text())).toMatchObject({ kind: 'Status', reason: 'Invalid', code: 422 });
    }
  });

  it('§5.14 WatchList off (the feature gate off): sendInitialEvents is the apiserver\'s 422 Invalid ListOptions Status, counted as a refused WATCH; nothing is defaulted to WatchList', async () => {
    const s = await start({ watchList: false, watchListDefaulting: true });
    const refused = async (q: string): Promise<RawWatch> => {
      const w = sims.track(await RawWatch.open(`${s.url}/api/v1/pods?watch=true&${q}`, { 'x-client-id': 'informer' }));
      await w.untilEnded();
      return w;
    };
    const gate = 'sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled';
    // Byte for byte what kube-apiserver writes (apierrors.NewInvalid of ValidateListOptions' errors):
    // Go's field order, an empty name left out of details but quoted in the message.
    const expected =
      '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",' +
      `"message":"ListOptions.meta.k8s.io \\"\\" is invalid: sendInitialEvents: Forbidden: ${gate}","reason":"Invalid",` +
      `"details":{"group":"meta.k8s.io","kind":"ListOptions","causes":[{"reason":"FieldValueForbidden","message":"Forbidden: ${gate}","field":"sendInitialEvents"}]},"code":422}`;
    const bodies: string[] = [];
    for (const q of ['sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true', `sendInitialEvents=false&resourceVersionMatch=NotOlderThan&resourceVersion=${s.admin.currentRv()}`]) {
      const w = await refused(q);
      expect(w.status, q).toBe(422);
      expect(w.headers['content-type'], q).toBe('application/json');
      expect(w.text(), q).toBe(expected);
      bodies.push(w.text());
    }
    // Every fault of the options in one answer, in validateWatchOptions' order.
    const both = await refused('sendInitialEvents=true');
    bodies.push(both.text());
    expect(both.status).toBe(422);
    const rvmDetail = 'sendInitialEvents requires setting resourceVersionMatch to NotOlderThan';
    expect(JSON.parse(both.text())).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: `ListOptions.meta.k8s.io "" is invalid: [resourceVersionMatch: Forbidden: ${rvmDetail}, sendInitialEvents: Forbidden: ${gate}]`,
      reason: 'Invalid',
      details: {
        group: 'meta.k8s.io',
        kind: 'ListOptions',
        causes: [
          { reason: 'FieldValueForbidden', message: `Forbidden: ${rvmDetail}`, field: 'resourceVersionMatch' },
          { reason: 'FieldValueForbidden', message: `Forbidden: ${gate}`, field: 'sendInitialEvents' },
        ],
      },
      code: 422,
    });
    // A watch from RV "" is served with synthetic ADDEDs but without the end bookmark: the 1.34+
    // defaulting needs the gate.
    const plain = await watch('/apis/crd.projectcalico.org/v1/tiers?watch=true&allowWatchBookmarks=true');
    await plain.until(() => plain.events.length === 3);
    s.admin.create('tiers.crd.projectcalico.org', { metadata: { name: 'late' }, spec: { order: 5 } });
    await plain.until(() => plain.events.length === 4);
    expect(plain.events.map((e) => e.type)).toEqual(['ADDED', 'ADDED', 'ADDED', 'ADDED']);
    // Counted as other refused requests are: the request and its code, its error bytes, the
    // client's watch request; no watch was opened for pods.
    const c = s.admin.counters();
    expect(c.requests).toEqual({ 'WATCH,pods,422': 3, 'WATCH,tiers.crd.projectcalico.org,200': 1 });
    expect(c.watchesOpened).toEqual({ 'tiers.crd.projectcalico.org': 1 });
    expect(c.clients['informer']).toMatchObject({ watchRequests: 3, watchesOpen: 0, lists: 0 });
    expect(c.reconnects).toEqual({ pods: 2 });
    expect((c.bytesSent as Record<string, number>).error).toBe(bodies.reduce((n, b) => n + Buffer.byteLength(b), 0));
    expect(c.initialEvents).toEqual({ 'tiers.crd.projectcalico.org': 3 });
    expect(c.bookmarks).toEqual({});
  });

  it('§5.6 a NotOlderThan LIST ahead of the server waits (clock time) for the RV, then 504 with retryAfterSeconds', async () => {
    const clock = new FakeClock();
    const s = await start({ clock, rvWaitMs: 3_000 });
    const cur = Number(s.admin.currentRv());
    const headers = { 'x-client-id': 'waiter' };
    const late = fetch(`${s.url}/api/v1/namespaces?resourceVersion=${cur + 1}&resourceVersionMatch=NotOlderThan`, { headers });
    const never = fetch(`${s.url}/api/v1/namespaces?resourceVersion=${cur + 50}`, { headers });
    // Both are parked until the clock or the RV moves; wait (bounded) until the server holds both.
    // Real time: this wait must not move the FakeClock (the test moves it below).
    await waitUntil(() => s.admin.counters().clients['waiter']?.lists === 2, 'the server to hold both LISTs');
    expect(s.admin.counters().clients['waiter']?.lists).toBe(2);
    s.admin.create('namespaces', { metadata: { name: 'arrives' } });
    const ok = await late;
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as Loose).metadata.resourceVersion).toBe(String(cur + 1));
    clock.advance(3_000);
    const r = await never;
    expect(r.status).toBe(504);
    expect(r.headers.get('retry-after')).toBe('1');
    expect(await r.json()).toMatchObject({ reason: 'Timeout', code: 504, details: { causes: [{ reason: 'ResourceVersionTooLarge' }], retryAfterSeconds: 1 } });
  });

  it('§5.15 timeoutSeconds ends the watch cleanly at the deadline; otherwise a random deadline in [min, 2·min) with a bookmark 2 s before', async () => {
    const clock = new FakeClock();
    const s = await start({ clock, watchMinTimeoutMs: 10_000, bookmarkIntervalMs: 600_000 });
    const rv = s.admin.currentRv();
    const timed = await watch(`/api/v1/pods?watch=true&resourceVersion=${rv}&timeoutSeconds=5`);
    const open = await watch(`/api/v1/pods?watch=true&resourceVersion=${rv}&allowWatchBookmarks=true`);
    clock.advance(4_999);
    s.admin.create('pods', { metadata: { name: 'probe', namespace: 'default' }, spec: { containers: [] } });
    await timed.until(() => timed.events.length === 1);
    expect(timed.ended).toBe(false);
    clock.advance(1);
    await timed.untilEnded();
    expect(timed.events.map((e) => e.type)).toEqual(['ADDED']); // no ERROR: a clean end of the body
    clock.advance(10_000 - 5_000 - 2_001); // before [min - 2 s]: still open, no bookmark
    expect(open.ended).toBe(false);
    s.admin.create('namespaces', { metadata: { name: 'moves-the-rv' } });
    clock.advance(10_000); // past 2·min: the pre-deadline bookmark, then the end
    await open.untilEnded();
    expect(open.events.map((e) => e.type)).toEqual(['ADDED', 'BOOKMARK']);
    expect(s.admin.counters().watchesClosed).toEqual({ 'pods,timeout': 2 });
  });
});
