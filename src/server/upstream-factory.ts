/**
 * The upstream of `cattail serve`: the Kubernetes reflectors (src/server/upstream), pointed at a
 * kubeconfig, at in-cluster config, or — only with --embedded-sim — at an in-process simulated API
 * server. `serve.ts` decides which source applies (strictly: never a silent fallback to the
 * simulator); this module builds it.
 */
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { Registry } from 'prom-client';
import type { BuiltUpstream, UpstreamFactory, UpstreamFactoryContext } from './serve.js';
import { deadline, realClock } from '../clock.js';
import { unusableStateDir } from './state/replica-state-file.js';
import { STATE_LOAD_MAX_MS } from './upstream/warm-state.js';
import { ConfigError } from '../errors.js';
import { childLogger } from '../log.js';
import { createUpstream, type UpstreamHandle, upstreamOptionsFromConfig } from './upstream/index.js';
import { UPSTREAM_CATTAIL_TLS } from './options.js';
import { resolveDiscoveryAccess } from '../client/discovery-access.js';

/**
 * The embedded simulated cluster of `npm start`: small enough to start in a second, with light
 * churn so agents see deltas. Fixed on purpose (a demo, not a benchmark); `cattail sim` takes
 * flags for anything bigger.
 */
const EMBEDDED_SIM = Object.freeze({ nodes: 10, podsPerNode: 10, churnPerSec: 2, seed: 1 });

/** Nodes in the replica's cache once the nodes resource is synced (the balancer's agent count). */
function nodeCountOf(upstream: UpstreamHandle): () => number | undefined {
  return () => (upstream.health().find((h) => h.id === 'nodes')?.synced === true ? upstream.sizes().find((s) => s.id === 'nodes')?.objects : undefined);
}

/**
 * `--upstream-cattail-service`: what would make discovery of tier 1 fail on every attempt (a
 * replica that runs, is never ready and only logs why) is refused at start-up instead. Tier 1's
 * Service is read with the same kubeconfig as this replica's own (--service): the kubeconfig
 * option, else KUBECONFIG, ~/.kube/config, the in-cluster service account.
 */
async function checkTier1Discovery(source: { readonly endpoints: readonly string[]; readonly service?: string }, c: UpstreamFactoryContext['config'], ctx: UpstreamFactoryContext): Promise<void> {
  // Following its own Service, each tier-2 replica would follow another, and none would ever sync.
  if (c.service !== undefined && c.service === source.service) {
    throw new ConfigError('CATTAIL_CONFIG_INVALID_VALUE', `--upstream-cattail-service ${source.service} is this replica's own Service (--service): a second tier follows tier 1's`, { details: { option: 'upstreamCattailService', value: source.service } });
  }
  // Discovered replicas get wss:// only when a TLS option is set (the client's rule): a wss://
  // static list with none would be replaced by ws:// URLs that a TLS tier 1 refuses.
  const tlsGiven = Object.values(UPSTREAM_CATTAIL_TLS).some((k) => c[k] !== undefined);
  if (!tlsGiven && source.endpoints.some((u) => u.startsWith('wss://'))) {
    throw new ConfigError('CATTAIL_CONFIG_INVALID_VALUE', '--upstream-cattail-service would reach the discovered replicas with ws:// (no --upstream-cattail-* TLS option is set) while --upstream-cattail names wss:// ones; set --upstream-cattail-ca-file (or another TLS option) for wss://', { details: { option: 'upstreamCattailService' } });
  }
  // Discovered replicas are addressed by pod IP, which a certificate naming the Service does not carry.
  if (tlsGiven && c.upstreamCattailServerName === undefined && c.upstreamCattailServerCn === undefined && c.upstreamCattailServerUriSan === undefined) {
    ctx.log?.warn({ service: source.service }, 'tier 1 is discovered by pod IP over wss:// and checked by host name: unless its certificate names the pod IPs, set --upstream-cattail-server-name, -server-cn or -server-uri-san');
  }
  await resolveDiscoveryAccess(c.kubeconfig, ctx.env, '--upstream-cattail URL', existsSync, '--upstream-cattail-service');
}

/**
 * Refuses a --state-dir that can never hold a checkpoint (unusableStateDir), at start and naming
 * the option; bounded in time like the checkpoint's load (a stalled volume is the load's to time
 * out, and costs a cold start, not the replica).
 */
async function checkStateDir(dir: string): Promise<void> {
  const unusable = await deadline((fn, ms) => realClock.setTimeout(fn, ms), unusableStateDir(dir), STATE_LOAD_MAX_MS, () => new Error('timed out')).catch(() => undefined);
  if (unusable === undefined) return;
  throw new ConfigError('CATTAIL_CONFIG_INVALID_VALUE', `--state-dir ${dir} cannot hold the replica checkpoint (${unusable.code}: ${unusable.message}); mount a writable volume there (docs/deploy.md) or leave the option out`, { details: { option: 'stateDir', dir, code: unusable.code } });
}

export const kubernetesUpstreamFactory: UpstreamFactory = async (source, ctx): Promise<BuiltUpstream> => {
  if (source.kind !== 'cattail' && ctx.config.stateDir !== undefined) await checkStateDir(ctx.config.stateDir);
  const replicaId = ctx.config.serverId ?? ctx.env['POD_NAME'] ?? hostname();
  const registry = new Registry();
  const base = { ...upstreamOptionsFromConfig(ctx.config), replicaId, registry, logger: childLogger(ctx.log, { stage: 'upstream' }), env: ctx.env };
  if (source.kind === 'embedded-sim') {
    // Imported lazily: a production replica never loads the simulator.
    const { startSim } = await import('../sim/index.js');
    const sim = await startSim({ ...EMBEDDED_SIM });
    try {
      // The simulator's own kubeconfig: ~/.kube/config and KUBECONFIG are never consulted.
      const upstream = createUpstream({ ...base, kubeconfigPath: sim.kubeconfigPath });
      return {
        upstream,
        registry,
        kubeconfigPath: sim.kubeconfigPath,
        nodeCount: nodeCountOf(upstream),
        beforeDrain: (abandon) => upstream.finalCheckpoint(abandon),
        description: `EMBEDDED SIMULATED cluster at ${sim.url} (${EMBEDDED_SIM.nodes} nodes × ${EMBEDDED_SIM.podsPerNode} pods, ${EMBEDDED_SIM.churnPerSec} changes/s, seed ${EMBEDDED_SIM.seed})`,
        dispose: () => sim.close(),
      };
    } catch (err) {
      await sim.close();
      throw err;
    }
  }
  if (source.kind === 'cattail') {
    if (ctx.config.stateDir !== undefined) throw new ConfigError('CATTAIL_CONFIG_INVALID_VALUE', '--state-dir checkpoints the watches of the API server; a --upstream-cattail replica has none (it rebases on its tier-1 replica instead)', { details: { option: 'stateDir' } });
    if (ctx.config.clusterEpoch !== undefined) throw new ConfigError('CATTAIL_CONFIG_INVALID_VALUE', '--cluster-epoch names the cluster of the API server watched; a --upstream-cattail replica names no cluster (set it on tier 1)', { details: { option: 'clusterEpoch' } });
    if (ctx.config.customFeeds.length > 0) throw new ConfigError('CATTAIL_CONFIG_INVALID_VALUE', 'customFeeds are defined where the API server is watched (tier 1); a --upstream-cattail replica follows built-in feeds', { details: { option: 'customFeeds' } });
    const { CattailUpstream } = await import('./upstream-cattail.js');
    const c = ctx.config;
    // Only the options given: the client takes any TLS key as "TLS configured" (wss:// for
    // discovered replicas).
    const tls = Object.fromEntries(Object.entries(UPSTREAM_CATTAIL_TLS).flatMap(([setting, option]) => (c[option] === undefined ? [] : [[setting, c[option]]]))) as Partial<Record<keyof typeof UPSTREAM_CATTAIL_TLS, string>>;
    // A certificate without its key (or the other way round) is refused here, naming the serve
    // options, not later by the client library naming its own.
    if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
      const option = tls.certFile === undefined ? 'upstreamCattailKeyFile' : 'upstreamCattailCertFile';
      throw new ConfigError('CATTAIL_CONFIG_INVALID_VALUE', `option ${option} needs ${option === 'upstreamCattailKeyFile' ? 'upstreamCattailCertFile' : 'upstreamCattailKeyFile'} too (a client certificate and its key)`, { details: { option } });
    }
    if (source.service !== undefined) await checkTier1Discovery(source, c, ctx);
    const upstream = new CattailUpstream({
      endpoints: source.endpoints, service: source.service, servicePortName: c.upstreamCattailServicePortName, feeds: ctx.config.feeds, replicaId,
      staleAfterMs: ctx.config.upstreamStaleAfterMs, clock: realClock, log: childLogger(ctx.log, { stage: 'upstream-cattail' }), tls,
      ...(c.kubeconfig !== undefined ? { kubeconfig: c.kubeconfig } : {}),
    });
    const where = [...(source.service !== undefined ? [`Service ${source.service} (port ${c.upstreamCattailServicePortName})`] : []), ...source.endpoints].join(', ');
    // The tier-2 replica balances from its own Service with the ambient kubeconfig (if any).
    return { upstream, description: `tier 1 Cattail at ${where} (second tier: no API-server watches here)`, ...(ctx.config.kubeconfig !== undefined ? { kubeconfigPath: ctx.config.kubeconfig } : {}) };
  }
  if (source.kind === 'kubeconfig') {
    const upstream = createUpstream({ ...base, kubeconfigPath: source.path });
    return { upstream, registry, kubeconfigPath: source.path, nodeCount: nodeCountOf(upstream), beforeDrain: (abandon) => upstream.finalCheckpoint(abandon), description: `Kubernetes API from kubeconfig ${source.path} (${source.from})` };
  }
  // In-cluster (no --kubeconfig, no KUBECONFIG, or serve would have chosen the kubeconfig source):
  // loadKubeConfig reads the service account and re-reads its rotating token.
  const upstream = createUpstream(base);
  return { upstream, registry, nodeCount: nodeCountOf(upstream), beforeDrain: (abandon) => upstream.finalCheckpoint(abandon), description: 'Kubernetes API from the in-cluster service account' };
};
