/**
 * Steady churn as the churn and slow-agents scenarios drive it: pod label flips at a fixed rate
 * for a fixed time, then the write → receipt latency per change from the workers' latency probe
 * (each worker records, per resourceVersion of pods, when its first and last normal agent held it).
 * The fleet is stopped at the end: the arrivals come in each worker's final report.
 */
import { type BenchContext, diff } from './context.js';
import type { WorkerStatus } from './procs.js';
import { type Percentiles, percentiles } from './stats.js';

export interface ChurnResult {
  readonly changes: number;
  readonly lastRv: string;
  /** Changes that every expected agent received. */
  readonly changesSeenByAllAgents: number;
  readonly firstAgentLatencyMs: Percentiles;
  readonly lastAgentLatencyMs: Percentiles;
  /** Changes written per second: below the asked rate when the simulator answered its PATCHes slowly. */
  readonly achievedRatePerSec: number;
  /** Changes × agents. */
  readonly deliveries: number;
  readonly deliveriesPerSec: number;
  /** Replica CPU over the window, from its process_cpu_seconds metric. */
  readonly serverCpuS: number;
  readonly serverCpuUsPerDelivery: number;
  /** Bytes the agents received over the window, per delivery (frames, STATUS, pings). */
  readonly bytesPerDelivery: number;
  readonly finals: (WorkerStatus | undefined)[];
}

export interface ChurnWindow {
  readonly writes: readonly { rv: string; atUs: number }[];
  readonly lastRv: string;
  readonly serverCpuS: number;
  /** Bytes the agents received from the first write until the last change reached every agent. */
  readonly bytes: number;
}

/**
 * Writes the churn at `churnPerSec` for `churnMs` against the current fleet and waits (bounded)
 * until every normal agent has the last change; the fleet keeps running.
 */
export async function churnWindow(ctx: BenchContext): Promise<ChurnWindow> {
  const { o } = ctx;
  const replica = ctx.replicas.find((r) => r.running);
  if (replica === undefined) throw new Error('bench: no replica running for the churn window');
  const mA = await replica.metrics();
  const bytes0 = ctx.total('bytes');
  const writes: { rv: string; atUs: number }[] = [];
  const end = Date.now() + o.churnMs;
  const gapMs = 1000 / o.churnPerSec;
  let next = Date.now();
  while (Date.now() < end) {
    ctx.checkStopped();
    writes.push(await ctx.writeOne());
    next += gapMs;
    ctx.showStatus();
    await new Promise((r) => setTimeout(r, Math.max(0, next - Date.now())));
  }
  const lastRv = writes.at(-1)!.rv;
  await ctx.until('the last churn change reached every agent', ctx.left(), () => ctx.allHave(Number(lastRv)), 100).catch((err: unknown) => {
    // Not reached in time is a figure of the run; stopped is the end of it.
    ctx.checkStopped();
    ctx.progress.line(String(err));
  });
  const mB = await replica.metrics();
  return { writes, lastRv, serverCpuS: diff(mA, mB, 'cattail_process_cpu_seconds_total'), bytes: ctx.total('bytes') - bytes0 };
}

/** Latency per change from the workers' final reports (their arrivals), for `agents` measured agents. */
export function churnResult(ctx: BenchContext, w: ChurnWindow, finals: (WorkerStatus | undefined)[], agents: number): ChurnResult {
  const lastLat: number[] = [];
  const firstLat: number[] = [];
  let complete = 0;
  for (const x of w.writes) {
    let count = 0;
    let first = Infinity;
    let last = 0;
    for (const f of finals) {
      const a = f?.arrivals?.[x.rv];
      if (a === undefined) continue;
      count += a[0];
      first = Math.min(first, a[1]);
      last = Math.max(last, a[2]);
    }
    if (count >= agents) complete++;
    if (Number.isFinite(first)) {
      firstLat.push((first - x.atUs) / 1000);
      lastLat.push((last - x.atUs) / 1000);
    }
  }
  const deliveries = w.writes.length * agents;
  const cpu = w.serverCpuS;
  return {
    changes: w.writes.length, lastRv: w.lastRv, changesSeenByAllAgents: complete, firstAgentLatencyMs: percentiles(firstLat), lastAgentLatencyMs: percentiles(lastLat),
    achievedRatePerSec: +(w.writes.length / (ctx.o.churnMs / 1000)).toFixed(1), deliveries, deliveriesPerSec: Math.round(deliveries / (ctx.o.churnMs / 1000)), serverCpuS: +cpu.toFixed(2), serverCpuUsPerDelivery: +((cpu * 1e6) / Math.max(1, deliveries)).toFixed(2),
    bytesPerDelivery: Math.round(w.bytes / Math.max(1, deliveries)), finals,
  };
}

/** The churn window against the current fleet (`agents` of which are measured), then the fleet stops. */
export async function churnAndStop(ctx: BenchContext, agents: number): Promise<ChurnResult> {
  const w = await churnWindow(ctx);
  const finals = await ctx.stopFleet();
  return churnResult(ctx, w, finals, agents);
}
