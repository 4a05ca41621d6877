/**
 * Writes, churn and history of the simulated API server (create, update, patch, delete and the
 * resourceVersions and events they produce), through the HTTP verbs and the admin API.
 */
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/clock.js';
import type { Sim } from '../../src/sim/index.js';
import { getJson, RawWatch, type Loose } from './helpers.js';
import { simFixture } from '../support/sim.js';

const { start, track } = simFixture({ nodes: 3, podsPerNode: 4, seed: 11 });

async function watch(s: Sim, path: string): Promise<RawWatch> {
  const w = await RawWatch.open(`${s.url}${path}`);
  return track(w);
}

const json = (method: string, body: unknown, type = 'application/json'): RequestInit => ({ method, body: JSON.stringify(body), headers: { 'content-type': type } });

describe('sim writes', () => {
  it('§5.4 POST/PUT/PATCH/DELETE and the status subresource behave as on an apiserver', async () => {
    const s = await start();
    const base = `${s.url}/api/v1/namespaces/default/pods`;
    const created = await getJson(base, json('POST', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'w1', labels: { a: '1' } }, spec: { containers: [{ name: 'c', image: 'i' }] }, status: { phase: 'Pending' } }));
    expect(created.status).toBe(201);
    expect(created.body.metadata).toMatchObject({ name: 'w1', namespace: 'default' });
    expect(created.body.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect((await getJson(base, json('POST', { metadata: { name: 'w1' }, spec: {} }))).body).toMatchObject({ reason: 'AlreadyExists', code: 409 });
    const rv1 = created.body.metadata.resourceVersion;
    // PUT with a stale resourceVersion conflicts; with the current one it replaces (status kept).
    const put = await getJson(`${base}/w1`, json('PUT', { metadata: { name: 'w1', resourceVersion: rv1, labels: { a: '2' } }, spec: { containers: [{ name: 'c', image: 'j' }] }, status: { phase: 'Running' } }));
    expect(put.status).toBe(200);
    expect(put.body.metadata.labels).toEqual({ a: '2' });
    expect(put.body.status).toEqual({ phase: 'Pending' });
    expect((await getJson(`${base}/w1`, json('PUT', { metadata: { name: 'w1', resourceVersion: rv1 }, spec: {} }))).body).toMatchObject({ reason: 'Conflict', code: 409 });
    // Status-only write: spec and labels stay.
    const st = await getJson(`${base}/w1/status`, json('PUT', { metadata: { name: 'w1' }, spec: { containers: [] }, status: { phase: 'Running' } }));
    expect(st.body.status).toEqual({ phase: 'Running' });
    expect(st.body.spec.containers[0].image).toBe('j');
    // Merge patch: null deletes a key.
    const patched = await getJson(`${base}/w1`, json('PATCH', { metadata: { labels: { a: null, b: 'x' } } }, 'application/merge-patch+json'));
    expect(patched.body.metadata.labels).toEqual({ b: 'x' });
    expect((await getJson(`${base}/w1`, json('PATCH', [{ op: 'add' }], 'application/json-patch+json'))).status).toBe(415);
    const del = await getJson(`${base}/w1`, { method: 'DELETE' });
    expect(del.status).toBe(200);
    expect(Number(del.body.metadata.resourceVersion)).toBe(Number(patched.body.metadata.resourceVersion) + 1);
    expect((await getJson(`${base}/w1`)).status).toBe(404);
    // Calico v1 CRDs have no status subresource.
    expect((await getJson(`${s.url}/apis/crd.projectcalico.org/v1/ippools/default-ipv4-ippool/status`)).status).toBe(404);
  });

  it('§5.4 churn: creates, graceful deletes (MODIFIED with deletionTimestamp, then DELETED), status-only updates, label flips, heartbeats', async () => {
    const clock = new FakeClock();
    const s = await start({ clock, nodes: 4, podsPerNode: 10 });
    const w = await watch(s, `/api/v1/pods?watch=true&resourceVersion=${s.admin.currentRv()}`);
    const nodes = await watch(s, `/api/v1/nodes?watch=true&resourceVersion=${s.admin.currentRv()}`);
    s.admin.startChurn({ ratePerSec: 100, seed: 5 });
    clock.advance(1_000);
    s.admin.stopChurn();
    clock.advance(2_000); // graceful deletes complete
    const stats = s.admin.churnStats();
    expect(stats.changes).toBe(100);
    expect(Object.keys(stats.byKind).sort()).toEqual(['labelFlip', 'nodeHeartbeat', 'podCreate', 'podDelete', 'podStatus']);
    const podEvents = stats.byKind['podCreate']! + 2 * stats.byKind['podDelete']! + stats.byKind['podStatus']! + stats.byKind['labelFlip']!;
    await w.until(() => w.events.length === podEvents, 'pod events');
    await nodes.until(() => nodes.events.length === stats.byKind['nodeHeartbeat'], 'node events');
    const deleted = w.events.filter((e) => e.type === 'DELETED');
    expect(deleted.length).toBe(stats.byKind['podDelete']);
    for (const d of deleted) {
      const marked = w.events.find((e) => e.type === 'MODIFIED' && e.object.metadata.name === d.object.metadata.name && (e.object.metadata as Loose).deletionTimestamp);
      expect(marked, d.object.metadata.name).toBeDefined();
    }
    expect(w.events.some((e) => e.object.metadata.labels?.['churn.cattail.dev/flip'] !== undefined)).toBe(true);
  });

  it('§5.23 churn is reproducible from its seed', async () => {
    const run = async (): Promise<string[]> => {
      const clock = new FakeClock();
      const s = await start({ clock, nodes: 3, podsPerNode: 5, seed: 2 });
      const w = await watch(s, `/api/v1/pods?watch=true&resourceVersion=${s.admin.currentRv()}`);
      s.admin.startChurn({ ratePerSec: 40, seed: 9, gracefulDeleteMs: 0 });
      clock.advance(1_000);
      const n = s.admin.churnStats().byKind;
      const expected = (n['podCreate'] ?? 0) + (n['podDelete'] ?? 0) + (n['podStatus'] ?? 0) + (n['labelFlip'] ?? 0);
      await w.until(() => w.events.length === expected);
      return w.events.map((e) => `${e.type} ${e.object.metadata.resourceVersion} ${e.object.metadata.namespace}/${e.object.metadata.name}`);
    };
    const a = await run();
    const b = await run();
    expect(a.length).toBeGreaterThan(10);
    expect(b).toEqual(a);
  });

  it('§5.5 history: a bounded ring; evicted or compacted RVs cannot be resumed; compaction over /_sim/', async () => {
    const s = await start({ historyMinCapacity: 4, historyMaxCapacity: 4 });
    const start0 = Number(s.admin.currentRv());
    for (let i = 0; i < 6; i++) s.admin.create('namespaces', { metadata: { name: `h${i}` } });
    const tooOld = await watch(s, `/api/v1/namespaces?watch=true&resourceVersion=${start0}`);
    await tooOld.untilEnded();
    expect(tooOld.events.map((e) => e.type)).toEqual(['ERROR']);
    const kept = await watch(s, `/api/v1/namespaces?watch=true&resourceVersion=${start0 + 2}`);
    await kept.until(() => kept.events.length === 4);
    expect(kept.events.map((e) => e.object.metadata.name)).toEqual(['h2', 'h3', 'h4', 'h5']);
    const state = await getJson(`${s.url}/_sim/state`);
    expect(state.body.resources.find((r: Loose) => r.id === 'namespaces')).toMatchObject({ capacity: 4, floorRv: start0 + 2 });
    const c = await getJson(`${s.url}/_sim/compact`, json('POST', { rv: start0 + 5 }));
    expect(c.body.compactedRv).toBe(String(start0 + 5));
    const after = await watch(s, `/api/v1/namespaces?watch=true&resourceVersion=${start0 + 4}`);
    await after.untilEnded();
    expect(after.events[0]?.object).toMatchObject({ reason: 'Expired', code: 410 });
  });

  it('§5.5 history: after an eviction a watch is served from the oldest kept RV − 1 only, as the cacher does, not from the evicted RV', async () => {
    const s = await start({ historyMinCapacity: 4, historyMaxCapacity: 4 });
    const r0 = Number(s.admin.currentRv());
    s.admin.create('namespaces', { metadata: { name: 'e0' } }); // r0+1
    s.admin.create('namespaces', { metadata: { name: 'e1' } }); // r0+2
    // Other resources' writes: RVs are global, so the namespaces' next event comes much later.
    for (let i = 0; i < 5; i++) s.admin.create('serviceaccounts', { metadata: { name: `sa${i}`, namespace: 'default' } });
    for (let i = 2; i < 6; i++) s.admin.create('namespaces', { metadata: { name: `e${i}` } }); // r0+8 … r0+11
    // The ring (4) evicted e0 and e1; the oldest kept is e2 at r0+8. Before, the floor was e1's
    // RV (r0+2) and a watch from r0+4 was served; a real API server answers it with 410.
    const gap = await watch(s, `/api/v1/namespaces?watch=true&resourceVersion=${r0 + 4}`);
    await gap.untilEnded();
    expect(gap.events[0]?.object).toMatchObject({ reason: 'Expired', code: 410 });
    const edge = await watch(s, `/api/v1/namespaces?watch=true&resourceVersion=${r0 + 7}`);
    await edge.until(() => edge.events.length === 4);
    expect(edge.events.map((e) => e.object.metadata.name)).toEqual(['e2', 'e3', 'e4', 'e5']);
  });

  it('§5.5 history capacity grows while its oldest event is younger than the window', async () => {
    const clock = new FakeClock();
    const s = await start({ clock, historyMinCapacity: 4, historyMaxCapacity: 64, historyWindowMs: 75_000 });
    const from = Number(s.admin.currentRv());
    for (let i = 0; i < 20; i++) s.admin.create('namespaces', { metadata: { name: `g${i}` } });
    const w = await watch(s, `/api/v1/namespaces?watch=true&resourceVersion=${from}`);
    await w.until(() => w.events.length === 20);
    const cap = (): number => Number(/sim_history_capacity\{resource="namespaces"\} (\d+)/.exec(s.admin.metricsText())?.[1]);
    expect(cap()).toBe(32);
    // Older than the window: the ring stops growing and evicts.
    clock.advance(80_000);
    for (let i = 20; i < 40; i++) s.admin.create('namespaces', { metadata: { name: `g${i}` } });
    expect(cap()).toBe(32);
    const evicted = await watch(s, `/api/v1/namespaces?watch=true&resourceVersion=${from}`);
    await evicted.untilEnded();
    expect(evicted.events.map((e) => e.type)).toEqual(['ERROR']);
  });

  it('admin over HTTP: object writes, churn control, and coded errors', async () => {
    const s = await start();
    const created = await getJson(`${s.url}/_sim/objects/globalnetworksets.crd.projectcalico.org`, json('POST', { metadata: { name: 'gns' }, spec: { nets: ['10.0.0.0/8'] } }));
    expect(created.status).toBe(200);
    expect(created.body.kind).toBe('GlobalNetworkSet');
    const patched = await getJson(`${s.url}/_sim/objects/globalnetworksets.crd.projectcalico.org?name=gns`, json('PATCH', { spec: { nets: ['10.1.0.0/16'] } }));
    expect(patched.body.spec.nets).toEqual(['10.1.0.0/16']);
    expect(patched.body.metadata.generation).toBe(2);
    const missing = await getJson(`${s.url}/_sim/objects/pods?namespace=default&name=nope`, { method: 'DELETE' });
    expect(missing.status).toBe(404);
    expect(missing.body.error).toBe('CATTAIL_SIM_WRITE_REJECTED');
    expect((await getJson(`${s.url}/_sim/objects/widgets`, json('POST', {}))).body.error).toBe('CATTAIL_SIM_UNKNOWN_RESOURCE');
    expect(() => s.admin.create('widgets', {})).toThrow(expect.objectContaining({ code: 'CATTAIL_SIM_UNKNOWN_RESOURCE' }));
    const churn = await getJson(`${s.url}/_sim/churn`, json('POST', { ratePerSec: 5, seed: 3 }));
    expect(churn.body).toMatchObject({ running: true, ratePerSec: 5, seed: 3 });
    expect((await getJson(`${s.url}/_sim/churn`, { method: 'DELETE' })).body.running).toBe(false);
  });
});
