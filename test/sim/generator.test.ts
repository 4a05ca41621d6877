/**
 * The seeded cluster generator: reproducible, realistic shapes (fixtures' wire-form facts), and
 * the special pods projections must handle (host network, finished).
 */
import { describe, expect, it } from 'vitest';
import { resource } from '../../src/registry.js';
import { encodeObject, type JsonObject } from '../../src/sim/encode.js';
import { encodeText } from '../../src/sim/encode.js';
import { generateCluster, generatedJson, makePod, renderPod } from '../../src/sim/generator.js';
import { Rng } from '../../src/sim/rng.js';

const encodePod = (o: JsonObject): string => encodeText(resource('pods'), o);

function materialise(seed: number, nodes = 4, podsPerNode = 8): { resource: string; bytes: Buffer; object: JsonObject }[] {
  return [...generateCluster({ nodes, podsPerNode, seed }, encodePod).objects].map((g) => ({
    resource: g.resource,
    object: generatedJson(g),
    bytes: g.rendered ? Buffer.from(g.rendered.render('0')) : encodeObject(resource(g.resource), g.object as JsonObject),
  }));
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

  it('a pod rendered from its app template is byte-identical to encoding makePod with the same seed', () => {
    const { model, objects } = generateCluster({ nodes: 2, podsPerNode: 3, seed: 1 }, encodePod);
    for (const _ of objects) void _; // complete the model
    for (const app of model.apps.slice(0, 4)) {
      for (const phase of ['Running', 'Succeeded'] as const) {
        const params = { app, name: `${app.name}-x`, uid: 'u-1', nodeName: 'node-0001', hostIp: '10.0.0.10', podIp: '172.16.0.9', createdMs: Date.UTC(2026, 3, 14), phase };
        const direct = encodePod({ ...makePod({ ...params, rng: new Rng(42) }), metadata: { ...(makePod({ ...params, rng: new Rng(42) })['metadata'] as JsonObject), resourceVersion: '77' } });
        expect(renderPod({ ...params, rng: new Rng(42) }, encodePod).render('77')).toBe(direct);
        const chunks = renderPod({ ...params, rng: new Rng(42) }, encodePod).chunks('77');
        expect(Buffer.concat(chunks.map((c) => (typeof c === 'string' ? Buffer.from(c) : c))).toString()).toBe(direct);
      }
    }
  });

  it('IPAM block sequence numbers exceed 2^53 on the wire, as Calico writes them', () => {
    const block = materialise(1).find((x) => x.resource === 'ipamblocks.crd.projectcalico.org');
    const m = /"sequenceNumber":(\d+)/.exec(block?.bytes.toString() ?? '');
    expect(BigInt(m?.[1] ?? '0') > BigInt(Number.MAX_SAFE_INTEGER)).toBe(true);
  });
});
