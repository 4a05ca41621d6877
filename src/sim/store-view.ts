/**
 * The read side of the store as request handlers see it. The leader serves the {@link Store}
 * itself; an HA follower serves a lagging view over the same store (src/sim/ha/lagged-store.ts),
 * so list and watch code cannot tell them apart.
 */
import type { ResourceDef } from '../registry.js';
import type { SimEvent } from './history.js';
import type { Snapshot, StoredObject } from './store.js';

export interface HistoryView {
  /** Lowest RV a watch may start from. */
  readonly floorRv: number;
  /** Events with RV > rv, oldest first. */
  since(rv: number): SimEvent[];
}

export interface ResourceView {
  readonly def: ResourceDef;
  readonly listeners: Set<(ev: SimEvent) => void>;
  readonly history: HistoryView;
  readonly lastRv: number;
  readonly prefix: Buffer | undefined;
}

export interface StoreView {
  readonly currentRv: number;
  resource(id: string): ResourceView | undefined;
  get(def: ResourceDef, namespace: string, name: string): StoredObject | undefined;
  snapshot(def: ResourceDef, rv: number): Snapshot;
  /**
   * A read that etcd answers (a consistent LIST, a continue page): at `rv`, or at etcd's current
   * revision when undefined. An API server whose watch cache lags still answers these at etcd's
   * revision (it reads etcd, or waits for its cache to reach etcd's current revision first, 1.31+),
   * so a follower serves them from the leader's store: never older than what a client saw.
   */
  etcdSnapshot(def: ResourceDef, rv?: number): Snapshot;
  waitForRv(rv: number, timeoutMs: number): Promise<boolean>;
}
