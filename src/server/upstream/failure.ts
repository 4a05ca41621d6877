import { CattailError } from '../../errors.js';
import { compareResourceVersions, isResourceVersion } from '../../resource-version.js';
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
  | 'watchlist-unsupported' // the server cannot stream the initial list
  | 'stale-list'; // a list older than what we already applied (a lagging HA apiserver)

export class UpstreamFailure extends CattailError {
  constructor(
    readonly kind: FailureKind,
    message: string,
    readonly status?: number,
    readonly body?: KubeStatus,
    readonly retryAfterMs?: number,
    cause?: unknown,
  ) {
    super(kind === 'http' && (status === 401 || status === 403) ? 'CATTAIL_UPSTREAM_UNAUTHORIZED' : 'CATTAIL_UPSTREAM_REQUEST_FAILED', message, {
      cause,
      details: { kind, status, reason: body?.reason },
    });
  }

  /** The Kubernetes status code for HTTP and in-stream errors alike. */
  get k8sCode(): number | undefined {
    return this.status ?? this.body?.code;
  }
}

/** Retry-After in seconds (or an HTTP date), else the Status' retryAfterSeconds; capped. */
export function retryAfterMs(header: string | string[] | undefined, body: KubeStatus | undefined, nowWallMs: number, capMs = 300_000): number | undefined {
  const h = Array.isArray(header) ? header[0] : header;
  let ms: number | undefined;
  if (h !== undefined && h.trim() !== '') {
    const secs = Number(h.trim());
    if (Number.isFinite(secs)) ms = secs * 1000;
    else {
      const at = Date.parse(h);
      if (Number.isFinite(at)) ms = at - nowWallMs;
    }
  }
  if (ms === undefined && typeof body?.details?.retryAfterSeconds === 'number') ms = body.details.retryAfterSeconds * 1000;
  return ms === undefined ? undefined : Math.max(0, Math.min(capMs, ms));
}

/**
 * Orders resourceVersions with the code base's one comparator (src/resource-version.ts).
 * Unparseable versions (an API server that is not etcd-backed) compare as equal here: the
 * reflector's regression guards then stay out of the way instead of rejecting every event.
 */
export function compareRv(a: string, b: string): number {
  if (!isResourceVersion(a) || !isResourceVersion(b)) return 0;
  return compareResourceVersions(a, b);
}
