/**
 * What follows a failed list or watch (the arrows of the reflector's state diagram): relist
 * consistently after an older list, fall back from WatchList, relist NotOlderThan after 410,
 * go loud on 401/403, treat an optional resource's 404 as empty and in sync, honour Retry-After
 * on 429, halve the page size after a LIST body above upstreamListMaxBytes, and otherwise back
 * off. Returns the delay before the next attempt, in ms.
 */
import { UpstreamFailure, tooLargeResourceVersion } from './failure.js';
import { crdNameOf, type NotServedEvidence } from './not-served.js';
import { LIST_PAGE_FLOOR, type ReflectorCore } from './reflector-core.js';

/** Decides what follows a failed attempt; returns the delay before the next one. */
export function recover(r: ReflectorCore, err: unknown, evidence?: NotServedEvidence): number {
  if (r.stopped) return 0;
  const now = r.o.clock.monotonic();
  const f = err instanceof UpstreamFailure ? err : new UpstreamFailure('network', (err as Error)?.message ?? String(err), undefined, undefined, undefined, err);
  const code = f.k8sCode;
  const log = { resource: r.id, code: f.code, kind: f.kind, status: code, err: f.message };
  const reason = f.kind === 'http' ? `http-${code}` : f.kind;
  if (f.kind === 'revision-behind') {
    // The server's revision is behind what was applied (revision-probe.ts, which logged it when a
    // watch met it): nothing was listed, so no relist is counted. The next attempt probes again
    // before it lists (refusedOlder), and lists consistently once the server is no longer behind.
    r.listMode = 'consistent';
    r.refusedOlder = true;
    return r.backoff.next(now);
  }
  if (f.kind === 'stale-list') {
    r.listMode = 'consistent';
    r.refusedOlder = true;
    r.o.metrics.relists.inc({ resource: r.id, reason: 'stale-list' });
    r.o.logger.warn(log, 'API server answered with an older list than already applied; relisting consistently');
    return r.backoff.next(now);
  }
  if (f.kind === 'body-too-large') {
    // A page too large to hold: the next list asks for half as many items. The server is not
    // failing, so no backoff while the page can still shrink (the attempt gate, one start per
    // minAttemptIntervalMs, still bounds the rate: at most log2(listPageSize) such lists). At one
    // item per page a single object is above the cap: back off and say so, loudly.
    r.o.metrics.listTooLarge.inc({ resource: r.id });
    r.listTooLargeAtMs = now;
    const from = r.listLimit;
    r.listLimit = Math.max(LIST_PAGE_FLOOR, Math.floor(from / 2));
    r.o.metrics.listPageSize.set({ resource: r.id }, r.listLimit);
    if (r.listLimit < from) {
      r.o.logger.warn({ ...log, maxBytes: r.o.listMaxBytes, pageSize: r.listLimit, previousPageSize: from }, 'list response above upstreamListMaxBytes; listing again with half the page size');
      return 0;
    }
    r.o.metrics.watchRestarts.inc({ resource: r.id, reason: 'list-too-large' });
    const delay = r.backoff.next(now);
    r.o.logger.error({ ...log, maxBytes: r.o.listMaxBytes, pageSize: r.listLimit, delayMs: delay }, 'a list of one object per page is above upstreamListMaxBytes: one object is that large, or the API server ignores limit; the resource cannot be listed until the cap is raised or that changes');
    return delay;
  }
  if (f.kind === 'watchlist-unsupported') {
    r.o.metrics.relists.inc({ resource: r.id, reason: 'watchlist-fallback' });
    r.o.logger.warn(log, 'WatchList unavailable; using paged LIST');
    return 0;
  }
  const tooLarge = tooLargeResourceVersion(f);
  if (code === 410 || (tooLarge && (f.kind === 'stream-error' || r.listMode !== 'none'))) {
    // Expired: relist NotOlderThan our RV — unless that list itself was refused (410 or "too
    // large RV" on a list), or the watch said "too large RV" (after an etcd restore), then a
    // consistent list. Any other 504 is a timeout: backed off and retried as any 5xx (below).
    const wasListing = r.listMode !== 'none';
    r.listMode = wasListing || tooLarge ? 'consistent' : 'not-older-than';
    r.o.metrics.watchRestarts.inc({ resource: r.id, reason: code === 410 ? 'expired' : 'too-large' });
    r.o.metrics.relists.inc({ resource: r.id, reason: code === 410 ? 'expired' : 'too-large' });
    r.o.logger.info(log, 'resource version expired; relisting');
    return r.backoff.next(now);
  }
  if (code === 401 || code === 403) {
    r.authError = `HTTP ${code}: ${f.body?.message ?? f.message}`;
    r.o.metrics.authErrors.inc({ resource: r.id, code: String(code) });
    r.o.metrics.watchRestarts.inc({ resource: r.id, reason: 'auth' });
    r.o.logger.error(log, 'API server refused the replica (check its ServiceAccount, token and RBAC); readiness is false');
    if (code === 401) r.o.transport.unauthorized();
    r.o.onHealth();
    return r.backoff.next(now);
  }
  if (f.kind === 'http' && code === 404 && r.o.def.optional) {
    // The CRD exists, yet its path answered 404 (an API server instance that has not caught up
    // with it, or served versions being changed by an upgrade): a blip, not a removal. Clearing
    // the state here deleted every object of the resource from every agent (policies included)
    // until the next look, missingResourceRetryMs later. With a state already listed, keep it,
    // back off and retry; the resource goes stale (readiness false) if it lasts. The same when the
    // CRD probe itself failed (throttled, 5xx, reset, forbidden): an API server instance that has
    // just restarted answers both, and clearing on "could not look" deleted the policies from
    // every agent until the next look. Never listed: missing as before (a CRD that serves other
    // versions only must not hold readiness forever), and so is a blip that outlasts
    // upstreamStaleAfterMs: a replica must not stay unready on it.
    const blip = evidence?.kind === 'present' || (evidence?.kind === 'unknown' && evidence.failed === true);
    if (blip && r.rv !== undefined && !r.missing && now - (r.notFoundSinceMs ??= now) < r.o.staleAfterMs) {
      r.o.metrics.notServedProbes.inc({ resource: r.id, result: evidence.kind });
      r.o.metrics.watchRestarts.inc({ resource: r.id, reason });
      const delay = r.backoff.next(now);
      if (r.notServedProof !== evidence.kind) {
        if (evidence.kind === 'present') r.o.logger.warn({ ...log, crd: crdNameOf(r), delayMs: delay }, 'the CRD exists but its path answers 404; keeping the last state and retrying');
        else r.o.logger.warn({ ...log, crd: crdNameOf(r), delayMs: delay, probe: evidence.reason }, 'the resource\'s path answers 404 and its CRD could not be looked at; keeping the last state and retrying');
      }
      r.notServedProof = evidence.kind;
      return delay;
    }
    return notServed(r, evidence);
  }
  r.o.metrics.watchRestarts.inc({ resource: r.id, reason: code === 429 ? 'throttled' : reason });
  const delay = r.backoff.next(now);
  if (code === 429) {
    r.o.logger.warn({ ...log, retryAfterMs: f.retryAfterMs }, 'API server throttled us; honouring Retry-After');
    return Math.max(delay, f.retryAfterMs ?? 0);
  }
  r.o.logger.warn({ ...log, delayMs: delay }, 'list/watch failed; backing off');
  return delay;
}

/**
 * An optional resource answered 404: the CRD is not installed (or not established yet). It counts
 * as empty and in sync, and is looked at again after missingRetryMs. Its watermark becomes the
 * probe's resourceVersion when the probe proved the CRD absent (not-served.ts says why agents need
 * it); otherwise the watermark stays where it was.
 */
function notServed(r: ReflectorCore, evidence: NotServedEvidence | undefined): number {
  if (!r.missing) r.o.logger.info({ resource: r.id }, 'resource not served (CRD not installed); treated as empty and in sync');
  const wasMissing = r.missing;
  r.missing = true;
  r.authError = undefined;
  r.o.view.clear();
  // Nothing of a list before this stands (list.ts PartialList).
  r.partialList = undefined;
  r.listPagesReached = 0;
  const last = r.rv;
  r.rv = undefined;
  r.listMode = 'consistent';
  r.markSynced();
  const proof = evidence ?? { kind: 'unknown', reason: 'not probed' };
  r.o.metrics.notServedProbes.inc({ resource: r.id, result: proof.kind });
  if (proof.kind !== r.notServedProof) {
    const log = { resource: r.id, crd: crdNameOf(r) };
    if (proof.kind === 'absent') r.o.logger.info({ ...log, resourceVersion: proof.rv }, 'the CRD does not exist at this resourceVersion; it is reported as the resource\'s watermark');
    else if (proof.kind === 'present') r.o.logger.info(log, 'the CRD exists but its path answers 404 (not established yet, or serving other versions); the watermark stays where it was');
    else {
      r.o.logger.warn({ ...log, reason: proof.reason }, 'could not list the CRD (does the replica\'s ClusterRole allow list on customresourcedefinitions?); without that evidence agents that applied this resource refuse replicas that never served it');
    }
    r.notServedProof = proof.kind;
  }
  // What the watermark is now, checkpointed for a warm restart: the evidence, else the last one.
  const heldState = last !== undefined && last !== '';
  if (proof.kind === 'absent') r.notServedRv = proof.rv;
  else if (heldState) r.notServedRv ??= last;
  // Emptying a state that was served (listed, or restored from a checkpoint) is a relist to
  // nothing: it deletes what the view held, not what was created after the view's last event and
  // went with the CRD (a watch gap, or the whole downtime of a warm restart). An agent that
  // applied such an object elsewhere and rebased from a revision before this batch would keep it,
  // so, as after any relist, the batch is a rebase barrier (PROTOCOL.md §7.1).
  if (!wasMissing && heldState) r.o.onRelisted?.();
  r.o.onFlush(proof.kind === 'absent' ? proof.rv : undefined);
  r.o.onHealth();
  r.o.metrics.relists.inc({ resource: r.id, reason: 'missing-retry' });
  r.waitingMissingRetry = true;
  return r.o.missingRetryMs;
}
