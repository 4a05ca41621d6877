import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { fixturesDir } from './support/fixtures.js';
import { RESOURCES, SYNCER_FEEDS, collectionPath, objectKey, rbacRules, resource } from '../src/registry.js';

const crdDir = join(fixturesDir(), 'calico-crds');

describe('registry', () => {
  it('has unique ids and resolves every feed resource', () => {
    expect(new Set(RESOURCES.map((r) => r.id)).size).toBe(RESOURCES.length);
    for (const ids of Object.values(SYNCER_FEEDS)) for (const id of ids) expect(() => resource(id)).not.toThrow();
    expect(() => resource('pod')).toThrow(/unknown resource/);
  });

  it('covers Typha\'s four syncer types', () => {
    expect(Object.keys(SYNCER_FEEDS).sort()).toEqual(['bgp', 'felix', 'node-status', 'tunnel-ip-allocation']);
    expect(SYNCER_FEEDS.felix).toContain('pods');
    expect(SYNCER_FEEDS.bgp).toContain('blockaffinities.crd.projectcalico.org');
    expect(SYNCER_FEEDS['node-status']).toEqual(['caliconodestatuses.crd.projectcalico.org']);
  });

  it('agrees with every Calico v3.31 CRD on kind, plural, version and scope', () => {
    const files = readdirSync(crdDir).filter((f) => f.endsWith('.yaml'));
    expect(files.length).toBe(22);
    for (const f of files) {
      const crd = parse(readFileSync(join(crdDir, f), 'utf8')) as {
        spec: { group: string; names: { kind: string; plural: string }; scope: string; versions: Array<{ name: string; served: boolean }> };
      };
      const def = resource(`${crd.spec.names.plural}.${crd.spec.group}`);
      expect(def.kind).toBe(crd.spec.names.kind);
      expect(def.namespaced).toBe(crd.spec.scope === 'Namespaced');
      expect(crd.spec.versions.filter((v) => v.served).map((v) => v.name)).toContain(def.version);
      expect(def.optional).toBe(true);
      expect(def.encoding).toBe('unstructured');
    }
  });

  it('builds keys and API paths', () => {
    expect(objectKey(resource('pods'), 'demo', 'web')).toBe('/pods/demo/web');
    expect(objectKey(resource('nodes'), 'ignored', 'worker-1')).toBe('/nodes//worker-1');
    expect(objectKey(resource('ippools.crd.projectcalico.org'), undefined, 'default-ipv4-ippool')).toBe('crd.projectcalico.org/ippools//default-ipv4-ippool');
    expect(collectionPath(resource('pods'))).toBe('/api/v1/pods');
    expect(collectionPath(resource('pods'), 'demo')).toBe('/api/v1/namespaces/demo/pods');
    expect(collectionPath(resource('endpointslices.discovery.k8s.io'))).toBe('/apis/discovery.k8s.io/v1/endpointslices');
    expect(collectionPath(resource('nodes'), 'x')).toBe('/api/v1/nodes');
  });

  it('derives list/watch RBAC rules from the feeds', () => {
    const rules = rbacRules();
    const core = rules.find((r) => r.apiGroups[0] === '');
    expect(core?.resources).toEqual(['namespaces', 'nodes', 'pods', 'serviceaccounts', 'services']);
    for (const r of rules) expect(r.verbs).toEqual(['list', 'watch']);
    const calico = rules.find((r) => r.apiGroups[0] === 'crd.projectcalico.org');
    expect(calico?.resources).toContain('caliconodestatuses');
  });
});
