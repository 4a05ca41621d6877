/**
 * The reflector's options and the state its steps share (list.ts, watch.ts, recovery.ts): one
 * loop per resource, split by step so that no file holds the whole state machine.
 */
import type { Backoff, BackoffOptions } from '../../backoff.js';
import type { Clock } from '../../clock.js';
import type { Logger } from '../../log.js';
import type { ResourceDef } from '../../registry.js';
import type { UpstreamFailure } from './failure.js';
import type { UpstreamMetrics } from './metrics.js';
import type { NotServedEvidence } from './not-served.js';
import type { GuardedResponse, UpstreamVerb } from './request.js';
import type { ListSession, ResourceView } from './resource-view.js';
import type { Transport } from './transport.js';

/**
 * The reflector's retry delays, matched to client-go's reflector (first retry 0.8-1.6 s, then
 * doubling; a failing resource costs the API server one attempt per ~30 s at the cap) with our
 * jitter rule (src/backoff.ts): at the cap delays spread over 20-40 s (mean 30 s, as client-go's
 * flat 30 s) so replicas retrying one API server do not fall into lock-step. Failures are
 * forgotten after two healthy minutes.
 */
export const UPSTREAM_BACKOFF = { initialMs: 1_600, maxMs: 40_000, jitter: 0.5, resetAfterMs: 120_000 } as const;

/** The smallest page size a too-large LIST halves to: one object per page. */
export const LIST_PAGE_FLOOR = 1;
/**
 * How long a WatchList that went silent or ended before its initial events did, or carried live
 * events without their end for WATCHLIST_END_GRACE_MS (ambiguous: a server that ignores
 * sendInitialEvents, or a restart or a black-holed connection mid-relist) leaves the resource on
 * paged LISTs before a relist tries WatchList again (ms). A refusal that says WatchList is not
 * served (HTTP 400/422/501, a non-transient ERROR, a bookmark without the end marker) stays for
 * the process's life.
 */
export const WATCHLIST_RETRY_AFTER_MS = 3_600_000;

/**
 * WatchList relists in a row whose initial events ended in an in-stream 5xx ERROR before the
 * resource turns to paged LISTs for WATCHLIST_RETRY_AFTER_MS. One such ERROR is the server failing
 * (etcd timing out, its watch cache re-initialising), retried as WatchList; but a watch cache that
 * cannot catch up (an etcd without progress notifications waits 3 s, then answers every WatchList
 * with a 504) failed every one, and a paged LIST, which reads etcd, would have worked.
 */
export const WATCHLIST_MAX_SERVER_ERRORS = 3;

/**
 * How long a smaller page size that worked is kept after the last LIST body above
 * listMaxBytes (ms), before a successful list puts listPageSize back. Restored at once, every
 * relist of such a resource (an expired watch, a 410) read up to the cap again before halving.
 */
export const LIST_PAGE_KEEP_MS = 3_600_000;

export interface ReflectorOptions {
  readonly def: ResourceDef;
  readonly view: ResourceView;
  readonly transport: Transport;
  readonly clock: Clock;
  /** Each line names its resource (`resource`): give a logger that does not bind that key. */
  readonly logger: Logger;
  readonly metrics: UpstreamMetrics;
  /** Items per list page (the page size a list starts with; see ReflectorCore.listLimit). */
  readonly listPageSize: number;
  /** Largest LIST response body read, in bytes (upstreamListMaxBytes). */
  readonly listMaxBytes: number;
  /** Try WatchList (sendInitialEvents) before falling back to paged LIST. */
  readonly watchList: boolean;
  /** Abort a request after this long without a byte (bounded to 3/4 of staleAfterMs). */
  readonly inactivityTimeoutMs: number;
  readonly staleAfterMs: number;
  /** Retry interval for an optional resource that answered 404. */
  readonly missingRetryMs: number;
  /** Minimum time between the starts of two attempts. */
  readonly minAttemptIntervalMs: number;
  /** Overrides of UPSTREAM_BACKOFF. */
  readonly backoff: Partial<Omit<BackoffOptions, 'random'>>;
  readonly random: () => number;
  /** Called after state that health() reports may have changed (sync, stale, auth). */
  readonly onHealth: () => void;
  /** Called when the resource's initial list completed or it was found missing. */
  readonly onSynced: () => void;
  /** Called after each applied chunk with the current RV (watermark). */
  readonly onFlush: (rv: string | undefined) => void;
  /** Called when a relist committed (not the first list, unless a not-served watermark stood for the resource before it), before its onFlush. */
  readonly onRelisted?: () => void;
}

/** What the next attempt lists first: nothing (watch on), the first list, a relist NotOlderThan the RV, or a consistent (quorum) one. */
export type ListMode = 'none' | 'initial' | 'not-older-than' | 'consistent';

/**
 * A paged list that failed after its first page, kept for the next attempt to go on with (see
 * listPages): the pages so far and the continue token that follows them.
 */
export interface PartialList {
  readonly mode: ListMode;
  readonly limit: number;
  readonly session: ListSession;
  readonly listRv: string | undefined;
  readonly cont: string;
  readonly tokens: Set<string>;
  readonly restartedConsistent: boolean;
  readonly pages: number;
}

/**
 * The mutable state of one reflector and the primitives its steps call. Only the reflector loop
 * and its steps see it; everything else reads `Reflector.health()`.
 */
export interface ReflectorCore {
  readonly o: ReflectorOptions;
  readonly id: string;
  readonly backoff: Backoff;
  readonly stopped: boolean;
  /** The last applied resourceVersion (the watermark). */
  rv: string | undefined;
  listMode: ListMode;
  /**
   * Items per page of the next LIST: listPageSize, halved after each body above listMaxBytes
   * (down to LIST_PAGE_FLOOR), back to listPageSize once a list succeeds LIST_PAGE_KEEP_MS after
   * the last such body.
   */
  listLimit: number;
  /** Monotonic ms of the last LIST body above listMaxBytes (-Infinity: none). */
  listTooLargeAtMs: number;
  watchListSupported: boolean;
  /** WatchList relists in a row that ended in a 5xx ERROR during their initial events (WATCHLIST_MAX_SERVER_ERRORS); 0 once a list commits. */
  watchListServerErrors: number;
  missing: boolean;
  /** The last list or watch was refused as older than the applied RV ('stale-list'); false once a list commits. */
  refusedOlder: boolean;
  /** What the last not-served probe found (not-served.ts); logged when it changes. */
  notServedProof: NotServedEvidence['kind'] | undefined;
  /** The last not-served evidence (reported as the watermark; checkpointed); cleared once listed. */
  notServedRv: string | undefined;
  /** Monotonic ms of the first 404 of a listed resource whose CRD exists or could not be looked at, in the current blip (recovery.ts); undefined outside one. */
  notFoundSinceMs: number | undefined;
  /** The delay recovery returned is missingRetryMs after a 404, which an early look may cut short. */
  waitingMissingRetry: boolean;
  /** A paged list that failed at a continue page, for the next attempt to go on with (list.ts). */
  partialList: PartialList | undefined;
  /** Most pages a failed attempt of the current list received (0 once a list commits): pages up to it confirm no health again (list.ts). */
  listPagesReached: number;
  authError: string | undefined;
  /** A GET under the watchdog, aborted when the reflector stops or `signal` aborts. */
  request(verb: UpstreamVerb, path: string, signal?: AbortSignal): Promise<GuardedResponse>;
  query(params: Record<string, string | number | undefined>): string;
  confirmHealthy(): void;
  /**
   * Started from a checkpoint and not yet proved: synced only once a watch from the checkpoint's
   * resourceVersion has carried an event that is not an ERROR, or stayed open SEED_PROOF_MS
   * without one (watch.ts).
   */
  readonly awaitingSeedProof: boolean;
  /** The proof is in: the restored state continues from here (synced, flushed). No-op otherwise. */
  confirmSeed(): void;
  markSynced(): void;
  /** Throws stale-list when `rv` is older than the applied resourceVersion (a list that would take the state back). */
  refuseOlderList(rv: string | undefined): void;
  /** Commits a complete list (throws 'stale-list' when it is older than the applied RV). */
  finishList(session: ListSession, rv: string | undefined): void;
  /**
   * Remembers that WatchList does not work here; returns the failure to throw. `ambiguous`: for
   * WATCHLIST_RETRY_AFTER_MS only (see there), else for good.
   */
  watchListUnsupported(why: string, ambiguous?: boolean): UpstreamFailure;
}
