/**
 * The churn scenario's floor, in the same run: a plain `net` server (src/bench/floor-process.ts,
 * on the replicas' core) writes the same number of changes, at the same rate and of the same
 * size per delivery as the Cattail run, to the same number of raw sockets (src/bench/raw-clients.ts,
 * on the agents' core). Latency is write → the last socket's receipt per change; server CPU is
 * the floor process's own, per delivery. The churn record reports Cattail's figures as ratios to
 * these.
 */
import { Child } from './child.js';
import type { Pin } from './procs.js';
import type { ClientCmd } from './raw-clients.js';
import type { FloorCmd, FloorEvent } from './floor-process.js';
import { percentiles, type Percentiles } from './stats.js';

export interface FloorResult {
  readonly sockets: number;
  readonly changes: number;
  readonly frameBytes: number;
  /** Per change: from the floor's write to the last socket's receipt, in ms. */
  readonly lastSocketLatencyMs: Percentiles;
  readonly serverCpuS: number;
  readonly serverCpuUsPerDelivery: number;
  /** Changes every socket received. */
  readonly changesSeenByAllSockets: number;
}

type ClientEvent =
  | { ev: 'ready' }
  | { ev: 'connected'; n: number; failed: number }
  | { ev: 'reached'; revision: number; lastMs: number }
  | { ev: 'arrivals'; arrivals: [number, [number, number, number]][] }
  | { ev: 'closed' };

export async function measureFloor(o: { host: string; sockets: number; changes: number; ratePerSec: number; frameBytes: number; serverPin: Pin; clientPin: Pin; timeoutMs: number }): Promise<FloorResult> {
  const server = new Child<FloorCmd, FloorEvent>('./floor-process.js', o.serverPin);
  const clients = new Child<ClientCmd, ClientEvent>('./raw-clients.js', o.clientPin);
  try {
    const listening = server.wait('listening', o.timeoutMs);
    server.send({ cmd: 'listen', host: o.host });
    const { port } = await listening;
    await clients.wait('ready', o.timeoutMs);
    const connected = clients.wait('connected', o.timeoutMs);
    clients.send({ cmd: 'connect', host: o.host, port, n: o.sockets, mode: 'raw', caps: [], feed: 'felix', concurrency: 500 });
    const c = await connected;
    if (c.failed > 0) throw new Error(`bench floor: ${c.failed} of ${o.sockets} sockets failed to connect`);
    clients.send({ cmd: 'trackArrivals' });
    const ran = server.wait('ran', o.timeoutMs);
    server.send({ cmd: 'run', sockets: o.sockets, changes: o.changes, ratePerSec: o.ratePerSec, frameBytes: o.frameBytes });
    const r = await ran;
    const reached = clients.wait('reached', o.timeoutMs);
    clients.send({ cmd: 'target', revision: o.changes });
    await reached;
    const got = clients.wait('arrivals', o.timeoutMs);
    clients.send({ cmd: 'arrivals' });
    const arrivals = new Map((await got).arrivals);
    const lat: number[] = [];
    let complete = 0;
    for (const [rev, atUs] of r.writes) {
      const a = arrivals.get(rev);
      if (a === undefined) continue;
      if (a[0] >= o.sockets) complete++;
      lat.push(a[2] - atUs / 1000);
    }
    const deliveries = r.writes.length * r.sockets;
    return {
      sockets: r.sockets, changes: r.writes.length, frameBytes: r.frameBytes, lastSocketLatencyMs: percentiles(lat), serverCpuS: +r.cpuS.toFixed(3),
      serverCpuUsPerDelivery: +((r.cpuS * 1e6) / Math.max(1, deliveries)).toFixed(2), changesSeenByAllSockets: complete,
    };
  } finally {
    server.kill();
    clients.kill();
  }
}
