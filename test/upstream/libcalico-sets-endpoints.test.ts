/**
 * Golden tests of (Global)NetworkSet → v1 network sets and HostEndpoint → v1 host endpoints
 * (`libcalico`). Expected values written out by hand from libcalico-go's
 * globalnetworksetprocessor.go, networksetprocessor.go, hostendpointprocessor.go and the model
 * structs (networkset.go, hostendpoint.go).
 */
import { describe, expect, it } from 'vitest';
import { resource } from '../../src/registry.js';
import { entryProjector } from '../../src/server/upstream/projections/index.js';
import type { KubeObject } from '../../src/server/upstream/types.js';
import { libcalicoViewHarness, loadFixture } from './helpers.js';

const GNS = 'globalnetworksets.crd.projectcalico.org';
const NS = 'networksets.crd.projectcalico.org';
const HEP = 'hostendpoints.crd.projectcalico.org';
/** A HostEndpoint `e` on `node` (the node is part of its key). */
const hep = (node: string): KubeObject => ({ kind: 'HostEndpoint', metadata: { name: 'e' }, spec: { node, interfaceName: 'eth0' } }) as KubeObject;
const project = (id: string, obj: KubeObject): [string, unknown][] => entryProjector(resource(id), 'libcalico').entries(obj, 'unused').map(([k, v]) => [k, v]);

describe('libcalico network sets', () => {
  it('GlobalNetworkSet → /calico/v1/netset/<name> with nets and the v3 labels (from the metadata annotation)', () => {
    expect(project(GNS, loadFixture('calico/globalnetworkset-a-name-for-the-set.constructed.json'))).toEqual([
      ['/calico/v1/netset/a-name-for-the-set', { nets: ['198.51.100.0/28', '203.0.113.0/24'], labels: { role: 'external-database' } }],
    ]);
  });

  it('NetworkSet → escaped <ns>/<name>, the namespace label added and the namespace profile for label inheritance', () => {
    expect(project(NS, loadFixture('calico/networkset-staging.external-database.constructed.json'))).toEqual([
      [
        '/calico/v1/netset/staging%2fexternal-database',
        {
          nets: ['198.51.100.0/28', '203.0.113.0/24'],
          labels: { 'projectcalico.org/namespace': 'staging', role: 'db' },
          profile_ids: ['kns.staging'],
        },
      ],
    ]);
  });

  it('nets are masked (a bare IP is /32), unparsable ones dropped; no nets or labels → left out', () => {
    const gns = { kind: 'GlobalNetworkSet', metadata: { name: 'x' }, spec: { nets: ['10.1.2.3/8', '10.0.0.1', 'fd00::1/64', 'nope'] } } as KubeObject;
    expect(project(GNS, gns)).toEqual([['/calico/v1/netset/x', { nets: ['10.0.0.0/8', '10.0.0.1/32', 'fd00::/64'] }]]);
    expect(project(GNS, { kind: 'GlobalNetworkSet', metadata: { name: 'empty' }, spec: {} } as KubeObject)).toEqual([['/calico/v1/netset/empty', {}]]);
  });
});

describe('libcalico host endpoints', () => {
  it('the automatic host endpoint → /calico/v1/host/<node>/endpoint/<name>: interface, expected IPs by family, labels, profiles', () => {
    const hep = loadFixture('calico/hostendpoint-worker-1-auto-hep.constructed.json');
    expect(project(HEP, hep)).toEqual([
      [
        '/calico/v1/host/worker-1/endpoint/worker-1-auto-hep',
        {
          name: '*',
          expected_ipv4_addrs: ['10.0.1.21', '192.168.226.64'],
          labels: {
            'beta.kubernetes.io/arch': 'amd64',
            'beta.kubernetes.io/os': 'linux',
            'kubernetes.io/arch': 'amd64',
            'kubernetes.io/hostname': 'worker-1',
            'kubernetes.io/os': 'linux',
            'projectcalico.org/created-by': 'calico-kube-controllers',
          },
          profile_ids: ['projectcalico-default-allow'],
        },
      ],
    ]);
  });

  it('IPv6 expected IPs compressed, bad ones dropped; named ports with v1 protocols; labels always present (nil when none)', () => {
    const hep = {
      kind: 'HostEndpoint',
      metadata: { name: 'eth0-h1' },
      spec: { node: 'h1', expectedIPs: ['fd00:0:0::1', 'bad', '10.0.0.1'], ports: [{ name: 'http', protocol: 'TCP', port: 80 }, { name: 'dns', protocol: 'UDP', port: 53 }] },
    } as KubeObject;
    expect(project(HEP, hep)).toEqual([
      [
        '/calico/v1/host/h1/endpoint/eth0-h1',
        {
          expected_ipv4_addrs: ['10.0.0.1'],
          expected_ipv6_addrs: ['fd00::1'],
          labels: null,
          ports: [
            { name: 'http', protocol: 'tcp', port: 80 },
            { name: 'dns', protocol: 'udp', port: 53 },
          ],
        },
      ],
    ]);
    expect(() => project(HEP, { kind: 'HostEndpoint', metadata: { name: 'nowhere' }, spec: {} } as KubeObject)).toThrow(/no spec.node/);
  });

  it('in a view: a host endpoint moved to another node moves its key; its delete removes it', () => {
    const { view, state } = libcalicoViewHarness(HEP);
    view.upsert(hep('a'));
    view.upsert(hep('b'));
    expect([...state.keys()]).toEqual(['/calico/v1/host/b/endpoint/e']);
    view.delete(hep('b'));
    expect(state.size).toBe(0);
  });

  it('a key made from a field with a lone surrogate (spec.node) is a projection error: nothing new projected, the last good keys kept', () => {
    const { view, state } = libcalicoViewHarness(HEP);
    view.upsert(hep('a'));
    // On the wire that key would be U+FFFD, as would '\udc00''s: two keys, one on every agent.
    view.upsert(hep('a\ud800'));
    expect([...state.keys()]).toEqual(['/calico/v1/host/a/endpoint/e']);
    expect([...state.keys()].every((k) => k.isWellFormed())).toBe(true);
  });
});
