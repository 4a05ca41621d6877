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
 * When: before trusting a watch from an RV that no list of the same attempt just answered (a
 * re-watch after the stream ended or failed, a warm restart's first watch). An API server that
 * was restored restarted, which ended every watch: the re-watches meet it at once. It is one
 * small request per re-watch (each reflector starts at most one attempt per minAttemptIntervalMs).
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
  /** No answer that says either (throttled, failed, aborted, no resourceVersion). */
  | { readonly kind: 'failed'; readonly reason: string };

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
    verdict = { kind: 'failed', reason: (err as Error)?.message ?? String(err) };
  }
  if (!signal.aborted) r.o.metrics.revisionProbes.inc({ resource: r.id, result: verdict.kind });
  return verdict;
}
