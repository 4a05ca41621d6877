/**
 * An HA follower's view of the data: the same store and history as the leader, but exposing only
 * what happened up to `leader.currentRv − lag` ("HA skew": apiservers behind one load balancer
 * whose watch caches lag each other, kubernetes/kubernetes#133810). A client sent from the leader to the follower sees an older RV:
 * its RV=0 list goes back in time, and a resume from a leader RV the follower has not reached
 * is silent until it does (a WatchList waits, then gets an ERROR 504), exactly as against a real
 * apiserver whose watch cache lags.
 *
 * Why a view rather than a second store fed by replication: one copy of the data, no replication
 * code to get wrong, and "lag" is then a number the test sets, not a race. Events are held in one
 * FIFO in global RV order and released to the follower's watchers when the leader's RV has moved
 * `lag` past them; every leader write (all resources are subscribed) triggers the release.
 */
import type { ResourceDef } from '../../registry.js';
import type { SimEvent } from '../history.js';
import type { ResourceStore, Snapshot, Store, StoredObject } from '../store.js';
import type { HistoryView, ResourceView, StoreView } from '../store-view.js';

class LaggedResource implements ResourceView {
  readonly listeners = new Set<(ev: SimEvent) => void>();
  readonly history: HistoryView;
  lastRv: number;

  constructor(
    readonly leader: ResourceStore,
    view: LaggedStore,
  ) {
    this.lastRv = leader.lastRv;
    const h = leader.history;
    this.history = {
      get floorRv() {
        return h.floorRv;
      },
      since: (rv) => h.since(rv).filter((e) => e.rv <= view.currentRv),
    };
  }

  get def(): ResourceDef {
    return this.leader.def;
  }

  get prefix(): Buffer | undefined {
    return this.leader.prefix;
  }
}

export class LaggedStore implements StoreView {
  private readonly views = new Map<string, LaggedResource>();
  private readonly queue: { v: LaggedResource; ev: SimEvent }[] = [];
  private readonly unsubscribe: (() => void)[] = [];
  /** The leader's RV when the follower's cache started: the follower never reports less. */
  private readonly baseRv: number;

  constructor(
    private readonly leader: Store,
    private lagRvs: number,
  ) {
    this.baseRv = leader.currentRv;
    for (const rs of leader.all()) {
      const v = new LaggedResource(rs, this);
      this.views.set(rs.def.id, v);
      const l = (ev: SimEvent): void => {
        this.queue.push({ v, ev });
        this.release();
      };
      rs.listeners.add(l);
      this.unsubscribe.push(() => rs.listeners.delete(l));
    }
  }

  get lag(): number {
    return this.lagRvs;
  }

  /** Changes the lag (a smaller lag releases held events at once). */
  setLag(lagRvs: number): void {
    this.lagRvs = lagRvs;
    this.release();
  }

  get currentRv(): number {
    return Math.max(this.baseRv, this.leader.currentRv - this.lagRvs);
  }

  private release(): void {
    const upTo = this.currentRv;
    while (this.queue.length > 0 && (this.queue[0] as { ev: SimEvent }).ev.rv <= upTo) {
      const { v, ev } = this.queue.shift() as { v: LaggedResource; ev: SimEvent };
      v.lastRv = ev.rv;
      for (const l of [...v.listeners]) l(ev);
    }
  }

  resource(id: string): ResourceView | undefined {
    return this.views.get(id);
  }

  etcdSnapshot(def: ResourceDef, rv?: number): Snapshot {
    return this.leader.etcdSnapshot(def, rv);
  }

  snapshot(def: ResourceDef, rv: number): Snapshot {
    return this.leader.snapshot(def, Math.min(rv, this.currentRv));
  }

  get(def: ResourceDef, namespace: string, name: string): StoredObject | undefined {
    const key = def.namespaced ? `${namespace}/${name}` : name;
    return this.snapshot(def, this.currentRv).items.find((o) => o.key === key);
  }

  waitForRv(rv: number, timeoutMs: number): Promise<boolean> {
    return this.leader.waitForRv(rv + this.lagRvs, timeoutMs);
  }

  dispose(): void {
    for (const u of this.unsubscribe) u();
    this.queue.length = 0;
  }
}
