import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type EndpointSliceLike, IN_CLUSTER_TOKEN, kubeEndpointSliceSource, orderEndpoints, parseServiceRef } from '../../src/client/discovery.js';
import { seededRandom } from '../../src/random.js';
import { FakeClock } from '../../src/clock.js';
import { connect } from '../../src/client/index.js';
import { type Sim, startSim } from '../../src/sim/index.js';

type Ep = NonNullable<EndpointSliceLike['endpoints']>[number];
const ep = (address: string, nodeName: string, conditions: Ep['conditions'] = { ready: true }): Ep => ({ addresses: [address], nodeName, conditions });
const slice = (endpoints: Ep[], ports = [{ name: 'agents', port: 5473 }, { name: 'metrics', port: 9093 }]): EndpointSliceLike => ({ addressType: 'IPv4', ports, endpoints });
const order = (slices: EndpointSliceLike[], node = 'node-b', seed = 1) => orderEndpoints(slices, { node, scheme: 'ws', random: seededRandom(seed) });

describe('client - discovery from EndpointSlices', () => {
  it('lists ready replicas only, the one on the agent\'s own node first, by the named port', () => {
    const got = order([
      slice([ep('10.0.0.1', 'node-a'), ep('10.0.0.2', 'node-b'), ep('10.0.0.3', 'node-c', { ready: false }), ep('10.0.0.4', 'node-d', { ready: true, terminating: true })]),
      slice([ep('10.0.0.5', 'node-e', {})]), // nil ready means ready (EndpointSlice API)
    ]);
    expect(got.fallbackNotReady).toBe(false);
    expect(got.urls[0]).toBe('ws://10.0.0.2:5473/');
    expect([...got.urls].sort()).toEqual(['ws://10.0.0.1:5473/', 'ws://10.0.0.2:5473/', 'ws://10.0.0.5:5473/']);
  });

  it('shuffles the remote replicas, so a fleet spreads instead of piling onto the first address', () => {
    const slices = [slice(Array.from({ length: 5 }, (_, i) => ep(`10.0.1.${i}`, `n${i}`)))];
    const firsts = new Map<string, number>();
    for (let seed = 1; seed <= 500; seed++) {
      const first = order(slices, 'elsewhere', seed).urls[0] as string;
      firsts.set(first, (firsts.get(first) ?? 0) + 1);
    }
    expect(firsts.size).toBe(5);
    for (const n of firsts.values()) expect(n).toBeGreaterThan(60); // ~100 each
  });

  it('falls back to not-ready replicas when none is ready, and says so', () => {
    const got = order([slice([ep('10.0.0.1', 'a', { ready: false }), ep('10.0.0.2', 'b', { ready: false, terminating: true })])]);
    expect(got.fallbackNotReady).toBe(true);
    expect([...got.urls].sort()).toEqual(['ws://10.0.0.1:5473/', 'ws://10.0.0.2:5473/']);
    expect(order([]).urls).toEqual([]);
    expect(order([]).fallbackNotReady).toBe(false);
  });

  it('brackets IPv6 addresses, skips FQDN slices and slices without the named port, and uses wss with TLS', () => {
    const got = orderEndpoints(
      [
        { addressType: 'IPv6', ports: [{ name: 'agents', port: 5473 }], endpoints: [ep('fd00::1', 'a')] },
        { addressType: 'FQDN', ports: [{ name: 'agents', port: 5473 }], endpoints: [ep('x.example', 'a')] },
        slice([ep('10.0.0.9', 'a')], [{ name: 'metrics', port: 9093 }]),
      ],
      { node: 'z', scheme: 'wss', random: seededRandom(1) },
    );
    expect(got.urls).toEqual(['wss://[fd00::1]:5473/']);
  });

  it('parses NAMESPACE/NAME and refuses anything else with a coded error', () => {
    expect(parseServiceRef('calico-system/cattail')).toEqual({ namespace: 'calico-system', name: 'cattail' });
    for (const bad of ['cattail', 'a/b/c', 'Calico/x', '']) expect(() => parseServiceRef(bad)).toThrow(expect.objectContaining({ code: 'CATTAIL_CONFIG_INVALID_VALUE' }));
  });
});

describe('client - where discovery reads its cluster config from', () => {
  // client-node's last fallback is http://localhost:8080; the library refuses to use it.
  it.skipIf(existsSync(IN_CLUSTER_TOKEN))('says there is no config instead of falling back to localhost, and uses ~/.kube/config when there is one', async () => {
    const home = mkdtempSync(join(tmpdir(), 'cattail-home-'));
    // client-node reads process.env itself: HOME and KUBECONFIG are set for both.
    const saved = { HOME: process.env['HOME'], KUBECONFIG: process.env['KUBECONFIG'] };
    process.env['HOME'] = home;
    delete process.env['KUBECONFIG'];
    try {
      await expect(kubeEndpointSliceSource(undefined, { HOME: home })).rejects.toMatchObject({ code: 'CATTAIL_CLIENT_NO_DISCOVERY_CONFIG' });
      // connect() says so at once when it would have nothing else to connect to; with static
      // endpoints (used while discovery finds none) or its own EndpointSlice reader it starts.
      const opts = { service: 'calico-system/cattail', node: 'n1', feeds: ['felix'], clock: new FakeClock() };
      expect(() => connect(opts)).toThrow(expect.objectContaining({ code: 'CATTAIL_CLIENT_NO_DISCOVERY_CONFIG' }));
      for (const more of [{ endpoints: ['ws://127.0.0.1:1'] }, { endpointSliceSource: { list: () => Promise.resolve([]) } }]) {
        const c = connect({ ...opts, ...more });
        await c.close();
      }
      mkdirSync(join(home, '.kube'));
      writeFileSync(join(home, '.kube', 'config'), 'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n');
      const source = await kubeEndpointSliceSource(undefined, { HOME: home });
      // It asks the kubeconfig's server (nothing listens on port 1), not http://localhost:8080.
      await expect(source.list('calico-system', 'cattail')).rejects.toThrow(/127\.0\.0\.1:1\b/);
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
      rmSync(home, { recursive: true, force: true });
    }
  });
});

describe('client - discovery: what it asks the API server', () => {
  it('lists from the watch cache (resourceVersion 0), not as a quorum read: a replica\'s crash sends every one of its agents to look at once', async () => {
    const seen: string[] = [];
    const api = createServer((req, res) => {
      seen.push(req.url ?? '');
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'EndpointSliceList', apiVersion: 'discovery.k8s.io/v1', metadata: { resourceVersion: '7' }, items: [] }));
    });
    await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
    const dir = mkdtempSync(join(tmpdir(), 'cattail-disc-'));
    try {
      const kubeconfig = join(dir, 'kubeconfig');
      writeFileSync(kubeconfig, `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "http://127.0.0.1:${(api.address() as AddressInfo).port}", insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`);
      const source = await kubeEndpointSliceSource(kubeconfig);
      await expect(source.list('calico-system', 'cattail')).resolves.toEqual([]);
      const q = new URL(seen[0] ?? '', 'http://x').searchParams;
      expect(q.get('resourceVersion')).toBe('0');
      expect(q.get('labelSelector')).toBe('kubernetes.io/service-name=cattail');
    } finally {
      api.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('client - discovery against the simulated API server', () => {
  let sim: Sim | undefined;
  afterEach(async () => {
    await sim?.close();
    sim = undefined;
  });

  it('reads the Service\'s EndpointSlices with the agent\'s kubeconfig', async () => {
    sim = await startSim({ nodes: 2, podsPerNode: 1, churnPerSec: 0, seed: 3 });
    sim.admin.create('endpointslices.discovery.k8s.io', {
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: 'IPv4',
      metadata: { name: 'cattail-abcde', namespace: 'calico-system', labels: { 'kubernetes.io/service-name': 'cattail' } },
      ports: [{ name: 'agents', port: 5473, protocol: 'TCP' }],
      endpoints: [{ addresses: ['127.0.0.11'], nodeName: 'sim-node-1', conditions: { ready: true } }, { addresses: ['127.0.0.12'], nodeName: 'sim-node-2', conditions: { ready: false } }],
    });
    sim.admin.create('endpointslices.discovery.k8s.io', {
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: 'IPv4',
      metadata: { name: 'other-xyz', namespace: 'calico-system', labels: { 'kubernetes.io/service-name': 'other' } },
      ports: [{ name: 'agents', port: 1 }], endpoints: [{ addresses: ['127.0.0.99'], conditions: { ready: true } }],
    });
    const source = await kubeEndpointSliceSource(sim.kubeconfigPath);
    const slices = await source.list('calico-system', 'cattail');
    expect(slices).toHaveLength(1);
    expect(orderEndpoints(slices, { node: 'sim-node-9', scheme: 'ws', random: seededRandom(1) })).toEqual({ urls: ['ws://127.0.0.11:5473/'], fallbackNotReady: false });
    await expect(source.list('no-such-namespace', 'cattail')).resolves.toEqual([]);
  });
});
