/**
 * Is the API server's revision behind a resourceVersion this replica already applied? Asked with
 * a consistent LIST of one item (resourceVersion unset, `limit=1`: a quorum read of etcd, or of a
 * watch cache that has caught up with etcd's current revision first), whose resourceVersion is
 * etcd's revision at the time of the read.
 *
 * Why: an etcd restored from a backup without a revision bump (`etcdutl snapshot restore` without
 * `--bump-revision`, its default) takes the cluster's revision back, and a watch from a
 * resourceVersion ahead of the server is not refused. The watch cache answers it with a 200 and
 * then drops every event at or below the requested resourceVersion, bookmarks included (etcd's
 * own watch waits for the revision the same way): nothing arrives, and nothing looks wrong. The
 * reflector took the 200 as a healthy answer, re-watched the silent watch from the same RV after
 * each inactivity timeout, and stayed ready serving the pre-restore state; once the cluster's
 * revision passed ours, events flowed again and every write of the restored timeline at or below
 * our RV was lost for good. A consistent read cannot be older than a revision we saw from the same
 * etcd, so a probe older than what we applied can only mean the revisions went back.
 *
 * When: beside a watch from an RV that no list of the same attempt just answered (a re-watch
 * after the stream ended or failed, a warm restart's first watch; probeBesideWatch). An API server
 * that was restored restarted, which ended every watch: the re-watches meet it at once. And before
 * each consistent relist that follows a refused list or probe (Reflector.attempt), so that a server
 * still behind costs one item per attempt, not a whole list refused again. One small request each.
 *
 * Rejected: probing only when a watch goes silent for the inactivity timeout (90 s). On a busy
 * cluster the revision passes ours within it, the watch carries events again and is never
 * silent, and the writes in between are lost unseen. Comparing with bookmarks: none arrives.
 */
import { compareResourceVersions } from '../../../proto/index.js';
import { UpstreamFailure, checkedResourceVersion } from './failure.js';
import type { ReflectorCore } from './reflector-core.js';
import { readJson } from './request.js';

/**
 * Largest answer read, in bytes. One item is at most a few MiB (etcd's request limit); a server
 * that ignores `limit` and sends the whole collection is not read to its end (the probe says
 * nothing then).
 */
export const REVISION_PROBE_MAX_BYTES = 8 * 1024 * 1024;

export type RevisionVerdict =
  /** The server's revision is at or past `since`. */
  | { readonly kind: 'ok'; readonly rv: string }
  /** The server's revision is behind `since`: the resourceVersions went back. */
  | { readonly kind: 'behind'; readonly rv: string }
  /** No answer that says either (throttled, failed, aborted, no resourceVersion); the server's Retry-After, if any. */
  | { readonly kind: 'failed'; readonly reason: string; readonly retryAfterMs?: number };

/**
 * One probe against `since` (the RV a watch starts from). Never throws: a probe that fails proves
 * nothing, and the watch goes on as it would without it. Counted in
 * cattail_upstream_revision_probes_total by result.
 */
export async function probeRevision(r: ReflectorCore, since: string, signal: AbortSignal): Promise<RevisionVerdict> {
  let verdict: RevisionVerdict;
  try {
    const body = (await readJson(await r.request('revision-probe', r.query({ limit: 1 }), signal), REVISION_PROBE_MAX_BYTES, `revision probe of ${r.id}`)) as { metadata?: { resourceVersion?: unknown } } | null;
    const rv = checkedResourceVersion(body?.metadata?.resourceVersion, `revision probe of ${r.id}`);
    if (rv === undefined) throw new UpstreamFailure('malformed', `revision probe of ${r.id}: no resourceVersion`, 200);
    verdict = compareResourceVersions(rv, since) < 0 ? { kind: 'behind', rv } : { kind: 'ok', rv };
  } catch (err) {
    const retryAfterMs = err instanceof UpstreamFailure ? err.retryAfterMs : undefined;
    verdict = { kind: 'failed', reason: (err as Error)?.message ?? String(err), ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) };
  }
  if (!signal.aborted) r.o.metrics.revisionProbes.inc({ resource: r.id, result: verdict.kind });
  return verdict;
}

/**
 * Failed probes beside one watch after which a seed's proof stands without the probe's word (the
 * probe could not say; see probeBesideWatch). Three tries span about 7 s of backoff.
 */
export const REVISION_PROBE_SEED_TRIES = 3;

/** The longest wait between two probes beside one watch after failures, in ms. */
export const REVISION_PROBE_RETRY_MAX_MS = 30_000;

/**
 * Probes beside an open watch from `since` until one answers, then stops: `behind` gets the
 * server's RV, `settled` that the server is not behind. A failed probe (a throttled or restarting
 * API server, exactly what follows a restore) is asked again while the watch lives, after 1 s,
 * 2 s, 4 s ... up to REVISION_PROBE_RETRY_MAX_MS, or the server's Retry-After when longer: one
 * failure left a silent watch counted healthy until its next re-watch, and let a warm restart's
 * seed count as proved. After REVISION_PROBE_SEED_TRIES failures `settled` is called anyway (a
 * seed then rests on its other proof; a replica must not stay unready because LISTs fail while
 * its watch works), and the tries go on: a later `behind` still ends the watch. Never throws.
 */
export async function probeBesideWatch(r: ReflectorCore, since: string, stop: AbortSignal, behind: (rv: string) => void, settled: () => void): Promise<void> {
  let isSettled = false;
  const settle = (): void => {
    if (isSettled) return;
    isSettled = true;
    settled();
  };
  try {
    for (let failures = 0; !stop.aborted; ) {
      const v = await probeRevision(r, since, stop);
      if (stop.aborted) return;
      if (v.kind === 'behind') {
        behind(v.rv);
        return;
      }
      if (v.kind === 'ok') {
        settle();
        return;
      }
      failures++;
      r.o.logger.debug({ resource: r.id, reason: v.reason, failures }, 'revision probe proved nothing; asking again while the watch lives');
      if (failures >= REVISION_PROBE_SEED_TRIES) settle();
      const delay = Math.max(Math.min(REVISION_PROBE_RETRY_MAX_MS, 1_000 * 2 ** (failures - 1)), v.retryAfterMs ?? 0);
      try {
        await r.o.clock.sleep(delay, stop);
      } catch {
        return;
      }
    }
  } catch (err) {
    // A throw from the callbacks (the flush of a confirmed seed): a bug, reported, never an
    // unhandled rejection that ends the process.
    r.o.logger.error({ resource: r.id, err: (err as Error)?.message ?? String(err) }, 'revision probe: handling its answer failed');
  }
}
