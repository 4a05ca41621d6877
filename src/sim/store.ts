/**
 * The simulator's object store: one global resourceVersion counter (etcd's revision) and, per
 * resource, a sorted map of stored objects plus an event history.
 *
 * Stored objects are immutable records holding their wire bytes, so a snapshot is just an array
 * of references; lists and initial watch events never re-encode. A snapshot at an older RV is
 * rebuilt from the current state by undoing the history's newer events, which is how continue
 * tokens stay consistent across pages without keeping old copies of the data.
 */
import btreeModule from 'sorted-btree';
import type { ResourceDef } from '../registry.js';
import { RESOURCES } from '../registry.js';
import type { Clock } from '../clock.js';
import { builtinPrefix, encodeText, Slab, withResourceVersion, type JsonObject } from './encode.js';
import { History, type EventType, type HistoryOptions, type SimEvent } from './history.js';
import type { RenderedObject } from './generator.js';
import type { Labels } from './selectors.js';
import { expired } from './status.js';

// sorted-btree ships CommonJS with a default export; under NodeNext the class sits on `.default`.
const BTree: typeof btreeModule.default = (btreeModule as unknown as { default?: typeof btreeModule.default }).default ?? (btreeModule as unknown as typeof btreeModule.default);
type Tree = InstanceType<typeof btreeModule.default<string, StoredObject>>;

export interface StoredObject {
  /** `ns/name` for namespaced resources, `name` otherwise (the etcd key suffix; continue tokens use it). */
  readonly key: string;
  readonly namespace: string;
  readonly name: string;
  readonly rv: number;
  /** The full object as sent in watch events (kind/apiVersion included). */
  readonly bytes: Buffer;
  readonly labels: Labels;
  readonly nodeName: string | undefined;
}

function storeKey(def: ResourceDef, namespace: string, name: string): string {
  return def.namespaced ? `${namespace}/${name}` : name;
}

export class ResourceStore {
  readonly tree: Tree = new BTree<string, StoredObject>();
  readonly listeners = new Set<(ev: SimEvent) => void>();
  readonly history: History;
  /** For built-ins: the `{"kind":..,"apiVersion":..,` prefix stripped from list items. */
  readonly prefix: Buffer | undefined;
  /** RV of this resource's latest event (or of its bulk load). */
  lastRv: number;

  constructor(
    readonly def: ResourceDef,
    historyOpts: HistoryOptions,
    rv: number,
  ) {
    this.history = new History(historyOpts, rv);
    this.prefix = def.encoding === 'builtin' ? builtinPrefix(def) : undefined;
    this.lastRv = rv;
  }
}

/** A copy of the store's state for restore() (faults.restore). */
export interface StoreBackup {
  readonly rv: number;
  readonly resources: ReadonlyMap<string, { readonly objects: readonly StoredObject[]; readonly lastRv: number }>;
}

/** A consistent, key-sorted view of one resource at one RV. */
export interface Snapshot {
  readonly rv: number;
  readonly items: readonly StoredObject[];
}

export interface StoreOptions extends HistoryOptions {
  clock: Clock;
  /** Snapshots kept for continue pages (LRU). */
  snapshotCacheSize: number;
}

function labelsOf(meta: JsonObject): Labels {
  const l = meta['labels'];
  return l !== null && typeof l === 'object' ? (l as Labels) : {};
}

export class Store {
  private rvCounter = 0;
  private readonly resources = new Map<string, ResourceStore>();
  private readonly snapshots = new Map<string, Snapshot>();
  private readonly rvWaiters = new Set<() => void>();

  constructor(
    private readonly opts: StoreOptions,
    defs: readonly ResourceDef[] = RESOURCES,
  ) {
    for (const def of defs) this.resources.set(def.id, new ResourceStore(def, opts, 0));
  }

  get currentRv(): number {
    return this.rvCounter;
  }

  resource(id: string): ResourceStore | undefined {
    return this.resources.get(id);
  }

  all(): IterableIterator<ResourceStore> {
    return this.resources.values();
  }

  get(def: ResourceDef, namespace: string, name: string): StoredObject | undefined {
    return this.resources.get(def.id)?.tree.get(storeKey(def, namespace, name));
  }

  /**
   * Starts serving a resource (a CRD installed): empty, its history starting now, so a watch
   * from an older resourceVersion gets 410 as on a real API server. No-op when served.
   */
  addResource(def: ResourceDef): void {
    if (!this.resources.has(def.id)) this.resources.set(def.id, new ResourceStore(def, this.opts, this.rvCounter));
  }

  /**
   * Stops serving a resource (a CRD deleted): as the API server's finalizer does, every object is
   * deleted first, one DELETED event at a new resourceVersion each; then the resource is gone
   * (its routes answer 404). The caller ends its watches. Returns the objects deleted.
   */
  removeResource(def: ResourceDef): number {
    const rs = this.resources.get(def.id);
    if (rs === undefined) return 0;
    const all = [...rs.tree.values()];
    for (const o of all) this.delete(def, o.namespace, o.name);
    this.resources.delete(def.id);
    for (const k of [...this.snapshots.keys()]) if (k.startsWith(`${def.id}@`)) this.snapshots.delete(k);
    return all.length;
  }

  private rs(def: ResourceDef): ResourceStore {
    const rs = this.resources.get(def.id);
    if (!rs) throw new RangeError(`resource ${def.id} is not served`);
    return rs;
  }

  private slab: Slab | undefined;

  private record(def: ResourceDef, obj: JsonObject, rv: number, bulk: boolean): StoredObject {
    const meta = (obj['metadata'] ?? {}) as JsonObject;
    meta['resourceVersion'] = String(rv);
    const name = String(meta['name'] ?? '');
    const namespace = def.namespaced ? String(meta['namespace'] ?? '') : '';
    const spec = obj['spec'] as JsonObject | undefined;
    const nodeName = def.id === 'pods' && typeof spec?.['nodeName'] === 'string' ? spec['nodeName'] : undefined;
    const text = encodeText(def, obj);
    const bytes = bulk ? (this.slab ??= new Slab()).put(text) : Buffer.from(text);
    return { key: storeKey(def, namespace, name), namespace, name, rv, bytes, labels: labelsOf(meta), nodeName };
  }

  /**
   * Writes an object (create or replace). Takes ownership of `obj` (stamps its resourceVersion).
   * `bulk` skips history and watchers: used only for the initial cluster, before anything listens.
   */
  put(def: ResourceDef, obj: JsonObject, bulk = false): StoredObject {
    const rs = this.rs(def);
    const rv = ++this.rvCounter;
    const stored = this.record(def, obj, rv, bulk);
    const prev = rs.tree.get(stored.key);
    rs.tree.set(stored.key, stored);
    if (bulk) {
      // The cache starts after the data existed: startSim resets every history after the load.
      rs.lastRv = rv;
    } else this.emit(rs, prev === undefined ? 'ADDED' : 'MODIFIED', stored, prev);
    return stored;
  }

  /** Bulk-loads a pre-rendered object (generator pods): no parse, no re-encode. */
  putRendered(def: ResourceDef, r: RenderedObject): StoredObject {
    const rs = this.rs(def);
    const rv = ++this.rvCounter;
    const bytes = (this.slab ??= new Slab()).putChunks(r.chunks(String(rv)));
    const namespace = def.namespaced ? r.namespace : '';
    const stored: StoredObject = { key: storeKey(def, namespace, r.name), namespace, name: r.name, rv, bytes, labels: r.labels, nodeName: def.id === 'pods' ? r.nodeName : undefined };
    rs.tree.set(stored.key, stored);
    rs.lastRv = rv;
    return stored;
  }

  /** Deletes an object; returns its last state stamped with the delete's RV. */
  delete(def: ResourceDef, namespace: string, name: string): StoredObject | undefined {
    const rs = this.rs(def);
    const key = storeKey(def, namespace, name);
    const prev = rs.tree.get(key);
    if (prev === undefined) return undefined;
    const rv = ++this.rvCounter;
    const gone: StoredObject = { ...prev, rv, bytes: withResourceVersion(prev.bytes, String(rv)) };
    rs.tree.delete(key);
    this.emit(rs, 'DELETED', gone, prev);
    return gone;
  }

  private emit(rs: ResourceStore, type: EventType, object: StoredObject, prev: StoredObject | undefined): void {
    const ev: SimEvent = { type, rv: object.rv, object, prev, atMs: this.opts.clock.monotonic() };
    rs.lastRv = ev.rv;
    rs.history.push(ev);
    for (const l of [...rs.listeners]) l(ev);
    for (const w of [...this.rvWaiters]) w();
  }

  /** What restore() takes back to: every served resource's objects and the revision (objects are immutable: shared, not copied). */
  backup(): StoreBackup {
    return { rv: this.rvCounter, resources: new Map([...this.resources].map(([id, rs]) => [id, { objects: [...rs.tree.values()], lastRv: rs.lastRv }])) };
  }

  /**
   * etcd restored from `b` without a revision bump: every resource served then holds its objects
   * of then, the revision goes back to `b.rv`, and histories are empty from it (a resource added
   * since is emptied, as a CRD the backup does not know). Watches are the caller's to end (the
   * API server restarts: faults.restore).
   */
  restore(b: StoreBackup): void {
    this.rvCounter = b.rv;
    this.snapshots.clear();
    for (const [id, rs] of this.resources) {
      const saved = b.resources.get(id);
      rs.tree.clear();
      for (const o of saved?.objects ?? []) rs.tree.set(o.key, o);
      rs.lastRv = saved?.lastRv ?? b.rv;
      rs.history.reset(b.rv);
    }
  }

  /** Ends a bulk load: later writes get their own Buffers, so deleted objects free their memory. */
  endBulk(): void {
    this.slab = undefined;
    for (const rs of this.resources.values()) rs.history.reset(this.rvCounter);
  }

  /** Resolves true once currentRv >= rv, false after `timeoutMs` (clock time). */
  waitForRv(rv: number, timeoutMs: number): Promise<boolean> {
    if (this.rvCounter >= rv) return Promise.resolve(true);
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.rvCounter >= rv) done(true);
      };
      const done = (ok: boolean): void => {
        this.rvWaiters.delete(check);
        timer.cancel();
        resolve(ok);
      };
      const timer = this.opts.clock.setTimeout(() => done(false), timeoutMs);
      this.rvWaiters.add(check);
    });
  }

  /** Raises every resource's floor to `rv` (default: current): older RVs answer 410. */
  compact(rv = this.rvCounter): number {
    const target = Math.min(rv, this.rvCounter);
    for (const rs of this.resources.values()) rs.history.compact(target);
    for (const [k, s] of this.snapshots) if (s.rv < target) this.snapshots.delete(k);
    return target;
  }

  /**
   * The resource's state at `rv` (<= currentRv), sorted by key. Throws 410 Expired when the
   * history no longer reaches back to `rv`. Cached (LRU) so that paging through a large list
   * builds the snapshot once.
   */
  etcdSnapshot(def: ResourceDef, rv?: number): Snapshot {
    // A revision etcd has not reached (a continue token from before a restore without a revision
    // bump): etcd refuses it; answered as an expired token, whose fresh token starts again.
    if (rv !== undefined && rv > this.rvCounter) throw expired(`resource version ${rv} is ahead of the store's ${this.rvCounter}`);
    return this.snapshot(def, rv ?? this.currentRv);
  }

  snapshot(def: ResourceDef, rv: number): Snapshot {
    const rs = this.rs(def);
    // Compacted (or never held): 410 even when the resource did not change since, as etcd answers.
    if (rv < rs.history.floorRv) throw expired(`too old resource version: ${rv} (${rs.history.floorRv})`);
    // Nothing changed this resource after rv: the current state is the state at rv.
    const effective = rv >= rs.lastRv ? rs.lastRv : rv;
    const cacheKey = `${def.id}@${effective}`;
    const hit = this.snapshots.get(cacheKey);
    if (hit) {
      this.snapshots.delete(cacheKey);
      this.snapshots.set(cacheKey, hit);
      return { rv, items: hit.items };
    }
    let items: StoredObject[];
    if (effective === rs.lastRv) {
      items = [...rs.tree.values()];
    } else {
      const undo = new Map<string, StoredObject | null>();
      for (const ev of rs.history.since(rv).reverse()) undo.set(ev.object.key, ev.type === 'ADDED' ? null : (ev.prev ?? null));
      const byKey = new Map<string, StoredObject>();
      for (const o of rs.tree.values()) byKey.set(o.key, o);
      for (const [k, o] of undo) {
        if (o === null) byKey.delete(k);
        else byKey.set(k, o);
      }
      items = [...byKey.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    }
    const snap: Snapshot = { rv: effective, items };
    this.snapshots.set(cacheKey, snap);
    while (this.snapshots.size > this.opts.snapshotCacheSize) {
      const oldest = this.snapshots.keys().next().value as string;
      this.snapshots.delete(oldest);
    }
    return { rv, items };
  }
}
