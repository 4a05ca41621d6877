/**
 * `cattail serve`: config → upstream source → `startServer` → run until SIGTERM/SIGINT, then drain
 * (a second signal closes the rest at once).
 *
 * The upstream comes from a factory so the command does not depend on how it is built: the
 * Kubernetes upstream and the embedded simulator plug in through
 * {@link createServeCommand}. Where the upstream is found is decided here, strictly: an explicit
 * --kubeconfig, then KUBECONFIG, then in-cluster config; with none of them serve fails with a coded
 * error, because silently serving a simulated (or empty) cluster to real agents would be a
 * cluster-wide outage that looks healthy.
 */
import { existsSync } from 'node:fs';
import type { Registry } from 'prom-client';
import type { ConfigOf } from '../config/options.js';
import { CattailError, ConfigError } from '../errors.js';
import { type Logger, childLogger, createLogger } from '../log.js';
import { selectOptions } from '../config/resolve.js';
import { type serveOptions, serverOptions, splitEndpoints, UPSTREAM_CATTAIL_TLS } from './options.js';
import type { Upstream } from './pipeline/seams.js';
import { type ServerHandle, startServer } from './server.js';
import { ReplicaBalancer } from './fleet/balancer.js';
import { deadline, realClock } from '../clock.js';
import { tlsSettingsOf } from './transport/tls/options.js';

export type ServeConfig = ConfigOf<typeof serveOptions>;

/**
 * What `serve` needs from its caller: where to print the banner, the environment, and the signal
 * that ends it. Declared here (the CLI's command context satisfies it structurally) so the server
 * library never depends on the command-line layer.
 */
export interface ServeContext {
  readonly stdout: NodeJS.WritableStream;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Aborted on SIGTERM/SIGINT; serve then drains (paced, up to shutdownTimeoutMs) and resolves. */
  readonly signal: AbortSignal;
  /** Aborted on a second SIGTERM/SIGINT: the agents still open are closed at once. */
  readonly forceSignal?: AbortSignal;
}

/** Where the upstream's data comes from. */
export type UpstreamSource =
  | { readonly kind: 'kubeconfig'; readonly path: string; readonly from: 'flag' | 'KUBECONFIG' }
  | { readonly kind: 'in-cluster' }
  | { readonly kind: 'cattail'; readonly endpoints: readonly string[]; readonly service?: string }
  | { readonly kind: 'embedded-sim' };

export interface UpstreamFactoryContext {
  readonly config: ServeConfig;
  readonly log: Logger;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly signal: AbortSignal;
}

export interface BuiltUpstream {
  readonly upstream: Upstream;
  /** One line for the start-up banner (e.g. "simulated cluster: 5 nodes, 50 pods"). */
  readonly description?: string;
  /** The upstream's metrics, served on /metrics beside the server's. */
  readonly registry?: Registry;
  /** The kubeconfig the upstream uses (unset: in-cluster); the balancer reads EndpointSlices with it. */
  readonly kubeconfigPath?: string;
  /** Nodes in the upstream's cache once synced; the balancer's agent count. */
  readonly nodeCount?: () => number | undefined;
  /** Released after the server closed (an embedded simulator's HTTP server, ...). */
  readonly dispose?: () => Promise<void>;
  /**
   * Called when the drain starts (SIGTERM): the replica's last checkpoint with --state-dir. Never
   * throws. `abandon` fires when the drain stops waiting for it (FINAL_CHECKPOINT_MAX_MS): no
   * write may start after that.
   */
  readonly beforeDrain?: (abandon: AbortSignal) => Promise<void>;
}

export type UpstreamFactory = (source: UpstreamSource, ctx: UpstreamFactoryContext) => Promise<BuiltUpstream>;

const IN_CLUSTER_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/**
 * --upstream-cattail, then --embedded-sim, then --kubeconfig, then KUBECONFIG, then in-cluster config.
 * @throws CattailError CATTAIL_SERVE_NO_UPSTREAM_CONFIG when there is none
 * @throws ConfigError CATTAIL_CONFIG_INVALID_VALUE when two upstreams are named (--embedded-sim
 *   with --upstream-cattail or an explicit kubeconfig)
 */
export function resolveUpstreamSource(config: ServeConfig, env: Readonly<Record<string, string | undefined>>, fileExists: (p: string) => boolean = existsSync): UpstreamSource {
  const tier2Tls = Object.values(UPSTREAM_CATTAIL_TLS).find((k) => config[k] !== undefined);
  const tier2 = config.upstreamCattail.length > 0 || config.upstreamCattailService !== undefined;
  if (!tier2 && tier2Tls !== undefined) {
    throw new ConfigError('CATTAIL_CONFIG_INVALID_VALUE', `option ${tier2Tls} is TLS to a tier-1 Cattail and needs --upstream-cattail wss://… or --upstream-cattail-service; without either nothing would use it`, { details: { option: tier2Tls } });
  }
  if (tier2) {
    const option = config.upstreamCattail.length > 0 ? 'upstreamCattail' : 'upstreamCattailService';
    if (config.embeddedSim) throw new ConfigError('CATTAIL_CONFIG_INVALID_VALUE', `--${option === 'upstreamCattail' ? 'upstream-cattail' : 'upstream-cattail-service'} and --embedded-sim are two upstreams; choose one`, { details: { option } });
    const endpoints = splitEndpoints(config.upstreamCattail);
    return config.upstreamCattailService === undefined ? { kind: 'cattail', endpoints } : { kind: 'cattail', endpoints, service: config.upstreamCattailService };
  }
  if (config.embeddedSim) {
    // An explicit kubeconfig (flag, CATTAIL_KUBECONFIG or the config file's key) says "this
    // cluster"; serving the simulated one instead would look healthy while feeding agents made-up
    // data. Only the ambient KUBECONFIG and ~/.kube/config are ignored, as documented.
    if (config.kubeconfig !== undefined) {
      throw new ConfigError('CATTAIL_CONFIG_INVALID_VALUE', `--kubeconfig (${config.kubeconfig}) and --embedded-sim are two upstreams; choose one`, { details: { option: 'kubeconfig', value: config.kubeconfig } });
    }
    return { kind: 'embedded-sim' };
  }
  if (config.kubeconfig !== undefined) return { kind: 'kubeconfig', path: config.kubeconfig, from: 'flag' };
  const kc = env['KUBECONFIG'];
  if (kc !== undefined && kc !== '') return { kind: 'kubeconfig', path: kc, from: 'KUBECONFIG' };
  if (env['KUBERNETES_SERVICE_HOST'] && env['KUBERNETES_SERVICE_PORT'] && fileExists(IN_CLUSTER_TOKEN)) return { kind: 'in-cluster' };
  throw new CattailError(
    'CATTAIL_SERVE_NO_UPSTREAM_CONFIG',
    'no upstream configured: pass --kubeconfig FILE, set KUBECONFIG, or run in a pod with a service account; `cattail serve --embedded-sim` (npm start) runs against a simulated cluster',
  );
}

/**
 * --service: the replica balances itself against the peers in its own Service (fleet/balancer.ts).
 * Its share replaces --target-connections and --peer-endpoints from the first look on.
 */
function startBalancer(config: ServeConfig, built: BuiltUpstream, server: ServerHandle, log: Logger): ReplicaBalancer {
  const podIp = process.env['POD_IP'];
  const balancer = new ReplicaBalancer({
    service: config.service as string,
    selfName: server.serverId,
    selfAddresses: podIp === undefined ? [] : [podIp],
    agentsPortName: 'agents',
    metricsPortName: 'metrics',
    // Peers share this replica's flags: TLS here means wss there, and --http-tls an https ops
    // port presenting the same certificate as ours: the one served now (reloaded when renewed),
    // not the file's, which a broken rotation changes while every replica keeps the old one.
    scheme: config.serverCertFile !== undefined ? 'wss' : 'ws',
    loadScheme: config.httpTls ? 'https' : 'http',
    ownCertFingerprint: () => server.servedCertFingerprint(),
    intervalMs: config.balanceIntervalMs,
    nodeCount: built.nodeCount ?? (() => undefined),
    ownConnections: () => server.connectionCount(),
    apply: (share) => {
      server.setTargetConnections(share.target);
      server.setPeerEndpoints(share.hints);
    },
    clock: realClock,
    log: childLogger(log, { stage: 'balance' }),
    kubeconfigPath: built.kubeconfigPath,
  });
  balancer.start();
  return balancer;
}

function waitForAbort(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}

/** The `run` of `cattail serve`, with the upstream taken from `factory`. */
/**
 * The longest the drain waits for the final checkpoint (beforeDrain), in ms. Why bounded: a state
 * volume that stops answering (a stalled network disk) held SIGTERM's drain, and with it the
 * agents' GOODBYEs, until the kubelet's SIGKILL. The deploy's grace period is shutdownTimeoutMs +
 * 30 s (docs/deploy.md), so the checkpoint gets half of that margin. A write cut off leaves the
 * previous file in place (it is written aside and renamed), so the restart is warm from an older
 * checkpoint or cold, never wrong.
 */
export const FINAL_CHECKPOINT_MAX_MS = 15_000;

/** `finalCheckpointMaxMs`: for tests (default FINAL_CHECKPOINT_MAX_MS). */
export function createServeCommand(factory: UpstreamFactory, makeLogger: (level: string) => Logger = (l) => createLogger(l, 'cattail-serve'), finalCheckpointMaxMs = FINAL_CHECKPOINT_MAX_MS) {
  return async (config: ServeConfig, ctx: ServeContext): Promise<number> => {
    // Checked before the upstream is built, so a half-set TLS configuration fails at once.
    const tls = tlsSettingsOf(config, 'cattail serve');
    const source = resolveUpstreamSource(config, ctx.env);
    const log = makeLogger(config.logLevel);
    const built = await factory(source, { config, log, env: ctx.env, signal: ctx.signal });
    let server;
    try {
      server = await startServer({
        ...selectOptions(serverOptions, config),
        upstream: built.upstream,
        log,
        ...(built.registry !== undefined ? { extraMetrics: [built.registry] } : {}),
        ...(built.description !== undefined ? { upstreamDescription: built.description } : {}),
      });
    } catch (err) {
      await built.dispose?.();
      throw err;
    }
    const balancer = config.service === undefined ? undefined : startBalancer(config, built, server, log);
    const feeds = built.upstream.feeds.map((f) => f.name).join(',');
    if (source.kind === 'embedded-sim') {
      // The banner is for the person at the terminal; log-based monitoring sees only stderr, so the
      // fact that nothing real is served is also one warn line there, once per start.
      log.warn({ upstream: 'embedded-sim', serverId: server.serverId }, 'serving an EMBEDDED SIMULATED cluster (--embedded-sim): not a real API server; never use in production');
      ctx.stdout.write('cattail serve: EMBEDDED SIMULATED CLUSTER (--embedded-sim) — not a real API server; ~/.kube/config and KUBECONFIG are ignored\n');
    }
    if (built.description !== undefined) ctx.stdout.write(`cattail serve: upstream: ${built.description}\n`);
    ctx.stdout.write(`cattail serve: agents on ${server.url} (feeds ${feeds}); /metrics /livez /readyz${config.debugEndpoints ? ' /debug/clients' : ''} on ${server.httpUrl}\n`);
    // A line of its own: scripts read the HTTP port's URL from the end of the line above.
    ctx.stdout.write(`cattail serve: the probes (/livez /readyz) alone also on ${server.healthUrl}\n`);
    const tlsFlags = tls === undefined ? '' : ` --ca-file CA_OF_SERVER_CERT${tls.allow !== undefined ? ' --cert-file CLIENT_CERT --key-file CLIENT_KEY' : ''}`;
    ctx.stdout.write(`cattail serve: connect an agent with: cattail agent --server ${server.url} --feed ${built.upstream.feeds[0]?.name ?? 'felix'}${tlsFlags}\n`);
    await waitForAbort(ctx.signal);
    const agents = server.connectionCount();
    log.info({ serverId: server.serverId, agents, shutdownTimeoutMs: config.shutdownTimeoutMs }, 'shutting down: draining');
    if (agents > 0) ctx.stdout.write(`cattail serve: draining ${agents} agent(s) over up to ${Math.ceil(config.shutdownTimeoutMs / 1000)} s; signal again to close them at once\n`);
    // New agents are refused from here (a peer's stale hint still sends some): one admitted
    // during the final checkpoint got a whole snapshot only to be drained.
    server.refuseNew();
    // The last checkpoint is taken before any agent leaves: every agent it served then holds
    // that state or a newer one, so each can rebase on the restarted replica (warm-state.ts).
    if (built.beforeDrain !== undefined) {
      const t0 = realClock.monotonic();
      const late = new Error('the final checkpoint did not finish in time');
      const forced = new Error('a second signal');
      const abandon = new AbortController();
      const checkpoint = deadline((fn, ms) => realClock.setTimeout(fn, ms), built.beforeDrain(abandon.signal), finalCheckpointMaxMs, () => late);
      // A second signal during it is not kept waiting for it (up to finalCheckpointMaxMs): the
      // operator wants out now, and one who signalled a third time found the handlers gone and
      // killed the process without a GOODBYE to anyone.
      const force = ctx.forceSignal;
      const interrupted = force === undefined ? undefined : waitForAbort(force).then(() => Promise.reject(forced));
      await (interrupted === undefined ? checkpoint : Promise.race([checkpoint, interrupted])).catch((err: unknown) => {
        abandon.abort();
        if (err === forced) log.warn({ waitedMs: Math.round(realClock.monotonic() - t0) }, 'second signal during the final checkpoint: closing the agents without waiting for it (the previous checkpoint stays)');
        else if (err !== late) log.error({ err }, 'the final checkpoint failed; draining without it (the previous checkpoint stays)');
        else log.warn({ waitedMs: Math.round(realClock.monotonic() - t0), limitMs: finalCheckpointMaxMs }, 'the final checkpoint did not finish in time; draining without waiting for it (the previous checkpoint stays)');
      });
      // The losing side of the race must not reject unhandled later.
      checkpoint.catch(() => undefined);
      interrupted?.catch(() => undefined);
    }
    const drained = server.drain();
    const force = ctx.forceSignal;
    // A second signal: the operator wants out now. The rest get GOODBYE at once (reconnect delays
    // still spread); the drain then ends as usual.
    if (force !== undefined) void waitForAbort(force).then(() => server.close());
    await drained;
    await balancer?.stop();
    await built.dispose?.();
    return 0;
  };
}

/** `cattail serve` as shipped: the Kubernetes upstream, or the simulator with --embedded-sim. */
export const runServe: ReturnType<typeof createServeCommand> = async (config, ctx) => {
  const { kubernetesUpstreamFactory } = await import('./upstream-factory.js');
  return createServeCommand(kubernetesUpstreamFactory)(config, ctx);
};
