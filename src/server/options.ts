import { commonOptions } from '../config/common.js';
import { opt } from '../config/options.js';
import { SYNCER_FEEDS } from '../registry.js';

// Built-in feed names straight from the registry: importing the upstream here would load its
// projections (msgpackr) for `cattail --help`.
const BUILTIN_FEEDS = Object.keys(SYNCER_FEEDS);

/**
 * `cattail serve`: the fan-out server (a Deployment replica in calico-system).
 * Defaults follow Typha's where Typha has one (see ../shared/reference/typha.md §3).
 */
export const serveOptions = {
  ...commonOptions,
  kubeconfig: opt.string({
    default: undefined,
    help: 'Kubeconfig file for the upstream API server. Unset: KUBECONFIG, then in-cluster config; with neither, serve exits with a coded error (it never simulates silently).',
  }),
  // --- Upstream (src/server/upstream): feeds and the reflectors' limits. ---
  feeds: opt.list({
    default: [...BUILTIN_FEEDS],
    values: BUILTIN_FEEDS,
    help: 'Built-in feeds to serve (Typha\'s syncer types); repeat the flag for several. Custom feeds come from customFeeds.',
  }),
  customFeeds: opt.object<unknown[]>({
    default: [],
    help: 'Custom feeds (config file only): a list of {name, resources: [{resource, labelSelector?, fieldSelector?, projection: calico|strip|raw}]}; see the README.',
    check: (v) => (Array.isArray(v) ? undefined : 'expected a list of feed declarations'),
  }),
  upstreamStaleAfterMs: opt.int({
    default: 120_000,
    unit: 'ms',
    min: 1_000,
    help: 'A resource without a confirmed-healthy watch (event, bookmark or a watch opened with 200) for this long is stale: its feeds say so to agents and readiness goes false.',
  }),
  listPageSize: opt.int({
    default: 500,
    unit: 'count',
    min: 1,
    max: 100_000,
    help: 'Items per page of an upstream LIST (limit/continue); bounds each response body.',
  }),
  watchList: opt.boolean({
    default: true,
    help: 'Stream initial lists with WatchList (sendInitialEvents) where the API server supports it; falls back to paged LIST when refused.',
  }),
  watchInactivityTimeoutMs: opt.int({
    default: 90_000,
    unit: 'ms',
    min: 1_000,
    help: 'Abort an upstream list or watch after this long without a byte (silent streams, black holes); capped at 3/4 of upstreamStaleAfterMs so idle resources re-confirm before going stale.',
  }),
  missingResourceRetryMs: opt.int({
    default: 300_000,
    unit: 'ms',
    min: 1_000,
    help: 'How often to look again for a CRD that is not installed (404); meanwhile it counts as empty and in sync.',
  }),
  embeddedSim: opt.boolean({
    default: false,
    help: 'Run against an in-process simulated API server with a small generated cluster (what `npm start` does). Never use in production.',
  }),
  listen: opt.string({
    default: '127.0.0.1:5473',
    help: 'HOST:PORT for agent WebSocket connections (5473 is Typha\'s port).',
  }),
  httpListen: opt.string({
    default: '127.0.0.1:9093',
    help: 'HOST:PORT for /metrics, /livez and /readyz.',
  }),
  pingIntervalMs: opt.int({
    default: 10_000,
    unit: 'ms',
    min: 100,
    help: 'Interval between protocol pings to each agent.',
  }),
  maxFallBehindMs: opt.int({
    default: 300_000,
    unit: 'ms',
    min: 1_000,
    help: 'An agent whose applied state is older than this (after its post-snapshot grace period) is disconnected.',
  }),
} as const;
