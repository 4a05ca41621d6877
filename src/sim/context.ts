/**
 * What every request handler shares: the store, counters, clock, options, and the parsed request.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock } from '../clock.js';
import type { ResourceDef } from '../registry.js';
import type { Counters } from './counters.js';
import type { Rng } from './rng.js';
import type { Store } from './store.js';

export interface SimBehaviour {
  /** Bookmark period per watcher (jittered by up to +25%). @default 60_000 */
  bookmarkIntervalMs: number;
  /** A watch without timeoutSeconds ends at random in [min, 2·min). @default 1_800_000 */
  watchMinTimeoutMs: number;
  /** How long a LIST with a resourceVersion ahead of the server waits before 504. @default 3_000 */
  rvWaitMs: number;
  /**
   * Emulate the 1.34+ WatchList defaulting: a watch with RV ""/"0" and no sendInitialEvents is
   * served as sendInitialEvents=true (so it ends its initial events with the annotated bookmark
   * when bookmarks are allowed). @default true
   */
  watchListDefaulting: boolean;
  /**
   * Bookmark RV: 'resource' = the resource's latest event (conservative); 'global' = the global RV,
   * which jumps beyond any event of the watched type, as etcd progress notifications make it. @default 'global'
   */
  bookmarkRv: 'resource' | 'global';
}

export interface SimContext {
  readonly store: Store;
  readonly counters: Counters;
  readonly clock: Clock;
  readonly rng: Rng;
  readonly behaviour: SimBehaviour;
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
