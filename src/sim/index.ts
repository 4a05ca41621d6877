/**
 * The simulated Kubernetes API server (the list/watch contract of k8s.io/apiserver and its watch cache): a faithful
 * list/watch server over a generated cluster, with load counters. Used by tests, benchmarks,
 * `cattail sim` and the embedded default (`npm start`).
 *
 *   const sim = await startSim({ nodes: 10, podsPerNode: 5 });
 *   // sim.url, sim.kubeconfigPath, sim.admin.create(...), sim.admin.counters()
 *   await sim.close();
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo, Socket } from 'node:net';
import { realClock, type Clock } from '../clock.js';
import type { OptionsOf } from '../config/options.js';
import { checkOption, invalidOption, resolveOptions } from '../config/resolve.js';
import { CattailError, InvalidArgumentError } from '../errors.js';
import { RESOURCES, resource, type ResourceDef } from '../registry.js';
import { createAdmin, type SimAdmin } from './admin.js';
import { AdminHttp } from './admin-http.js';
import { Churn } from './churn.js';
import type { SimBehaviour, SimContext } from './context.js';
import { Counters, type CountersSnapshot } from './counters.js';
import type { ClusterModel } from './generator.js';
import { SimHttp } from './http.js';
import { writeKubeconfig } from './kubeconfig.js';
import { Rng } from './rng.js';
import { Store } from './store.js';
import { loadCluster } from './load.js';
import { WatchHub } from './watch.js';
import { Writer } from './writes.js';
import { TokenAuth } from './faults/auth.js';
import { FaultsController, type SimFaults } from './faults/controller.js';
import { FaultsHttp } from './faults/http.js';
import { LaggedStore } from './ha/lagged-store.js';
import { RoundRobinProxy } from './ha/round-robin.js';
import { generateTls, type SimTlsMaterial } from './tls/ca.js';
import { SA_SUBPATH, writeAtomic, writeServiceAccount } from './tls/service-account.js';
import { simOptions, startSimOptions } from './options.js';

export type { SimAdmin } from './admin.js';
export type { CountersSnapshot } from './counters.js';
export type { ChurnOptions, ChurnStats } from './churn.js';
export type { SimFaults, FaultLogEntry, LargeObjectOptions } from './faults/controller.js';
export { FAULT_KINDS, type FaultKind, type FaultRule, type FaultEventKind } from './faults/rules.js';
export { randomTimeline, type TimelineEntry, type TimelineAction, type RandomTimelineOptions } from './faults/timeline.js';
export { inClusterEnv } from './tls/service-account.js';

/**
 * Options of {@link startSim}: the table-derived part ({@link startSimOptions}: `cattail sim`'s
 * specs, with an empty cluster by default) and the programmatic extras beside it.
 */
export interface SimOptions extends OptionsOf<typeof startSimOptions> {
  /** @default realClock */
  clock?: Clock;
  /** Resource ids to serve. @default every resource in the registry (optional CRDs included) */
  resources?: readonly string[];
  /** Also serve an HA follower lagging `lagRvs` resourceVersions behind, on its own port, plus a round-robin port over both (`cattail sim --ha-lag-rvs`). @default none */
  ha?: { lagRvs: number };
}

/** The HA pair (startSim({ ha })): the leader is the Sim itself. */
export interface SimHa {
  /** The lagging follower (same data, RV lags by `lagRvs`). */
  readonly followerUrl: string;
  readonly followerPort: number;
  /** Round-robin TCP proxy over [leader, follower], per connection. */
  readonly roundRobinUrl: string;
  readonly roundRobinPort: number;
  readonly lagRvs: number;
  setLag(lagRvs: number): void;
  /** Connections the round-robin port handed to [leader, follower]. */
  connections(): readonly number[];
  /** The follower's own counters (requests, watches). */
  followerCounters(): CountersSnapshot;
}

export interface Sim {
  /** `http://127.0.0.1:PORT` (or https:// with `https`) */
  readonly url: string;
  readonly port: number;
  readonly kubeconfigPath: string;
  readonly admin: SimAdmin;
  /** The generated cluster's shape (node names, apps), for tests and benchmarks. */
  readonly model: ClusterModel;
  /** Faults, disasters, timelines, token rotation (also `admin.faults` and /_sim/faults). */
  readonly faults: SimFaults;
  /** PEM of the generated CA (with `https`). */
  readonly caPem: string | undefined;
  /** The current bearer token (with `token`). */
  readonly token: () => string | undefined;
  /** Pass to `KubeConfig.loadFromCluster(root)` (with `https` or `token`; set the env from inClusterEnv(port)). */
  readonly serviceAccountRoot: string | undefined;
  readonly ha: SimHa | undefined;
  /** Ends every watch cleanly, stops churn and closes the socket. Idempotent. */
  close(): Promise<void>;
}

export async function startSim(options: SimOptions = {}): Promise<Sim> {
  const o = resolveOptions(startSimOptions, options, 'startSim');
  const clock = options.clock ?? realClock;
  const { seed, port, nodes, podsPerNode } = o;
  const behaviour: SimBehaviour = {
    bookmarkIntervalMs: o.bookmarkIntervalMs,
    watchMinTimeoutMs: o.watchMinTimeoutMs,
    rvWaitMs: o.rvWaitMs,
    watchList: o.watchList,
    watchListDefaulting: o.watchListDefaulting,
    watchListEndDelayMs: o.watchListEndDelayMs,
    bookmarkRv: o.bookmarkRv,
    podDeleteGraceMs: o.podDeleteGraceMs,
  };
  if (o.historyMaxCapacity < o.historyMinCapacity) {
    throw invalidOption('historyMaxCapacity', 'option', o.historyMaxCapacity, `expected at least historyMinCapacity (${o.historyMinCapacity})`, 'startSim');
  }
  let defs: readonly ResourceDef[] = RESOURCES;
  /** Every resource it was started with, omitted ones included: their CRDs can be installed later. */
  let known: readonly ResourceDef[] = RESOURCES;
  try {
    if (options.resources) defs = options.resources.map((id) => resource(id));
    known = defs;
    const omit = new Set(o.omitResources.map((id) => resource(id).id));
    defs = defs.filter((d) => !omit.has(d.id));
  } catch (err) {
    throw new InvalidArgumentError(`startSim: ${(err as Error).message}`, { cause: err });
  }
  const queueMaxBytes = o.slowWatcherQueueMaxBytes;
  const closeGraceMs = o.slowWatcherCloseGraceMs;
  const lagRvs = options.ha === undefined ? undefined : checkOption('ha.lagRvs', simOptions.haLagRvs, options.ha.lagRvs, 'startSim');
  const store = new Store({ clock, minCapacity: o.historyMinCapacity, maxCapacity: o.historyMaxCapacity, windowMs: o.historyWindowMs, snapshotCacheSize: 8 }, defs);
  const baseCtx: SimContext = { store, counters: new Counters(), clock, rng: new Rng(seed ^ 0x5eed), behaviour };
  const writer = new Writer(store, clock, new Rng(seed ^ 0xa11ce));

  const gen = { model: loadCluster(store, { nodes, podsPerNode, seed }) };

  let tls: SimTlsMaterial | undefined;
  if (o.https) tls = await generateTls(clock);
  const auth = o.token !== undefined ? new TokenAuth(o.token, clock) : undefined;

  const hub = new WatchHub();
  const followerHub = new WatchHub();
  const churn = new Churn(store, writer, clock, gen.model);
  const servers: Server[] = [];
  let bound = port;
  let url = '';
  let tmpDir: string | undefined;
  let kubeconfigPath = o.kubeconfigPath;
  let saRoot = o.serviceAccountRoot;
  const writeConfigs = async (): Promise<void> => {
    await writeKubeconfig(kubeconfigPath as string, url, { caPem: tls?.caPem, token: auth?.token });
    if (saRoot !== undefined) await writeServiceAccount(saRoot, { token: auth?.token ?? '', caPem: tls?.caPem ?? '', namespace: 'default' });
  };
  const leaderServer = (): Server => servers[0] as Server;
  const controller: FaultsController = new FaultsController(baseCtx, {
    hubs: [hub, followerHub],
    haFollower: lagRvs !== undefined,
    writer,
    store,
    slow: { queueMaxBytes, closeGraceMs },
    auth,
    churnSteps: (n) => admin.churnSteps(n),
    restartServer: async (refuseMs) => {
      const srv = leaderServer();
      await new Promise<void>((resolve) => {
        srv.close(() => resolve());
        srv.closeAllConnections();
      });
      if (refuseMs > 0) await clock.sleep(refuseMs);
      // Back with an empty watch cache: only RVs from now on can be resumed.
      store.endBulk();
      await listen(srv, bound);
    },
    onTokenRotated: async (token) => {
      if (saRoot !== undefined) await writeAtomic(join(saRoot, SA_SUBPATH, 'token'), token);
      await writeKubeconfig(kubeconfigPath as string, url, { caPem: tls?.caPem, token });
    },
  });
  const ctx: SimContext = { ...baseCtx, hooks: controller };
  const admin: SimAdmin = Object.assign(createAdmin(baseCtx, writer, churn, [hub, followerHub], known), { faults: controller as SimFaults });
  let lagged: LaggedStore | undefined;
  const faultsHttp = new FaultsHttp(controller, lagRvs === undefined ? undefined : (n) => lagged?.setLag(n));
  const adminHttp = new AdminHttp(baseCtx, admin, faultsHttp);
  const http = new SimHttp(ctx, known, writer, hub, adminHttp);
  const makeServer = (h: SimHttp): Server => {
    const srv: Server = tls ? createHttpsServer({ key: tls.keyPem, cert: tls.certPem, keepAlive: true }, (req, res) => h.handle(req, res)) : createServer({ keepAlive: true }, (req, res) => h.handle(req, res));
    // Connection-level faults act before TLS: prepend so the listener runs before the TLS wrap.
    srv.prependListener('connection', (sock: Socket) => {
      if (controller.onConnection(sock)) sock.pause();
    });
    // Watches are long-lived: Node's default request/headers timeouts must not cut them.
    srv.requestTimeout = 0;
    srv.headersTimeout = 60_000;
    servers.push(srv);
    return srv;
  };
  const server = makeServer(http);
  let proxy: RoundRobinProxy | undefined;
  let ha: SimHa | undefined;
  const scheme = tls ? 'https' : 'http';
  try {
    await listen(server, port);
    bound = (server.address() as AddressInfo).port;
    url = `${scheme}://127.0.0.1:${bound}`;
    if (lagRvs !== undefined) {
      const lg = new LaggedStore(store, lagRvs);
      lagged = lg;
      const followerCounters = new Counters();
      const fctx: SimContext<LaggedStore> = { store: lg, counters: followerCounters, clock, rng: new Rng(seed ^ 0xf011), behaviour, hooks: controller };
      const follower = makeServer(new SimHttp(fctx, known, writer, followerHub, adminHttp));
      await listen(follower, 0);
      const fport = (follower.address() as AddressInfo).port;
      const px = await RoundRobinProxy.start([bound, fport]);
      proxy = px;
      ha = {
        followerUrl: `${scheme}://127.0.0.1:${fport}`,
        followerPort: fport,
        roundRobinUrl: `${scheme}://127.0.0.1:${px.port}`,
        roundRobinPort: px.port,
        get lagRvs() {
          return lg.lag;
        },
        setLag: (n) => lg.setLag(checkOption('lagRvs', simOptions.haLagRvs, n, 'sim.ha.setLag')),
        connections: () => [...px.connections],
        followerCounters: () => followerCounters.snapshot({ currentRv: lg.currentRv, resources: [] }),
      };
      adminHttp.ha = ha;
    }
    if (kubeconfigPath === undefined || ((tls || auth) && saRoot === undefined)) tmpDir = await mkdtemp(join(tmpdir(), 'cattail-sim-'));
    kubeconfigPath ??= join(tmpDir as string, 'kubeconfig');
    if ((tls || auth) && saRoot === undefined) saRoot = join(tmpDir as string, 'sa');
    await writeConfigs();
  } catch (err) {
    for (const srv of servers) srv.close();
    await proxy?.close();
    if (tmpDir !== undefined) await rm(tmpDir, { recursive: true, force: true });
    throw err;
  }
  if (o.churnPerSec > 0) churn.start({ ratePerSec: o.churnPerSec, seed });

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      churn.dispose();
      controller.stopTimeline();
      hub.closeAll('shutdown');
      followerHub.closeAll('shutdown');
      lagged?.dispose();
      await proxy?.close();
      await Promise.all(
        servers.map(
          (srv) =>
            new Promise<void>((resolve) => {
              srv.close(() => resolve());
              srv.closeIdleConnections();
              // Connections still mid-request (a client that stopped reading, a black hole) must not hold shutdown.
              setImmediate(() => srv.closeAllConnections());
            }),
        ),
      );
      if (tmpDir !== undefined) await rm(tmpDir, { recursive: true, force: true });
    })();
    return closing;
  };
  return {
    url,
    port: bound,
    kubeconfigPath: kubeconfigPath as string,
    admin,
    model: gen.model,
    faults: controller,
    caPem: tls?.caPem,
    token: () => auth?.token,
    serviceAccountRoot: saRoot,
    ha,
    close,
  };
}

async function listen(server: Server, port: number): Promise<void> {
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    throw new CattailError('CATTAIL_SIM_LISTEN_FAILED', `cannot listen on 127.0.0.1:${port}: ${(err as Error).message}`, { cause: err, details: { port } });
  }
}
