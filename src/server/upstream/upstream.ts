import type { KubeConfig } from '@kubernetes/client-node';
import pino from 'pino';
import type { Registry } from 'prom-client';
import { type Clock, realClock, type Timer } from '../../clock.js';
import type { ConfigOf, OptionsOf } from '../../config/options.js';
import { resolveOptions } from '../../config/resolve.js';
import { InvalidArgumentError } from '../../errors.js';
import { type Logger, childLogger } from '../../log.js';
import { resource } from '../../registry.js';
import { VERSION } from '../../version.js';
import type { FeedDefinition, FeedSink, ResourceHealth, Upstream } from '../pipeline/seams.js';
import type { BackoffOptions } from '../../backoff.js';
import { FeedDispatcher, type FeedState } from './dispatcher.js';
import { type FeedResourceSpec, type FeedSpec, resolveFeeds } from './feeds.js';
import { clusterIdOf, loadKubeConfig } from './kubeconfig.js';
import { ClusterName } from './cluster-name.js';
import { UpstreamMetrics } from './metrics.js';
import { Reflector } from './reflector.js';
import { ResourceView } from './resource-view.js';
import { KubeTransport, type Transport } from './transport.js';
import { upstreamOptions } from '../options.js';
import { createHash } from 'node:crypto';
import { PROJECTION_VERSION } from './projections/index.js';
import { WarmState, type WarmStartResult } from './warm-state.js';

/**
 * Options of {@link createUpstream}: the table-derived part ({@link upstreamOptions}: feeds and the
 * reflectors' limits, with `cattail serve`'s units, ranges and defaults) and the programmatic
 * extras beside it.
 */
export interface UpstreamOptions extends OptionsOf<typeof upstreamOptions> {
  /** A loaded KubeConfig (tests, embedded simulator). Takes precedence over kubeconfigPath. */
  kubeConfig?: KubeConfig;
  /** Kubeconfig file. Unset: KUBECONFIG, then in-cluster; neither → CATTAIL_UPSTREAM_CONFIG. */
  kubeconfigPath?: string;
  /** Names this replica in the User-Agent and logs. */
  replicaId: string;
  /** Minimum time between two attempts of one reflector (the anti-hot-loop gate). @default 1_000 */
  minAttemptIntervalMs?: number;
  /** Backoff between failed attempts. @default UPSTREAM_BACKOFF: 0.8-1.6 s doubling to 30 s, reset after 120 s healthy */
  backoff?: Partial<Omit<BackoffOptions, 'random'>>;
  /** Largest FeedBatch; bigger diffs (initial lists) are split, status on the last. @default 10_000 */
  maxBatchUpdates?: number;
  clock?: Clock;
  logger?: Logger;
  /** Where the metrics are registered (the server's /metrics registry). @default a private one */
  registry?: Registry;
  /** Uniform [0, 1) source for jitter and watch timeouts. @default Math.random */
  random?: () => number;
  /** Replaces the HTTP transport (tests). */
  transport?: Transport;
  env?: Readonly<Record<string, string | undefined>>;
  /**
   * Names the cluster in the checkpoint's identity (stateDir). @default the kubeconfig's current
   * cluster server URL and a hash of its CA (kubeconfig.ts clusterIdOf): a checkpoint of another
   * API server, or of another cluster at the same address, is never restored.
   */
  clusterId?: string;
  /**
   * With stateDir: the longest the start waits to read the checkpoint before it starts cold, in
   * real (wall-clock) ms, not the injected clock's: a stalled volume is a real-time event, and a
   * fake clock advanced while the read is in the thread pool would cut healthy reads off.
   * @default STATE_LOAD_MAX_MS (60 s)
   */
  stateLoadMaxMs?: number;
}

/** The upstream plus what tests and the server read besides the seam. */
export interface UpstreamHandle extends Upstream {
  readonly metrics: UpstreamMetrics;
  recheckMissing(resources: readonly string[]): void;
  /** True when every served resource is synced, fresh and authorised. */
  ready(): boolean;
  /** Objects and stored bytes per resource (memory figures). */
  sizes(): { id: string; objects: number; valueBytes: number }[];
  /**
   * With stateDir: writes the last checkpoint (call when draining starts; warm-state.ts says why
   * then) and writes no other. Without stateDir: nothing.
   */
  /** `abandon`: the caller stopped waiting; no checkpoint is started after it fires (WarmState.final). */
  finalCheckpoint(abandon?: AbortSignal): Promise<void>;
  /** With stateDir, once start() has read the state directory: what it found. */
  warmStart(): Promise<WarmStartResult | undefined>;
}

/** Readiness from health: every resource synced, none stale, none refused. */
export function upstreamReady(health: readonly ResourceHealth[]): boolean {
  return health.every((h) => h.synced && !h.stale && h.authError === undefined);
}

class KubeUpstream implements UpstreamHandle {
  readonly feeds: readonly FeedDefinition[];
  readonly metrics: UpstreamMetrics;
  private readonly dispatcher: FeedDispatcher;
  private readonly reflectors: Reflector[] = [];
  private readonly views: ResourceView[] = [];
  private readonly clock: Clock;
  private ticker: Timer | undefined;
  private started = false;
  private stopping = false;
  private readonly warm: WarmState | undefined;
  /** The cluster's name for agents (cluster-name.ts). */
  private readonly clusterName: ClusterName;
  private starting: Promise<WarmStartResult | undefined> = Promise.resolve(undefined);

  constructor(specs: FeedSpec[], transport: Transport, o: UpstreamOptions & ConfigOf<typeof upstreamOptions>) {
    const clock = (this.clock = o.clock ?? realClock);
    const logger = o.logger ?? pino({ level: 'silent' });
    this.metrics = new UpstreamMetrics(o.registry);
    this.feeds = specs.map(({ name, resources, projectionVersion, model }) => ({ name, resources, projectionVersion, ...(model !== undefined ? { model } : {}) }));
    this.dispatcher = new FeedDispatcher(specs, logger, o.maxBatchUpdates ?? 10_000, clock);
    const staleAfterMs = o.upstreamStaleAfterMs;
    const uses = new Map<string, { spec: FeedResourceSpec; feed: FeedState }[]>();
    for (const feed of this.dispatcher.feeds) {
      for (const spec of feed.spec.specs) {
        let list = uses.get(spec.resource);
        if (!list) uses.set(spec.resource, (list = []));
        list.push({ spec, feed });
      }
    }
    // One reflector per resource, however many feeds use it.
    for (const [id, list] of uses) {
      const def = resource(id);
      const view = new ResourceView(def, list, this.dispatcher, this.metrics, logger);
      this.views.push(view);
      this.reflectors.push(
        new Reflector({
          def,
          view,
          transport,
          clock,
          // Not bound as a child: every line of the reflector names its resource itself, and a
          // bound key repeated by a log call is written twice (src/log.ts childLogger).
          logger,
          metrics: this.metrics,
          listPageSize: o.listPageSize,
          listMaxBytes: o.upstreamListMaxBytes,
          watchList: o.watchList,
          inactivityTimeoutMs: o.watchInactivityTimeoutMs,
          staleAfterMs,
          missingRetryMs: o.missingResourceRetryMs,
          minAttemptIntervalMs: o.minAttemptIntervalMs ?? 1_000,
          backoff: o.backoff ?? {},
          random: o.random ?? Math.random,
          onHealth: () => this.refreshHealth(),
          onSynced: () => this.dispatcher.resourceSynced(id),
          onRelisted: () => this.dispatcher.relisted(id),
          onFlush: (rv) => {
            this.dispatcher.setWatermark(id, rv);
            this.metrics.objects.set({ resource: id }, view.size);
            this.dispatcher.flush();
          },
        }),
      );
    }
    this.tickMs = Math.max(50, Math.min(5_000, Math.floor(staleAfterMs / 10)));
    this.clusterName = new ClusterName({ o: { transport, clock, metrics: this.metrics, inactivityTimeoutMs: o.watchInactivityTimeoutMs, staleAfterMs } }, clock, logger, o.clusterEpoch);
    if (o.stateDir !== undefined) {
      // Everything that shapes the stored values: restoring a state made under other feeds,
      // selectors or projection rules would serve values this build would not produce.
      const identity = createHash('sha256')
        // The epoch only when set: its absence must not change the identity of checkpoints
        // written before the option existed (every replica would start cold once).
        .update(JSON.stringify({ cluster: o.clusterId ?? '', ...(o.clusterEpoch !== undefined ? { epoch: o.clusterEpoch } : {}), projection: PROJECTION_VERSION, views: this.views.map((v) => [v.def.id, v.views.map((x) => x.id)]) }))
        .digest('hex');
      this.warm = new WarmState({
        dir: o.stateDir, identity, maxBytes: o.stateMaxBytes, intervalMs: o.stateCheckpointIntervalMs, clock, logger: childLogger(logger, { component: 'state' }), loadMaxMs: o.stateLoadMaxMs,
        registry: this.metrics.registry, sources: this.reflectors.map((reflector, i) => ({ reflector, view: this.views[i] as ResourceView })),
        cluster: { name: () => this.clusterName.name, firstAttempt: this.clusterName.firstAttempt },
        beforeCopy: () => this.dispatcher.flush(true),
      });
    }
  }

  private readonly tickMs: number;

  start(sink: FeedSink): void {
    if (this.started) return;
    this.started = true;
    this.dispatcher.start(sink);
    this.ticker = this.clock.setInterval(() => this.refreshHealth(), this.tickMs).unref();
    const warm = this.warm;
    if (warm === undefined) {
      // With an epoch, named from the start rather than at the first HELLO: an agent welcomed
      // before the name is read is told none, forgets the old era's name, and is then compared
      // by watermarks instead of taking the new era's snapshot (docs/deploy.md).
      if (this.clusterName.epoch !== undefined) this.clusterName.start();
      for (const r of this.reflectors) r.start();
      return;
    }
    // The checkpoint names the cluster it was saved in, and the load compares (WarmState.load):
    // read from the start here, not at the first HELLO.
    this.clusterName.start();
    // The checkpoint is restored (and the reflectors seeded) before any reflector starts.
    this.starting = warm.load().then((result) => {
      if (this.stopping) return result;
      // The restored state goes out as one batch with the checkpoint's watermarks: the revision
      // it makes stands for them, so agents whose watermarks are at or above them can rebase on
      // it (PROTOCOL.md §7.1) once the watches have caught up.
      for (const r of this.reflectors) {
        const rv = r.rv ?? r.notServedRv;
        if (rv !== undefined) this.dispatcher.setWatermark(r.id, rv);
      }
      this.dispatcher.flush();
      for (const r of this.reflectors) r.start();
      warm.start();
      return result;
    });
  }

  warmStart(): Promise<WarmStartResult | undefined> {
    return this.starting;
  }

  async finalCheckpoint(abandon?: AbortSignal): Promise<void> {
    // From the drain on, no periodic checkpoint (also when the load ends during it): one newer than
    // what the drained agents hold would leave them unable to rebase after the restart.
    this.warm?.beginFinal();
    await this.starting;
    if (abandon?.aborted) {
      this.warm?.freeze();
      return;
    }
    await this.warm?.final(abandon);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    // Before the load is awaited: it may be waiting for the name (WarmState.otherCluster).
    this.clusterName.stop();
    await this.starting;
    this.warm?.stop();
    this.ticker?.cancel();
    // Reflectors first: what their aborted watches applied is flushed as they end, then nothing.
    await Promise.all(this.reflectors.map((r) => r.stop()));
    this.dispatcher.stop();
  }

  recheckMissing(resources: readonly string[]): void {
    for (const r of this.reflectors) if (resources.includes(r.id)) r.lookAgainIfMissing();
  }

  /**
   * Read at the first HELLO, not at start: a replica no agent ever reaches (a test, a tier-1 replica
   * of tier 2 only) makes no request for it. With a state directory it is read at start (start()),
   * for the checkpoint. The agents answered before the read completes are
   * told no name, which costs them nothing but the name's use until their next WELCOME.
   */
  cluster(): string | undefined {
    if (this.started && !this.stopping) this.clusterName.start();
    return this.clusterName.name;
  }

  health(): readonly ResourceHealth[] {
    return this.reflectors.map((r) => r.health());
  }

  ready(): boolean {
    return upstreamReady(this.health());
  }

  sizes(): { id: string; objects: number; valueBytes: number }[] {
    return this.views.map((v) => ({ id: v.def.id, objects: v.size, valueBytes: v.valueBytes }));
  }

  /** Stale gauges, and the stale flag of every feed that has a stale resource. */
  private refreshHealth(): void {
    const stale = new Set<string>();
    for (const h of this.health()) {
      this.metrics.stale.set({ resource: h.id }, h.stale ? 1 : 0);
      if (h.stale) stale.add(h.id);
    }
    for (const f of this.dispatcher.feeds) this.dispatcher.setStale(f, f.spec.resources.some((r) => stale.has(r)));
    this.dispatcher.flush();
  }
}

/**
 * The upstream: one reflector per resource used by the selected feeds, projecting into per-feed
 * batches for the sink. Throws CATTAIL_UPSTREAM_CONFIG / CATTAIL_UPSTREAM_FEED_INVALID at once
 * for bad configuration; everything at run time is retried, never thrown.
 */
export function createUpstream(options: UpstreamOptions): UpstreamHandle {
  if (typeof options.replicaId !== 'string' || options.replicaId === '') throw new InvalidArgumentError('createUpstream: replicaId must be a non-empty string');
  const o = { ...options, ...resolveOptions(upstreamOptions, options, 'createUpstream') };
  const specs = resolveFeeds(o.feeds, o.customFeeds);
  const kc = options.transport === undefined ? (options.kubeConfig ?? loadKubeConfig(options.kubeconfigPath, options.env)) : undefined;
  const transport = options.transport ?? new KubeTransport(kc as KubeConfig, `cattail/${VERSION} (replica ${options.replicaId})`);
  const clusterId = options.clusterId ?? (kc !== undefined ? clusterIdOf(kc) : '');
  return new KubeUpstream(specs, transport, { ...o, clusterId });
}
