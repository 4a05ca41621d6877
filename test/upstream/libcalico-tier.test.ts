/**
 * Golden tests of Tier → v1 tier (`libcalico`). Expected values written out by hand from
 * libcalico-go's tierprocessor.go (Pass stays Pass, anything else is Deny), model/tier.go (key
 * `/calico/v1/policy/tier/<name>/metadata`, fields `order` then `defaultAction`) and the KDD
 * backend's `DefaultTierFields` (no order → 1,000,000, no action → Deny), on the three tiers
 * calico-node creates in the v3.31 fixtures and hand-made ones.
 */
import { describe, expect, it } from 'vitest';
import { resource, SYNCER_FEEDS } from '../../src/registry.js';
import { builtinFeed, MODEL_VERSIONS } from '../../src/server/upstream/feeds.js';
import { encodeValue, entryProjector, PROJECTION_VERSION } from '../../src/server/upstream/projections/index.js';
import type { KubeObject } from '../../src/server/upstream/types.js';
import { libcalicoViewHarness, loadFixture } from './helpers.js';

const TIER = 'tiers.crd.projectcalico.org';
const project = (obj: KubeObject): [string, unknown][] => entryProjector(resource(TIER), 'libcalico').entries(obj, 'unused').map(([k, v]) => [k, v]);
const tier = (name: string, spec: Record<string, unknown>): KubeObject => ({ apiVersion: 'crd.projectcalico.org/v1', kind: 'Tier', metadata: { name }, spec }) as KubeObject;

describe('libcalico tiers', () => {
  it('the default tier (fixture) → /calico/v1/policy/tier/default/metadata {order: 1000000, defaultAction: Deny}', () => {
    expect(project(loadFixture('calico/tier-default.constructed.json'))).toEqual([
      ['/calico/v1/policy/tier/default/metadata', { order: 1_000_000, defaultAction: 'Deny' }],
    ]);
  });

  it('the admin and baseline tiers (fixtures) keep their order and Pass; no tier name is special', () => {
    expect(project(loadFixture('calico/tier-adminnetworkpolicy.constructed.json'))).toEqual([
      ['/calico/v1/policy/tier/adminnetworkpolicy/metadata', { order: 1000, defaultAction: 'Pass' }],
    ]);
    expect(project(loadFixture('calico/tier-baselineadminnetworkpolicy.constructed.json'))).toEqual([
      ['/calico/v1/policy/tier/baselineadminnetworkpolicy/metadata', { order: 10_000_000, defaultAction: 'Pass' }],
    ]);
  });

  it('order and defaultAction Deny; a fractional and a zero order are kept as they are', () => {
    expect(project(tier('security', { order: 100, defaultAction: 'Deny' }))).toEqual([['/calico/v1/policy/tier/security/metadata', { order: 100, defaultAction: 'Deny' }]]);
    expect(project(tier('platform', { order: 22.5, defaultAction: 'Deny' }))).toEqual([['/calico/v1/policy/tier/platform/metadata', { order: 22.5, defaultAction: 'Deny' }]]);
    expect(project(tier('first', { order: 0 }))).toEqual([['/calico/v1/policy/tier/first/metadata', { order: 0, defaultAction: 'Deny' }]]);
  });

  it('defaultAction Pass stays Pass', () => {
    expect(project(tier('app', { order: 300, defaultAction: 'Pass' }))).toEqual([['/calico/v1/policy/tier/app/metadata', { order: 300, defaultAction: 'Pass' }]]);
  });

  it('no defaultAction (or any other value) → Deny; no order → 1000000, as the KDD backend defaults them', () => {
    expect(project(tier('bare', {}))).toEqual([['/calico/v1/policy/tier/bare/metadata', { order: 1_000_000, defaultAction: 'Deny' }]]);
    expect(project({ kind: 'Tier', metadata: { name: 'nospec' } } as KubeObject)).toEqual([['/calico/v1/policy/tier/nospec/metadata', { order: 1_000_000, defaultAction: 'Deny' }]]);
    expect(project(tier('odd', { order: 5, defaultAction: 'Allow' }))).toEqual([['/calico/v1/policy/tier/odd/metadata', { order: 5, defaultAction: 'Deny' }]]);
  });

  it('the value is a map of order then defaultAction (Go struct order), re-writes project to equal bytes', () => {
    const t = loadFixture('calico/tier-default.constructed.json');
    const [[, value]] = project(t) as [[string, Record<string, unknown>]];
    expect(Object.keys(value)).toEqual(['order', 'defaultAction']);
    const rewritten = structuredClone(t);
    rewritten.metadata!.resourceVersion = '999999';
    rewritten.metadata!['generation'] = 4;
    rewritten.metadata!['managedFields'] = [];
    const bytes = (o: KubeObject): string => encodeValue(project(o)[0]?.[1]).toString('hex');
    expect(bytes(rewritten)).toBe(bytes(t));
  });

  it('no v3 Tier resource is sent any more; a tier without a name is an error (counted and skipped)', () => {
    const keys = project(loadFixture('calico/tier-default.constructed.json')).map(([k]) => k);
    expect(keys.some((k) => k.startsWith('/calico/resources/v3/'))).toBe(false);
    expect(() => project({ kind: 'Tier', metadata: {}, spec: {} } as KubeObject)).toThrow(/missing name/);
  });

  it('a delete names the tier key even when the tier was never seen (the view, which never had it, removes nothing and does not fail)', () => {
    const p = entryProjector(resource(TIER), 'libcalico');
    expect(p.deleteKeys(tier('never-seen', { order: 7 }), 'unused')).toEqual(['/calico/v1/policy/tier/never-seen/metadata']);
    expect(p.deleteKeys({ kind: 'Tier', metadata: { name: 'no-spec' } } as KubeObject, 'unused')).toEqual(['/calico/v1/policy/tier/no-spec/metadata']);
    const { view, state } = libcalicoViewHarness(TIER);
    view.upsert(tier('kept', { order: 1 }));
    view.delete(tier('never-seen', {}));
    expect([...state.keys()]).toEqual(['/calico/v1/policy/tier/kept/metadata']);
  });

  it('in a view: an update changes the value under the same key; the delete removes it', () => {
    const { view, state } = libcalicoViewHarness(TIER);
    view.upsert(tier('security', { order: 100, defaultAction: 'Deny' }));
    view.upsert(tier('security', { order: 100, defaultAction: 'Pass' }));
    expect([...state.keys()]).toEqual(['/calico/v1/policy/tier/security/metadata']);
    expect(state.get('/calico/v1/policy/tier/security/metadata')?.equals(encodeValue({ order: 100, defaultAction: 'Pass' }))).toBe(true);
    // DELETED carries the last state, which need not match what was projected.
    view.delete(tier('security', {}));
    expect(state.size).toBe(0);
  });

  it('only the felix feed carries tiers, as only Typha\'s felix syncer lists them', () => {
    const carrying = Object.entries(SYNCER_FEEDS).filter(([, ids]) => (ids as readonly string[]).includes(TIER)).map(([name]) => name);
    expect(carrying).toEqual(['felix']);
    expect(builtinFeed('felix').specs.find((s) => s.resource === TIER)?.projection).toBe('libcalico');
  });

  it('the change of tier keys is a new model and projection version (libcalico.v3, PROJECTION_VERSION 4)', () => {
    expect(PROJECTION_VERSION).toBe(4);
    expect(MODEL_VERSIONS.libcalico).toBe(3);
    expect(builtinFeed('felix').model).toBe('libcalico.v3');
  });
});
