/**
 * `startServer(options)`: the library entry of the fan-out server. Two listeners (agent WebSocket
 * port, HTTP port for metrics and probes), one store per feed the upstream serves, one fan-out.
 * `cattail serve` (serve.ts) is a thin shell over this.
 */
import { OwnFrames } from './transport/own-frames.js';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import type { Server } from 'node:http';
import { X509Certificate } from 'node:crypto';
import { Registry } from 'prom-client';
import { type Clock, realClock, type Timer } from '../clock.js';
import type { OptionsOf } from '../config/options.js';
import { checkOption, resolveOptions } from '../config/resolve.js';
import { CattailError, InvalidArgumentError } from '../errors.js';
import type { Logger } from '../log.js';
import { Connection } from './transport/connection.js';
import { FanOut } from './fanout/fanout.js';
import { FanOutStats, type FanOutStatsSnapshot } from './fanout/stats.js';
import { FeedRuntime } from './fanout/feeds.js';
import { ScopeIndex } from './scoping/index.js';
import { SCOPE_POLICIES } from './scoping/policy.js';
import { CLOSE_WAIT_MS, Shedder } from './fanout/shed.js';
import { Governor } from './transport/governor.js';
import { Health } from './ops/health.js';
import type { LoadReport } from './fleet/balancer.js';
import { HEALTH_PORT_LIMITS, createHealthEndpoints, createHttpEndpoints, hardenHttpPort, httpEndpointsHandler } from './ops/http-endpoints.js';
import { acceptHooks } from './transport/accept.js';
import { InboundBudget } from './transport/inbound-budget.js';
import { ANY_HOST, type AgentTransport, HARD_CAP_FACTOR, type PeerInfo } from './transport/seam.js';
import { UwsTransport } from './transport/uws-transport.js';
import { WsTransport } from './transport/ws-transport.js';
import { describePeerTls } from './transport/tls/identity.js';
import { TlsListener } from './transport/tls/listener.js';
import { tlsSettingsOf } from './transport/tls/options.js';
import { type ClientsQuery, clientsPage } from './ops/debug-clients.js';
import { type ServerMetrics, createMetrics, registerStateGauges } from './ops/metrics.js';
import { isWsUrl, parseHostPort, splitEndpoints, startServerOptions } from './options.js';
import { registerConvergenceGauges } from './ops/convergence-metrics.js';
import { Pipeline } from './pipeline/pipeline.js';
import type { Upstream } from './pipeline/seams.js';
import { SnapshotCache, type SnapshotBuild } from './fanout/snapshot-cache.js';
import type { TurnBudget } from './fanout/turn-queue.js';
import { defaultStoreFactory } from './pipeline/store-factory.js';
import type { ServedStore, StoreFactory } from './pipeline/store-port.js';
import { COMPRESSIONS, type Compression } from './transport/framing.js';

/**
 * Options of {@link startServer}: the table-derived part ({@link startServerOptions}: listeners,
 * identity and limits, with `cattail serve`'s units, ranges and defaults except that both
 * listeners default to a free port on 127.0.0.1) and the programmatic extras beside it.
 */
export interface StartServerOptions extends OptionsOf<typeof startServerOptions> {
  /** Where batches come from (the Kubernetes upstream, the simulator, or a scripted source). */
  readonly upstream: Upstream;
  /** @default realClock */
  readonly clock?: Clock;
  /** Uniform [0, 1) source for jitter (pings); pass `seededRandom(seed)` to replay a run. @default Math.random */
  readonly random?: () => number;
  /** @default no logging */
  readonly log?: Logger;
  /** The store of each feed. @default the src/snapshot FeedStore */
  readonly createStore?: StoreFactory;
  /** Compressions the server may choose from the agents' caps. @default ['none','deflate','brotli'] */
  readonly compressions?: readonly Compression[];
  /** Where the data comes from, shown first in /livez and /readyz (e.g. the embedded simulator). */
  readonly upstreamDescription?: string;
  /** More registries served on /metrics (the upstream's). @default none */
  readonly extraMetrics?: readonly Registry[];
  /** Serve /debug/clients on the HTTP port (it names every node and address). @default false */
  /** Collect prom-client's default process metrics. @default true */
  readonly defaultMetrics?: boolean;
  /** Bytes and time one service turn (snapshot streaming, catch-ups) may hold the event loop; for tests and benchmarks. @default { maxMs: 20, maxBytes: 8 MiB } */
  readonly serviceTurn?: TurnBudget;
}

export interface ServerHandle {
  /** `ws://host:port/` for agents (`wss://` with serverCertFile). */
  readonly url: string;
  /** `http://host:port` for /metrics, /livez, /readyz (`https://` with httpTls). */
  readonly httpUrl: string;
  /** `http://host:port` for /livez and /readyz alone (healthListen; plaintext, whatever httpTls says). */
  readonly healthUrl: string;
  readonly serverId: string;
  readonly metrics: ServerMetrics;
  /** Each served feed's store, by feed name (read-only use: digests in tests, sizes). */
  readonly stores: ReadonlyMap<string, ServedStore>;
  /** Snapshot builds and reuses so far. */
  snapshotStats(): { built: number; reused: number };
  /** A copy of the fan-out's counters (flushes, shared delta encodings, writes, skips, catch-ups), the same numbers /metrics reports. */
  fanoutStats(): FanOutStatsSnapshot;
  /** Open connections, including those in their handshake. */
  connectionCount(): number;
  /**
   * The SHA-256 fingerprint (as node:tls prints it) of the certificate the ports present now:
   * the last set of files that loaded, not what the files hold (a broken rotation is refused and
   * the old certificate kept). Undefined without TLS.
   */
  servedCertFingerprint(): string | undefined;
  /** Runs a pending flush now (tests, benches). */
  flushNow(): void;
  /** Runs the periodic sweep now (tests with a FakeClock advance the clock instead). */
  sweepNow(): void;
  /** Sets (or clears) the target share of connections; above it agents are shed one per shedIntervalMs. */
  setTargetConnections(n: number | undefined): void;
  /** Replaces the peers hinted to refused, shed and drained agents. */
  setPeerEndpoints(urls: readonly string[]): void;
  /**
   * The first step of a shutdown alone: refuse new agents (503 + peers, /readyz 503) and shed no
   * more; the open ones stay. `cattail serve` takes it before the final checkpoint, which may
   * take seconds: an agent admitted then got its whole snapshot only to be drained. Idempotent.
   */
  refuseNew(): void;
  /**
   * The paced shutdown: refuse new agents (503 + peers), close the open ones one at a time over
   * shutdownTimeoutMs (GOODBYE + 4010 with a reconnect delay and the peers), then stop as
   * {@link close} does. Resolves when the last agent is gone or the time is up. Idempotent.
   */
  drain(): Promise<void>;
  /**
   * GOODBYE + 4010 to every agent still open, at once (reconnect delays spread), stops the
   * upstream, closes both ports. During a {@link drain} it closes the rest now and ends the drain.
   */
  close(): Promise<void>;
}

function listenOn(server: Server, address: string, what: string): Promise<AddressInfo> {
  // Validated by the option table already.
  const hp = parseHostPort(address) as { host: string; port: number };
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(new CattailError('CATTAIL_SERVER_LISTEN_FAILED', `cannot listen on ${address} (${what}): ${err.message}`, { cause: err, details: { address } }));
    server.once('error', onError);
    server.listen(hp.port, hp.host === ANY_HOST ? undefined : hp.host, () => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
}

async function listenAgents(transport: AgentTransport, address: string, backlog: number): Promise<AddressInfo> {
  const hp = parseHostPort(address);
  if (hp === undefined) throw new InvalidArgumentError(`listen must be HOST:PORT, got ${JSON.stringify(address)}`);
  try {
    return await transport.listen({ host: hp.host, port: hp.port, backlog });
  } catch (err) {
    throw new CattailError('CATTAIL_SERVER_LISTEN_FAILED', `cannot listen on ${address} (listen, ${transport.kind} transport): ${(err as Error).message}`, { cause: err, details: { address } });
  }
}

function urlHost(a: Pick<AddressInfo, 'address' | 'family'>): string {
  return a.family === 'IPv6' ? `[${a.address}]` : a.address;
}

function checkPeers(urls: readonly string[]): void {
  for (const u of urls) if (!isWsUrl(u)) throw new InvalidArgumentError(`peerEndpoints: expected ws:// or wss:// URLs, got ${JSON.stringify(u)}`);
}

function checkTarget(n: number | undefined): void {
  if (n !== undefined && (!Number.isSafeInteger(n) || n < 1)) throw new InvalidArgumentError(`targetConnections must be an integer ≥ 1 (count), got ${String(n)}`);
}

/**
 * Why new agents cannot be served yet: a feed without its initial sync would hand them an empty
 * or partial state (PROTOCOL.md §1.1 refuses them). A stale feed does not refuse: its last state
 * beats none when the whole fleet shares the upstream's outage, and the agent sees `stale`.
 */
function notSynced(feeds: readonly FeedRuntime[]): string | undefined {
  const why: string[] = [];
  for (const f of feeds) {
    const status = f.store.meta().status;
    if (status !== 'in-sync') why.push(`feed ${f.name} ${status === 'waiting' ? 'waiting for initial sync' : 'resyncing (initial lists in progress)'}`);
  }
  return why.length > 0 ? why.join('; ') : undefined;
}

/** The snapshot builds agents are streaming now (for the pinned-bytes gauge). */
function* streamingBuilds(connections: Iterable<Connection>): Generator<SnapshotBuild> {
  for (const c of connections) for (const cur of c.cursors) if (cur.snapshot !== undefined) yield cur.snapshot.build;
}

export async function startServer(options: StartServerOptions): Promise<ServerHandle> {
  const { listen, httpListen, healthListen, serverId: givenServerId, ...o } = resolveOptions(startServerOptions, options, 'startServer');
  const targetConnections = o.targetConnections;
  const peerEndpoints = splitEndpoints(o.peerEndpoints);
  const compressions = options.compressions ?? COMPRESSIONS;
  for (const c of compressions) if (!COMPRESSIONS.includes(c)) throw new InvalidArgumentError(`compressions: unknown ${JSON.stringify(c)}`);
  // The fallbacks are checked as a given serverId would be: a long host name must not reach WELCOME.
  const serverId = givenServerId ?? checkOption('serverId', startServerOptions.serverId, process.env['POD_NAME'] ?? hostname(), 'startServer (from POD_NAME or the host name)');
  const clock = options.clock ?? realClock;
  const log = options.log;
  const upstream = options.upstream;
  const createStore = options.createStore ?? defaultStoreFactory;
  const names = new Set<string>();
  for (const f of upstream.feeds) {
    if (names.has(f.name)) throw new InvalidArgumentError(`upstream serves feed ${JSON.stringify(f.name)} twice`);
    names.add(f.name);
  }
  if (upstream.feeds.length === 0 || upstream.feeds.length > 0xfffe) throw new InvalidArgumentError('upstream must serve 1 to 65534 feeds');
  if (o.maxInboundHeldBytes < HARD_CAP_FACTOR * o.maxInboundBytes) {
    // Below it, one agent's largest frame the server buffers could pass the budget alone.
    throw new InvalidArgumentError(`option maxInboundHeldBytes (--max-inbound-held-bytes) is ${o.maxInboundHeldBytes}: it must be at least ${HARD_CAP_FACTOR} × maxInboundBytes (${HARD_CAP_FACTOR * o.maxInboundBytes})`, { details: { option: 'maxInboundHeldBytes' } });
  }
  const tlsSettings = tlsSettingsOf(o, 'startServer');
  if (tlsSettings !== undefined && o.transport === 'uws') {
    throw new CattailError(
      'CATTAIL_SERVER_TLS_UNSUPPORTED',
      'TLS (serverCertFile) needs --transport ws: uWebSockets.js admits a client without a certificate and shows none to JavaScript, so the client CA and CN / URI SAN allow-list could not be enforced (docs/transport.md)',
      { details: { transport: o.transport } },
    );
  }

  if (o.transport === 'uws') {
    // uWS buffers each socket's unfinished frame in native memory and shows none of it, so the
    // budget cannot be enforced there (docs/transport.md): say so where the operator looks, with
    // the bound that holds instead, when that is above the budget they set (the defaults are).
    const perSocketBytes = HARD_CAP_FACTOR * o.maxInboundBytes;
    const worstCaseBytes = perSocketBytes * o.maxConnections;
    if (worstCaseBytes > o.maxInboundHeldBytes) {
      log?.warn(
        { transport: 'uws', maxInboundHeldBytes: o.maxInboundHeldBytes, perSocketBytes, maxConnections: o.maxConnections, worstCaseBytes },
        'maxInboundHeldBytes is not enforced over uWS: agents\' unfinished inbound frames can hold up to maxConnections × 4 × maxInboundBytes (worstCaseBytes); lower maxConnections or maxInboundBytes, or use --transport ws',
      );
    }
  }
  const metrics = createMetrics(new FanOutStats(), { defaultMetrics: options.defaultMetrics ?? true });
  const feeds = upstream.feeds.map((d, i) => new FeedRuntime(i, d, createStore({ feed: d.name, logMaxAgeMs: o.deltaLogMaxAgeMs, logMaxBytes: o.deltaLogMaxBytes }), serverId, metrics.fanout.feed(d.name)));
  const scopedFeeds = new Set(o.scopedFeeds.flatMap((v) => v.split(',')).map((s) => s.trim()).filter((s) => s !== ''));
  for (const name of scopedFeeds) {
    const feed = feeds.find((f) => f.name === name);
    const policy = SCOPE_POLICIES.get(name);
    if (feed === undefined || policy === undefined) throw new InvalidArgumentError(`scopedFeeds: ${JSON.stringify(name)} is not a scopable feed this server serves (scopable: ${[...SCOPE_POLICIES.keys()].join(', ')})`);
    if (feed.store.bucketSums === undefined) throw new InvalidArgumentError(`scopedFeeds: feed ${name}'s store has no bucket sums`);
    feed.scope = new ScopeIndex(policy, feed.store);
    feed.monotonic = () => clock.monotonic();
  }
  // The prefix names where in a client certificate the node is proven; without a client CA no
  // certificate is asked for, and every HELLO's node would be believed while the operator thinks
  // nodes are proven.
  if (o.scopeNodeUriSanPrefix !== undefined && tlsSettings?.allow === undefined) {
    throw new InvalidArgumentError('option scopeNodeUriSanPrefix (--scope-node-uri-san-prefix) needs clientCaFile (--client-ca-file): without it no client certificate is asked for, and no node is proven', { details: { option: 'scopeNodeUriSanPrefix' } });
  }
  // Certificates that all carry one CN (clientCn alone admits no other) cannot prove nodes by
  // their CN: every agent's node would be that CN, and each one naming its own node was refused
  // with 4011 (the mTLS overlay's `--client-cn=typha-client` with `--scoped-feeds` did so).
  const allow = tlsSettings?.allow;
  if (scopedFeeds.size > 0 && allow?.cn !== undefined && allow.uriSan === undefined && o.scopeNodeUriSanPrefix === undefined) {
    throw new InvalidArgumentError(
      `option scopedFeeds (--scoped-feeds) proves each agent's node by its client certificate's CN, and clientCn (--client-cn) admits only certificates whose CN is ${JSON.stringify(allow.cn)}: every agent of another node would be refused (4011). Name each node in a URI SAN and set scopeNodeUriSanPrefix (--scope-node-uri-san-prefix), or drop clientCn and give each node a certificate whose CN is its node name`,
      { details: { option: 'scopedFeeds' } },
    );
  }
  if (scopedFeeds.size > 0) {
    log?.info({ scopedFeeds: [...scopedFeeds], node: tlsSettings?.allow === undefined ? 'taken from HELLO (no client certificates: any agent can name any node)' : o.scopeNodeUriSanPrefix !== undefined ? 'proven by the client certificate\'s URI SAN' : 'proven by the client certificate\'s CN' }, 'per-node scoping');
  }
  const cache = new SnapshotCache({ clock, reuseWindowMs: o.snapshotReuseWindowMs, sliceEntries: o.snapshotBuildSliceEntries, sliceMs: o.snapshotBuildSliceMs, chunkBytes: o.snapshotChunkBytes, compressMinBytes: o.compressMinBytes, metrics, heldMaxBytes: o.snapshotHeldMaxBytes });
  const random = options.random ?? Math.random;
  const ownFrames = new OwnFrames(o.maxOwnHeldBytes);
  const fanout = new FanOut({
    clock, random, metrics, log, serverId, feeds, cache, compressions, ...o, ownFrames, ...(options.serviceTurn ? { serviceTurn: options.serviceTurn } : {}),
    onAgentAhead: (resources) => upstream.recheckMissing?.(resources),
    cluster: () => upstream.cluster?.(),
  });
  const governor = new Governor({ maxConnections: o.maxConnections, retryAfterMs: o.refuseRetryAfterMs, targetConnections, peerEndpoints, notReady: () => notSynced(feeds), random });
  const shedder = new Shedder({
    clock, random, metrics, log, governor, shedIntervalMs: o.shedIntervalMs, shutdownTimeoutMs: o.shutdownTimeoutMs,
    connections: () => fanout.connections, whenEmpty: (ms) => fanout.whenEmpty(ms), flushPending: () => fanout.flushIfBehind(),
  });
  // Bytes of unfinished inbound frames over all sockets (ws only: uWS shows none of it).
  const inboundBudget = o.transport === 'ws' ? new InboundBudget(o.maxInboundHeldBytes, o.maxInboundBytes * HARD_CAP_FACTOR, () => metrics.inboundOverBudgetCloses.inc()) : undefined;
  registerStateGauges(metrics, { ownFrames, ...(inboundBudget !== undefined ? { inbound: () => inboundBudget } : {}), connections: () => fanout.connections, serviceQueueLength: () => fanout.serviceQueueLength, catchUpCache: () => fanout.catchUpCache, handshakeQueueLength: () => fanout.handshakeQueueLength, snapshotCache: () => cache.held(), snapshotPinned: () => cache.pinned(streamingBuilds(fanout.connections)), transportWaiting: () => transport.pacedWaiting, feeds });
  // Opened before anything listens: unreadable files fail start-up with CATTAIL_SERVER_TLS_FILES.
  const tls = tlsSettings === undefined ? undefined : await TlsListener.open({ settings: tlsSettings, clock, log, metrics, handshakeTimeoutMs: o.handshakeTimeoutMs });
  registerConvergenceGauges(metrics, { resources: () => fanout.convergence.resources(), connections: () => fanout.connections, waiting: () => fanout.convergence.waiting, checks: () => fanout.convergence.checks });
  const pipeline = new Pipeline(feeds, fanout, clock, log);
  const health = new Health(clock, fanout, feeds, governor, upstream, options.upstreamDescription);
  const limits = { maxInboundBytes: o.maxInboundBytes, maxClientBytes: o.maxClientBytes, compressMinBytes: o.compressMinBytes, ownFrames };
  const hooks = acceptHooks({
    clock,
    governor,
    metrics,
    openConnections: () => fanout.connections.size,
    ...(tls?.mutual === true ? { authorize: (peer: PeerInfo) => tls.authorize(peer) } : {}),
    onAgent: (socket) => {
      const conn = new Connection(socket, fanout, limits, clock.monotonic(), o.handshakeTimeoutMs);
      conn.tlsIdentity = describePeerTls(socket.peer.tls);
      const peerTls = socket.peer.tls;
      if (peerTls !== undefined) conn.tlsPeer = { cn: peerTls.subjectCN, uriSans: peerTls.uriSANs };
      fanout.add(conn);
    },
  });
  const transportLimits = { maxInboundBytes: o.maxInboundBytes, handshakeTimeoutMs: o.handshakeTimeoutMs, maxConnections: o.maxConnections };
  const kind = o.transport;
  const transport: AgentTransport = kind === 'uws'
    // A socket never holds more than the high-water mark, one frame past it and its own budget.
    ? new UwsTransport({ hooks, limits: transportLimits, maxBufferedBytes: Math.min(2 ** 31 - 1, o.socketHighWaterBytes + 2 * o.maxFrameBytes + o.maxClientBytes) })
    : new WsTransport({ hooks, limits: transportLimits, ...(inboundBudget !== undefined ? { inboundBudget } : {}), ...(tls !== undefined ? { server: tls.agentServer() } : {}) });
  const served = options.extraMetrics?.length ? Registry.merge([metrics.registry, ...options.extraMetrics]) : metrics.registry;
  const debug = o.debugEndpoints === true ? { clients: (q: ClientsQuery) => clientsPage(fanout.connections, q, clock) } : undefined;
  const load = (): LoadReport => ({ serverId, connections: fanout.connections.size, targetConnections: governor.targetConnections ?? null, ready: health.ready().ok });
  const httpServer = tls?.httpServer(httpEndpointsHandler(served, health, load, debug, fanout.convergence)) ?? createHttpEndpoints(served, health, load, debug, fanout.convergence);
  hardenHttpPort(httpServer);
  const healthServer = createHealthEndpoints(health);
  hardenHttpPort(healthServer, HEALTH_PORT_LIMITS);

  let agentAddr: AddressInfo;
  let httpAddr: AddressInfo;
  let healthAddr: AddressInfo;
  try {
    agentAddr = await listenAgents(transport, listen, o.listenBacklog);
    httpAddr = await listenOn(httpServer, httpListen, 'httpListen');
    healthAddr = await listenOn(healthServer, healthListen, 'healthListen');
  } catch (err) {
    await transport.close();
    httpServer.close();
    healthServer.close();
    throw err;
  }
  fanout.start();
  shedder.start();
  tls?.start();
  const trimTimer: Timer = clock.setInterval(() => pipeline.trim(), 1_000).unref();
  let closing: Promise<void> | undefined;
  let draining: Promise<void> | undefined;
  // `afterDrain`: the drain already waited for the closing handshakes, so stragglers are cut at once.
  const shutdown = (afterDrain: boolean): Promise<void> =>
    (closing ??= (async () => {
      governor.drain();
      // Waiting convergence requests get their answer now, before their sockets are cut.
      fanout.convergence.close();
      shedder.stop();
      shedder.closeRest(draining === undefined ? 'shutdown' : 'drain-forced');
      await upstream.stop().catch((err: unknown) => log?.warn({ err }, 'upstream stop failed'));
      // Agents normally finish the closing handshake at once; a stalled one is cut off.
      await fanout.whenEmpty(afterDrain ? 0 : CLOSE_WAIT_MS);
      for (const c of [...fanout.connections]) c.socket.terminate();
      fanout.stop();
      trimTimer.cancel();
      tls?.stop();
      httpServer.closeAllConnections();
      healthServer.closeAllConnections();
      await Promise.all([transport.close(), new Promise((r) => httpServer.close(r)), new Promise((r) => healthServer.close(r))]);
    })());
  try {
    upstream.start(pipeline);
  } catch (err) {
    // Both ports are open and the fan-out runs: left so, the caller's error exit would leave the
    // process serving an empty feed with /livez answering 200, never restarted.
    await shutdown(true);
    throw err;
  }
  log?.info({ serverId, listen: `${agentAddr.address}:${agentAddr.port}`, httpListen: `${httpAddr.address}:${httpAddr.port}`, healthListen: `${healthAddr.address}:${healthAddr.port}`, feeds: feeds.map((f) => f.name), ...o, transport: transport.kind, tls: tls === undefined ? 'off' : tls.mutual ? 'mutual' : 'server-only', targetConnections, peerEndpoints }, 'cattail server listening');

  let servedCert: { material: object; fingerprint: string | undefined } | undefined;
  return {
    url: `${tls !== undefined ? 'wss' : 'ws'}://${urlHost(agentAddr)}:${agentAddr.port}/`,
    httpUrl: `${tlsSettings?.httpTls === true ? 'https' : 'http'}://${urlHost(httpAddr)}:${httpAddr.port}`,
    healthUrl: `http://${urlHost(healthAddr)}:${healthAddr.port}`,
    serverId,
    metrics,
    stores: new Map(feeds.map((f) => [f.name, f.store])),
    snapshotStats: () => ({ built: cache.builtCount, reused: cache.reusedCount }),
    fanoutStats: () => fanout.stats.snapshot(),
    connectionCount: () => fanout.connections.size,
    servedCertFingerprint: () => {
      if (tls === undefined) return undefined;
      const m = tls.material;
      if (servedCert?.material !== m) {
        // Never throws (the balancer calls it outside any catch): the loaded set parsed already,
        // so a failure here is a bug, and an unknown pin only makes the peers' loads unknown.
        let fingerprint: string | undefined;
        try {
          fingerprint = new X509Certificate(m.cert).fingerprint256;
        } catch {
          fingerprint = undefined;
        }
        servedCert = { material: m, fingerprint };
      }
      return servedCert.fingerprint;
    },
    flushNow: () => fanout.flush(),
    sweepNow: () => fanout.sweep(),
    setTargetConnections: (n) => {
      checkTarget(n);
      governor.targetConnections = n;
    },
    setPeerEndpoints: (urls) => {
      checkPeers(urls);
      governor.peerEndpoints = urls;
    },
    refuseNew: () => governor.drain(),
    drain: () =>
      (draining ??= (async () => {
        await shedder.drain();
        await shutdown(true);
      })()),
    close: () => shutdown(false),
  };
}
