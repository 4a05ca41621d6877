import type { Logger } from '../../log.js';
import { objectKey, type ResourceDef } from '../../registry.js';
import type { FeedDispatcher, FeedState } from './dispatcher.js';
import type { FeedResourceSpec } from './feeds.js';
import type { UpstreamMetrics } from './metrics.js';
import { encodeValue, projector, type Projector } from './projections/index.js';
import { parseFieldSelector, parseLabelSelector, type Matcher } from './selector.js';
import type { KubeObject } from './types.js';

/**
 * The projected state of one resource, shared by every feed that uses it: one "view" per distinct
 * (projection, selectors), each holding key → encoded value. Felix, BGP and tunnel-ip-allocation
 * all read Nodes through one view: one projection, one encode, one map, three feeds.
 *
 * Only real differences leave this class: a value byte-identical to the stored one is dropped
 * (status-only pod updates, node heartbeats, relisted unchanged objects), and a relist's keys that
 * are gone become deletions. Bad objects are counted and skipped, never thrown.
 */
interface View {
  readonly project: Projector;
  readonly match: Matcher | undefined;
  readonly feeds: FeedState[];
  values: Map<string, Buffer>;
}

const ERROR = Symbol('projection-error');

export class ListSession {
  readonly next: Map<string, Buffer>[];
  constructor(private readonly view: ResourceView) {
    this.next = view.views.map(() => new Map());
  }
  add(obj: KubeObject): void {
    this.view.addToSession(this, obj);
  }
  remove(obj: KubeObject): void {
    const key = this.view.keyOf(obj);
    if (key !== undefined) for (const m of this.next) m.delete(key);
  }
  get size(): number {
    return this.next.reduce((n, m) => n + m.size, 0);
  }
}

export class ResourceView {
  readonly views: View[] = [];

  constructor(
    readonly def: ResourceDef,
    specs: readonly { spec: FeedResourceSpec; feed: FeedState }[],
    private readonly dispatcher: FeedDispatcher,
    private readonly metrics: UpstreamMetrics,
    private readonly logger: Logger,
  ) {
    const byId = new Map<string, View>();
    for (const { spec, feed } of specs) {
      const id = JSON.stringify([spec.projection, spec.labelSelector ?? '', spec.fieldSelector ?? '']);
      let view = byId.get(id);
      if (!view) {
        const label = spec.labelSelector ? parseLabelSelector(spec.labelSelector) : undefined;
        const field = spec.fieldSelector ? parseFieldSelector(spec.fieldSelector) : undefined;
        const match: Matcher | undefined = label && field ? (o) => label(o) && field(o) : (label ?? field);
        view = { project: projector(def, spec.projection), match, feeds: [], values: new Map() };
        byId.set(id, view);
        this.views.push(view);
      }
      view.feeds.push(feed);
    }
  }

  /** The store key, or undefined (counted) for an object without a name or of another kind. */
  keyOf(obj: KubeObject): string | undefined {
    // Watch events carry `kind`; built-in list items do not. A Node in the pods stream is a server
    // bug that would otherwise project into a bogus key.
    if (obj?.kind !== undefined && obj.kind !== this.def.kind) {
      this.metrics.skipped.inc({ resource: this.def.id, reason: 'wrong-kind' });
      return undefined;
    }
    const name = obj?.metadata?.name;
    if (typeof name !== 'string' || name === '') {
      this.metrics.skipped.inc({ resource: this.def.id, reason: 'malformed' });
      return undefined;
    }
    const ns = obj.metadata?.namespace;
    return objectKey(this.def, typeof ns === 'string' ? ns : undefined, name);
  }

  private compute(view: View, obj: KubeObject): Buffer | null | typeof ERROR {
    try {
      if (view.match && !view.match(obj)) return null;
      const projected = view.project(obj);
      return projected === null || projected === undefined ? null : encodeValue(projected);
    } catch (err) {
      this.lastError = err;
      return ERROR;
    }
  }

  private lastError: unknown;

  private projectionFailed(key: string): void {
    this.metrics.skipped.inc({ resource: this.def.id, reason: 'projection' });
    const err = this.lastError;
    this.logger.warn({ code: 'CATTAIL_UPSTREAM_MALFORMED_OBJECT', resource: this.def.id, key, err }, 'object skipped: projection failed');
  }

  private set(view: View, key: string, value: Buffer | null): boolean {
    const prev = view.values.get(key);
    if (value === null) {
      if (prev === undefined) return false;
      view.values.delete(key);
    } else {
      if (prev !== undefined && prev.equals(value)) return false;
      view.values.set(key, value);
    }
    for (const f of view.feeds) this.dispatcher.queue(f, key, value);
    return true;
  }

  /** ADDED / MODIFIED. */
  upsert(obj: KubeObject): void {
    const key = this.keyOf(obj);
    if (key === undefined) return;
    let changed = false;
    let failed = false;
    for (const view of this.views) {
      const value = this.compute(view, obj);
      if (value === ERROR) {
        failed = true;
        continue;
      }
      changed = this.set(view, key, value) || changed;
    }
    if (failed) this.projectionFailed(key);
    if (!changed && !failed) this.metrics.unchanged.inc({ resource: this.def.id });
  }

  /** DELETED. */
  delete(obj: KubeObject): void {
    const key = this.keyOf(obj);
    if (key === undefined) return;
    for (const view of this.views) this.set(view, key, null);
  }

  beginList(): ListSession {
    return new ListSession(this);
  }

  addToSession(session: ListSession, obj: KubeObject): void {
    const key = this.keyOf(obj);
    if (key === undefined) return;
    this.views.forEach((view, i) => {
      const next = session.next[i] as Map<string, Buffer>;
      const value = this.compute(view, obj);
      const prev = view.values.get(key);
      if (value === ERROR) {
        // Keep what we had: a projection bug must not turn into a deletion on every relist.
        this.projectionFailed(key);
        if (prev !== undefined) next.set(key, prev);
      } else if (value !== null) {
        next.set(key, prev !== undefined && prev.equals(value) ? prev : value);
      } else {
        next.delete(key);
      }
    });
  }

  /** Replaces the state with the session's: only differences are queued; missing keys are deleted. */
  commit(session: ListSession): void {
    this.views.forEach((view, i) => {
      const next = session.next[i] as Map<string, Buffer>;
      for (const [key, value] of next) {
        const prev = view.values.get(key);
        if (prev === undefined || (prev !== value && !prev.equals(value))) for (const f of view.feeds) this.dispatcher.queue(f, key, value);
      }
      for (const key of view.values.keys()) if (!next.has(key)) for (const f of view.feeds) this.dispatcher.queue(f, key, null);
      view.values = next;
    });
    this.metrics.objects.set({ resource: this.def.id }, this.size);
  }

  /** The resource is gone (CRD uninstalled): everything known becomes a deletion. */
  clear(): void {
    this.commit(this.beginList());
  }

  /** Distinct keys across views (the largest view; views of one resource overlap). */
  get size(): number {
    return this.views.reduce((n, v) => Math.max(n, v.values.size), 0);
  }

  /** Bytes of stored values (for the memory figure). */
  get valueBytes(): number {
    let n = 0;
    for (const v of this.views) for (const b of v.values.values()) n += b.length;
    return n;
  }
}
