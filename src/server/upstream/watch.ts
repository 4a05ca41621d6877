/**
 * One watch of a reflector, until its stream ends: live events applied to the view in
 * resourceVersion order, or (WatchList) initial events filling a list session until the
 * end-of-initial-events bookmark, after which the same stream carries live events.
 */
import { compareResourceVersions, isResourceVersion } from '../../../proto/index.js';
import { UpstreamFailure, checkedResourceVersion } from './failure.js';
import { parseJson } from './json.js';
import { type ReflectorCore, WATCHLIST_MAX_SERVER_ERRORS } from './reflector-core.js';
import type { Timer } from '../../clock.js';
import type { GuardedResponse } from './request.js';
import type { ListSession } from './resource-view.js';
import { probeBesideWatch } from './revision-probe.js';
import { readLines } from './stream.js';
import type { KubeStatus, WatchEvent } from './types.js';

/** Watch event types as the metric labels them (anything else: `other`). */
const WATCH_EVENT_TYPES: ReadonlySet<string> = new Set(['ADDED', 'MODIFIED', 'DELETED', 'BOOKMARK', 'ERROR']);

const INITIAL_EVENTS_END = 'k8s.io/initial-events-end';

/**
 * How long a watch from a checkpoint's resourceVersion must stay open without an ERROR before the
 * restored state counts as served (ms), when no event came first. Kubernetes answers a compacted
 * resourceVersion with a 200 and at once an ERROR 410 (the watch cache's, or etcd's compaction
 * error): it does not wait. Longer only delays a warm restart's readiness for a resource that
 * has no event and no bookmark to show; an ERROR later than this would have the restored state
 * reported in sync until the relist that follows it.
 */
export const SEED_PROOF_MS = 2_000;

/**
 * How long a WatchList may carry live events (MODIFIED, DELETED) before its end-of-initial-events
 * bookmark (ms). A live event comes only after every initial one, and Kubernetes 1.27-1.31 send
 * the bookmark at the watch cache's next bookmark tick (about a second) once it has seen the
 * list's RV, which a live event proves: ten times that is room enough. A server that ignores
 * sendInitialEvents (synthetic ADDED events, then live ones, never the bookmark) is found out
 * here once a MODIFIED or DELETED comes (with creations only: by its first bookmark without the
 * marker, or its silence): paged LISTs for WATCHLIST_RETRY_AFTER_MS.
 */
export const WATCHLIST_END_GRACE_MS = 10_000;

/**
 * Watches from the current RV until the stream ends. With `initial`, the watch is a WatchList:
 * initial ADDED events fill a list session until the bookmark marking their end, after which
 * the same stream carries live events. With `probe` (a watch from an RV no list of this attempt
 * answered), a revision probe runs beside it (revision-probe.ts): a server behind the RV ends the
 * watch as 'revision-behind', and a checkpoint's RV counts as proved only once the probe settled.
 * Returns the delay before the next attempt.
 */
export async function watchOnce(r: ReflectorCore, initial: boolean, probe = false): Promise<number> {
  const timeoutSeconds = 300 + Math.floor(r.o.random() * 300);
  const params: Record<string, string | number | undefined> = {
    watch: 1,
    allowWatchBookmarks: 'true',
    timeoutSeconds,
  };
  if (initial) {
    params['sendInitialEvents'] = 'true';
    params['resourceVersionMatch'] = 'NotOlderThan';
    if (r.listMode === 'not-older-than' && r.rv !== undefined) params['resourceVersion'] = r.rv;
  } else params['resourceVersion'] = r.rv;
  let req: GuardedResponse;
  try {
    req = await r.request('watch', r.query(params));
  } catch (err) {
    if (initial && err instanceof UpstreamFailure && err.kind === 'http' && (err.status === 400 || err.status === 422 || err.status === 501)) {
      throw r.watchListUnsupported(`HTTP ${err.status}`);
    }
    throw err;
  }
  const openedMs = r.o.clock.monotonic();
  // The opening counts as a healthy answer, except a WatchList relist's: its state is taken only
  // at the end bookmark (finishList may refuse it as older), so it confirms then. A server stuck
  // behind, answering every relist in time, must let the resource go stale.
  const relist = initial && r.rv !== undefined;
  if (!relist) r.confirmHealthy();
  // The seed's proof (SEED_PROOF_MS without an ERROR, or an event that passed the checks) counts
  // only once the revision probe has settled: a watch from an RV ahead of the server is silent,
  // which looks exactly like the proof (revision-probe.ts probeBesideWatch).
  let probing = false;
  let seedEvidence = false;
  const seedStep = (): void => {
    seedEvidence = true;
    if (!probing) r.confirmSeed();
  };
  const seedProof = r.awaitingSeedProof ? r.o.clock.setTimeout(seedStep, SEED_PROOF_MS) : undefined;
  const probeStop = new AbortController();
  const since = r.rv;
  if (probe && !initial && isResourceVersion(since)) {
    probing = true;
    void probeBesideWatch(
      r,
      since,
      probeStop.signal,
      (rv) => {
        r.o.logger.error({ resource: r.id, resourceVersion: rv, applied: since }, 'the API server\'s revision is behind the state this replica applied (etcd restored from a backup without --bump-revision?); its older state is refused and the resource goes stale until the cluster\'s revision passes the applied one, then one consistent relist brings the state back');
        r.o.metrics.watchRestarts.inc({ resource: r.id, reason: 'revision-behind' });
        req.abort(new UpstreamFailure('revision-behind', `watch ${r.id}: the API server's revision ${rv} is behind the applied ${since}`));
      },
      () => {
        probing = false;
        if (seedEvidence) r.confirmSeed();
      },
    );
  }
  let session: ListSession | undefined = initial ? r.o.view.beginList() : undefined;
  /** Armed by the first MODIFIED or DELETED before the end of the initial events (WATCHLIST_END_GRACE_MS). */
  let liveBeforeEnd: Timer | undefined;
  let events = 0;
  const onLine = (line: string): void => {
    let ev: WatchEvent;
    try {
      ev = parseJson(line) as WatchEvent;
      if (typeof ev !== 'object' || ev === null || typeof ev.type !== 'string' || typeof ev.object !== 'object' || ev.object === null) throw new TypeError('not a watch event');
    } catch (err) {
      // A line we cannot read ends the watch, as in client-go: skipping it and reading on lost
      // the event for good (the next event moves the RV past it, and the re-watch resumes from
      // there). Everything before it is applied; the next watch starts from the last applied RV,
      // so the event comes again.
      r.o.metrics.skipped.inc({ resource: r.id, reason: 'malformed' });
      throw new UpstreamFailure('malformed', `watch ${r.id}: a line that is not a watch event`, 200, undefined, undefined, err);
    }
    events++;
    // The label is the API server's string: only the types Kubernetes defines are kept, so a
    // hostile or broken server cannot grow the metric's series without bound.
    r.o.metrics.events.inc({ resource: r.id, type: WATCH_EVENT_TYPES.has(ev.type) ? ev.type : 'other' });
    if (ev.type === 'ERROR') {
      const status = ev.object as KubeStatus;
      // A 5xx during the initial events is the server failing (etcd timeout, cache re-init),
      // not refusing WatchList: back off and retry the WatchList. Treating it as unsupported
      // (as this once did) switched the resource to paged LISTs for good after one transient
      // error (found by the simulator's error_500 fault).
      const transient = status.code === 410 || (typeof status.code === 'number' && status.code >= 500);
      if (session !== undefined && !transient) throw r.watchListUnsupported(`ERROR ${status.code ?? '?'} during initial events`);
      // But not for ever: WATCHLIST_MAX_SERVER_ERRORS in a row, and paged LISTs for a while.
      if (session !== undefined && status.code !== 410 && ++r.watchListServerErrors >= WATCHLIST_MAX_SERVER_ERRORS) {
        throw r.watchListUnsupported(`ERROR ${status.code ?? '?'} during initial events, ${WATCHLIST_MAX_SERVER_ERRORS} relists in a row`, true);
      }
      throw new UpstreamFailure('stream-error', `watch ${r.id}: ERROR ${status.code ?? '?'} ${status.reason ?? ''} ${status.message ?? ''}`.trim(), undefined, status);
    }
    const rv = checkedResourceVersion(ev.object.metadata?.resourceVersion, `watch ${r.id}: ${ev.type} event`);
    if (session !== undefined) {
      if (!relist) r.confirmHealthy();
      if (ev.type === 'BOOKMARK' && ev.object.metadata?.annotations?.[INITIAL_EVENTS_END] === 'true') {
        liveBeforeEnd?.cancel();
        r.finishList(session, rv);
        session = undefined;
        r.confirmHealthy();
      } else if (ev.type === 'ADDED' || ev.type === 'MODIFIED' || ev.type === 'DELETED') {
        // Initial events are not in RV order: the RV moves only at the end-of-initial bookmark.
        // Live events may come before that bookmark: Kubernetes 1.27-1.31 send it at the watch
        // cache's next bookmark tick once it has seen the list's RV, after the initial events and
        // whatever happened meanwhile. They go into the list (as client-go's temporary store
        // takes them), which at the bookmark is the state at its RV. Refusing them (as this once
        // did) turned WatchList off for the process on any busy cluster of those versions.
        if (ev.type === 'DELETED') session.remove(ev.object);
        else session.add(ev.object);
        if (ev.type !== 'ADDED') liveBeforeEnd ??= r.o.clock.setTimeout(() => req.abort(r.watchListUnsupported(`no end of initial events ${WATCHLIST_END_GRACE_MS} ms after a live event`, true)), WATCHLIST_END_GRACE_MS);
      } else {
        // A bookmark without the end marker: the server ignored sendInitialEvents.
        throw r.watchListUnsupported(`${ev.type} before the end of initial events`);
      }
      return;
    }
    // Within one watch, resourceVersions only grow. An event older than what was applied is a
    // broken stream (an apiserver serving from a stale cache, a restore): applying it could put
    // an older object over a newer one, so it is skipped, counted, and the resource relisted
    // consistently, as for an older list.
    if (isResourceVersion(rv) && isResourceVersion(r.rv) && compareResourceVersions(rv, r.rv) < 0) {
      // A bookmark carries no object to apply: an older one is only ignored (counted). Taken, it
      // moved r.rv back, and the next watch (or a checkpoint) replayed the events in between over
      // the newer state.
      if (ev.type === 'BOOKMARK') {
        r.o.metrics.skipped.inc({ resource: r.id, reason: 'bookmark-backwards' });
        return;
      }
      r.o.metrics.skipped.inc({ resource: r.id, reason: 'rv-backwards' });
      throw new UpstreamFailure('stale-list', `watch ${r.id}: event at resourceVersion ${rv} after ${r.rv}`);
    }
    // An event that passed those checks (a bookmark will do) proves the checkpoint's RV is still
    // served; an older one is evidence against it, and an unreadable RV proves nothing. Only such
    // an event counts as a healthy answer: one refused, again and again, must let the resource go stale.
    r.confirmHealthy();
    seedStep();
    if (ev.type === 'ADDED' || ev.type === 'MODIFIED') r.o.view.upsert(ev.object);
    else if (ev.type === 'DELETED') r.o.view.delete(ev.object);
    if (rv !== undefined) r.rv = rv;
  };
  try {
    await readLines(req.res, onLine, () => {
      if (session === undefined) r.o.onFlush(r.rv);
    }, req.watchdog, req.signal);
  } catch (err) {
    // Whatever arrived before the failure is applied: it was a valid prefix of the stream.
    if (session === undefined) r.o.onFlush(r.rv);
    if (session !== undefined && err instanceof UpstreamFailure && err.kind === 'watchdog') throw r.watchListUnsupported('silent during initial events', true);
    if (err instanceof UpstreamFailure && err.kind === 'watchdog') {
      // A silent open watch is not an error (an idle resource may get no bookmarks): re-watch
      // from the same RV at once, without growing the backoff — otherwise an idle resource
      // would drift towards 30 s gaps and flap to stale. The watchdog period bounds the rate.
      r.o.metrics.watchRestarts.inc({ resource: r.id, reason: 'watchdog' });
      // Debug, not info: a real API server sends a bookmark only when the RV moved past the last
      // one sent, so on a quiet cluster every idle resource comes here once per timeout (90 s),
      // a line each. The metric above counts them; a black-holed connection shows in the
      // re-watch's own failures, which are logged.
      r.o.logger.debug({ resource: r.id }, 'watch silent for the inactivity timeout; re-watching');
      return 0;
    }
    throw err;
  } finally {
    liveBeforeEnd?.cancel();
    seedProof?.cancel();
    probeStop.abort();
    req.done();
  }
  if (session !== undefined) throw r.watchListUnsupported('stream ended before the end of initial events', true);
  if (events === 0 && r.o.clock.monotonic() - openedMs < 1000) {
    throw new UpstreamFailure('short-watch', `watch ${r.id} closed at once without an event`);
  }
  r.o.metrics.watchRestarts.inc({ resource: r.id, reason: 'timeout' });
  return 0;
}
