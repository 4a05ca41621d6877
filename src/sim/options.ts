import { commonOptions } from '../config/common.js';
import { opt, withDefault } from '../config/options.js';

/** `cattail sim`: the simulated Kubernetes API server. */
export const simOptions = {
  ...commonOptions,
  port: opt.int({
    default: 0,
    min: 0,
    max: 65_535,
    help: 'TCP port on 127.0.0.1 (0 picks a free one). The simulator only ever binds loopback.',
  }),
  nodes: opt.int({ default: 100, unit: 'count', min: 0, help: 'Nodes in the generated cluster.' }),
  podsPerNode: opt.int({ default: 30, unit: 'count', min: 0, help: 'Pods per node in the generated cluster.' }),
  churn: opt.number({ default: 0, unit: 'changes per second', min: 0, help: 'Rate of generated changes (pod create/delete, status-only updates, label flips, node heartbeats).' }),
  seed: opt.int({ default: 1, min: 0, help: 'Seed of the cluster generator and churn driver; the same seed gives the same cluster and changes.' }),
  bookmarkIntervalMs: opt.int({ default: 60_000, unit: 'ms', min: 100, help: 'Period of watch bookmarks per watcher (jittered by up to +25%), sent only when the resourceVersion advanced.' }),
  watchMinTimeoutMs: opt.int({ default: 1_800_000, unit: 'ms', min: 1_000, help: 'A watch without timeoutSeconds ends at a random time in [min, 2*min), as the apiserver\'s --min-request-timeout does.' }),
  historyMinCapacity: opt.int({ default: 100, unit: 'count', min: 1, help: 'Minimum events kept per resource for watch resumption; grows to 102,400 while the oldest event is younger than 75 s.' }),
  kubeconfig: opt.string({ default: undefined, help: 'After binding, write a kubeconfig for the simulator to this file (atomically).' }),
  podDeleteGraceMs: opt.int({ default: 0, unit: 'ms', min: 0, help: 'HTTP DELETE of a pod: 0 deletes at once; otherwise deletionTimestamp first (MODIFIED), DELETED this long later (?gracePeriodSeconds=0 is immediate).' }),
  https: opt.boolean({ default: false, help: 'Serve HTTPS with a CA generated at start-up; the kubeconfig carries the CA data.' }),
  token: opt.string({
    default: undefined,
    secret: true,
    help: 'Require this bearer token on every resource request (401 otherwise); also written to the kubeconfig and the fake service-account directory.',
    // It travels in an Authorization header and a file read line-wise: whitespace would not survive.
    check: (v) => (v === '' || /\s/.test(v) ? 'expected a non-empty token without whitespace' : undefined),
  }),
  serviceAccountRoot: opt.string({ default: undefined, help: 'With --https or --token, write a fake service-account directory under this root (for loadFromCluster(root)); default: a temporary directory.' }),
  omitResources: opt.list({ default: [], help: 'Resource ids not to serve (e.g. ippools.crd.projectcalico.org): they answer 404, as on a cluster without those CRDs.' }),
  haLagRvs: opt.int({ default: undefined, unit: 'resourceVersions', min: 0, help: 'Also serve an HA follower lagging this many RVs behind, plus a round-robin port over both (printed at start-up).' }),
  slowWatcherQueueMaxBytes: opt.int({ default: 1_048_576, unit: 'bytes', min: 1, help: 'A watch with more bytes than this buffered (client not reading) waits its share of the shared blocking budget (50 ms/s, max 100 ms), then is closed cleanly and counted.' }),
} as const;

/**
 * `startSim`'s table. It shares `cattail sim`'s specs (so units, ranges and messages are the
 * same), under the library's names where they differ (`churnPerSec`, `kubeconfigPath`), with an
 * empty cluster by default (tests build the cluster they need; the command shows a useful one),
 * plus knobs only tests turn.
 */
export const startSimOptions = {
  port: simOptions.port,
  nodes: withDefault(simOptions.nodes, 0),
  podsPerNode: withDefault(simOptions.podsPerNode, 0),
  seed: simOptions.seed,
  churnPerSec: simOptions.churn,
  /** Unset: a file in a fresh temporary directory, removed by close(). */
  kubeconfigPath: simOptions.kubeconfig,
  omitResources: simOptions.omitResources,
  https: simOptions.https,
  token: simOptions.token,
  serviceAccountRoot: simOptions.serviceAccountRoot,
  slowWatcherQueueMaxBytes: simOptions.slowWatcherQueueMaxBytes,
  slowWatcherCloseGraceMs: opt.int({ default: 5_000, unit: 'ms', min: 0, help: 'A slow watcher\'s socket is destroyed this long after its clean close if the client never read the end.' }),
  historyMinCapacity: simOptions.historyMinCapacity,
  historyMaxCapacity: opt.int({ default: 102_400, unit: 'count', min: 1, help: 'Maximum events kept per resource (at least historyMinCapacity).' }),
  historyWindowMs: opt.int({ default: 75_000, unit: 'ms', min: 0, help: 'The history ring grows while its oldest event is younger than this.' }),
  bookmarkIntervalMs: simOptions.bookmarkIntervalMs,
  watchMinTimeoutMs: simOptions.watchMinTimeoutMs,
  podDeleteGraceMs: simOptions.podDeleteGraceMs,
  rvWaitMs: opt.int({ default: 3_000, unit: 'ms', min: 0, help: 'How long a LIST with a resourceVersion ahead of the server waits before 504.' }),
  watchList: opt.boolean({
    default: true,
    help: 'Serve WatchList. false: as with the WatchList feature gate off, a watch with sendInitialEvents gets HTTP 422 Invalid (sendInitialEvents: Forbidden) and watchListDefaulting does nothing.',
  }),
  watchListDefaulting: opt.boolean({
    default: true,
    help: 'Emulate the 1.34+ WatchList defaulting: a watch with RV ""/"0" and no sendInitialEvents is served as sendInitialEvents=true.',
  }),
  watchListEndDelayMs: opt.int({
    default: 0,
    unit: 'ms',
    min: 0,
    help: 'A WatchList\'s end-of-initial-events bookmark comes this long after its initial events, live events flowing meanwhile (Kubernetes 1.27-1.31 send it at the watch cache\'s next bookmark tick, about 1 s); 0: right after them (1.32+).',
  }),
  bookmarkRv: opt.enum({
    values: ['resource', 'global'] as const,
    default: 'global',
    help: 'Bookmark RV: the resource\'s latest event (conservative), or the global RV, which jumps beyond any event of the watched type as etcd progress notifications make it.',
  }),
} as const;
