import type { Logger } from '../../log.js';
import { objectKey, type ResourceDef } from '../../registry.js';
import type { FeedDispatcher, FeedState } from './dispatcher.js';
import type { FeedResourceSpec } from './feeds.js';
import type { UpstreamMetrics } from './metrics.js';
import { encodeValue, entryProjector, type EntryProjector } from './projections/index.js';
import { parseFieldSelector, parseLabelSelector, type Matcher } from './selector.js';
import type { KubeObject } from './types.js';
import type { ViewCheckpoint } from '../state/replica-checkpoint.js';

/**
 * The projected state of one resource, shared by every feed that uses it: one "view" per distinct
 * (projection, selectors), each holding key → encoded value. Felix, BGP and tunnel-ip-allocation
 * all read Nodes through one view: one projection, one encode, one map, three feeds.
 *
 * Only real differences leave this class: a value byte-identical to the stored one is dropped
 * (status-only pod updates, node heartbeats, relisted unchanged objects), and a relist's keys that
 * are gone become deletions. Bad objects are counted and skipped, never thrown.
 *
 * An object may project to several keys, or to keys other than its own (the `libcalico`
 * projection: a Node gives host config keys, a WireGuard key and the v3 Node). Each view then
 * remembers which keys each object produced (`owned`, keyed by the object's registry key), so an
 * update that drops a key deletes it and a delete of the object removes exactly its keys — plus
 * the keys the deleted object itself names, so a delete passes through even for keys never seen.
 * An object whose only key is its own registry key is not recorded (the common one-value case
 * costs no memory).
 */
interface View {
  /** Projection and selectors: what makes two feeds' uses of the resource one view. */
  readonly id: string;
  readonly project: EntryProjector;
  readonly match: Matcher | undefined;
  readonly feeds: FeedState[];
  values: Map<string, Buffer>;
  /** Object key → the keys it produced, when they are not just [the object key]. */
  owned: OwnedIndex;
  /** The statics encoded once (seeded by every list). */
  readonly statics: readonly (readonly [string, Buffer])[];
}

const ERROR = Symbol('projection-error');

type Entries = (readonly [string, Buffer])[];

/**
 * Object key → the keys it produced, for objects whose keys are not just their own key; counts
 * the keys it holds, so the number of objects (not keys) stays O(1) to read (the balancer reads
 * the node count from it).
 */
class OwnedIndex {
  private readonly map = new Map<string, string | string[]>();
  /** Keys held by the entries of `map`. */
  keyCount = 0;

  get(objKey: string): string | string[] | undefined {
    return this.map.get(objKey);
  }

  get size(): number {
    return this.map.size;
  }

  set(objKey: string, entries: Entries): void {
    this.setKeys(objKey, entries.map(([k]) => k));
  }

  setKeys(objKey: string, keys: readonly string[]): void {
    this.delete(objKey);
    if (keys.length === 0 || (keys.length === 1 && keys[0] === objKey)) return;
    this.map.set(objKey, keys.length === 1 ? (keys[0] as string) : [...keys]);
    this.keyCount += keys.length;
  }

  entries(): (readonly [string, readonly string[]])[] {
    return [...this.map].map(([k, o]) => [k, typeof o === 'string' ? [o] : o] as const);
  }

  delete(objKey: string): void {
    const o = this.map.get(objKey);
    if (o === undefined) return;
    this.keyCount -= typeof o === 'string' ? 1 : o.length;
    this.map.delete(objKey);
  }
}

function ownedKeys(view: View, objKey: string, values: Map<string, Buffer> = view.values, owned = view.owned): string[] {
  const o = owned.get(objKey);
  if (o === undefined) return values.has(objKey) ? [objKey] : [];
  return typeof o === 'string' ? [o] : o;
}

function setOwned(owned: OwnedIndex, objKey: string, entries: Entries): void {
  owned.set(objKey, entries);
}

export class ListSession {
  readonly next: Map<string, Buffer>[];
  readonly nextOwned: OwnedIndex[];
  constructor(private readonly view: ResourceView, seedStatics = true) {
    this.next = view.views.map((v) => new Map(seedStatics ? v.statics : []));
    this.nextOwned = view.views.map(() => new OwnedIndex());
  }
  add(obj: KubeObject): void {
    this.view.addToSession(this, obj);
  }
  remove(obj: KubeObject): void {
    const key = this.view.keyOf(obj);
    if (key === undefined) return;
    this.view.views.forEach((view, i) => {
      const next = this.next[i] as Map<string, Buffer>;
      const nextOwned = this.nextOwned[i] as OwnedIndex;
      for (const k of ownedKeys(view, key, next, nextOwned)) next.delete(k);
      nextOwned.delete(key);
    });
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
        const project = entryProjector(def, spec.projection);
        const statics = project.statics.map(([k, v]): readonly [string, Buffer] => [k, encodeValue(v)]);
        view = { id, project, match, feeds: [], values: new Map(), owned: new OwnedIndex(), statics };
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
    const ns = obj?.metadata?.namespace;
    // Not well-formed UTF-16 (a lone surrogate, which JSON's \ud800 escape can carry): such a
    // key goes on the wire as U+FFFD, so two keys would arrive as one and every agent's digest
    // would disagree with the replica's for good. Kubernetes names are ASCII; this is garbage.
    if (typeof name !== 'string' || name === '' || !name.isWellFormed() || (typeof ns === 'string' && !ns.isWellFormed())) {
      this.metrics.skipped.inc({ resource: this.def.id, reason: 'malformed' });
      return undefined;
    }
    return objectKey(this.def, typeof ns === 'string' ? ns : undefined, name);
  }

  private compute(view: View, obj: KubeObject, objKey: string): Entries | typeof ERROR {
    try {
      if (view.match && !view.match(obj)) return [];
      return view.project.entries(obj, objKey).map(([k, v]): readonly [string, Buffer] => {
        // A key made of other fields (a node name, an interface) with a lone surrogate: see keyOf.
        if (!k.isWellFormed()) throw new Error(`projected key ${JSON.stringify(k)} is not well-formed UTF-16 (a lone surrogate)`);
        return [k, encodeValue(v)];
      });
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
    const objKey = this.keyOf(obj);
    if (objKey === undefined) return;
    let changed = false;
    let failed = false;
    for (const view of this.views) {
      const entries = this.compute(view, obj, objKey);
      if (entries === ERROR) {
        failed = true;
        continue;
      }
      const now = new Set(entries.map(([k]) => k));
      for (const k of ownedKeys(view, objKey)) if (!now.has(k)) changed = this.set(view, k, null) || changed;
      for (const [k, v] of entries) changed = this.set(view, k, v) || changed;
      setOwned(view.owned, objKey, entries);
    }
    if (failed) this.projectionFailed(objKey);
    if (!changed && !failed) this.metrics.unchanged.inc({ resource: this.def.id });
  }

  /** DELETED: the keys the object produced, and those its last state names. */
  delete(obj: KubeObject): void {
    const objKey = this.keyOf(obj);
    if (objKey === undefined) return;
    for (const view of this.views) {
      const keys = new Set(ownedKeys(view, objKey));
      try {
        for (const k of view.project.deleteKeys(obj, objKey)) keys.add(k);
      } catch {
        // The keys it was seen with are enough; a malformed final state must not block the delete.
      }
      for (const k of keys) this.set(view, k, null);
      view.owned.delete(objKey);
    }
  }

  beginList(): ListSession {
    return new ListSession(this);
  }

  addToSession(session: ListSession, obj: KubeObject): void {
    const objKey = this.keyOf(obj);
    if (objKey === undefined) return;
    this.views.forEach((view, i) => {
      const next = session.next[i] as Map<string, Buffer>;
      const nextOwned = session.nextOwned[i] as OwnedIndex;
      // An object again in one list (a WatchList's live event before its end bookmark) replaces
      // its earlier keys; what the list held for it is kept aside for a projection failure (below).
      // (Allocated only then: a list of 150,000 objects passes here once per object and view.)
      let listed: Entries | undefined;
      for (const k of ownedKeys(view, objKey, next, nextOwned)) {
        const v = next.get(k);
        if (v !== undefined) (listed ??= []).push([k, v]);
        next.delete(k);
      }
      const entries = this.compute(view, obj, objKey);
      if (entries === ERROR) {
        // Keep what we had: a projection bug must not turn into a deletion on every relist. But
        // only the keys the object still names: a pod deleted and created again on another node
        // during a watch gap has the same object key, and its old node's endpoint, kept here, was
        // never deleted (its IP and labels stayed in every node's sets). When even its keys cannot
        // be told, everything is kept, as before.
        this.projectionFailed(objKey);
        let names: Set<string> | undefined;
        try {
          const k = view.project.deleteKeys(obj, objKey);
          // Empty: the projection cannot name its keys without converting (ipamblocks, services,
          // ...), not "it names none".
          names = k.length > 0 ? new Set(k) : undefined;
        } catch {
          names = undefined;
        }
        // The last good value is the list's own when it holds one (an initial event before a
        // live one that fails): the state before the list is older than it, and the first list
        // has none at all (the object vanished from agents while valid). Else the state's.
        const kept: Entries = [];
        const last: Entries = listed ?? ownedKeys(view, objKey).flatMap((k): Entries => {
          const prev = view.values.get(k);
          return prev === undefined ? [] : [[k, prev]];
        });
        for (const [k, v] of last) if (names === undefined || names.has(k)) kept.push([k, v]);
        for (const [k, v] of kept) next.set(k, v);
        setOwned(nextOwned, objKey, kept);
        return;
      }
      for (const [k, v] of entries) {
        const prev = view.values.get(k);
        next.set(k, prev !== undefined && prev.equals(v) ? prev : v);
      }
      setOwned(nextOwned, objKey, entries);
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
      view.owned = session.nextOwned[i] as OwnedIndex;
    });
    this.metrics.objects.set({ resource: this.def.id }, this.size);
  }

  /**
   * The views' state for a replica checkpoint (state/replica-checkpoint.ts). Copies of the maps'
   * entries, taken in one synchronous call, so they stand for one resourceVersion: the caller's.
   * The value buffers are shared, not copied (stored values are never mutated).
   */
  exportViews(): ViewCheckpoint[] {
    return this.views.map((v) => ({ id: v.id, values: [...v.values], owned: v.owned.entries() }));
  }

  /**
   * Replaces the state with a checkpoint's, as a completed list would (differences queued to the
   * feeds). Returns false, changing nothing, when the checkpoint's views are not exactly this
   * resource's (the feeds' projections or selectors changed): such a state cannot be trusted.
   */
  restore(saved: readonly ViewCheckpoint[]): boolean {
    if (saved.length !== this.views.length || !this.views.every((v, i) => saved[i]?.id === v.id)) return false;
    const session = new ListSession(this, false);
    saved.forEach((sv, i) => {
      const next = session.next[i] as Map<string, Buffer>;
      for (const [k, v] of sv.values) next.set(k, v);
      const owned = session.nextOwned[i] as OwnedIndex;
      for (const [objKey, keys] of sv.owned) owned.setKeys(objKey, keys);
    });
    this.commit(session);
    return true;
  }

  /** The resource is gone (CRD uninstalled): everything known becomes a deletion, statics too. */
  clear(): void {
    this.commit(new ListSession(this, false));
  }

  /**
   * Objects with at least one entry, in the largest view (views of one resource overlap): not
   * keys — a Node is one object however many libcalico keys it gives (the balancer's node count).
   */
  get size(): number {
    return this.views.reduce((n, v) => {
      const statics = v.statics.reduce((c, [k]) => c + (v.values.has(k) ? 1 : 0), 0);
      return Math.max(n, v.owned.size + v.values.size - v.owned.keyCount - statics);
    }, 0);
  }

  /** Bytes of stored values (for the memory figure). */
  get valueBytes(): number {
    let n = 0;
    for (const v of this.views) for (const b of v.values.values()) n += b.length;
    return n;
  }
}
