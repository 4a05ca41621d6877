/**
 * cold-start: every agent connects at once to warmed replicas. Time until all are in sync,
 * snapshot builds (shared: one per feed and revision, not one per agent), bytes, server CPU and
 * peak memory, admission refusals.
 */
import { type BenchContext, type BenchRecord, diff } from '../context.js';

export async function coldStart(ctx: BenchContext): Promise<BenchRecord> {
  const { o } = ctx;
  const replica = ctx.replicas[0]!;
  const m0 = await replica.metrics();
  const closed0 = await replica.metricByLabel('cattail_connections_closed_total');
  const t0 = Date.now();
  await ctx.startFleet();
  await ctx.until('all agents in sync (cold start)', ctx.left(), () => ctx.total('inSync') >= o.agents, 250);
  const coldMs = Date.now() - t0;
  const m1 = await replica.metrics();
  const closed1 = await replica.metricByLabel('cattail_connections_closed_total');
  // Agents closed while the fleet synced (by close code, on the first replica): each one started over.
  const serverClosesByCode = Object.fromEntries(Object.entries(closed1).map(([k, v]) => [k.replace(/^code="|"$/g, ''), v - (closed0[k] ?? 0)]).filter(([, d]) => (d as number) > 0));
  const coldBytes = ctx.total('bytes');
  ctx.snapshotBytesPerAgent = Math.round(coldBytes / o.agents);
  for (const r of ctx.replicas) r.sampleRss();
  const builds = diff(m0, m1, 'cattail_snapshots_generated_total');
  return {
    scenario: 'cold-start', agents: o.agents, timeToAllInSyncMs: coldMs, snapshotBuilds: builds,
    bytesReceived: coldBytes, bytesPerAgent: ctx.snapshotBytesPerAgent, serverCpuS: +diff(m0, m1, 'cattail_process_cpu_seconds_total').toFixed(2),
    peakRssMb: Math.max(...ctx.replicas.map((r) => r.peakRssMb)), refusals: diff(m0, m1, 'cattail_connections_refused_total'),
    reconnects: ctx.total('reconnects'), serverClosesByCode,
    summary: `${o.agents} agents in sync in ${(coldMs / 1000).toFixed(1)} s, ${builds} snapshot builds, ${Math.round(coldBytes / o.agents / 1024)} KiB per agent`,
  };
}
