import { Counter, Gauge, Registry } from 'prom-client';

/**
 * The upstream's metrics, registered in a Registry the server owns (it serves /metrics); with
 * none given they live in a private registry that tests read. Names carry the `cattail_upstream_`
 * prefix and label by resource id.
 */
export class UpstreamMetrics {
  readonly registry: Registry;
  readonly requests: Counter<'resource' | 'verb' | 'code'>;
  readonly relists: Counter<'resource' | 'reason'>;
  readonly watchRestarts: Counter<'resource' | 'reason'>;
  readonly skipped: Counter<'resource' | 'reason'>;
  readonly authErrors: Counter<'resource' | 'code'>;
  readonly events: Counter<'resource' | 'type'>;
  readonly unchanged: Counter<'resource'>;
  readonly stale: Gauge<'resource'>;
  readonly synced: Gauge<'resource'>;
  readonly objects: Gauge<'resource'>;
  readonly listTooLarge: Counter<'resource'>;
  readonly notServedProbes: Counter<'resource' | 'result'>;
  readonly revisionProbes: Counter<'resource' | 'result'>;
  readonly listPageSize: Gauge<'resource'>;

  constructor(registry?: Registry) {
    this.registry = registry ?? new Registry();
    const registers = [this.registry];
    this.requests = new Counter({ name: 'cattail_upstream_requests_total', help: 'List and watch requests to the API server, by HTTP status (or "error" when none arrived); verb crd-list is the CRD list after an optional resource\'s 404, verb cluster-name the read of the kube-system namespace that names the cluster for agents, verb revision-probe the one-item consistent LIST before a re-watch (cattail_upstream_revision_probes_total).', labelNames: ['resource', 'verb', 'code'], registers });
    this.relists = new Counter({ name: 'cattail_upstream_relists_total', help: 'Lists after the first, by reason (expired, too-large, continue-expired, stale-list, missing-retry, watchlist-fallback, watchlist-initializing: a paged LIST instead of a WatchList the API server refused with 429 while its watch cache initialised).', labelNames: ['resource', 'reason'], registers });
    this.watchRestarts = new Counter({ name: 'cattail_upstream_watch_restarts_total', help: 'Watches ended and restarted, by reason (timeout, expired, watchdog, network, http, stream-error, throttled, auth, short-watch, list-too-large, revision-behind: the API server\'s revision older than the RV the watch started from).', labelNames: ['resource', 'reason'], registers });
    this.skipped = new Counter({ name: 'cattail_upstream_objects_skipped_total', help: 'Objects or lines skipped because they were malformed or their projection failed.', labelNames: ['resource', 'reason'], registers });
    this.authErrors = new Counter({ name: 'cattail_upstream_auth_errors_total', help: 'Requests refused with 401 or 403 (readiness goes false while it lasts).', labelNames: ['resource', 'code'], registers });
    this.events = new Counter({ name: 'cattail_upstream_watch_events_total', help: 'Watch events received, by type (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR; anything else: other).', labelNames: ['resource', 'type'], registers });
    this.unchanged = new Counter({ name: 'cattail_upstream_unchanged_total', help: 'Events whose projection was byte-identical to the stored value in every feed (status-only updates, heartbeats).', labelNames: ['resource'], registers });
    this.stale = new Gauge({ name: 'cattail_upstream_resource_stale', help: '1 while the resource has had no confirmed-healthy watch for upstreamStaleAfterMs.', labelNames: ['resource'], registers });
    this.synced = new Gauge({ name: 'cattail_upstream_resource_synced', help: '1 once the initial list completed (or the optional resource is missing).', labelNames: ['resource'], registers });
    this.notServedProbes = new Counter({ name: 'cattail_upstream_not_served_probes_total', help: 'CRD lists after an optional resource answered 404, by what they proved: absent (the CRD list\'s resourceVersion becomes the watermark), present (the CRD exists and serves the version, its path answers 404: not established yet, or a blip during which a listed state is kept) or unknown (the list failed or proved nothing: check RBAC; a state listed before is kept while it lasts, as for present, up to upstreamStaleAfterMs).', labelNames: ['resource', 'result'], registers });
    this.revisionProbes = new Counter({ name: 'cattail_upstream_revision_probes_total', help: 'One-item consistent LISTs that compare the API server\'s revision with the applied one: beside a watch from an RV no list of the same attempt answered (asked again after a failure while the watch lives), and before a consistent relist after a list or probe was refused as older. By result: ok, behind (the revision is older than the state applied: etcd restored without a revision bump; the watch ends, the resource goes stale, and no list is made while it lasts) or failed (proved nothing).', labelNames: ['resource', 'result'], registers });
    this.listTooLarge = new Counter({ name: 'cattail_upstream_list_too_large_total', help: 'LIST responses above upstreamListMaxBytes (CATTAIL_UPSTREAM_LIST_TOO_LARGE); each halves the resource\'s page size for the next list, down to 1 item.', labelNames: ['resource'], registers });
    this.listPageSize = new Gauge({ name: 'cattail_upstream_list_page_size', help: 'Items per page of the resource\'s last LIST: listPageSize, or less after a LIST response above upstreamListMaxBytes.', labelNames: ['resource'], registers });
    this.objects = new Gauge({ name: 'cattail_upstream_objects', help: 'Objects currently known per resource (after projection filters).', labelNames: ['resource'], registers });
  }
}
