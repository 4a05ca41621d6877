/**
 * Replica discovery from a Service's EndpointSlices (`kubernetes.io/service-name=<name>`), so an
 * agent follows the Deployment as replicas come and go instead of a static list.
 *
 * Order, as the fleet needs it:
 *  1. ready endpoints only (a terminating or not-ready replica is draining or out of sync);
 *  2. a replica on the agent's own node first (no cross-node hop, and it survives the loss of
 *     the node network between nodes); then the rest shuffled with the injected random source,
 *     so agents spread evenly instead of all picking the first address;
 *  3. when NO endpoint is ready — every replica stale, e.g. the API server is down — the
 *     not-ready ones, flagged, because a replica serving its last known state is better than none
 *     (Calico's Typha clients make the same choice: they fall back rather than stop).
 * The port is found by name (`agents` by default), never by number: the Service owns the number.
 *
 * The Kubernetes call is behind a small source interface; `kubeEndpointSliceSource` is the real one
 * (the agent's own client-node config: in-cluster service account or kubeconfig).
 */
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { deadline } from '../clock.js';
import { CattailError } from '../errors.js';

/** The parts of a discovery.k8s.io/v1 EndpointSlice that discovery reads. */
export interface EndpointSliceLike {
  readonly addressType?: string;
  readonly ports?: readonly { readonly name?: string | null; readonly port?: number | null }[] | null;
  readonly endpoints?: readonly {
    readonly addresses?: readonly string[] | null;
    readonly nodeName?: string | null;
    /** The pod behind the endpoint (replicas find themselves by it). */
    readonly targetRef?: { readonly name?: string | null } | null;
    readonly conditions?: { readonly ready?: boolean | null; readonly serving?: boolean | null; readonly terminating?: boolean | null } | null;
  }[] | null;
}

export interface EndpointSliceSource {
  /** The slices of one Service. */
  list(namespace: string, service: string, signal?: AbortSignal): Promise<readonly EndpointSliceLike[]>;
}

export interface DiscoveredEndpoints {
  /** URLs in the order to try them. */
  readonly urls: readonly string[];
  /** True when no replica was ready and the list holds not-ready ones (say so in the status). */
  readonly fallbackNotReady: boolean;
}

export interface DiscoveryOrder {
  /** The agent's node name: its local replica goes first. */
  readonly node: string;
  /** @default 'agents' */
  readonly portName?: string;
  /** `ws` or `wss` (TLS configured). */
  readonly scheme: 'ws' | 'wss';
  readonly random: () => number;
}

/** A Service reference: two DNS labels, `namespace/name`. */
const SERVICE_REF = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/([a-z0-9]([-a-z0-9]*[a-z0-9])?)$/;

/** The option check for a Service reference (the agent's and the replica's `service`). */
export function checkServiceRef(v: string): string | undefined {
  return SERVICE_REF.test(v) ? undefined : 'expected NAMESPACE/NAME, e.g. calico-system/cattail';
}

/** `namespace/name` → its parts. @throws CattailError CATTAIL_CONFIG_INVALID_VALUE */
export function parseServiceRef(ref: string): { namespace: string; name: string } {
  const m = SERVICE_REF.exec(ref);
  if (m === null) throw new CattailError('CATTAIL_CONFIG_INVALID_VALUE', `service must be NAMESPACE/NAME (e.g. calico-system/cattail), got ${JSON.stringify(ref)}`, { details: { option: 'service' } });
  return { namespace: m[1] as string, name: m[3] as string };
}

function shuffle<T>(xs: T[], random: () => number): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.min(i, Math.floor(random() * (i + 1)));
    [xs[i], xs[j]] = [xs[j] as T, xs[i] as T];
  }
  return xs;
}

function hostOf(address: string): string {
  return address.includes(':') ? `[${address}]` : address;
}

/** One endpoint of a slice that has the named port (the one walk the agent, the replicas and `cattail converge` share). */
export interface SliceEndpoint {
  readonly address: string;
  /** The address as a URL host (`[v6]`). */
  readonly host: string;
  readonly port: number;
  /** EndpointSlice semantics: a nil `ready` means ready; terminating endpoints are never ready. */
  readonly ready: boolean;
  readonly nodeName: string | undefined;
  readonly podName: string | undefined;
  /** Another named port of the same slice. */
  portNamed(name: string): number | undefined;
}

/** Every endpoint of `slices` with the port `portName` (FQDN slices and endpoints without an address skipped). */
export function* sliceEndpoints(slices: readonly EndpointSliceLike[], portName: string): Generator<SliceEndpoint> {
  for (const s of slices) {
    if (s.addressType === 'FQDN') continue;
    const portNamed = (name: string): number | undefined => s.ports?.find((p) => (p.name ?? '') === name)?.port ?? undefined;
    const port = portNamed(portName);
    if (port === undefined) continue;
    for (const e of s.endpoints ?? []) {
      const address = e.addresses?.[0];
      if (address === undefined) continue;
      yield {
        address, host: hostOf(address), port, portNamed,
        ready: e.conditions?.ready !== false && e.conditions?.terminating !== true,
        nodeName: e.nodeName ?? undefined, podName: e.targetRef?.name ?? undefined,
      };
    }
  }
}

/** Orders the endpoints of `slices` as the rules above say. Pure: tests feed it slices directly. */
export function orderEndpoints(slices: readonly EndpointSliceLike[], o: DiscoveryOrder): DiscoveredEndpoints {
  const ready: { url: string; local: boolean }[] = [];
  const notReady: { url: string; local: boolean }[] = [];
  const seen = new Set<string>();
  for (const e of sliceEndpoints(slices, o.portName ?? 'agents')) {
    const url = `${o.scheme}://${e.host}:${e.port}/`;
    if (seen.has(url)) continue;
    seen.add(url);
    (e.ready ? ready : notReady).push({ url, local: e.nodeName === o.node });
  }
  const order = (xs: { url: string; local: boolean }[]): string[] => [
    ...xs.filter((x) => x.local).map((x) => x.url),
    ...shuffle(xs.filter((x) => !x.local).map((x) => x.url), o.random),
  ];
  if (ready.length > 0) return { urls: order(ready), fallbackNotReady: false };
  return { urls: order(notReady), fallbackNotReady: notReady.length > 0 };
}

/** The service account token a pod gets (client-node's in-cluster config reads it). */
export const IN_CLUSTER_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/** Where discovery's Kubernetes config comes from; `flag`: given explicitly (option or flag). */
export type DiscoveryConfigSource =
  | { readonly kind: 'kubeconfig'; readonly paths: readonly string[]; readonly from: 'flag' | 'KUBECONFIG' | 'home' }
  | { readonly kind: 'in-cluster' };

/**
 * The config discovery will load, found the way client-node's loadFromDefault looks (an explicit
 * kubeconfig, KUBECONFIG as a path list, $HOME/.kube/config, the service account token), or
 * undefined when there is none: client-node would then fall back to http://localhost:8080, which
 * is never what an agent meant. Shared by the library and the commands' start-up check.
 */
export function discoveryConfigSource(
  kubeconfig: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
  fileExists: (path: string) => boolean = existsSync,
): DiscoveryConfigSource | undefined {
  if (kubeconfig !== undefined) return { kind: 'kubeconfig', paths: [kubeconfig], from: 'flag' };
  const fromEnv = (env['KUBECONFIG'] ?? '').split(delimiter).filter((p) => p !== '');
  if (fromEnv.length > 0) return { kind: 'kubeconfig', paths: fromEnv, from: 'KUBECONFIG' };
  const home = env['HOME'];
  if (home !== undefined && home !== '' && fileExists(join(home, '.kube', 'config'))) return { kind: 'kubeconfig', paths: [join(home, '.kube', 'config')], from: 'home' };
  if (fileExists(IN_CLUSTER_TOKEN)) return { kind: 'in-cluster' };
  return undefined;
}

/** CATTAIL_CLIENT_NO_DISCOVERY_CONFIG: discoveryConfigSource found nothing to read EndpointSlices with. */
export function noDiscoveryConfig(env: Readonly<Record<string, string | undefined>>): CattailError {
  return new CattailError('CATTAIL_CLIENT_NO_DISCOVERY_CONFIG', 'service discovery found no kubeconfig (the kubeconfig option, KUBECONFIG, $HOME/.kube/config) and no in-cluster service account', { details: { home: env['HOME'] } });
}

/**
 * The real source: client-node's DiscoveryV1Api with the agent's config (a kubeconfig path, or
 * client-node's default order: KUBECONFIG, ~/.kube/config, in-cluster). Loaded lazily so agents
 * with static endpoints never load client-node.
 * @throws CattailError CATTAIL_CLIENT_NO_DISCOVERY_CONFIG when none of them exists: client-node
 *   would then talk to http://localhost:8080, which is never what an agent meant, and each look
 *   failed with "HTTP protocol is not allowed when skipTLSVerify is not set"
 */
export async function kubeEndpointSliceSource(kubeconfigPath?: string, env: Readonly<Record<string, string | undefined>> = process.env): Promise<EndpointSliceSource> {
  if (discoveryConfigSource(kubeconfigPath, env) === undefined) throw noDiscoveryConfig(env);
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  if (kubeconfigPath !== undefined) kc.loadFromFile(kubeconfigPath);
  else kc.loadFromDefault();
  const api = kc.makeApiClient(k8s.DiscoveryV1Api);
  return {
    async list(namespace, service) {
      try {
        // resourceVersion 0: from the API server's watch cache, not a quorum read of etcd. Every
        // agent of a replica that crashed looks at once (its first retry is 125-250 ms later, no
        // GOODBYE to spread them): thousands of consistent LISTs reached etcd within a second.
        // A cached read may be a moment old; the rotation and the next look cover that.
        const res = await api.listNamespacedEndpointSlice({ namespace, labelSelector: `kubernetes.io/service-name=${service}`, resourceVersion: '0' });
        return res.items as readonly EndpointSliceLike[];
      } catch (err) {
        throw new CattailError('CATTAIL_CLIENT_DISCOVERY_FAILED', `cannot list the EndpointSlices of service ${namespace}/${service}: ${(err as Error).message}`, { cause: err, details: { namespace, service } });
      }
    },
  };
}

/** What one look at the Service found; `error` when the look failed (the previous list is kept). */
export interface DiscoveryResult extends DiscoveredEndpoints {
  readonly error: CattailError | undefined;
}

export interface ServiceDiscoveryOptions extends DiscoveryOrder {
  /** `namespace/name` of the Cattail Service. */
  readonly service: string;
  /** The EndpointSlice reader. Unset: client-node with `kubeconfigPath` (or the default config), loaded on first use. */
  readonly source: EndpointSliceSource | undefined;
  readonly kubeconfigPath: string | undefined;
  /** A look younger than this is reused, in ms: a reconnect storm must not become an API-server storm. */
  readonly minIntervalMs: number;
  /** Monotonic ms. */
  readonly now: () => number;
  /** A look not answered within this many ms fails (the previous list is kept). */
  readonly timeoutMs: number;
  /** The injected clock's timer (for the timeout). */
  readonly setTimeout: (fn: () => void, ms: number) => { cancel(): void };
}

/**
 * Reads a Service's EndpointSlices, for the agents' discovery and the replicas' balancer alike: the
 * source is made on first use (client-node with `kubeconfigPath` unless one is given), one request
 * is in flight at a time (a read that outlived its deadline is awaited again by the next one rather
 * than joined by another: a hung API server must not collect one socket per read), and a read
 * fails after `timeoutMs` (client-node's request has no deadline of its own: a black-holed API
 * server held every reconnect attempt, and a replica's shutdown, until TCP gave up, minutes later).
 */
export class EndpointSliceReader {
  private readonly ref: { namespace: string; name: string };
  private source: EndpointSliceSource | undefined;
  private pending: Promise<readonly EndpointSliceLike[]> | undefined;

  constructor(private readonly o: {
    /** `namespace/name` of the Service. */
    readonly service: string;
    readonly source: EndpointSliceSource | undefined;
    readonly kubeconfigPath: string | undefined;
    /** ms a read may take. */
    readonly timeoutMs: number;
    /** The injected clock's timer. */
    readonly setTimeout: (fn: () => void, ms: number) => { cancel(): void };
  }) {
    this.ref = parseServiceRef(o.service);
    this.source = o.source;
  }

  /** @throws CattailError CATTAIL_CLIENT_DISCOVERY_FAILED past the deadline; the source's error otherwise */
  read(): Promise<readonly EndpointSliceLike[]> {
    this.pending ??= this.list().finally(() => (this.pending = undefined));
    return deadline(this.o.setTimeout, this.pending, this.o.timeoutMs, () =>
      new CattailError('CATTAIL_CLIENT_DISCOVERY_FAILED', `the EndpointSlices of ${this.o.service} did not come within ${this.o.timeoutMs} ms`, { details: { service: this.o.service, timeoutMs: this.o.timeoutMs } }));
  }

  private async list(): Promise<readonly EndpointSliceLike[]> {
    this.source ??= await kubeEndpointSliceSource(this.o.kubeconfigPath);
    return this.source.list(this.ref.namespace, this.ref.name);
  }
}

/**
 * Looks at the Service's EndpointSlices before a connection attempt (the client calls it before
 * each attempt), at most once per `minIntervalMs`. A failed look keeps the previous list and says
 * so; the caller decides what to do with an empty one.
 */
export class ServiceDiscovery {
  private readonly reader: EndpointSliceReader;
  private last: DiscoveryResult = { urls: [], fallbackNotReady: false, error: undefined };
  private lastAtMs = Number.NEGATIVE_INFINITY;
  /** Looks made (for tests and the agent's status line). */
  looks = 0;

  constructor(private readonly o: ServiceDiscoveryOptions) {
    this.reader = new EndpointSliceReader(o);
  }

  /** The last result, without looking. */
  get current(): DiscoveryResult {
    return this.last;
  }

  /** True when a look now would not be a reuse. */
  get due(): boolean {
    return this.o.now() - this.lastAtMs >= this.o.minIntervalMs;
  }

  async refresh(): Promise<DiscoveryResult> {
    if (!this.due) return this.last;
    this.lastAtMs = this.o.now();
    this.looks++;
    try {
      const slices = await this.reader.read();
      this.last = { ...orderEndpoints(slices, this.o), error: undefined };
    } catch (err) {
      const error = CattailError.is(err) && err.code === 'CATTAIL_CLIENT_DISCOVERY_FAILED'
        ? err
        : new CattailError('CATTAIL_CLIENT_DISCOVERY_FAILED', `cannot discover the replicas of ${this.o.service}: ${(err as Error).message}`, { cause: err, details: { service: this.o.service } });
      this.last = { urls: this.last.urls, fallbackNotReady: this.last.fallbackNotReady, error };
    }
    return this.last;
  }
}
