/**
 * The seeded cluster generator: reproducible, realistic shapes (fixtures' wire-form facts), and
 * the special pods projections must handle (host network, finished).
 */
import { describe, expect, it } from 'vitest';
import { resource } from '../../src/registry.js';
import { encodeObject, type JsonObject } from '../../src/sim/encode.js';
import { generateCluster } from '../../src/sim/generator.js';

function materialise(seed: number, nodes = 4, podsPerNode = 8): { resource: string; bytes: Buffer; object: JsonObject }[] {
  return [...generateCluster({ nodes, podsPerNode, seed }).objects].map((g) => ({ resource: g.resource, object: g.object, bytes: encodeObject(resource(g.resource), g.object) }));
}

describe('sim generator', () => {
  it('§5.23 the same seed gives byte-identical objects; another seed differs', () => {
    const a = materialise(1);
    const b = materialise(1);
    const c = materialise(2);
    expect(Buffer.concat(b.map((x) => x.bytes)).equals(Buffer.concat(a.map((x) => x.bytes)))).toBe(true);
    expect(Buffer.concat(c.map((x) => x.bytes)).equals(Buffer.concat(a.map((x) => x.bytes)))).toBe(false);
  });

  it('generates every kind the feeds need, with host-network and finished pods', () => {
    const all = materialise(3, 6, 40);
    const by = (r: string): JsonObject[] => all.filter((x) => x.resource === r).map((x) => x.object);
    expect(by('nodes')).toHaveLength(6);
    expect(by('pods')).toHaveLength(6 * 40);
    const hostNet = by('pods').filter((p) => (p['spec'] as JsonObject)['hostNetwork'] === true);
    expect(hostNet).toHaveLength(6);
    expect(by('pods').some((p) => (p['status'] as JsonObject)['phase'] === 'Succeeded')).toBe(true);
    for (const r of ['namespaces', 'serviceaccounts', 'services', 'endpointslices.discovery.k8s.io', 'networkpolicies.networking.k8s.io', 'networkpolicies.crd.projectcalico.org', 'globalnetworkpolicies.crd.projectcalico.org', 'ippools.crd.projectcalico.org', 'ipamblocks.crd.projectcalico.org', 'blockaffinities.crd.projectcalico.org', 'hostendpoints.crd.projectcalico.org']) {
      expect(by(r).length, r).toBeGreaterThan(0);
    }
    expect(by('clusterinformations.crd.projectcalico.org').map((o) => (o['metadata'] as JsonObject)['name'])).toEqual(['default']);
    expect(by('felixconfigurations.crd.projectcalico.org').map((o) => (o['metadata'] as JsonObject)['name'])).toEqual(['default']);
    expect(by('tiers.crd.projectcalico.org').map((o) => (o['metadata'] as JsonObject)['name']).sort()).toEqual(['adminnetworkpolicy', 'baselineadminnetworkpolicy', 'default']);
  });

  it('pods are 2-7 KB of compact JSON with spec, status and managedFields', () => {
    const pods = materialise(5, 10, 30).filter((x) => x.resource === 'pods');
    const sizes = pods.map((p) => p.bytes.length);
    expect(Math.min(...sizes)).toBeGreaterThanOrEqual(2_000);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(7_500);
    for (const p of pods) {
      const o = JSON.parse(p.bytes.toString()) as JsonObject;
      expect(Object.keys(o)).toEqual(['kind', 'apiVersion', 'metadata', 'spec', 'status']);
    }
    expect(pods.filter((p) => p.bytes.includes('"managedFields"')).length).toBeGreaterThan(pods.length * 0.9);
  });

  it('IPAM block sequence numbers exceed 2^53 on the wire, as Calico writes them', () => {
    const block = materialise(1).find((x) => x.resource === 'ipamblocks.crd.projectcalico.org');
    const m = /"sequenceNumber":(\d+)/.exec(block?.bytes.toString() ?? '');
    expect(BigInt(m?.[1] ?? '0') > BigInt(Number.MAX_SAFE_INTEGER)).toBe(true);
  });
});
