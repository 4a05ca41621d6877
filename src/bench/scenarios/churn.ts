/**
 * churn: label flips at a steady rate. Write → receipt latency (first and last agent per change),
 * deliveries/s, server CPU per delivery; then, in the same run, the plain-TCP floor writing the
 * same bytes per delivery at the same rate to as many raw sockets, and Cattail's latency and CPU
 * as ratios to it. A fresh fleet follows for the next scenarios.
 */
import { churnAndStop } from '../churn.js';
import { measureFloor } from '../churn-floor.js';
import type { BenchContext, BenchRecord } from '../context.js';
import { ratio } from '../stats.js';

export async function churn(ctx: BenchContext): Promise<BenchRecord> {
  const { o } = ctx;
  const c = await churnAndStop(ctx, o.agents);
  // The floor is a minute of its own processes: not after a stop.
  ctx.checkStopped();
  ctx.progress.setPhase(`churn: the plain-TCP floor (${o.agents} sockets, ${c.changes} changes of ${c.bytesPerDelivery} B)`);
  const floor = await measureFloor({
    host: ctx.replicas[0]!.host, sockets: o.agents, changes: c.changes, ratePerSec: o.churnPerSec, frameBytes: c.bytesPerDelivery,
    serverPin: ctx.pins.server, clientPin: ctx.pins.load, timeoutMs: Math.min(ctx.left(), 120_000),
  }).catch((err: unknown) => {
    ctx.progress.line(`floor failed: ${String(err)}`);
    return undefined;
  });
  const latencyVsFloor = floor === undefined ? null : ratio(c.lastAgentLatencyMs.p50, floor.lastSocketLatencyMs.p50);
  const cpuVsFloor = floor === undefined ? null : ratio(c.serverCpuUsPerDelivery, floor.serverCpuUsPerDelivery);
  const record: BenchRecord = {
    scenario: 'churn', changes: c.changes, ratePerSec: o.churnPerSec, achievedRatePerSec: c.achievedRatePerSec, windowMs: o.churnMs, changesSeenByAllAgents: c.changesSeenByAllAgents, lastRv: c.lastRv,
    firstAgentLatencyMs: c.firstAgentLatencyMs, lastAgentLatencyMs: c.lastAgentLatencyMs, deliveriesPerSec: c.deliveriesPerSec,
    serverCpuS: c.serverCpuS, serverCpuUsPerDelivery: c.serverCpuUsPerDelivery, bytesPerDelivery: c.bytesPerDelivery,
    floor: floor ?? null, lastAgentP50VsFloor: latencyVsFloor, serverCpuPerDeliveryVsFloor: cpuVsFloor,
    note: 'latency: Cattail from the write at the simulator (upstream watch, store, fan-out) to the last agent; floor from its own write to the last socket. CPU: the replica process over the window; the floor process from its first write until the kernel took its last byte.',
    summary: `${c.changes} changes at ${c.achievedRatePerSec}/s${c.achievedRatePerSec < 0.9 * o.churnPerSec ? ` (of ${o.churnPerSec}/s asked: the simulator's writes were slow)` : ''} to ${o.agents} agents: last agent p50 ${c.lastAgentLatencyMs.p50.toFixed(0)} ms, p99 ${c.lastAgentLatencyMs.p99.toFixed(0)} ms; ${c.serverCpuUsPerDelivery.toFixed(1)} µs server CPU per delivery` +
      (floor === undefined ? ' (floor failed)' : `; vs the plain-TCP floor: latency ×${latencyVsFloor ?? '–'}, CPU ×${cpuVsFloor ?? '–'}`),
  };
  // A fresh fleet for the following scenarios (they resume, or take snapshots, as agents would).
  ctx.progress.setPhase('churn: a fresh fleet for the next scenarios');
  await ctx.startFleet();
  await ctx.until('all agents in sync again', ctx.left(), () => ctx.total('inSync') >= o.agents, 250);
  return record;
}
