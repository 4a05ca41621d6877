/**
 * `startServer(options)`: the library entry of the fan-out server. Two listeners (agent WebSocket
 * port, HTTP port for metrics and probes), one store per feed the upstream serves, one fan-out.
 * `cattail serve` (serve.ts) is a thin shell over this.
 */
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import type { Server } from 'node:http';
import { Registry } from 'prom-client';
import { type Clock, realClock, type Timer } from '../clock.js';
import { CattailError, InvalidArgumentError } from '../errors.js';
import type { Logger } from '../log.js';
import { Connection } from './transport/connection.js';
import { FanOut } from './fanout/fanout.js';
import { FanOutStats, type FanOutStatsSnapshot } from './fanout/stats.js';
import { FeedRuntime } from './fanout/feeds.js';
import { Governor } from './transport/governor.js';
import { Health } from './ops/health.js';
import { createHttpEndpoints } from './ops/http-endpoints.js';
import { type ClientsQuery, clientsPage } from './ops/debug-clients.js';
import { Listener } from './transport/listener.js';
import { type ServerMetrics, createMetrics, registerStateGauges } from './ops/metrics.js';
import { parseHostPort, serveOptions } from './options.js';
import { Pipeline } from './pipeline/pipeline.js';
import type { Upstream } from './pipeline/seams.js';
import { SnapshotCache } from './fanout/snapshot-cache.js';
import { defaultStoreFactory } from './pipeline/store-factory.js';
import type { ServedStore, StoreFactory } from './pipeline/store-port.js';
import { COMPRESSIONS, type Compression } from './transport/framing.js';

type D = typeof serveOptions;
const def = <K extends keyof D>(k: K): D[K]['default'] => serveOptions[k].default;

/** Options of {@link startServer}. Every limit has the default of `cattail serve`'s table. */
export interface StartServerOptions {
  /** Where batches come from (the Kubernetes upstream, the simulator, or a scripted source). */
  readonly upstream: Upstream;
  /** HOST:PORT for agents. @default '127.0.0.1:0' (a free port; `cattail serve` uses 5473) */
  readonly listen?: string;
  /** HOST:PORT for /metrics, /livez, /readyz. @default '127.0.0.1:0' */
  readonly httpListen?: string;
  /** @default POD_NAME, then the host name */
  readonly serverId?: string;
  readonly clock?: Clock;
  /** Uniform [0, 1) source for jitter (pings); pass `seededRandom(seed)` to replay a run. @default Math.random */
  readonly random?: () => number;
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
  readonly debugEndpoints?: boolean;
  /** Collect prom-client's default process metrics. @default true */
  readonly defaultMetrics?: boolean;
  /** @default 10000 */ readonly maxConnections?: number;
  /** @default 5000 (ms) */ readonly refuseRetryAfterMs?: number;
  /** @default 10000 (ms) */ readonly handshakeTimeoutMs?: number;
  /** @default 10000 (ms) */ readonly pingIntervalMs?: number;
  /** @default 60000 (ms) */ readonly pongTimeoutMs?: number;
  /** @default 5 (ms) */ readonly flushWindowMs?: number;
  /** @default 1000 (ms) */ readonly snapshotReuseWindowMs?: number;
  /** @default 2000 (entries per loop turn) */ readonly snapshotBuildSliceEntries?: number;
  /** @default 300000 (ms) */ readonly maxFallBehindMs?: number;
  /** @default 300000 (ms) */ readonly newClientGracePeriodMs?: number;
  /** @default 1048576 (bytes) */ readonly socketHighWaterBytes?: number;
  /** @default 16777216 (bytes) */ readonly maxClientBytes?: number;
  /** @default 65536 (bytes) */ readonly maxInboundBytes?: number;
  /** @default 1048576 (bytes) */ readonly maxFrameBytes?: number;
  /** @default 1024 (bytes) */ readonly compressMinBytes?: number;
  /** @default 600000 (ms) */ readonly deltaLogMaxAgeMs?: number;
  /** @default 268435456 (bytes) */ readonly deltaLogMaxBytes?: number;
}

export interface ServerHandle {
  /** `ws://host:port/` for agents. */
  readonly url: string;
  /** `http://host:port` for /metrics, /livez, /readyz. */
  readonly httpUrl: string;
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
  /** Runs a pending flush now (tests, benches). */
  flushNow(): void;
  /** Runs the periodic sweep now (tests with a FakeClock advance the clock instead). */
  sweepNow(): void;
  /** GOODBYE + 4010 to every agent, stops the upstream, closes both ports. */
  close(): Promise<void>;
}

function listenOn(server: Server, address: string, what: string): Promise<AddressInfo> {
  const hp = parseHostPort(address);
  if (hp === undefined) throw new InvalidArgumentError(`${what} must be HOST:PORT, got ${JSON.stringify(address)}`);
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(new CattailError('CATTAIL_SERVER_LISTEN_FAILED', `cannot listen on ${address} (${what}): ${err.message}`, { cause: err, details: { address } }));
    server.once('error', onError);
    server.listen(hp.port, hp.host, () => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
}

function urlHost(a: AddressInfo): string {
  return a.family === 'IPv6' ? `[${a.address}]` : a.address;
}

export async function startServer(options: StartServerOptions): Promise<ServerHandle> {
  const o = {
    maxConnections: options.maxConnections ?? def('maxConnections'),
    refuseRetryAfterMs: options.refuseRetryAfterMs ?? def('refuseRetryAfterMs'),
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? def('handshakeTimeoutMs'),
    pingIntervalMs: options.pingIntervalMs ?? def('pingIntervalMs'),
    pongTimeoutMs: options.pongTimeoutMs ?? def('pongTimeoutMs'),
    flushWindowMs: options.flushWindowMs ?? def('flushWindowMs'),
    snapshotReuseWindowMs: options.snapshotReuseWindowMs ?? def('snapshotReuseWindowMs'),
    snapshotBuildSliceEntries: options.snapshotBuildSliceEntries ?? def('snapshotBuildSliceEntries'),
    maxFallBehindMs: options.maxFallBehindMs ?? def('maxFallBehindMs'),
    newClientGracePeriodMs: options.newClientGracePeriodMs ?? def('newClientGracePeriodMs'),
    socketHighWaterBytes: options.socketHighWaterBytes ?? def('socketHighWaterBytes'),
    maxClientBytes: options.maxClientBytes ?? def('maxClientBytes'),
    maxInboundBytes: options.maxInboundBytes ?? def('maxInboundBytes'),
    maxFrameBytes: options.maxFrameBytes ?? def('maxFrameBytes'),
    compressMinBytes: options.compressMinBytes ?? def('compressMinBytes'),
    deltaLogMaxAgeMs: options.deltaLogMaxAgeMs ?? def('deltaLogMaxAgeMs'),
    deltaLogMaxBytes: options.deltaLogMaxBytes ?? def('deltaLogMaxBytes'),
  };
  for (const [k, v] of Object.entries(o)) {
    const spec = serveOptions[k as keyof typeof o];
    if (!Number.isSafeInteger(v) || (spec.min !== undefined && v < spec.min) || (spec.max !== undefined && v > spec.max)) {
      throw new InvalidArgumentError(`${k} must be an integer${spec.min !== undefined ? ` ≥ ${spec.min}` : ''}${spec.max !== undefined ? ` and ≤ ${spec.max}` : ''}${spec.unit ? ` (${spec.unit})` : ''}, got ${String(v)}`);
    }
  }
  const compressions = options.compressions ?? COMPRESSIONS;
  for (const c of compressions) if (!COMPRESSIONS.includes(c)) throw new InvalidArgumentError(`compressions: unknown ${JSON.stringify(c)}`);
  const serverId = options.serverId ?? process.env['POD_NAME'] ?? hostname();
  if (serverId.length === 0 || serverId.length > 64) throw new InvalidArgumentError(`serverId must have 1 to 64 characters, got ${JSON.stringify(serverId)}`);
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

  const metrics = createMetrics(new FanOutStats(), { defaultMetrics: options.defaultMetrics ?? true });
  const feeds = upstream.feeds.map((d, i) => new FeedRuntime(i, d, createStore({ feed: d.name, logMaxAgeMs: o.deltaLogMaxAgeMs, logMaxBytes: o.deltaLogMaxBytes }), serverId, metrics.fanout.feed(d.name)));
  const cache = new SnapshotCache({ clock, reuseWindowMs: o.snapshotReuseWindowMs, sliceEntries: o.snapshotBuildSliceEntries, compressMinBytes: o.compressMinBytes, metrics });
  const fanout = new FanOut({ clock, random: options.random ?? Math.random, metrics, log, serverId, feeds, cache, compressions, ...o });
  registerStateGauges(metrics, { connections: () => fanout.connections, serviceQueueLength: () => fanout.serviceQueueLength, snapshotCache: () => cache.held(), feeds });
  const governor = new Governor(o.maxConnections, o.refuseRetryAfterMs);
  const pipeline = new Pipeline(feeds, fanout, metrics, clock, log);
  const health = new Health(clock, fanout, feeds, governor, upstream, options.upstreamDescription);
  const limits = { maxInboundBytes: o.maxInboundBytes, maxClientBytes: o.maxClientBytes, compressMinBytes: o.compressMinBytes };
  const listener = new Listener({
    governor,
    metrics,
    maxInboundBytes: o.maxInboundBytes,
    openConnections: () => fanout.connections.size,
    onConnection: (ws, socket) => fanout.add(new Connection(ws, socket, fanout, limits, clock.monotonic(), o.handshakeTimeoutMs)),
  });
  const served = options.extraMetrics?.length ? Registry.merge([metrics.registry, ...options.extraMetrics]) : metrics.registry;
  const debug = options.debugEndpoints === true ? { clients: (q: ClientsQuery) => clientsPage(fanout.connections, q, clock) } : undefined;
  const httpServer = createHttpEndpoints(served, health, debug);
  for (const f of feeds) metrics.feedRevision.set({ feed: f.name }, f.store.revision);

  let agentAddr: AddressInfo;
  let httpAddr: AddressInfo;
  try {
    agentAddr = await listenOn(listener.http, options.listen ?? '127.0.0.1:0', 'listen');
    httpAddr = await listenOn(httpServer, options.httpListen ?? '127.0.0.1:0', 'httpListen');
  } catch (err) {
    listener.http.close();
    httpServer.close();
    throw err;
  }
  fanout.start();
  const trimTimer: Timer = clock.setInterval(() => pipeline.trim(), 1_000).unref();
  upstream.start(pipeline);
  log?.info({ serverId, listen: `${agentAddr.address}:${agentAddr.port}`, httpListen: `${httpAddr.address}:${httpAddr.port}`, feeds: feeds.map((f) => f.name), ...o }, 'cattail server listening');

  let closing: Promise<void> | undefined;
  return {
    url: `ws://${urlHost(agentAddr)}:${agentAddr.port}/`,
    httpUrl: `http://${urlHost(httpAddr)}:${httpAddr.port}`,
    serverId,
    metrics,
    stores: new Map(feeds.map((f) => [f.name, f.store])),
    snapshotStats: () => ({ built: cache.builtCount, reused: cache.reusedCount }),
    fanoutStats: () => fanout.stats.snapshot(),
    connectionCount: () => fanout.connections.size,
    flushNow: () => fanout.flush(),
    sweepNow: () => fanout.sweep(),
    close: () => {
      closing ??= (async () => {
        governor.drain();
        fanout.closeAll('shutdown', 'server shutting down');
        await upstream.stop().catch((err: unknown) => log?.warn({ err }, 'upstream stop failed'));
        // Agents normally finish the closing handshake at once; a stalled one is cut off.
        await fanout.whenEmpty(2_000);
        for (const c of [...fanout.connections]) c.ws.terminate();
        fanout.stop();
        trimTimer.cancel();
        listener.close();
        listener.http.closeAllConnections();
        httpServer.closeAllConnections();
        await Promise.all([new Promise((r) => listener.http.close(r)), new Promise((r) => httpServer.close(r))]);
      })();
      return closing;
    },
  };
}
