import { KubeConfig } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config/load.js';
import { CattailError } from '../../src/errors.js';
import { SYNCER_FEEDS } from '../../src/registry.js';
import { serveOptions } from '../../src/server/options.js';
import { builtinFeed, createUpstream, resolveFeeds, upstreamOptionsFromConfig } from '../../src/server/upstream/index.js';
import { parseFieldSelector, parseLabelSelector } from '../../src/server/upstream/selector.js';

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return CattailError.is(err) ? err.code : 'not-coded';
  }
  return undefined;
}

describe('feeds', () => {
  it('builds the four built-in feeds from the registry', () => {
    const feeds = resolveFeeds();
    expect(feeds.map((f) => f.name)).toEqual(Object.keys(SYNCER_FEEDS));
    expect(builtinFeed('bgp').resources).toEqual(SYNCER_FEEDS.bgp);
    expect(new Set(feeds.map((f) => f.projectionVersion)).size).toBe(4);
    expect(builtinFeed('felix').projectionVersion).toBe(builtinFeed('felix').projectionVersion);
  });

  it('rejects bad feed declarations with a coded error naming the feed', () => {
    expect(code(() => resolveFeeds(['felx']))).toBe('CATTAIL_UPSTREAM_FEED_INVALID');
    expect(code(() => resolveFeeds([], [{ name: 'x', resources: [{ resource: 'podz' }] }]))).toBe('CATTAIL_UPSTREAM_FEED_INVALID');
    expect(code(() => resolveFeeds([], [{ name: 'x', resources: [{ resource: 'pods' }, { resource: 'pods' }] }]))).toBe('CATTAIL_UPSTREAM_FEED_INVALID');
    expect(code(() => resolveFeeds([], [{ name: 'x', resources: [{ resource: 'pods', projection: 'slim' }] }]))).toBe('CATTAIL_UPSTREAM_FEED_INVALID');
    expect(code(() => resolveFeeds([], [{ name: 'x', resources: [{ resource: 'pods', labelSelector: 'a in (b' }] }]))).toBe('CATTAIL_UPSTREAM_FEED_INVALID');
    expect(code(() => resolveFeeds([], [{ name: 'felix', resources: [{ resource: 'pods' }] }]))).toBe('CATTAIL_UPSTREAM_FEED_INVALID');
    expect(code(() => resolveFeeds([], []))).toBe('CATTAIL_UPSTREAM_FEED_INVALID');
    expect(code(() => createUpstream({ replicaId: 'r', feeds: ['felix'], env: {} }))).toBe('CATTAIL_UPSTREAM_CONFIG');
    const plain = new KubeConfig();
    plain.loadFromClusterAndUser({ name: 'c', server: 'http://127.0.0.1:1', skipTLSVerify: false }, { name: 'u' });
    expect(code(() => createUpstream({ replicaId: 'r', kubeConfig: plain }))).toBe('CATTAIL_UPSTREAM_CONFIG');
  });

  it('a custom feed definition change changes its projection version', () => {
    const a = resolveFeeds([], [{ name: 'x', resources: [{ resource: 'pods', labelSelector: 'app=web' }] }])[0];
    const b = resolveFeeds([], [{ name: 'x', resources: [{ resource: 'pods', labelSelector: 'app=db' }] }])[0];
    expect(a?.projectionVersion).not.toBe(b?.projectionVersion);
  });

  it('reads feeds and custom feeds from the serve configuration', () => {
    const file = 'feeds: [felix]\ncustomFeeds:\n  - name: web-pods\n    resources:\n      - resource: pods\n        labelSelector: app=web\n        projection: strip\nupstreamStaleAfterMs: 60000\n';
    const { config } = resolveConfig(serveOptions, { configFile: '/etc/cattail.yaml', readFile: () => file });
    const o = upstreamOptionsFromConfig(config);
    expect(o.feeds).toEqual(['felix']);
    expect(o.upstreamStaleAfterMs).toBe(60_000);
    expect(resolveFeeds(o.feeds, o.customFeeds).map((f) => f.name)).toEqual(['felix', 'web-pods']);
  });
});

describe('selectors', () => {
  const obj = (labels: Record<string, string>, nodeName = 'n1') => ({ metadata: { name: 'x', labels }, spec: { nodeName } });
  it('label selectors: =, ==, !=, in, notin, exists, !exists', () => {
    const m = parseLabelSelector('app in (web,api), tier!=db, env==prod, team, !legacy');
    expect(m(obj({ app: 'web', env: 'prod', team: 'a' }))).toBe(true);
    expect(m(obj({ app: 'web', env: 'prod', team: 'a', tier: 'db' }))).toBe(false);
    expect(m(obj({ app: 'db', env: 'prod', team: 'a' }))).toBe(false);
    expect(m(obj({ app: 'web', env: 'prod' }))).toBe(false);
    expect(m(obj({ app: 'web', env: 'prod', team: 'a', legacy: '' }))).toBe(false);
    expect(parseLabelSelector('a notin (x)')(obj({}))).toBe(true);
  });
  it('label selectors see an object\'s own labels only: keys named like Object properties, and labels that are no map', () => {
    // Before, `key in labels` found inherited names: `toString` matched every object.
    expect(parseLabelSelector('toString')(obj({}))).toBe(false);
    expect(parseLabelSelector('!constructor')(obj({}))).toBe(true);
    expect(parseLabelSelector('constructor notin (x)')(obj({}))).toBe(true);
    expect(parseLabelSelector('constructor in (x)')(obj({ constructor: 'x' }))).toBe(true);
    expect(parseLabelSelector('valueOf=1')(obj({}))).toBe(false);
    expect(parseLabelSelector('hasOwnProperty')(obj({ hasOwnProperty: '' }))).toBe(true);
    // A broken API server's labels that are not a map: no labels, not a TypeError.
    const broken = { kind: 'Pod', metadata: { name: 'p', labels: 'app=web' } } as unknown as Parameters<ReturnType<typeof parseLabelSelector>>[0];
    expect(parseLabelSelector('!app')(broken)).toBe(true);
    expect(parseLabelSelector('app')(broken)).toBe(false);
  });
  it('field selectors on dotted paths', () => {
    expect(parseFieldSelector('spec.nodeName=n1,metadata.name!=y')(obj({}))).toBe(true);
    expect(parseFieldSelector('spec.nodeName=n2')(obj({}))).toBe(false);
  });
});
