/**
 * LIST behaviours of the simulated API server, one test per numbered item of
 * the list contract of the API server (consistent reads, paging, selectors).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSim, type Sim } from '../../src/sim/index.js';
import { RESOURCES, collectionPath } from '../../src/registry.js';
import { getJson, type Loose } from './helpers.js';

let sim: Sim;
beforeAll(async () => {
  sim = await startSim({ nodes: 4, podsPerNode: 6, seed: 7 });
});
afterAll(() => sim.close());

async function listAll(path: string, limit: number): Promise<{ pages: Loose[]; items: Loose[] }> {
  const pages: Loose[] = [];
  const items: Loose[] = [];
  let cont = '';
  for (let i = 0; i < 100; i++) {
    const r = await getJson(`${sim.url}${path}?limit=${limit}${cont ? `&continue=${cont}` : ''}`);
    expect(r.status).toBe(200);
    pages.push(r.body);
    items.push(...r.body.items);
    cont = r.body.metadata.continue ?? '';
    if (!cont) break;
  }
  return { pages, items };
}

describe('sim LIST', () => {
  it('§5.1 one global RV counter: writes to different resources take consecutive RVs, list RV is the snapshot RV', async () => {
    const before = Number(sim.admin.currentRv());
    const a = sim.admin.create('namespaces', { metadata: { name: 'rv-a' } });
    const b = sim.admin.create('ippools.crd.projectcalico.org', { metadata: { name: 'rv-b' }, spec: { cidr: '10.9.0.0/16' } });
    expect(Number((a as Loose).metadata.resourceVersion)).toBe(before + 1);
    expect(Number((b as Loose).metadata.resourceVersion)).toBe(before + 2);
    const list = await getJson(`${sim.url}/api/v1/namespaces`);
    expect(list.body.metadata.resourceVersion).toBe(String(before + 2));
    expect(list.body.metadata.resourceVersion).toMatch(/^[1-9][0-9]*$/);
  });

  it('§5.2 every registry resource is served at its real path; discovery; unknown paths are a 404 Status', async () => {
    for (const def of RESOURCES) {
      const r = await getJson(`${sim.url}${collectionPath(def)}`);
      expect(r.status, def.id).toBe(200);
      expect(r.body.kind).toBe(`${def.kind}List`);
    }
    const ns = await getJson(`${sim.url}/api/v1/namespaces/kube-system/pods`);
    expect(ns.body.items.length).toBe(4); // one calico-node per node
    const api = await getJson(`${sim.url}/api`);
    expect(api.body.versions).toEqual(['v1']);
    const apis = await getJson(`${sim.url}/apis`);
    expect(apis.body.groups.map((g: Loose) => g.name)).toContain('crd.projectcalico.org');
    const gv = await getJson(`${sim.url}/apis/discovery.k8s.io/v1`);
    expect(gv.body.resources.map((r: Loose) => r.name)).toContain('endpointslices');
    const node = sim.model.nodes[0] as string;
    expect((await getJson(`${sim.url}/api/v1/nodes/${node}`)).body.metadata.name).toBe(node);
    for (const path of ['/api/v1/widgets', '/apis/nope.io/v1/things', '/api/v1/nodes/absent', '/api/v1/namespaces/default/nodes']) {
      const r = await getJson(`${sim.url}${path}`);
      expect(r.status, path).toBe(404);
      expect(r.body).toMatchObject({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404 });
    }
  });

  it('§5.3 built-in list items have no kind/apiVersion, CR list items do; events always do; key order follows the encoding', async () => {
    const pods = await fetch(`${sim.url}/api/v1/pods`).then((r) => r.text());
    expect(pods.startsWith('{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":')).toBe(true);
    const podList = JSON.parse(pods);
    expect(podList.items[0].kind).toBeUndefined();
    expect(podList.items[0].apiVersion).toBeUndefined();
    expect(Object.keys(podList.items[0])).toEqual(['metadata', 'spec', 'status']);
    expect(Object.keys(podList.items[0].metadata).slice(0, 6)).toEqual(['name', 'generateName', 'namespace', 'uid', 'resourceVersion', 'creationTimestamp']);
    const tiers = JSON.parse(await fetch(`${sim.url}/apis/crd.projectcalico.org/v1/tiers`).then((r) => r.text()));
    expect(Object.keys(tiers)).toEqual(['apiVersion', 'items', 'kind', 'metadata']);
    expect(tiers.metadata.continue).toBe('');
    expect(tiers.items[0].kind).toBe('Tier');
    const sorted = (o: Loose): boolean =>
      o === null || typeof o !== 'object' || (Array.isArray(o) ? o.every(sorted) : Object.keys(o).join() === Object.keys(o).sort().join() && Object.values(o).every(sorted));
    expect(tiers.items.every(sorted)).toBe(true);
    // A Calico-style client asks for protobuf first; a JSON-only server answers JSON (fixtures fact 9).
    const proto = await fetch(`${sim.url}/apis/crd.projectcalico.org/v1/tiers`, { headers: { accept: 'application/vnd.kubernetes.protobuf,application/json' } });
    expect(proto.headers.get('content-type')).toBe('application/json');
    // Go's encoder escapes <, > and & in strings.
    sim.admin.create('namespaces', { metadata: { name: 'esc', annotations: { note: 'a<b>&c' } } });
    const raw = await fetch(`${sim.url}/api/v1/namespaces/esc`).then((r) => r.text());
    expect(raw).toContain('a\\u003cb\\u003e\\u0026c');
  });

  it('§5.6 RV rules: unset is current; RV=0 ignores limit; Exact is served from history; too old is 410; ahead is 504', async () => {
    const cur = Number(sim.admin.currentRv());
    const unset = await getJson(`${sim.url}/api/v1/pods?limit=2`);
    expect(unset.body.items.length).toBe(2);
    expect(unset.body.metadata.continue).toBeTruthy();
    const zero = await getJson(`${sim.url}/api/v1/pods?resourceVersion=0&limit=2`);
    expect(zero.body.items.length).toBe(24);
    expect(zero.body.metadata.continue).toBeUndefined();
    // Exact at an older RV: a pod created after it is absent.
    const p = sim.admin.create('pods', { metadata: { name: 'exact-probe', namespace: 'default' }, spec: { containers: [{ name: 'c', image: 'x' }] } });
    const exact = await getJson(`${sim.url}/api/v1/pods?resourceVersion=${cur}&resourceVersionMatch=Exact`);
    expect(exact.status).toBe(200);
    expect(exact.body.metadata.resourceVersion).toBe(String(cur));
    expect(exact.body.items.map((i: Loose) => i.metadata.name)).not.toContain('exact-probe');
    const legacy = await getJson(`${sim.url}/api/v1/pods?resourceVersion=${cur}&limit=100`);
    expect(legacy.body.items.length).toBe(24);
    const notOlder = await getJson(`${sim.url}/api/v1/pods?resourceVersion=${cur}&resourceVersionMatch=NotOlderThan`);
    expect(notOlder.body.items.map((i: Loose) => i.metadata.name)).toContain('exact-probe');
    expect(notOlder.body.metadata.resourceVersion).toBe((p as Loose).metadata.resourceVersion);
    sim.admin.compact();
    const gone = await getJson(`${sim.url}/api/v1/pods?resourceVersion=${cur}&resourceVersionMatch=Exact`);
    expect(gone.status).toBe(410);
    expect(gone.body).toMatchObject({ kind: 'Status', reason: 'Expired', code: 410 });
    const ahead = await getJson(`${sim.url}/api/v1/pods?resourceVersion=${cur + 1000}&resourceVersionMatch=Exact`);
    expect(ahead.status).toBe(504);
    expect(ahead.body.details).toMatchObject({ causes: [{ reason: 'ResourceVersionTooLarge' }], retryAfterSeconds: 1 });
  });

  it('§5.6 invalid combinations are 422 or 400 as the apiserver validates them', async () => {
    const cases: [string, number][] = [
      ['resourceVersionMatch=NotOlderThan', 422],
      ['resourceVersion=0&resourceVersionMatch=Exact', 422],
      ['resourceVersion=5&resourceVersionMatch=Bogus', 422],
      ['sendInitialEvents=true', 422],
      ['resourceVersion=abc', 400],
      ['resourceVersion=5&continue=xyz', 400],
      ['continue=not-a-token', 400],
      ['labelSelector=a%20in%20(', 400],
      ['fieldSelector=spec.bogus%3Dx', 400],
    ];
    for (const [q, code] of cases) {
      const r = await getJson(`${sim.url}/api/v1/pods?${q}`);
      expect(r.status, q).toBe(code);
      expect(r.body.kind, q).toBe('Status');
    }
  });

  it('§5.7 paging: every page shares the first page RV; writes between pages are invisible; token format; remainingItemCount', async () => {
    const first = await getJson(`${sim.url}/api/v1/pods?limit=5`);
    const rv = first.body.metadata.resourceVersion;
    expect(first.body.metadata.remainingItemCount).toBeGreaterThan(0);
    const tok = JSON.parse(Buffer.from(first.body.metadata.continue, 'base64url').toString());
    expect(tok).toEqual({ v: 'meta.k8s.io/v1', rv: Number(rv), start: `${first.body.items[4].metadata.namespace}/${first.body.items[4].metadata.name}\u0000` });
    // Between pages: delete an object not yet returned, create one that would sort later.
    const all = sim.admin.list('pods');
    const later = all[all.length - 1] as Loose;
    sim.admin.delete('pods', later.metadata.namespace, later.metadata.name);
    sim.admin.create('pods', { metadata: { name: 'zzz-new', namespace: 'zzz' }, spec: { containers: [] } });
    const items = [...first.body.items];
    let cont = first.body.metadata.continue;
    while (cont) {
      const r = await getJson(`${sim.url}/api/v1/pods?limit=5&continue=${cont}`);
      expect(r.body.metadata.resourceVersion).toBe(rv);
      items.push(...r.body.items);
      cont = r.body.metadata.continue;
    }
    const names = items.map((i: Loose) => i.metadata.name);
    expect(names).toContain(later.metadata.name);
    expect(names).not.toContain('zzz-new');
    expect(new Set(names).size).toBe(names.length);
    expect(items.length).toBe(all.length);
  });

  it('§5.7 an expired continue token is HTTP 410 Expired carrying a fresh continue token', async () => {
    const first = await getJson(`${sim.url}/api/v1/pods?limit=3`);
    sim.admin.create('namespaces', { metadata: { name: 'bump' } });
    sim.admin.compact();
    const r = await getJson(`${sim.url}/api/v1/pods?limit=3&continue=${first.body.metadata.continue}`);
    expect(r.status).toBe(410);
    expect(r.body.reason).toBe('Expired');
    const fresh = r.body.metadata.continue as string;
    expect(fresh).toBeTruthy();
    const next = await getJson(`${sim.url}/api/v1/pods?limit=3&continue=${fresh}`);
    expect(next.status).toBe(200);
    expect(next.body.metadata.resourceVersion).toBe(sim.admin.currentRv());
    expect(sim.admin.counters().continueExpired).toBe(1);
  });

  it('§5.8 label selectors (=, !=, in, notin, exists, !) and field selectors (name, namespace, spec.nodeName)', async () => {
    const pods = sim.admin.list('pods');
    const app = (pods.find((p: Loose) => p.metadata.labels?.app !== undefined) as Loose).metadata.labels.app as string;
    const count = (f: (p: Loose) => boolean): number => pods.filter(f).length;
    const q = async (s: string): Promise<number> => (await getJson(`${sim.url}/api/v1/pods?${s}`)).body.items.length;
    expect(await q(`labelSelector=${encodeURIComponent(`app=${app}`)}`)).toBe(count((p) => p.metadata.labels?.app === app));
    expect(await q(`labelSelector=${encodeURIComponent(`app!=${app}`)}`)).toBe(count((p) => p.metadata.labels?.app !== app));
    expect(await q(`labelSelector=${encodeURIComponent(`app in (${app},nope)`)}`)).toBe(count((p) => p.metadata.labels?.app === app));
    expect(await q(`labelSelector=${encodeURIComponent(`app notin (${app})`)}`)).toBe(count((p) => p.metadata.labels?.app !== app));
    expect(await q(`labelSelector=k8s-app`)).toBe(count((p) => p.metadata.labels?.['k8s-app'] !== undefined));
    expect(await q(`labelSelector=${encodeURIComponent('!k8s-app,tier')}`)).toBe(count((p) => p.metadata.labels?.['k8s-app'] === undefined && p.metadata.labels?.tier !== undefined));
    const node = sim.model.nodes[1] as string;
    expect(await q(`fieldSelector=spec.nodeName%3D${node}`)).toBe(count((p) => p.spec.nodeName === node));
    expect(await q(`fieldSelector=metadata.namespace%3Dkube-system`)).toBe(4);
    expect(await q(`fieldSelector=metadata.namespace!%3Dkube-system`)).toBe(pods.length - 4);
    const one = pods[0] as Loose;
    expect(await q(`fieldSelector=metadata.name%3D${one.metadata.name}`)).toBe(1);
    // Selectors combine with paging and never return a non-matching item.
    const paged = await listAll('/api/v1/pods', 2);
    expect(paged.items.length).toBe(pods.length);
  });

  it('§5.9 a large list is streamed in several writes, not built as one string', async () => {
    const r = await fetch(`${sim.url}/api/v1/pods`);
    expect(r.headers.get('transfer-encoding')).toBe('chunked');
    expect(r.headers.get('content-length')).toBeNull();
    const reader = (r.body as ReadableStream<Uint8Array>).getReader();
    let chunks = 0;
    let bytes = 0;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      chunks++;
      bytes += value.length;
    }
    expect(bytes).toBeGreaterThan(64 * 1024);
    expect(chunks).toBeGreaterThan(1);
  });
});
