/**
 * What every request handler shares: the store, counters, clock, options, and the parsed request.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock } from '../clock.js';
import type { ResourceDef } from '../registry.js';
import type { Counters } from './counters.js';
import type { Rng } from './rng.js';
import type { Store } from './store.js';
import type { StoreView } from './store-view.js';
import type { WatchCloseReason } from './counters.js';

/** The request handlers' knobs; their defaults, units and ranges are in startSimOptions (./options.ts). */
export interface SimBehaviour {
  /** Bookmark period per watcher (jittered by up to +25%). */
  bookmarkIntervalMs: number;
  /** A watch without timeoutSeconds ends at random in [min, 2·min). */
  watchMinTimeoutMs: number;
  /** How long a LIST with a resourceVersion ahead of the server waits before 504. */
  rvWaitMs: number;
  /**
   * Serve WatchList (sendInitialEvents). Off: the WatchList feature gate is off, so every watch
   * with sendInitialEvents is refused with the apiserver's 422 and no watch is defaulted to one.
   */
  watchList: boolean;
  /**
   * Emulate the 1.34+ WatchList defaulting: a watch with RV ""/"0" and no sendInitialEvents is
   * served as sendInitialEvents=true (so it ends its initial events with the annotated bookmark
   * when bookmarks are allowed).
   */
  watchListDefaulting: boolean;
  /** The end-of-initial-events bookmark comes this long after the initial events, live events before it (1.27-1.31); 0: at once. */
  watchListEndDelayMs: number;
  /**
   * Bookmark RV: 'resource' = the resource's latest event (conservative); 'global' = the global RV,
   * which jumps beyond any event of the watched type, as etcd progress notifications make it.
   */
  bookmarkRv: 'resource' | 'global';
  /**
   * HTTP DELETE of a pod: 0 deletes at once; otherwise the pod first gets deletionTimestamp
   * (MODIFIED) and is removed (DELETED) this long later, as a kubelet confirms a graceful
   * termination. `?gracePeriodSeconds=0` always deletes at once.
   */
  podDeleteGraceMs: number;
}

/**
 * A watch's byte tap (src/sim/faults): sees every line before it is written and the response
 * after, so stream faults and the slow-watcher bound live outside the watch code.
 */
export interface WatchTap {
  /** Before a write; false when the tap consumed the line or cut the stream (nothing more is written). */
  beforeSend(line: Buffer): boolean;
  /** After a write (`ok`: the response did not buffer beyond its high-water mark). */
  afterSend(ok: boolean): void;
  /** The watch ended (any reason): cancel timers. */
  closed(): void;
  /** The tap cuts the connection itself (reset, FIN): closing must not end the response cleanly. */
  readonly cut: boolean;
}

/** What the fault layer (faults, auth, throttling) plugs into; absent in a plain simulator. */
export interface SimHooks {
  /** Before a resource request is served; true when the hook answered it (or cut the connection). */
  gate(r: ApiRequest): boolean | Promise<boolean>;
  /** A watch is starting; `close` ends it with a counted reason. */
  watch(r: ApiRequest, close: (reason: WatchCloseReason) => void): WatchTap | undefined;
}

/** `S`: the leader's {@link Store}, or an HA follower's lagging {@link StoreView}. */
export interface SimContext<S extends StoreView = Store> {
  readonly store: S;
  readonly counters: Counters;
  readonly clock: Clock;
  readonly rng: Rng;
  readonly behaviour: SimBehaviour;
  readonly hooks?: SimHooks;
}

export type Verb = 'GET' | 'LIST' | 'WATCH' | 'CREATE' | 'UPDATE' | 'PATCH' | 'DELETE';

/** A request routed to a resource. */
export interface ApiRequest {
  readonly def: ResourceDef;
  /** The namespace in the path, or undefined for a cluster-wide collection / cluster-scoped resource. */
  readonly namespace: string | undefined;
  readonly name: string | undefined;
  readonly subresource: 'status' | undefined;
  readonly query: URLSearchParams;
  readonly clientId: string;
  readonly verb: Verb;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
}
