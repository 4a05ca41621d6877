/**
 * `@kubernetes/client-node` 1.4 works against the simulator unchanged, through the kubeconfig the
 * simulator writes: Watch, the generated list API (with paging), and an informer.
 */
import { CoreV1Api, CustomObjectsApi, KubeConfig, makeInformer, Watch, type V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSim, type Sim } from '../../src/sim/index.js';

let sim: Sim;
let kc: KubeConfig;
beforeAll(async () => {
  sim = await startSim({ nodes: 3, podsPerNode: 4, seed: 5 });
  kc = new KubeConfig();
  kc.loadFromFile(sim.kubeconfigPath);
});
afterAll(() => sim.close());

function bounded<T>(p: Promise<T>, what: string, ms = 5_000): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<T>((_, reject) => (t = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms)))]).finally(() => clearTimeout(t));
}

describe('client-node against the sim', () => {
  it('Watch receives initial events, the WatchList end bookmark, live events, and done(null) on a clean server close', async () => {
    const events: { type: string; name: string; rv: string }[] = [];
    let resolveDone!: (err: unknown) => void;
    const done = new Promise((r) => (resolveDone = r));
    let sawLive!: () => void;
    const live = new Promise<void>((r) => (sawLive = r));
    const w = new Watch(kc);
    const ac = await w.watch(
      '/api/v1/namespaces',
      { allowWatchBookmarks: true },
      (type: string, obj: { metadata?: { name?: string; resourceVersion?: string } }) => {
        events.push({ type, name: obj.metadata?.name ?? '', rv: obj.metadata?.resourceVersion ?? '' });
        if (obj.metadata?.name === 'from-admin') sawLive();
      },
      (err: unknown) => resolveDone(err),
    );
    sim.admin.create('namespaces', { metadata: { name: 'from-admin' } });
    await bounded(live, 'live event');
    // A server-side end (as at a deadline or cache re-initialisation) is clean: done(null).
    expect(sim.admin.closeWatches('namespaces')).toBe(1);
    expect(await bounded(done, 'done')).toBeNull();
    ac.abort();
    const n = sim.admin.count('namespaces') - 1;
    expect(events.slice(0, n).every((e) => e.type === 'ADDED')).toBe(true);
    expect(events[n]).toMatchObject({ type: 'BOOKMARK' });
    expect(events[n + 1]).toMatchObject({ type: 'ADDED', name: 'from-admin' });
  });

  it('the generated CoreV1Api lists with limit/continue and deserializes pods', async () => {
    const api = kc.makeApiClient(CoreV1Api);
    const names: string[] = [];
    let cont: string | undefined;
    let rv: string | undefined;
    for (let i = 0; i < 50; i++) {
      const page = await api.listPodForAllNamespaces({ limit: 5, _continue: cont });
      rv ??= page.metadata?.resourceVersion;
      expect(page.metadata?.resourceVersion).toBe(rv);
      names.push(...page.items.map((p: V1Pod) => p.metadata?.name ?? ''));
      cont = page.metadata?._continue;
      if (!cont) break;
    }
    expect(names.length).toBe(sim.admin.count('pods'));
    const calicoNode = names.find((n) => n.startsWith('calico-node-')) as string;
    const one = await api.readNamespacedPod({ name: calicoNode, namespace: 'kube-system' });
    expect(one.spec?.hostNetwork).toBe(true);
    expect(one.status?.podIP).toBe(one.status?.hostIP);
    const crs = await kc.makeApiClient(CustomObjectsApi).listClusterCustomObject({ group: 'crd.projectcalico.org', version: 'v1', plural: 'tiers' });
    expect((crs as { items: unknown[] }).items.length).toBe(3);
  });

  it('an informer (ListWatch) syncs and sees adds and deletes', async () => {
    const api = kc.makeApiClient(CoreV1Api);
    const informer = makeInformer(kc, '/api/v1/namespaces/default/pods', () => api.listNamespacedPod({ namespace: 'default' }));
    const added: string[] = [];
    const deleted: string[] = [];
    let onDelete!: () => void;
    const gotDelete = new Promise<void>((r) => (onDelete = r));
    informer.on('add', (p: V1Pod) => added.push(p.metadata?.name ?? ''));
    informer.on('delete', (p: V1Pod) => {
      deleted.push(p.metadata?.name ?? '');
      onDelete();
    });
    informer.on('error', () => undefined);
    await bounded(informer.start(), 'informer start');
    sim.admin.create('pods', { metadata: { name: 'inf-1', namespace: 'default' }, spec: { containers: [] } });
    sim.admin.delete('pods', 'default', 'inf-1');
    await bounded(gotDelete, 'delete event');
    await informer.stop();
    expect(added).toContain('inf-1');
    expect(deleted).toEqual(['inf-1']);
  });
});
