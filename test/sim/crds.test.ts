/**
 * CustomResourceDefinitions in the simulator: the CRD list a replica probes when an optional
 * resource answers 404 (src/server/upstream/not-served.ts), and installing or deleting a CRD at
 * run time through the admin API.
 */
import { describe, expect, it } from 'vitest';
import type { Sim } from '../../src/sim/index.js';
import { getJson, type Loose, RawWatch } from './helpers.js';
import { simFixture } from '../support/sim.js';

const { start, track } = simFixture({ nodes: 2, podsPerNode: 1, seed: 5 });
const POOLS = 'ippools.crd.projectcalico.org';
const POOLS_PATH = '/apis/crd.projectcalico.org/v1/ippools';
const CRDS = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions';

async function crdList(s: Sim, name: string): Promise<{ rv: string; names: string[] }> {
  const r = await getJson(`${s.url}${CRDS}?fieldSelector=${encodeURIComponent(`metadata.name=${name}`)}`);
  expect(r.status).toBe(200);
  return { rv: r.body.metadata.resourceVersion, names: r.body.items.map((i: { metadata: { name: string } }) => i.metadata.name) };
}

const post = (s: Sim, resource: string, installed: unknown): Promise<{ status: number; body: Loose }> =>
  getJson(`${s.url}/_sim/crds/${resource}`, { method: 'POST', body: JSON.stringify({ installed }), headers: { 'content-type': 'application/json' } });

describe('sim CRDs', () => {
  it('lists the CRD of a served optional resource, filtered by metadata.name, at the current resourceVersion', async () => {
    const s = await start();
    const served = await crdList(s, POOLS);
    expect(served).toEqual({ rv: s.admin.currentRv(), names: [POOLS] });
    expect((await crdList(s, 'nothing.example.com')).names).toEqual([]);
    const all = await getJson(`${s.url}${CRDS}`);
    expect(all.body.items.length).toBeGreaterThan(10);
    expect(all.body.items.every((i: { metadata: { name: string } }) => !['pods', 'nodes'].includes(i.metadata.name))).toBe(true);
    expect((await getJson(`${s.url}${CRDS}?fieldSelector=spec.group%3Dx`)).status).toBe(400);
  });

  it('an omitted resource has no CRD; installing it serves it, empty', async () => {
    const s = await start({ omitResources: [POOLS] });
    expect((await getJson(`${s.url}${POOLS_PATH}`)).status).toBe(404);
    const absent = await crdList(s, POOLS);
    expect(absent.names).toEqual([]);
    expect(absent.rv).toBe(s.admin.currentRv());
    expect((await post(s, POOLS, true)).status).toBe(200);
    expect((await crdList(s, POOLS)).names).toEqual([POOLS]);
    const list = await getJson(`${s.url}${POOLS_PATH}`);
    expect(list.status).toBe(200);
    expect(list.body.items).toEqual([]);
  });

  it('deleting a CRD deletes its objects (DELETED events), ends its watches, then answers 404', async () => {
    const s = await start();
    s.admin.create(POOLS, { apiVersion: 'crd.projectcalico.org/v1', kind: 'IPPool', metadata: { name: 'extra' }, spec: { cidr: '10.9.0.0/16' } });
    const n = s.admin.count(POOLS);
    expect(n).toBeGreaterThan(0);
    const w = track(await RawWatch.open(`${s.url}${POOLS_PATH}?watch=true&resourceVersion=${s.admin.currentRv()}`));
    const before = Number(s.admin.currentRv());
    const r = await post(s, POOLS, false);
    expect(r.body).toEqual({ deleted: n });
    await w.until(() => w.ended, 'the watch to end');
    expect(w.events.filter((e) => e.type === 'DELETED').length).toBe(n);
    expect((await getJson(`${s.url}${POOLS_PATH}`)).status).toBe(404);
    const absent = await crdList(s, POOLS);
    expect(absent.names).toEqual([]);
    expect(Number(absent.rv)).toBe(before + n); // after every deletion
    // Built-in resources have no CRD to delete.
    expect((await post(s, 'pods', false)).body.error).toBe('CATTAIL_SIM_UNKNOWN_RESOURCE');
    expect((await post(s, POOLS, 'yes')).status).toBe(400);
  });
});
