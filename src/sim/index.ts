/**
 * The simulated Kubernetes API server (../shared/reference/k8s-watch.md §5): a faithful
 * list/watch server over a generated cluster, with load counters. Used by tests, benchmarks,
 * `cattail sim` and the embedded default (`npm start`).
 *
 *   const sim = await startSim({ nodes: 10, podsPerNode: 5 });
 *   // sim.url, sim.kubeconfigPath, sim.admin.create(...), sim.admin.counters()
 *   await sim.close();
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { realClock, type Clock } from '../clock.js';
import { CattailError, InvalidArgumentError } from '../errors.js';
import { RESOURCES, resource, type ResourceDef } from '../registry.js';
import { createAdmin, type SimAdmin } from './admin.js';
import { AdminHttp } from './admin-http.js';
import { Churn } from './churn.js';
import type { SimBehaviour, SimContext } from './context.js';
import { Counters } from './counters.js';
import { encodeText } from './encode.js';
import { generateCluster, type ClusterModel } from './generator.js';
import { SimHttp } from './http.js';
import { writeKubeconfig } from './kubeconfig.js';
import { Rng } from './rng.js';
import { Store } from './store.js';
import { WatchHub } from './watch.js';
import { Writer } from './writes.js';

export type { SimAdmin } from './admin.js';
export type { CountersSnapshot } from './counters.js';
export type { ChurnOptions, ChurnStats } from './churn.js';

export interface SimOptions extends Partial<SimBehaviour> {
  /** TCP port on 127.0.0.1; 0 picks a free one. @default 0 */
  port?: number;
  /** Nodes in the generated cluster. @default 0 */
  nodes?: number;
  /** Pods per node (one of them the host-network calico-node pod). @default 0 */
  podsPerNode?: number;
  /** Seed of the generator, the churn driver and the server's own randomness. @default 1 */
  seed?: number;
  /** Start churning at this many changes per second (0: no churn). @default 0 */
  churnPerSec?: number;
  /** Where to write the kubeconfig. @default a file in a fresh temporary directory, removed by close() */
  kubeconfigPath?: string;
  /** @default realClock */
  clock?: Clock;
  /** Resource ids to serve. @default every resource in the registry (optional CRDs included) */
  resources?: readonly string[];
  /** Minimum history ring capacity per resource. @default 100 */
  historyMinCapacity?: number;
  /** Maximum history ring capacity per resource. @default 102_400 */
  historyMaxCapacity?: number;
  /** The ring grows while its oldest event is younger than this. @default 75_000 */
  historyWindowMs?: number;
}

export interface Sim {
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  readonly port: number;
  readonly kubeconfigPath: string;
  readonly admin: SimAdmin;
  /** The generated cluster's shape (node names, apps), for tests and benchmarks. */
  readonly model: ClusterModel;
  /** Ends every watch cleanly, stops churn and closes the socket. Idempotent. */
  close(): Promise<void>;
}

const DEFAULT_BEHAVIOUR: SimBehaviour = { bookmarkIntervalMs: 60_000, watchMinTimeoutMs: 1_800_000, rvWaitMs: 3_000, watchListDefaulting: true, bookmarkRv: 'global' };

function checkInt(name: string, v: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isSafeInteger(v) || v < min || v > max) throw new InvalidArgumentError(`startSim: ${name} must be an integer in [${min}, ${max}], got ${v}`);
  return v;
}

export async function startSim(options: SimOptions = {}): Promise<Sim> {
  const clock = options.clock ?? realClock;
  const seed = checkInt('seed', options.seed ?? 1, 0);
  const port = checkInt('port', options.port ?? 0, 0, 65_535);
  const nodes = checkInt('nodes', options.nodes ?? 0, 0);
  const podsPerNode = checkInt('podsPerNode', options.podsPerNode ?? 0, 0);
  const behaviour: SimBehaviour = { ...DEFAULT_BEHAVIOUR };
  for (const k of Object.keys(DEFAULT_BEHAVIOUR) as (keyof SimBehaviour)[]) if (options[k] !== undefined) (behaviour as unknown as Record<string, unknown>)[k] = options[k];
  const minCapacity = checkInt('historyMinCapacity', options.historyMinCapacity ?? 100, 1);
  const maxCapacity = checkInt('historyMaxCapacity', options.historyMaxCapacity ?? 102_400, minCapacity);
  let defs: readonly ResourceDef[] = RESOURCES;
  if (options.resources) {
    try {
      defs = options.resources.map((id) => resource(id));
    } catch (err) {
      throw new InvalidArgumentError(`startSim: ${(err as Error).message}`, { cause: err });
    }
  }
  const store = new Store({ clock, minCapacity, maxCapacity, windowMs: options.historyWindowMs ?? 75_000, snapshotCacheSize: 8 }, defs);
  const ctx: SimContext = { store, counters: new Counters(), clock, rng: new Rng(seed ^ 0x5eed), behaviour };
  const writer = new Writer(store, clock, new Rng(seed ^ 0xa11ce));

  const podDef = resource('pods');
  const gen = generateCluster({ nodes, podsPerNode, seed }, (o) => encodeText(podDef, o));
  for (const g of gen.objects) {
    if (!store.resource(g.resource)) continue;
    const d = resource(g.resource);
    if (g.rendered) store.putRendered(d, g.rendered);
    else if (g.object) store.put(d, g.object, true);
  }
  // The watch cache starts here: history begins empty at the loaded RV for every resource.
  store.endBulk();

  const hub = new WatchHub();
  const churn = new Churn(store, writer, clock, gen.model);
  const admin = createAdmin(ctx, writer, churn, hub);
  const http = new SimHttp(ctx, defs, writer, hub, new AdminHttp(ctx, admin));
  const server: Server = createServer({ keepAlive: true }, (req, res) => http.handle(req, res));
  // Watches are long-lived: Node's default request/headers timeouts must not cut them.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
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
  const bound = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${bound}`;
  let tmpDir: string | undefined;
  let kubeconfigPath = options.kubeconfigPath;
  try {
    if (kubeconfigPath === undefined) {
      tmpDir = await mkdtemp(join(tmpdir(), 'cattail-sim-'));
      kubeconfigPath = join(tmpDir, 'kubeconfig');
    }
    await writeKubeconfig(kubeconfigPath, url);
  } catch (err) {
    server.close();
    throw err;
  }
  if ((options.churnPerSec ?? 0) > 0) churn.start({ ratePerSec: options.churnPerSec as number, seed });

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      churn.dispose();
      hub.closeAll('shutdown');
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        // Connections still mid-request (a client that stopped reading) must not hold shutdown.
        setImmediate(() => server.closeAllConnections());
      });
      if (tmpDir !== undefined) await rm(tmpDir, { recursive: true, force: true });
    })();
    return closing;
  };
  return { url, port: bound, kubeconfigPath, admin, model: gen.model, close };
}
