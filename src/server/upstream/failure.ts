import { CattailError } from '../../errors.js';
import { RETRY_AFTER_CAP_MS, parseRetryAfter } from '../../retry-after.js';
import { isResourceVersion } from '../../../proto/index.js';
import type { KubeStatus } from './types.js';

/**
 * Why a list or watch attempt ended. The reflector decides what to do next from `kind` and
 * `status` alone (relist, back off, honour Retry-After, mark missing, go loud on auth).
 */
export type FailureKind =
  | 'http' // a non-200 response
  | 'stream-error' // an ERROR event inside a 200 watch
  | 'network' // connection refused/reset, closed mid-body
  | 'watchdog' // no byte for the inactivity timeout
  | 'short-watch' // a watch that closed at once with no event (a hot loop in the making)
  | 'malformed' // a body that is not the JSON we asked for
  | 'body-too-large' // a LIST body above upstreamListMaxBytes (or too large to hold as one string)
  | 'watchlist-unsupported' // the server cannot stream the initial list
  | 'stale-list' // a list older than what we already applied (a lagging HA apiserver)
  | 'revision-behind'; // a revision probe older than what we already applied (revision-probe.ts)

export class UpstreamFailure extends CattailError {
  constructor(
    readonly kind: FailureKind,
    message: string,
    readonly status?: number,
    readonly body?: KubeStatus,
    readonly retryAfterMs?: number,
    cause?: unknown,
  ) {
    super(kind === 'http' && (status === 401 || status === 403) ? 'CATTAIL_UPSTREAM_UNAUTHORIZED' : kind === 'body-too-large' ? 'CATTAIL_UPSTREAM_LIST_TOO_LARGE' : 'CATTAIL_UPSTREAM_REQUEST_FAILED', message, {
      cause,
      details: { kind, status, reason: body?.reason },
    });
  }

  /** The Kubernetes status code for HTTP and in-stream errors alike. */
  get k8sCode(): number | undefined {
    return this.status ?? this.body?.code;
  }
}

/**
 * A 504 that says "too large resource version": the API server's watch cache is behind the
 * resourceVersion asked for (after an etcd restore, or a list NotOlderThan an RV another API server
 * instance served). Kubernetes marks it with the cause `ResourceVersionTooLarge` (message "Too large
 * resource version: X, current: Y"). Every other 504 is a timeout like any 5xx: the request
 * filter's "request did not complete within requested timeout", a proxy's gateway timeout. Taking
 * each 504 for the first made a slow continue page throw the whole paged list away for a
 * consistent relist, again and again on a loaded server.
 */
export function tooLargeResourceVersion(f: UpstreamFailure): boolean {
  if (f.k8sCode !== 504 || f.body === undefined) return false;
  if (f.body.details?.causes?.some((c) => c.reason === 'ResourceVersionTooLarge') === true) return true;
  return typeof f.body.message === 'string' && f.body.message.includes('Too large resource version');
}

/**
 * A 429 that says the API server's watch cache for the resource is (re)initialising (Kubernetes
 * 1.31+ answers every watch so until it is ready: "storage is (re)initializing"), while a LIST is
 * served from etcd meanwhile. Every other 429 is throttling (API Priority and Fairness), where a
 * LIST would only add load.
 */
export function storageInitializing(f: UpstreamFailure): boolean {
  return f.kind === 'http' && f.k8sCode === 429 && typeof f.body?.message === 'string' && f.body.message.includes('storage is (re)initializing');
}

/**
 * How long the API server asked us to wait: its Retry-After header (the one parser in
 * src/retry-after.ts), else the Status body's `details.retryAfterSeconds`; capped at `capMs`.
 */
export function retryAfterMs(header: string | string[] | undefined, body: KubeStatus | undefined, nowWallMs: number, capMs = RETRY_AFTER_CAP_MS): number | undefined {
  const fromHeader = parseRetryAfter(header, nowWallMs, capMs);
  if (fromHeader !== undefined) return fromHeader;
  const secs = body?.details?.retryAfterSeconds;
  return typeof secs === 'number' && Number.isFinite(secs) ? Math.max(0, Math.min(capMs, secs * 1000)) : undefined;
}

/**
 * A resourceVersion from a list or watch: undefined when absent (or empty), else it must be a
 * decimal. Kubernetes calls resourceVersions opaque, but every one we know of (etcd's revision,
 * kine's) is a decimal, and agents compare watermarks as numbers (PROTOCOL.md): a value of any
 * other form is refused here, loudly ('malformed': back off, go stale), rather than carried into
 * watermarks the store refuses (which lost the batch it rode on).
 */
export function checkedResourceVersion(rv: unknown, what: string): string | undefined {
  if (rv === undefined || rv === null || rv === '') return undefined;
  if (!isResourceVersion(rv)) throw new UpstreamFailure('malformed', `${what}: resourceVersion ${JSON.stringify(rv)} is not a decimal`);
  return rv;
}
