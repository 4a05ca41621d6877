import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLogger } from '../../src/log.js';
import { FeedStore } from '../../src/snapshot/index.js';
import { resource } from '../../src/registry.js';
import type { FeedDispatcher, FeedState } from '../../src/server/upstream/dispatcher.js';
import { parseJson } from '../../src/server/upstream/json.js';
import { UpstreamMetrics } from '../../src/server/upstream/metrics.js';
import { ResourceView } from '../../src/server/upstream/resource-view.js';
import { fixturesDir } from '../support/fixtures.js';
import { RESOURCES } from '../../src/registry.js';
import type { FeedBatch, FeedSink } from '../../src/server/pipeline/seams.js';
import { builtinFeed, customFeed, type FeedSpec } from '../../src/server/upstream/feeds.js';
import { encodeValue, entryProjector } from '../../src/server/upstream/projections/index.js';
import { parseFieldSelector, parseLabelSelector } from '../../src/server/upstream/selector.js';
import { objectKey } from '../../src/registry.js';
import type { KubeObject } from '../../src/server/upstream/types.js';

/** A sink that applies batches to a Map per feed, as a store would, and keeps every batch. */
export class RecordingSink implements FeedSink {
  readonly state = new Map<string, Map<string, Buffer>>();
  readonly batches: { feed: string; batch: FeedBatch }[] = [];
  readonly status = new Map<string, string>();
  readonly stale = new Map<string, boolean>();
  /** The real store per feed, fed the same batches: revisions, copies, watermark regressions. */
  readonly stores = new Map<string, FeedStore>();
  readonly storeTotals = { copied: 0, watermarkRegressions: 0 };
  private nowMs = 0;

  onBatch(feed: string, batch: FeedBatch): void {
    this.batches.push({ feed, batch });
    let store = this.stores.get(feed);
    if (!store) this.stores.set(feed, (store = new FeedStore({ feed })));
    const r = store.apply(batch, ++this.nowMs);
    this.storeTotals.copied += r.copied;
    this.storeTotals.watermarkRegressions += r.watermarkRegressions;
    let m = this.state.get(feed);
    if (!m) this.state.set(feed, (m = new Map()));
    for (const u of batch.updates) {
      if (u.value === null) m.delete(u.key);
      else m.set(u.key, u.value);
    }
    if (batch.status) this.status.set(feed, batch.status);
    if (batch.stale !== undefined) this.stale.set(feed, batch.stale);
  }

  revision(feed: string): number {
    return this.stores.get(feed)?.stats().revision ?? 0;
  }

  updates(feed?: string): number {
    return this.batches.filter((b) => feed === undefined || b.feed === feed).reduce((n, b) => n + b.batch.updates.length, 0);
  }
}

/** The expected content of a feed: the server's objects through the feed's projections. */
export function expectedState(spec: FeedSpec, objects: (resource: string) => KubeObject[]): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const s of spec.specs) {
    const def = RESOURCES.find((r) => r.id === s.resource);
    if (!def) throw new Error(s.resource);
    const project = entryProjector(def, s.projection);
    for (const [k, v] of project.statics) out.set(k, encodeValue(v));
    const label = s.labelSelector ? parseLabelSelector(s.labelSelector) : undefined;
    const field = s.fieldSelector ? parseFieldSelector(s.fieldSelector) : undefined;
    for (const o of objects(s.resource)) {
      if ((label && !label(o)) || (field && !field(o))) continue;
      for (const [k, v] of project.entries(o, objectKey(def, o.metadata?.namespace, o.metadata?.name ?? ''))) out.set(k, encodeValue(v));
    }
  }
  return out;
}

export function sameState(actual: Map<string, Buffer> | undefined, expected: Map<string, Buffer>): boolean {
  const a = actual ?? new Map<string, Buffer>();
  if (a.size !== expected.size) return false;
  for (const [k, v] of expected) if (!a.get(k)?.equals(v)) return false;
  return true;
}

export { builtinFeed, customFeed };

let seq = 0;
export function pod(name: string, opts: { ns?: string; node?: string; ip?: string; labels?: Record<string, string>; phase?: string; ready?: boolean; restarts?: number } = {}): KubeObject & { metadata: { name: string } } {
  seq++;
  return {
    metadata: {
      name,
      namespace: opts.ns ?? 'default',
      uid: `uid-${name}`,
      creationTimestamp: '2026-01-01T00:00:00Z',
      labels: opts.labels ?? { app: 'web' },
      managedFields: [{ manager: 'kubelet', operation: 'Update', time: `2026-01-01T00:00:${String(seq % 60).padStart(2, '0')}Z` }],
    },
    spec: { nodeName: opts.node ?? 'node-1', serviceAccountName: 'default', containers: [{ name: 'c', image: 'nginx', ports: [{ name: 'http', containerPort: 80, protocol: 'TCP' }] }] },
    status: {
      phase: opts.phase ?? 'Running',
      podIP: opts.ip ?? '10.0.0.1',
      podIPs: [{ ip: opts.ip ?? '10.0.0.1' }],
      conditions: [{ type: 'Ready', status: opts.ready === false ? 'False' : 'True', lastTransitionTime: `2026-01-01T00:00:${String(seq % 60).padStart(2, '0')}Z` }],
      containerStatuses: [{ name: 'c', ready: opts.ready !== false, restartCount: opts.restarts ?? 0 }],
    },
  };
}

export function node(name: string, opts: { heartbeat?: string; labels?: Record<string, string>; ipv4?: string } = {}): KubeObject & { metadata: { name: string } } {
  return {
    metadata: {
      name,
      labels: opts.labels ?? { 'kubernetes.io/hostname': name },
      annotations: { 'projectcalico.org/IPv4Address': opts.ipv4 ?? '10.1.0.1/24', 'node.alpha.kubernetes.io/ttl': '0' },
    },
    spec: { podCIDR: '192.168.1.0/24', podCIDRs: ['192.168.1.0/24'] },
    status: {
      addresses: [{ type: 'InternalIP', address: '10.1.0.1' }],
      conditions: [{ type: 'Ready', status: 'True', lastHeartbeatTime: opts.heartbeat ?? '2026-01-01T00:00:00Z' }],
    },
  };
}

/** A fixture object (test/fixtures/objects/<rel>), parsed as the upstream parses it. */
export function loadFixture(rel: string): KubeObject {
  return parseJson(readFileSync(join(fixturesDir(), 'objects', rel), 'utf8')) as KubeObject;
}

/**
 * A felix-feed resource view of one resource, its feed state a plain Map (what the store would
 * hold): for tests of several-keys-per-object bookkeeping (updates that drop keys, deletes).
 */
export function libcalicoViewHarness(id: string): { view: ResourceView; state: Map<string, Buffer> } {
  const state = new Map<string, Buffer>();
  const dispatcher = {
    queue: (_f: FeedState, key: string, value: Buffer | null) => (value === null ? state.delete(key) : state.set(key, value)),
  } as unknown as FeedDispatcher;
  const feed = { spec: builtinFeed('felix') } as unknown as FeedState;
  const spec = builtinFeed('felix').specs.find((s) => s.resource === id);
  if (spec === undefined) throw new Error(`${id} is not in the felix feed`);
  const view = new ResourceView(resource(id), [{ spec, feed }], dispatcher, new UpstreamMetrics(), createLogger('silent'));
  return { view, state };
}
