import { collectionPath } from '../../registry.js';
import type { ResourceHealth } from '../pipeline/seams.js';
import { Backoff } from '../../backoff.js';
import { compareResourceVersions, isResourceVersion } from '../../../proto/index.js';
import { UpstreamFailure, checkedResourceVersion, storageInitializing } from './failure.js';
import { listPages } from './list.js';
import { recover } from './recovery.js';
import { probeRevision } from './revision-probe.js';
import { type ListMode, type PartialList, type ReflectorCore, type ReflectorOptions, UPSTREAM_BACKOFF, WATCHLIST_RETRY_AFTER_MS } from './reflector-core.js';
import { type NotServedEvidence, probeNotServed } from './not-served.js';
import { guardedGet, type GuardedResponse, type UpstreamVerb } from './request.js';
import type { ListSession } from './resource-view.js';
import { watchOnce } from './watch.js';

export { UPSTREAM_BACKOFF, type ReflectorOptions } from './reflector-core.js';

/**
 * The shortest time between two early looks at a missing resource (lookAgainIfMissing): an
 * agent refused as ahead of us retries after behindRetryDelayMs (5 s), so one look per 10 s
 * serves every such agent, and bounds what agents naming any watermark can cost: one LIST and
 * one CRD list per 10 s per missing resource.
 */
export const EARLY_LOOK_MIN_MS = 10_000;

/**
 * One list/watch loop per resource: client-go's reflector, rebuilt on raw JSON.
 *
 *   ┌──────────┐  200   ┌──────────┐ clean end (≥1 s or ≥1 event)  ┌──────────┐
 *   │   list   │──────► │  watch   │ ─────────────────────────────► │  watch   │ (same RV)
 *   └──────────┘        └──────────┘                                └──────────┘
 *     ▲   │ 410/504 → consistent list     │ 410 (HTTP or ERROR event) → list NotOlderThan RV
 *     │   │ 404 optional → missing, retry │ 429 → max(Retry-After, backoff)
 *     │   │  (CRD still there, listed before: keep, backoff, up to upstreamStaleAfterMs)
 *     │   ▼ after missingResourceRetryMs  │ 401/403 → loud, backoff; anything else → backoff
 *     └──── every attempt passes one gate: wait max(backoff, minAttemptIntervalMs since the last)
 *
 * The steps live beside this loop, one file each: list.ts (paged LIST), watch.ts (one watch or
 * WatchList), recovery.ts (what follows a failure), request.ts (the guarded GET); they share the
 * state through ReflectorCore, which this class implements.
 *
 * The gate makes a hot loop impossible by construction: whatever the server does, a reflector
 * starts at most one attempt (one watch, plus a list when needed) per minAttemptIntervalMs.
 * With WatchList on, the list is a watch with sendInitialEvents that stays open afterwards;
 * a server that rejects it is remembered and plain LISTs are used from then on (for an hour
 * when it only went silent or ended before its initial events did: WATCHLIST_RETRY_AFTER_MS).
 */

export class Reflector implements ReflectorCore {
  // ReflectorCore: the state the steps read and write (not for anyone else).
  rv: string | undefined;
  listMode: ListMode = 'initial';
  listLimit: number;
  listTooLargeAtMs = Number.NEGATIVE_INFINITY;
  watchListSupported: boolean;
  watchListServerErrors = 0;
  /** Monotonic ms after which a relist tries WatchList again (an ambiguous failure); undefined: never (see WATCHLIST_RETRY_AFTER_MS). */
  private watchListRetryAtMs: number | undefined;
  missing = false;
  refusedOlder = false;
  notServedProof: NotServedEvidence['kind'] | undefined;
  notServedRv: string | undefined;
  notFoundSinceMs: number | undefined;
  partialList: PartialList | undefined;
  listPagesReached = 0;
  authError: string | undefined;
  private synced = false;
  private lastHealthyMs: number | undefined;
  private startedMs: number;
  private lastAttemptMs = Number.NEGATIVE_INFINITY;
  readonly backoff: Backoff;
  private readonly stopController = new AbortController();
  private loop: Promise<void> | undefined;
  /** Set once the first list finished; later lists are relists (counted). */
  private listedOnce = false;
  /** Started from a checkpoint (seed()): synced once a watch from its resourceVersion proves it served (awaitingSeedProof). */
  private seeded = false;

  constructor(readonly o: ReflectorOptions) {
    this.backoff = new Backoff({ ...UPSTREAM_BACKOFF, random: o.random, ...o.backoff });
    this.watchListSupported = o.watchList;
    this.listLimit = o.listPageSize;
    this.startedMs = o.clock.monotonic();
    // A series from the start: one set only on sync did not exist for a resource that never
    // synced, and an alert on `== 0` (deploy/components/servicemonitor) could never fire.
    o.metrics.synced.set({ resource: o.def.id }, 0);
  }

  get id(): string {
    return this.o.def.id;
  }

  start(): void {
    if (this.loop) return;
    // Staleness counts from start(), not construction: the server may create the upstream early.
    this.startedMs = this.o.clock.monotonic();
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopController.abort(new UpstreamFailure('network', 'reflector stopped'));
    await this.loop;
  }

  health(): ResourceHealth {
    const now = this.o.clock.monotonic();
    const since = this.lastHealthyMs ?? this.startedMs;
    const h: { -readonly [K in keyof ResourceHealth]: ResourceHealth[K] } = {
      id: this.o.def.id,
      synced: this.synced,
      stale: !this.missing && now - since > this.o.staleAfterMs,
      lastHealthyMs: this.lastHealthyMs,
    };
    if (this.authError !== undefined) h.authError = this.authError;
    if (this.missing) h.missing = true;
    return h;
  }

  get stopped(): boolean {
    return this.stopController.signal.aborted;
  }

  /**
   * Looks at a missing resource again now rather than after missingRetryMs (the fan-out refused an
   * agent whose watermark for it is newer than ours: another replica looked later, see
   * not-served.ts). Only while waiting out missingRetryMs after a look that proved the resource
   * absent (never during a backoff or a Retry-After), and at most once per EARLY_LOOK_MIN_MS: the
   * agent names the watermark, so a hostile or stuck one could otherwise make the replica list
   * every second. No-op otherwise.
   */
  lookAgainIfMissing(): void {
    if (!this.missing || this.notServedProof !== 'absent') return;
    const now = this.o.clock.monotonic();
    if (now - this.lastEarlyLookMs < EARLY_LOOK_MIN_MS) return;
    // Inside an attempt (its look may have read the CRD list before the agent's replica did):
    // the missingRetryMs wait that follows it is skipped instead. During a backoff: nothing.
    if (this.missingWait !== undefined) this.missingWait.abort();
    else if (this.inAttempt) this.earlyLookPending = true;
    else return;
    this.lastEarlyLookMs = now;
  }

  /** An attempt (list, watch, their recovery) is running. */
  private inAttempt = false;

  /** lookAgainIfMissing() came during an attempt: skip the missingRetryMs wait after it. */
  private earlyLookPending = false;

  /** Aborts the wait of missingRetryMs after a not-served look (lookAgainIfMissing). */
  private missingWait: AbortController | undefined;
  private lastEarlyLookMs = Number.NEGATIVE_INFINITY;
  /** Set by recovery when the delay it returned is missingRetryMs after a 404 (not a backoff). */
  waitingMissingRetry = false;

  /** What is left of the attempt gate: one start per minAttemptIntervalMs (ms, may be negative). */
  private gateMs(): number {
    return this.lastAttemptMs + this.o.minAttemptIntervalMs - this.o.clock.monotonic();
  }

  private async run(): Promise<void> {
    let delay = 0;
    while (!this.stopped) {
      let wait = Math.max(delay, this.gateMs());
      if (this.waitingMissingRetry && this.earlyLookPending) wait = Math.max(0, this.gateMs());
      this.earlyLookPending = false;
      if (wait > 0 && this.waitingMissingRetry) {
        const wake = new AbortController();
        this.missingWait = wake;
        const onStop = (): void => wake.abort();
        this.stopController.signal.addEventListener('abort', onStop, { once: true });
        try {
          await this.o.clock.sleep(wait, wake.signal);
          wait = 0;
        } catch {
          if (this.stopped) break;
          // Woken early: only the attempt gate remains.
          wait = Math.max(0, this.gateMs());
        } finally {
          this.missingWait = undefined;
          this.stopController.signal.removeEventListener('abort', onStop);
        }
      }
      this.waitingMissingRetry = false;
      if (wait > 0) {
        try {
          await this.o.clock.sleep(wait, this.stopController.signal);
        } catch {
          break;
        }
      }
      this.lastAttemptMs = this.o.clock.monotonic();
      this.inAttempt = true;
      try {
        delay = await this.attempt();
      } finally {
        this.inAttempt = false;
      }
    }
  }

  /** One attempt: list when needed, then watch until the stream ends. Never throws. */
  private async attempt(): Promise<number> {
    try {
      if (this.listMode !== 'none') {
        // Refused as older last time: a one-item probe says whether the server is still behind,
        // instead of a whole list (or a WatchList's whole initial state) refused again.
        if (this.listMode === 'consistent' && this.refusedOlder && isResourceVersion(this.rv)) {
          const v = await probeRevision(this, this.rv, this.stopController.signal);
          if (v.kind === 'behind') throw new UpstreamFailure('revision-behind', `the API server's revision ${v.rv} of ${this.id} is still behind the applied ${this.rv}`);
        }
        if (!this.watchListSupported && this.watchListRetryAtMs !== undefined && this.o.clock.monotonic() >= this.watchListRetryAtMs) {
          this.watchListSupported = true;
          this.watchListRetryAtMs = undefined;
          this.o.logger.info({ resource: this.id }, 'trying WatchList again');
        }
        if (this.watchListSupported) {
          try {
            return await watchOnce(this, true);
          } catch (err) {
            // A watch cache still initialising refuses every watch (429) while LISTs are served
            // from etcd: this attempt lists instead (as client-go's reflector falls back to a
            // LIST when its WatchList fails), and the next list tries WatchList again. Waiting
            // out the Retry-After and asking again kept the resource unsynced until the cache
            // was ready, minutes on a large cluster after an API server restart.
            if (!(err instanceof UpstreamFailure) || !storageInitializing(err) || this.stopped) throw err;
            this.o.metrics.relists.inc({ resource: this.id, reason: 'watchlist-initializing' });
            this.o.logger.info({ resource: this.id }, 'WatchList refused while the API server\'s watch cache initialises (429); listing from etcd this time');
          }
        }
        await listPages(this);
        return await watchOnce(this, false);
      }
      // A watch from an RV no list of this attempt answered: the API server is asked whether its
      // revision has reached it (revision-probe.ts).
      return await watchOnce(this, false, true);
    } catch (err) {
      // An optional resource's 404: ask what it proves before recovery marks it missing.
      const notFound = !this.stopped && this.o.def.optional && err instanceof UpstreamFailure && err.kind === 'http' && err.k8sCode === 404;
      return recover(this, err, notFound ? await probeNotServed(this) : undefined);
    }
  }

  /**
   * Restores a checkpointed not-served resource: its evidence becomes the watermark of the
   * restored revision (upstream.ts); the first attempt looks again. Call before start().
   */
  restoreNotServed(rv: string): void {
    if (this.loop) throw new Error('restoreNotServed() after start()');
    this.notServedRv = rv;
  }

  /**
   * Starts from a checkpoint's state (already restored into the view) at `rv`: the first attempt
   * watches from `rv` instead of listing. Call before start(). The resource counts as synced only
   * once the API server is seen to still serve `rv` (awaitingSeedProof): a checkpoint proves a
   * consistent state at `rv`, not that `rv` can be continued. The watch opening (200) is not that
   * proof: Kubernetes' watch cache answers a compacted `rv` with a 200 and then an ERROR 410
   * event. A 410 relists NotOlderThan `rv` (recovery.ts), whose diff against the restored state
   * is only what changed; the feed is in sync only after it.
   */
  seed(rv: string): void {
    if (this.loop) throw new Error('seed() after start()');
    this.rv = rv;
    this.listMode = 'none';
    this.seeded = true;
    this.listedOnce = true;
  }

  /**
   * The resourceVersion the view's state stands for, when it may be checkpointed: synced, served
   * (not a missing CRD) and with a known RV. Consistent with the view whenever read between
   * event-loop turns: watch.ts applies an event and moves the RV in one synchronous step, and a
   * list in progress changes neither until it commits.
   */
  checkpointRv(): string | undefined {
    return this.synced && !this.missing && this.rv !== undefined && this.rv !== '' ? this.rv : undefined;
  }

  confirmHealthy(): void {
    // A 404 blip of an existing CRD is over (recovery.ts): its next one is logged and timed anew.
    if (!this.missing) {
      this.notServedProof = undefined;
      this.notFoundSinceMs = undefined;
    }
    const now = this.o.clock.monotonic();
    const wasStale = now - (this.lastHealthyMs ?? this.startedMs) > this.o.staleAfterMs;
    this.lastHealthyMs = now;
    const hadAuth = this.authError !== undefined;
    this.authError = undefined;
    if (wasStale || hadAuth) this.o.onHealth();
  }

  get awaitingSeedProof(): boolean {
    return this.seeded && !this.synced && this.listMode === 'none';
  }

  confirmSeed(): void {
    if (!this.awaitingSeedProof) return;
    this.markSynced();
    this.o.onFlush(this.rv);
  }

  /** Marks the resource synced in the dispatcher; the caller flushes right after. */
  markSynced(): void {
    if (!this.synced) {
      this.synced = true;
      this.o.metrics.synced.set({ resource: this.id }, 1);
      this.o.onSynced();
    }
  }

  request(verb: UpstreamVerb, path: string, signal?: AbortSignal): Promise<GuardedResponse> {
    return guardedGet({ o: this.o, id: this.id, stopSignal: this.stopController.signal, signal }, verb, path);
  }

  query(params: Record<string, string | number | undefined>): string {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined) q.set(k, String(v));
    const s = q.toString();
    return collectionPath(this.o.def) + (s ? `?${s}` : '');
  }

  /**
   * Never back in time: a list older than the state already served (an HA apiserver whose cache
   * lags) is dropped, and the next list is a consistent (quorum) one.
   */
  refuseOlderList(rv: string | undefined): void {
    if (isResourceVersion(rv) && isResourceVersion(this.rv) && compareResourceVersions(rv, this.rv) < 0) {
      throw new UpstreamFailure('stale-list', `list of ${this.id} at RV ${rv} is older than the applied RV ${this.rv}`);
    }
  }

  finishList(session: ListSession, listRv: string | undefined): void {
    const rv = checkedResourceVersion(listRv, `list of ${this.id}`);
    // A list (or WatchList end bookmark) without a resourceVersion says nothing of where its state
    // stands: committed, the next watch started from the previous RV (replaying events over the
    // newer state) or, on a first list, from "now" (objects deleted in between never deleted).
    // Every API server sets it: garbage, refused as such (backing off, retried).
    if (rv === undefined) throw new UpstreamFailure('malformed', `list of ${this.id} has no resourceVersion`);
    this.refuseOlderList(rv);
    this.o.view.commit(session);
    this.rv = rv;
    // A relist, or the first list after a not-served watermark (evidence recorded, or restored from
    // a checkpoint): revisions before it stood for a watermark of this resource, and its diff cannot
    // show what was created and deleted since, so it is a rebase barrier either way.
    const watermarkedBefore = this.listedOnce || this.notServedRv !== undefined;
    this.listMode = 'none';
    this.missing = false;
    this.refusedOlder = false;
    this.notServedProof = undefined;
    this.notServedRv = undefined;
    this.notFoundSinceMs = undefined;
    // A paged list left half-way is over, whichever list committed (a WatchList's included):
    // kept, a later relist went on from its old continue token, its pages held until then.
    this.partialList = undefined;
    this.listPagesReached = 0;
    this.watchListServerErrors = 0;
    if (watermarkedBefore) this.o.onRelisted?.();
    this.listedOnce = true;
    // Synced before the flush: "in-sync" must ride on the batch with the list's last update.
    this.markSynced();
    this.o.onFlush(this.rv);
  }

  watchListUnsupported(why: string, ambiguous = false): UpstreamFailure {
    this.watchListSupported = false;
    this.watchListServerErrors = 0;
    // One clean close or silent spell during the initial events (an API server rolling restart,
    // a load balancer failing over) switched the resource to paged LISTs for the process's life.
    this.watchListRetryAtMs = ambiguous ? this.o.clock.monotonic() + WATCHLIST_RETRY_AFTER_MS : undefined;
    return new UpstreamFailure('watchlist-unsupported', `WatchList for ${this.id} not usable (${why}); falling back to LIST${ambiguous ? ` for ${WATCHLIST_RETRY_AFTER_MS / 60_000} min` : ''}`);
  }

  /** For the memory figure and tests. */
  get listed(): boolean {
    return this.listedOnce;
  }
}
