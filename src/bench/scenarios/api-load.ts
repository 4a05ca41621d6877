/**
 * api-load: what the API server pays for N agents, measured on both sides under the same churn
 * script (the churn scenario's rate and length), from the simulator's own counters (reset before
 * each side) and its process CPU:
 *
 *   direct    N agents that each run their own list/watch (src/bench/direct-agents.ts: the
 *             project's upstream reflectors, one set per agent, in one worker process);
 *   cattail   one fresh replica (the others are stopped first) with N discard agents behind it.
 *
 * Each side covers its start (initial lists), the sync and the churn. N is `apiLoadAgents`, small
 * enough for one process to hold N copies of the state (each direct agent keeps its own projected
 * cluster, as a node would); the record says so. This is the run's last scenario: it stops the
 * replicas and the fleet.
 */
import { Child } from '../child.js';
import { type BenchContext, type BenchRecord, FEEDS } from '../context.js';
import type { DirectCmd, DirectStatus } from '../direct-agents.js';
import { ReplicaProc } from '../procs.js';
import { ratio } from '../stats.js';
import { counterTotal } from '../../sim/counters.js';

interface Side {
  readonly agents: number;
  /** LIST and WATCH requests the API server answered. */
  readonly requests: number;
  readonly lists: number;
  readonly watchRequests: number;
  /** Watches open at the end of the side. */
  readonly watchesOpen: number;
  readonly bytesSent: number;
  readonly simCpuS: number;
  readonly timeToSyncMs: number;
  readonly changes: number;
}

type Counters = { requests?: Record<string, number> | number; watchesOpen?: Record<string, number> | number; bytesSent?: Record<string, number> | number; clients?: Record<string, { watchRequests: number; lists: number }> };

async function measureSide(ctx: BenchContext, agents: number, bring: () => Promise<{ synced: () => boolean; hasRv: (rv: number) => boolean; stop: () => Promise<void> }>): Promise<Side> {
  const { o, sim } = ctx;
  await sim.admin('POST', '/counters/reset');
  const cpu0 = sim.cpuSeconds();
  const t0 = Date.now();
  const side = await bring();
  try {
    await ctx.until('api-load: every agent synced', ctx.left(), side.synced, 250);
    const timeToSyncMs = Date.now() - t0;
    const changes = Math.max(1, Math.round((o.churnPerSec * o.churnMs) / 1000));
    let last = 0;
    const gapMs = 1000 / o.churnPerSec;
    let next = Date.now();
    for (let i = 0; i < changes; i++) {
      ctx.checkStopped();
      last = Number((await ctx.writeOne()).rv);
      next += gapMs;
      await new Promise((r) => setTimeout(r, Math.max(0, next - Date.now())));
    }
    await ctx.until('api-load: the last change reached every agent', ctx.left(), () => side.hasRv(last), 100);
    const c = await sim.admin<Counters>('GET', '/counters');
    const clients = Object.values(c.clients ?? {});
    return {
      agents, requests: counterTotal(c.requests), lists: clients.reduce((s, x) => s + x.lists, 0), watchRequests: clients.reduce((s, x) => s + x.watchRequests, 0),
      watchesOpen: counterTotal(c.watchesOpen), bytesSent: counterTotal(c.bytesSent), simCpuS: +(sim.cpuSeconds() - cpu0).toFixed(2), timeToSyncMs, changes,
    };
  } finally {
    await side.stop();
  }
}

export async function apiLoad(ctx: BenchContext, host: string, replicaArgs: readonly string[]): Promise<BenchRecord> {
  const n = ctx.o.apiLoadAgents;
  // Alone with the simulator: nothing else watches it while a side is measured.
  await ctx.stopFleet();
  await Promise.all(ctx.replicas.map((r) => r.kill('SIGKILL')));

  ctx.progress.setPhase(`api-load: ${n} agents behind one Cattail replica`);
  const withCattail = await measureSide(ctx, n, async () => {
    const replica = new ReplicaProc('bench-api', host, ctx.sim.kubeconfig, FEEDS, replicaArgs, ctx.pins.server);
    await replica.start();
    try {
      await replica.ready(ctx.left());
      await ctx.startFleet({ servers: [replica.url], agents: n });
    } catch (err) {
      // Not returned to measureSide yet, so nothing else would stop it: a replica left running
      // kept the whole benchmark process alive after a run that hit its deadline here.
      await ctx.stopFleet();
      await replica.kill('SIGKILL');
      throw err;
    }
    return {
      synced: () => ctx.total('inSync') >= n,
      hasRv: (rv) => ctx.allHave(rv),
      stop: async () => {
        await ctx.stopFleet();
        await replica.kill('SIGKILL');
      },
    };
  });

  ctx.progress.setPhase(`api-load: ${n} agents each with its own list/watch`);
  // Each direct agent holds a whole projected cluster: give the worker room for N of them.
  const worker = new Child<DirectCmd, DirectStatus | { ev: 'stopped' }>('./direct-agents.js', ctx.pins.load, ['--max-old-space-size=8192']);
  let st: DirectStatus | undefined;
  let peakRssMb = 0;
  worker.child.on('message', (m: DirectStatus | { ev: 'stopped' }) => {
    if (m.ev !== 'status') return;
    st = m;
    peakRssMb = Math.max(peakRssMb, m.rssMb);
    ctx.progress.status({ agents: n, connected: m.agents, inSync: m.synced, deliveriesPerSec: 0 });
  });
  const direct = await measureSide(ctx, n, async () => {
    worker.send({ cmd: 'start', agents: n, kubeconfig: ctx.sim.kubeconfig, feeds: FEEDS });
    return {
      synced: () => (st?.synced ?? 0) >= n,
      hasRv: (rv) => (st?.minPodsRv ?? 0) >= rv,
      stop: () => worker.stop(),
    };
  });

  const x = (k: keyof Side): number | null => ratio(direct[k], withCattail[k]);
  return {
    scenario: 'api-load', agents: n, withCattail, direct, directWorkerPeakRssMb: peakRssMb,
    directOverCattail: { requests: x('requests'), watchesOpen: x('watchesOpen'), bytesSent: x('bytesSent'), simCpuS: x('simCpuS') },
    note: `measured, not estimated: ${n} direct agents (one process, each the project's own reflectors for the felix feed, peak ${peakRssMb} MB RSS for all of them) against ${n} agents behind one replica, the same churn script on each side; N is what one process on this machine carries at this cluster size, not the fleet size`,
    summary: `API server for ${n} agents, direct vs behind Cattail: ${direct.requests} vs ${withCattail.requests} requests, ${direct.watchesOpen} vs ${withCattail.watchesOpen} watches, ${(direct.bytesSent / 2 ** 20).toFixed(1)} vs ${(withCattail.bytesSent / 2 ** 20).toFixed(1)} MiB sent, ${direct.simCpuS} vs ${withCattail.simCpuS} s simulator CPU`,
  };
}
