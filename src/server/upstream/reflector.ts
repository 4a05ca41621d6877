import type { IncomingMessage } from 'node:http';
import type { Clock } from '../../clock.js';
import type { Logger } from '../../log.js';
import { collectionPath, type ResourceDef } from '../../registry.js';
import type { ResourceHealth } from '../pipeline/seams.js';
import { Backoff, type BackoffOptions } from '../../backoff.js';
import { compareResourceVersions, isResourceVersion } from '../../../proto/index.js';
import { retryAfterMs, UpstreamFailure } from './failure.js';
import { parseJson } from './json.js';
import type { UpstreamMetrics } from './metrics.js';
import type { ListSession, ResourceView } from './resource-view.js';
import { readBody, readLines, Watchdog } from './stream.js';
import type { Transport } from './transport.js';
import type { KubeObject, KubeStatus, WatchEvent } from './types.js';

/**
 * One list/watch loop per resource: client-go's reflector, rebuilt on raw JSON.
 *
 *   ┌──────────┐  200   ┌──────────┐ clean end (≥1 s or ≥1 event)  ┌──────────┐
 *   │   list   │──────► │  watch   │ ─────────────────────────────► │  watch   │ (same RV)
 *   └──────────┘        └──────────┘                                └──────────┘
 *     ▲   │ 410/504 → consistent list     │ 410 (HTTP or ERROR event) → list NotOlderThan RV
 *     │   │ 404 optional → missing, retry │ 429 → max(Retry-After, backoff)
 *     │   ▼ after missingResourceRetryMs  │ 401/403 → loud, backoff; anything else → backoff
 *     └──── every attempt passes one gate: wait max(backoff, minAttemptIntervalMs since the last)
 *
 * The gate makes a hot loop impossible by construction: whatever the server does, a reflector
 * starts at most one attempt (one watch, plus a list when needed) per minAttemptIntervalMs.
 * With WatchList on, the list is a watch with sendInitialEvents that stays open afterwards;
 * a server that rejects it (or never ends its initial events) is remembered and plain LISTs are
 * used from then on.
 */

/**
 * The reflector's retry delays, matched to client-go's reflector (first retry 0.8-1.6 s, then
 * doubling; a failing resource costs the API server one attempt per ~30 s at the cap) with our
 * jitter rule (src/backoff.ts): at the cap delays spread over 20-40 s (mean 30 s, as client-go's
 * flat 30 s) so replicas retrying one API server do not fall into lock-step. Failures are
 * forgotten after two healthy minutes.
 */
export const UPSTREAM_BACKOFF = { initialMs: 1_600, maxMs: 40_000, jitter: 0.5, resetAfterMs: 120_000 } as const;

export interface ReflectorOptions {
  readonly def: ResourceDef;
  readonly view: ResourceView;
  readonly transport: Transport;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: UpstreamMetrics;
  /** Items per list page. */
  readonly listPageSize: number;
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
}

type ListMode = 'none' | 'initial' | 'not-older-than' | 'consistent';

const INITIAL_EVENTS_END = 'k8s.io/initial-events-end';
const MAX_ERROR_BODY_BYTES = 64 * 1024;

export class Reflector {
  private rv: string | undefined;
  private listMode: ListMode = 'initial';
  private watchListSupported: boolean;
  private synced = false;
  private missing = false;
  private authError: string | undefined;
  private lastHealthyMs: number | undefined;
  private startedMs: number;
  private lastAttemptMs = Number.NEGATIVE_INFINITY;
  private readonly backoff: Backoff;
  private readonly stopController = new AbortController();
  private loop: Promise<void> | undefined;
  /** Set once the first list finished; later lists are relists (counted). */
  private listedOnce = false;

  constructor(private readonly o: ReflectorOptions) {
    this.backoff = new Backoff({ ...UPSTREAM_BACKOFF, random: o.random, ...o.backoff });
    this.watchListSupported = o.watchList;
    this.startedMs = o.clock.monotonic();
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

  private get stopped(): boolean {
    return this.stopController.signal.aborted;
  }

  private async run(): Promise<void> {
    let delay = 0;
    while (!this.stopped) {
      const wait = Math.max(delay, this.lastAttemptMs + this.o.minAttemptIntervalMs - this.o.clock.monotonic());
      if (wait > 0) {
        try {
          await this.o.clock.sleep(wait, this.stopController.signal);
        } catch {
          break;
        }
      }
      this.lastAttemptMs = this.o.clock.monotonic();
      delay = await this.attempt();
    }
  }

  /** One attempt: list when needed, then watch until the stream ends. Never throws. */
  private async attempt(): Promise<number> {
    try {
      if (this.listMode !== 'none') {
        if (this.watchListSupported) return await this.watch(true);
        await this.list();
      }
      return await this.watch(false);
    } catch (err) {
      return this.failed(err);
    }
  }

  private confirmHealthy(): void {
    const now = this.o.clock.monotonic();
    const wasStale = now - (this.lastHealthyMs ?? this.startedMs) > this.o.staleAfterMs;
    this.lastHealthyMs = now;
    const hadAuth = this.authError !== undefined;
    this.authError = undefined;
    if (wasStale || hadAuth) this.o.onHealth();
  }

  /** Marks the resource synced in the dispatcher; the caller flushes right after. */
  private markSynced(): void {
    if (!this.synced) {
      this.synced = true;
      this.o.metrics.synced.set({ resource: this.id }, 1);
      this.o.onSynced();
    }
  }

  private query(params: Record<string, string | number | undefined>): string {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined) q.set(k, String(v));
    const s = q.toString();
    return collectionPath(this.o.def) + (s ? `?${s}` : '');
  }

  /** Sends a GET under the inactivity watchdog; non-200 responses become UpstreamFailure. */
  private async request(verb: 'list' | 'watch', path: string): Promise<{ res: IncomingMessage; watchdog: Watchdog; signal: AbortSignal; done: () => void }> {
    const controller = new AbortController();
    const onStop = (): void => controller.abort(this.stopController.signal.reason);
    this.stopController.signal.addEventListener('abort', onStop, { once: true });
    const timeoutMs = Math.max(1, Math.min(this.o.inactivityTimeoutMs, Math.floor(this.o.staleAfterMs * 0.75)));
    const watchdog = new Watchdog(this.o.clock, timeoutMs, () =>
      controller.abort(new UpstreamFailure('watchdog', `no data from the API server for ${timeoutMs} ms`)),
    );
    const done = (): void => {
      watchdog.cancel();
      this.stopController.signal.removeEventListener('abort', onStop);
    };
    let res: IncomingMessage;
    try {
      res = await this.o.transport.get(path, controller.signal);
    } catch (err) {
      done();
      this.o.metrics.requests.inc({ resource: this.id, verb, code: 'error' });
      if (controller.signal.aborted) throw controller.signal.reason;
      if (err instanceof UpstreamFailure) throw err;
      throw new UpstreamFailure('network', `${verb} request failed: ${(err as Error).message}`, undefined, undefined, undefined, err);
    }
    const status = res.statusCode ?? 0;
    this.o.metrics.requests.inc({ resource: this.id, verb, code: String(status) });
    if (status !== 200) {
      let body: KubeStatus | undefined;
      try {
        const text = await readBody(res, watchdog, controller.signal, MAX_ERROR_BODY_BYTES);
        const parsed = JSON.parse(text) as unknown;
        if (typeof parsed === 'object' && parsed !== null) body = parsed as KubeStatus;
      } catch {
        // An unreadable error body: the status code alone decides.
      } finally {
        done();
      }
      const retry = retryAfterMs(res.headers['retry-after'], body, this.o.clock.now());
      throw new UpstreamFailure('http', `${verb} ${this.id}: HTTP ${status}${body?.message ? ` (${body.message})` : ''}`, status, body, retry);
    }
    watchdog.touch();
    return { res, watchdog, signal: controller.signal, done };
  }

  private async list(): Promise<void> {
    const mode = this.listMode;
    const limit = this.o.listPageSize;
    // First list: consistent and paged (RV unset + limit). RV=0 would be served from the watch
    // cache but ignores `limit`, answering 150k pods in one body (beyond V8's string limit) and
    // possibly older than another replica's data. Relists: NotOlderThan the last RV.
    let first: Record<string, string | number | undefined> =
      mode === 'not-older-than' && this.rv !== undefined ? { resourceVersion: this.rv, resourceVersionMatch: 'NotOlderThan', limit } : { limit };
    let session: ListSession = this.o.view.beginList();
    let listRv: string | undefined;
    let cont: string | undefined;
    let restartedConsistent = false;
    for (;;) {
      let page: { res: IncomingMessage; watchdog: Watchdog; signal: AbortSignal; done: () => void };
      try {
        page = await this.request('list', this.query(cont === undefined ? first : { limit, continue: cont }));
      } catch (err) {
        if (err instanceof UpstreamFailure && err.kind === 'http' && err.status === 410 && cont !== undefined && !restartedConsistent) {
          // The continue token expired (its snapshot was compacted). The fresh token in the 410
          // would continue at a newer snapshot (inconsistent): start over with a consistent list.
          this.o.metrics.relists.inc({ resource: this.id, reason: 'continue-expired' });
          this.o.logger.info({ resource: this.id }, 'continue token expired; restarting the list consistently');
          restartedConsistent = true;
          session = this.o.view.beginList();
          cont = undefined;
          listRv = undefined;
          first = { limit };
          continue;
        }
        throw err;
      }
      let text: string;
      try {
        text = await readBody(page.res, page.watchdog, page.signal);
      } finally {
        page.done();
      }
      let parsed: { metadata?: { resourceVersion?: string; continue?: string }; items?: unknown };
      try {
        parsed = parseJson(text) as typeof parsed;
      } catch (err) {
        throw new UpstreamFailure('malformed', `list ${this.id}: response is not JSON`, 200, undefined, undefined, err);
      }
      if (!Array.isArray(parsed?.items)) throw new UpstreamFailure('malformed', `list ${this.id}: response has no items`, 200);
      this.confirmHealthy();
      listRv ??= parsed.metadata?.resourceVersion;
      for (const item of parsed.items as unknown[]) {
        if (typeof item !== 'object' || item === null) {
          this.o.metrics.skipped.inc({ resource: this.id, reason: 'malformed' });
          continue;
        }
        session.add(item as KubeObject);
      }
      cont = parsed.metadata?.continue || undefined;
      if (cont === undefined) break;
    }
    this.finishList(session, listRv);
  }

  private finishList(session: ListSession, rv: string | undefined): void {
    // Never back in time: a list older than the state already served (an HA apiserver whose
    // cache lags) is dropped, and the next list is a consistent (quorum) one.
    if (isResourceVersion(rv) && isResourceVersion(this.rv) && compareResourceVersions(rv, this.rv) < 0) {
      throw new UpstreamFailure('stale-list', `list of ${this.id} at RV ${rv} is older than the applied RV ${this.rv}`);
    }
    this.o.view.commit(session);
    if (rv !== undefined && rv !== '') this.rv = rv;
    this.listMode = 'none';
    this.missing = false;
    this.listedOnce = true;
    // Synced before the flush: "in-sync" must ride on the batch with the list's last update.
    this.markSynced();
    this.o.onFlush(this.rv);
  }

  /**
   * Watches from the current RV until the stream ends. With `initial`, the watch is a WatchList:
   * initial ADDED events fill a list session until the bookmark marking their end, after which
   * the same stream carries live events. Returns the delay before the next attempt.
   */
  private async watch(initial: boolean): Promise<number> {
    const timeoutSeconds = 300 + Math.floor(this.o.random() * 300);
    const params: Record<string, string | number | undefined> = {
      watch: 1,
      allowWatchBookmarks: 'true',
      timeoutSeconds,
    };
    if (initial) {
      params['sendInitialEvents'] = 'true';
      params['resourceVersionMatch'] = 'NotOlderThan';
      if (this.listMode === 'not-older-than' && this.rv !== undefined) params['resourceVersion'] = this.rv;
    } else params['resourceVersion'] = this.rv;
    let req: Awaited<ReturnType<Reflector['request']>>;
    try {
      req = await this.request('watch', this.query(params));
    } catch (err) {
      if (initial && err instanceof UpstreamFailure && err.kind === 'http' && (err.status === 400 || err.status === 422 || err.status === 501)) {
        throw this.watchListUnsupported(`HTTP ${err.status}`);
      }
      throw err;
    }
    const openedMs = this.o.clock.monotonic();
    this.confirmHealthy();
    let session: ListSession | undefined = initial ? this.o.view.beginList() : undefined;
    let events = 0;
    const onLine = (line: string): void => {
      let ev: WatchEvent;
      try {
        ev = parseJson(line) as WatchEvent;
        if (typeof ev !== 'object' || ev === null || typeof ev.type !== 'string' || typeof ev.object !== 'object' || ev.object === null) throw new TypeError('not a watch event');
      } catch {
        // A line we cannot read: counted and skipped; its RV is unknown, so the RV stays put.
        this.o.metrics.skipped.inc({ resource: this.id, reason: 'malformed' });
        return;
      }
      events++;
      this.o.metrics.events.inc({ resource: this.id, type: ev.type });
      if (ev.type === 'ERROR') {
        const status = ev.object as KubeStatus;
        // A 5xx during the initial events is the server failing (etcd timeout, cache re-init),
        // not refusing WatchList: back off and retry the WatchList. Treating it as unsupported
        // (as this once did) switched the resource to paged LISTs for good after one transient
        // error (found by the simulator's error_500 fault).
        const transient = status.code === 410 || (typeof status.code === 'number' && status.code >= 500);
        if (session !== undefined && !transient) throw this.watchListUnsupported(`ERROR ${status.code ?? '?'} during initial events`);
        throw new UpstreamFailure('stream-error', `watch ${this.id}: ERROR ${status.code ?? '?'} ${status.reason ?? ''} ${status.message ?? ''}`.trim(), undefined, status);
      }
      this.confirmHealthy();
      const rv = ev.object.metadata?.resourceVersion;
      if (session !== undefined) {
        if (ev.type === 'BOOKMARK' && ev.object.metadata?.annotations?.[INITIAL_EVENTS_END] === 'true') {
          this.finishList(session, rv);
          session = undefined;
        } else if (ev.type === 'ADDED') {
          // Initial events are not in RV order: the RV moves only at the end-of-initial bookmark.
          session.add(ev.object);
        } else {
          // Live events (or a bookmark) before the end marker: the server ignored sendInitialEvents.
          throw this.watchListUnsupported(`${ev.type} before the end of initial events`);
        }
        return;
      }
      // Within one watch, resourceVersions only grow. An event older than what was applied is a
      // broken stream (an apiserver serving from a stale cache, a restore): applying it could put
      // an older object over a newer one, so it is skipped, counted, and the resource relisted
      // consistently, as for an older list.
      if (ev.type !== 'BOOKMARK' && isResourceVersion(rv) && isResourceVersion(this.rv) && compareResourceVersions(rv, this.rv) < 0) {
        this.o.metrics.skipped.inc({ resource: this.id, reason: 'rv-backwards' });
        throw new UpstreamFailure('stale-list', `watch ${this.id}: event at resourceVersion ${rv} after ${this.rv}`);
      }
      if (ev.type === 'ADDED' || ev.type === 'MODIFIED') this.o.view.upsert(ev.object);
      else if (ev.type === 'DELETED') this.o.view.delete(ev.object);
      if (rv !== undefined && rv !== '') this.rv = rv;
    };
    try {
      await readLines(req.res, onLine, () => {
        if (session === undefined) this.o.onFlush(this.rv);
      }, req.watchdog, req.signal);
    } catch (err) {
      // Whatever arrived before the failure is applied: it was a valid prefix of the stream.
      if (session === undefined) this.o.onFlush(this.rv);
      if (session !== undefined && err instanceof UpstreamFailure && err.kind === 'watchdog') throw this.watchListUnsupported('silent during initial events');
      if (err instanceof UpstreamFailure && err.kind === 'watchdog') {
        // A silent open watch is not an error (an idle resource may get no bookmarks): re-watch
        // from the same RV at once, without growing the backoff — otherwise an idle resource
        // would drift towards 30 s gaps and flap to stale. The watchdog period bounds the rate.
        this.o.metrics.watchRestarts.inc({ resource: this.id, reason: 'watchdog' });
        this.o.logger.info({ resource: this.id }, 'watch silent for the inactivity timeout; re-watching');
        return 0;
      }
      throw err;
    } finally {
      req.done();
    }
    if (session !== undefined) throw this.watchListUnsupported('stream ended before the end of initial events');
    if (events === 0 && this.o.clock.monotonic() - openedMs < 1000) {
      throw new UpstreamFailure('short-watch', `watch ${this.id} closed at once without an event`);
    }
    this.o.metrics.watchRestarts.inc({ resource: this.id, reason: 'timeout' });
    return 0;
  }

  private watchListUnsupported(why: string): UpstreamFailure {
    this.watchListSupported = false;
    return new UpstreamFailure('watchlist-unsupported', `WatchList for ${this.id} not usable (${why}); falling back to LIST`);
  }

  /** Decides what follows a failed attempt; returns the delay before the next one. */
  private failed(err: unknown): number {
    if (this.stopped) return 0;
    const now = this.o.clock.monotonic();
    const f = err instanceof UpstreamFailure ? err : new UpstreamFailure('network', (err as Error)?.message ?? String(err), undefined, undefined, undefined, err);
    const code = f.k8sCode;
    const log = { resource: this.id, code: f.code, kind: f.kind, status: code, err: f.message };
    const reason = f.kind === 'http' ? `http-${code}` : f.kind;
    if (f.kind === 'stale-list') {
      this.listMode = 'consistent';
      this.o.metrics.relists.inc({ resource: this.id, reason: 'stale-list' });
      this.o.logger.warn(log, 'API server answered with an older list than already applied; relisting consistently');
      return this.backoff.next(now);
    }
    if (f.kind === 'watchlist-unsupported') {
      this.o.metrics.relists.inc({ resource: this.id, reason: 'watchlist-fallback' });
      this.o.logger.warn(log, 'WatchList unavailable; using paged LIST');
      return 0;
    }
    if (code === 410 || (f.kind === 'stream-error' && code === 504) || (f.kind === 'http' && code === 504 && this.listMode !== 'none')) {
      // Expired: relist NotOlderThan our RV — unless that list itself was refused (410/504 on
      // a list, or "too large RV" after an etcd restore), then a consistent list.
      const wasListing = this.listMode !== 'none';
      this.listMode = wasListing || code === 504 ? 'consistent' : 'not-older-than';
      this.o.metrics.watchRestarts.inc({ resource: this.id, reason: code === 410 ? 'expired' : 'too-large' });
      this.o.metrics.relists.inc({ resource: this.id, reason: code === 410 ? 'expired' : 'too-large' });
      this.o.logger.info(log, 'resource version expired; relisting');
      return this.backoff.next(now);
    }
    if (code === 401 || code === 403) {
      this.authError = `HTTP ${code}: ${f.body?.message ?? f.message}`;
      this.o.metrics.authErrors.inc({ resource: this.id, code: String(code) });
      this.o.metrics.watchRestarts.inc({ resource: this.id, reason: 'auth' });
      this.o.logger.error(log, 'API server refused the replica (check its ServiceAccount, token and RBAC); readiness is false');
      if (code === 401) this.o.transport.unauthorized();
      this.o.onHealth();
      return this.backoff.next(now);
    }
    if (f.kind === 'http' && code === 404 && this.o.def.optional) {
      // The CRD is not installed: empty and in sync; look again later.
      if (!this.missing) this.o.logger.info({ resource: this.id }, 'resource not served (CRD not installed); treated as empty and in sync');
      this.missing = true;
      this.authError = undefined;
      this.o.view.clear();
      this.rv = undefined;
      this.listMode = 'consistent';
      this.markSynced();
      this.o.onFlush(undefined);
      this.o.onHealth();
      this.o.metrics.relists.inc({ resource: this.id, reason: 'missing-retry' });
      return this.o.missingRetryMs;
    }
    this.o.metrics.watchRestarts.inc({ resource: this.id, reason: code === 429 ? 'throttled' : reason });
    const delay = this.backoff.next(now);
    if (code === 429) {
      this.o.logger.warn({ ...log, retryAfterMs: f.retryAfterMs }, 'API server throttled us; honouring Retry-After');
      return Math.max(delay, f.retryAfterMs ?? 0);
    }
    this.o.logger.warn({ ...log, delayMs: delay }, 'list/watch failed; backing off');
    return delay;
  }

  /** For the memory figure and tests. */
  get listed(): boolean {
    return this.listedOnce;
  }
}
