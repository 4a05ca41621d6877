/**
 * Golden tests of the other `libcalico` conversions (profiles, nodes, IP pools, blocks, v3
 * resources, Kubernetes pass-through) and of the resource view's several-keys-per-object
 * bookkeeping. Expected values are written out by hand from the libcalico-go sources each
 * conversion file cites.
 */
import { describe, expect, it } from 'vitest';
import { resource } from '../../src/registry.js';
import { encodeValue, entryProjector } from '../../src/server/upstream/projections/index.js';
import { convertUid } from '../../src/server/upstream/projections/calico-keys.js';
import type { KubeObject } from '../../src/server/upstream/types.js';
import { libcalicoViewHarness, loadFixture as load } from './helpers.js';
const kvs = (id: string, o: KubeObject): Map<string, unknown> => new Map(entryProjector(resource(id), 'libcalico').entries(o, 'unused'));

describe('libcalico profiles', () => {
  it('Namespace → labels, rules and the v3 Profile (uid bit-reversed, no resourceVersion)', () => {
    const ns = load('k8s/namespace-demo.constructed.json');
    const out = kvs('namespaces', ns);
    expect([...out.keys()]).toEqual([
      '/calico/v1/policy/profile/kns.demo/labels',
      '/calico/v1/policy/profile/kns.demo/rules',
      '/calico/resources/v3/projectcalico.org/profiles/kns.demo',
    ]);
    const labels = { 'pcns.kubernetes.io/metadata.name': 'demo', 'pcns.projectcalico.org/name': 'demo' };
    expect(out.get('/calico/v1/policy/profile/kns.demo/labels')).toEqual(labels);
    expect(out.get('/calico/v1/policy/profile/kns.demo/rules')).toEqual({ inbound_rules: [{ action: 'allow' }], outbound_rules: [{ action: 'allow' }] });
    expect(out.get('/calico/resources/v3/projectcalico.org/profiles/kns.demo')).toEqual({
      kind: 'Profile',
      apiVersion: 'projectcalico.org/v3',
      metadata: { name: 'kns.demo', uid: convertUid(ns.metadata?.['uid'] as string), creationTimestamp: ns.metadata?.['creationTimestamp'] },
      spec: {
        ingress: [{ action: 'Allow', source: {}, destination: {} }],
        egress: [{ action: 'Allow', source: {}, destination: {} }],
        labelsToApply: labels,
      },
    });
  });

  it('ServiceAccount → ksa.<ns>.<sa> with pcsa. labels and no rules', () => {
    const out = kvs('serviceaccounts', load('k8s/serviceaccount-web.constructed.json'));
    expect(out.get('/calico/v1/policy/profile/ksa.demo.web/labels')).toEqual({ 'pcsa.app': 'web', 'pcsa.projectcalico.org/name': 'web' });
    expect(out.get('/calico/v1/policy/profile/ksa.demo.web/rules')).toEqual({});
    expect((out.get('/calico/resources/v3/projectcalico.org/profiles/ksa.demo.web') as { spec: unknown }).spec).toEqual({
      labelsToApply: { 'pcsa.app': 'web', 'pcsa.projectcalico.org/name': 'web' },
    });
  });

  it('the namespaces view carries the default-allow profile (rules and v3, no labels key)', () => {
    const statics = new Map(entryProjector(resource('namespaces'), 'libcalico').statics);
    expect([...statics.keys()]).toEqual([
      '/calico/v1/policy/profile/projectcalico-default-allow/rules',
      '/calico/resources/v3/projectcalico.org/profiles/projectcalico-default-allow',
    ]);
    expect(statics.get('/calico/v1/policy/profile/projectcalico-default-allow/rules')).toEqual({ inbound_rules: [{ action: 'allow' }], outbound_rules: [{ action: 'allow' }] });
  });

  it('ConvertUID reverses the bits of every byte but the version and variant bytes', () => {
    expect(convertUid('00000000-0000-4000-8000-000000000001')).toBe('00000000-0000-4000-8000-000000000080');
    expect(convertUid('01000000-0000-4003-8000-000000000000')).toBe('80000000-0000-40c0-8000-000000000000');
    expect(convertUid('not-a-uid')).toBeUndefined();
  });
});

describe('libcalico nodes', () => {
  it('worker-1 → IPIP tunnel host config and the v3 Node (BGP address, orchRefs, addresses, pod CIDRs)', () => {
    const out = kvs('nodes', load('k8s/node-worker-1.constructed.json'));
    expect([...out.keys()]).toEqual(['/calico/v1/host/worker-1/config/IpInIpTunnelAddr', '/calico/resources/v3/projectcalico.org/nodes/worker-1']);
    expect(out.get('/calico/v1/host/worker-1/config/IpInIpTunnelAddr')).toBe('192.168.226.64');
    expect(out.get('/calico/resources/v3/projectcalico.org/nodes/worker-1')).toEqual({
      kind: 'Node',
      apiVersion: 'projectcalico.org/v3',
      metadata: {
        name: 'worker-1',
        labels: { 'beta.kubernetes.io/arch': 'amd64', 'beta.kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', 'kubernetes.io/hostname': 'worker-1', 'kubernetes.io/os': 'linux' },
      },
      spec: {
        bgp: { ipv4Address: '10.0.1.21/24', ipv4IPIPTunnelAddr: '192.168.226.64' },
        orchRefs: [{ nodeName: 'worker-1', orchestrator: 'k8s' }],
        // Calico's BGP address first, then InternalIP; the Hostname address is not carried.
        addresses: [{ address: '10.0.1.21/24', type: 'CalicoNodeIP' }, { address: '10.0.1.21', type: 'InternalIP' }],
      },
      status: { podCIDRs: ['192.168.1.0/24'] },
    });
  });

  it('VXLAN and WireGuard annotations → their host config keys and the WireGuard key; invalid ones are dropped', () => {
    const node = structuredClone(load('k8s/node-worker-1.constructed.json'));
    Object.assign(node.metadata!.annotations!, {
      'projectcalico.org/IPv4VXLANTunnelAddr': '192.168.226.65',
      'projectcalico.org/VXLANTunnelMACAddr': '66:1f:2a:3b:4c:5d',
      'projectcalico.org/IPv6VXLANTunnelAddr': 'fd00:0::7',
      'projectcalico.org/IPv4WireguardInterfaceAddr': '192.168.226.67',
      'projectcalico.org/WireguardPublicKey': 'jlkVyQYooZYzI2wFfNhSZez5eWh44yfq1wKVjLvSXgY=',
      'projectcalico.org/IPv4IPIPTunnelAddr': 'garbage',
    });
    const out = kvs('nodes', node);
    expect(out.get('/calico/v1/host/worker-1/config/IpInIpTunnelAddr')).toBeUndefined();
    expect(out.get('/calico/v1/host/worker-1/config/IPv4VXLANTunnelAddr')).toBe('192.168.226.65');
    expect(out.get('/calico/v1/host/worker-1/config/VXLANTunnelMACAddr')).toBe('66:1f:2a:3b:4c:5d');
    expect(out.get('/calico/v1/host/worker-1/config/IPv6VXLANTunnelAddr')).toBe('fd00::7');
    expect(out.get('/calico/v1/host/worker-1/wireguard')).toEqual({ interfaceIPv4Addr: '192.168.226.67', publicKey: 'jlkVyQYooZYzI2wFfNhSZez5eWh44yfq1wKVjLvSXgY=' });
  });

  it('node heartbeats project to the same bytes', () => {
    const a = load('k8s/node-worker-1.constructed.json');
    const b = structuredClone(a);
    (b['status'] as Record<string, unknown>)['conditions'] = [];
    b.metadata!.resourceVersion = '1';
    const ea = entryProjector(resource('nodes'), 'libcalico').entries(a, 'x').map(([k, v]) => [k, encodeValue(v).toString('hex')]);
    const eb = entryProjector(resource('nodes'), 'libcalico').entries(b, 'x').map(([k, v]) => [k, encodeValue(v).toString('hex')]);
    expect(eb).toEqual(ea);
  });
});

describe('libcalico IP pools, blocks, v3 resources and Kubernetes pass-through', () => {
  it('IPPool → the v1 pool (tunl0, always, masquerade, ipam) and the v3 IPPool', () => {
    const out = kvs('ippools.crd.projectcalico.org', load('calico/ippool-default-ipv4-ippool.constructed.json'));
    expect(out.get('/calico/v1/ipam/v4/pool/192.168.0.0-16')).toEqual({
      cidr: '192.168.0.0/16', ipip: 'tunl0', ipip_mode: 'always', vxlan_mode: '', masquerade: true, ipam: true, disabled: false, disableBGPExport: false, assignment_mode: 'Automatic',
    });
    const v3 = out.get('/calico/resources/v3/projectcalico.org/ippools/default-ipv4-ippool') as Record<string, unknown>;
    expect(v3['apiVersion']).toBe('projectcalico.org/v3');
    expect(JSON.stringify(v3)).not.toMatch(/resourceVersion|managedFields|generation/);
  });

  it('ClusterInformation default → global config keys named after the Go fields and the ready flag', () => {
    const out = kvs('clusterinformations.crd.projectcalico.org', load('calico/clusterinformation-default.constructed.json'));
    expect([...out.entries()]).toEqual([
      ['/calico/v1/config/ClusterGUID', '49770c61b5fa0d8f4112745e94d41a5c'],
      ['/calico/v1/config/ClusterType', 'k8s,bgp,kubeadm'],
      ['/calico/v1/config/CalicoVersion', 'v3.31.7'],
      ['/calico/v1/Ready', true],
    ]);
  });

  it('IPAMBlock → the allocation block key with the spec, big sequence numbers exact', () => {
    const out = kvs('ipamblocks.crd.projectcalico.org', load('calico/ipamblock-192-168-226-64-26.constructed.json'));
    const block = out.get('/calico/ipam/v2/assignment/ipv4/block/192.168.226.64-26') as Record<string, unknown>;
    expect(block['affinity']).toBe('host:worker-1');
    expect(block['sequenceNumber']).toBe('1776154385418267116');
  });

  it('a tiered Calico policy keeps its v3 name, a network set its labels from the metadata annotation; re-writes stay byte-equal', () => {
    const gnp = load('calico/globalnetworkpolicy-default.allow-tcp-6379.constructed.json');
    const out = kvs('globalnetworkpolicies.crd.projectcalico.org', gnp);
    expect([...out.keys()]).toEqual(['/calico/v1/policy/tier/default/policy/allow-tcp-6379']);
    const set = kvs('globalnetworksets.crd.projectcalico.org', load('calico/globalnetworkset-a-name-for-the-set.constructed.json'));
    const [value] = [...set.values()] as { labels: Record<string, string> }[];
    expect(value?.labels).toEqual({ role: 'external-database' });
    const rewritten = structuredClone(gnp);
    rewritten.metadata!.resourceVersion = '999999';
    rewritten.metadata!['generation'] = 7;
    rewritten.metadata!['managedFields'] = [];
    const bytes = (o: KubeObject): string => encodeValue([...kvs('globalnetworkpolicies.crd.projectcalico.org', o).values()][0]).toString('hex');
    expect(bytes(rewritten)).toBe(bytes(gnp));
  });

  it('Services and EndpointSlices pass through under kubernetesservice / kubernetesendpointslices', () => {
    expect([...kvs('services', load('k8s/service-web.constructed.json')).keys()]).toEqual(['/calico/resources/v3/projectcalico.org/kubernetesservice/demo/web']);
    expect([...kvs('endpointslices.discovery.k8s.io', load('k8s/endpointslice-web.constructed.json')).keys()]).toEqual([
      '/calico/resources/v3/projectcalico.org/kubernetesendpointslices/demo/web-9xq4z',
    ]);
  });
});

describe('resource view with several keys per object', () => {
  const harness = libcalicoViewHarness;

  it('a node update that drops its tunnel address deletes that key; the node delete removes every key', () => {
    const { view, state } = harness('nodes');
    const node = structuredClone(load('k8s/node-worker-1.constructed.json'));
    node.metadata!.annotations!['projectcalico.org/WireguardPublicKey'] = 'jlkVyQYooZYzI2wFfNhSZez5eWh44yfq1wKVjLvSXgY=';
    view.upsert(node);
    expect([...state.keys()].sort()).toEqual([
      '/calico/resources/v3/projectcalico.org/nodes/worker-1',
      '/calico/v1/host/worker-1/config/IpInIpTunnelAddr',
      '/calico/v1/host/worker-1/wireguard',
    ]);
    const without = structuredClone(node);
    delete without.metadata!.annotations!['projectcalico.org/IPv4IPIPTunnelAddr'];
    view.upsert(without);
    expect(state.has('/calico/v1/host/worker-1/config/IpInIpTunnelAddr')).toBe(false);
    expect(state.has('/calico/v1/host/worker-1/wireguard')).toBe(true);
    // DELETED carries the last state; it has no WireGuard key, yet the key it was seen with goes.
    const last = structuredClone(without);
    delete last.metadata!.annotations!['projectcalico.org/WireguardPublicKey'];
    view.delete(last);
    expect(state.size).toBe(0);
    expect(view.size).toBe(0);
  });

  it('counts objects, not keys (the balancer reads the node count from it)', () => {
    const { view, state } = harness('nodes');
    const a = load('k8s/node-worker-1.constructed.json');
    const b = structuredClone(a);
    b.metadata!.name = 'worker-2';
    const session = view.beginList();
    session.add(a);
    session.add(b);
    view.commit(session);
    expect(state.size).toBe(4); // two keys per node
    expect(view.size).toBe(2);
    const ns = harness('namespaces');
    const s2 = ns.view.beginList();
    s2.add(load('k8s/namespace-demo.constructed.json'));
    ns.view.commit(s2);
    expect(ns.view.size).toBe(1); // the default-allow profile is no object
  });

  it('a list seeds the default-allow profile and drops keys of objects gone since; a pod losing its IP loses its endpoint', () => {
    const ns = harness('namespaces');
    const session = ns.view.beginList();
    session.add(load('k8s/namespace-demo.constructed.json'));
    ns.view.commit(session);
    expect(ns.state.has('/calico/v1/policy/profile/projectcalico-default-allow/rules')).toBe(true);
    expect(ns.state.has('/calico/v1/policy/profile/kns.demo/rules')).toBe(true);
    ns.view.commit(ns.view.beginList());
    expect([...ns.state.keys()].sort()).toEqual([
      '/calico/resources/v3/projectcalico.org/profiles/projectcalico-default-allow',
      '/calico/v1/policy/profile/projectcalico-default-allow/rules',
    ]);

    const p = harness('pods');
    const pod = load('k8s/pod-deployment-running.constructed.json');
    p.view.upsert(pod);
    expect(p.state.size).toBe(1);
    const finished = structuredClone(pod);
    (finished['status'] as Record<string, unknown>)['phase'] = 'Succeeded';
    p.view.upsert(finished);
    expect(p.state.size).toBe(0);
  });
});
