/**
 * slow-agents: a fresh fleet in which `slowAgentsPercent` of the agents read slowly and
 * `stalledAgentsPercent` stop reading for `stallMs` (both from their first in-sync; see
 * src/client/fleet/discard-agent.ts), under the churn scenario's rate and length. Reported:
 *
 * - the normal agents' latency, beside the churn scenario's (the baseline, when it ran): an
 *   impaired neighbour must not slow the others down (the fan-out skips a backed-up socket);
 * - the replica's memory against its budgets, sampled from its metrics every 250 ms: the most
 *   backed-up socket against socketHighWaterBytes, bytes built for one agent alone against
 *   maxClientBytes, resident memory;
 * - what happened to the slow and stalled agents: close codes (server and agent side), whether
 *   they came back by resume or by a new snapshot, and whether they were in sync at the end.
 *
 * The scenario waits for the stall to end and every agent to be back in sync (bounded by the
 * run's deadline), so a stall longer than pongTimeoutMs (60 s by default) shows the close.
 */
import { serveOptions } from '../../server/options.js';
import { churnResult, churnWindow } from '../churn.js';
import type { BenchContext, BenchRecord } from '../context.js';
import { ratio } from '../stats.js';

const SAMPLED = ['cattail_socket_buffered_bytes_max', 'cattail_socket_buffered_bytes', 'cattail_client_own_bytes', 'cattail_process_resident_memory_bytes'] as const;

export async function slowAgents(ctx: BenchContext, baseline: BenchRecord | undefined): Promise<BenchRecord> {
  const { o } = ctx;
  const replica = ctx.replicas.find((r) => r.running);
  if (replica === undefined) throw new Error('bench: no replica running for slow-agents');
  await ctx.stopFleet();
  const closed0 = await replica.metricByLabel('cattail_connections_closed_total');
  const before = await replica.metrics();
  const impairments = { slowAgentsPercent: o.slowAgentsPercent, slowReadBytesPerSec: o.slowReadBytesPerSec, stalledAgentsPercent: o.stalledAgentsPercent, stallMs: o.stallMs };
  await ctx.startFleet({ impairments });
  await ctx.until('all agents in sync (slow-agents)', ctx.left(), () => ctx.total('inSync') >= o.agents, 250);
  // Every agent reached its first in-sync: the impairments start now (the stall's clock too).
  const impairedAt = Date.now();
  const peak: Record<string, number> = {};
  const sampler = setInterval(() => {
    void replica.metrics().then((m) => {
      for (const k of SAMPLED) peak[k] = Math.max(peak[k] ?? 0, m.get(k) ?? 0);
    }, () => undefined);
  }, 250);
  let normalAgents = 0;
  try {
    const groups0 = () => ctx.workers.map((w) => w.last?.groups);
    normalAgents = groups0().reduce((s, g) => s + (g?.['normal']?.agents ?? 0), 0);
    const w = await churnWindow(ctx);
    // The stall ends, the stalled agents read what is left (or find their connection closed)
    // and come back; bounded by the run's deadline.
    ctx.progress.setPhase(`slow-agents: waiting for the ${o.stallMs} ms stall to end and every agent to be in sync`);
    await ctx.until('every slow and stalled agent back in sync', ctx.left(), () => Date.now() - impairedAt > o.stallMs + 2_000 && ctx.total('inSync') >= o.agents, 250)
      .catch((err: unknown) => {
        ctx.checkStopped();
        ctx.progress.line(String(err));
      });
    const after = await replica.metrics();
    const closed1 = await replica.metricByLabel('cattail_connections_closed_total');
    const finals = await ctx.stopFleet();
    const c = churnResult(ctx, w, finals, normalAgents);
    const group = (name: string): Record<string, unknown> => {
      const g = { agents: 0, inSyncAtEnd: 0, snapshots: 0, resumes: 0, reconnects: 0, impaired: 0, closeCodes: {} as Record<string, number> };
      for (const f of finals) {
        const x = f?.groups?.[name];
        if (x === undefined) continue;
        g.agents += x.agents;
        g.inSyncAtEnd += x.inSync;
        // Each agent's first snapshot is its cold start; more mean it had to start over.
        g.snapshots += x.snapshots;
        g.resumes += x.resumes;
        g.reconnects += x.reconnects;
        g.impaired += x.impaired;
        for (const [code, n] of Object.entries(x.closeCodes)) g.closeCodes[code] = (g.closeCodes[code] ?? 0) + n;
      }
      return { ...g, snapshotsAfterTheFirst: g.snapshots - g.agents };
    };
    const serverCloses: Record<string, number> = {};
    for (const [k, v] of Object.entries(closed1)) {
      const d = v - (closed0[k] ?? 0);
      if (d > 0) serverCloses[k.replace(/^code="|"$/g, '')] = d;
    }
    const base = baseline?.['lastAgentLatencyMs'] as { p50: number; p99: number } | undefined;
    const stalled = group('stalled');
    const slow = group('slow');
    const budgets = {
      socketHighWaterBytes: serveOptions.socketHighWaterBytes.default, peakSocketBufferedBytesMax: peak['cattail_socket_buffered_bytes_max'] ?? 0,
      peakSocketBufferedBytesTotal: peak['cattail_socket_buffered_bytes'] ?? 0,
      maxClientBytes: serveOptions.maxClientBytes.default, peakClientOwnBytesTotal: peak['cattail_client_own_bytes'] ?? 0,
      rssBeforeMb: Math.round((before.get('cattail_process_resident_memory_bytes') ?? 0) / 2 ** 20), peakRssMb: Math.round((peak['cattail_process_resident_memory_bytes'] ?? 0) / 2 ** 20),
      rssAfterMb: Math.round((after.get('cattail_process_resident_memory_bytes') ?? 0) / 2 ** 20),
    };
    const describe = (g: Record<string, unknown>): string => {
      const codes = Object.entries(g['closeCodes'] as Record<string, number>).map(([k, v]) => `${v}× ${k}`).join(', ');
      return `${codes === '' ? 'not closed' : `closed ${codes}`}, ${g['snapshotsAfterTheFirst'] as number} new snapshots, ${g['resumes'] as number} resumes, ${g['inSyncAtEnd'] as number}/${g['agents'] as number} in sync at the end`;
    };
    return {
      scenario: 'slow-agents', agents: o.agents, normalAgents, impairments, changes: c.changes, changesSeenByAllNormalAgents: c.changesSeenByAllAgents,
      normalLastAgentLatencyMs: c.lastAgentLatencyMs, normalFirstAgentLatencyMs: c.firstAgentLatencyMs,
      baselineLastAgentLatencyMs: base ?? null, p50VsBaseline: base === undefined ? null : ratio(c.lastAgentLatencyMs.p50, base.p50), p99VsBaseline: base === undefined ? null : ratio(c.lastAgentLatencyMs.p99, base.p99),
      serverCpuUsPerDelivery: c.serverCpuUsPerDelivery, memory: budgets, serverClosesByCode: serverCloses, slow, stalled,
      summary: `${normalAgents} normal agents beside ${slow['agents'] as number} slow (${o.slowReadBytesPerSec} B/s) and ${stalled['agents'] as number} stalled (${o.stallMs} ms): last normal agent p50 ${c.lastAgentLatencyMs.p50.toFixed(0)} ms, p99 ${c.lastAgentLatencyMs.p99.toFixed(0)} ms` +
        (base !== undefined ? ` (churn baseline ${base.p50.toFixed(0)} / ${base.p99.toFixed(0)} ms)` : '') +
        `; most backed-up socket ${Math.round(budgets.peakSocketBufferedBytesMax / 1024)} KiB (budget ${budgets.socketHighWaterBytes / 1024} KiB), RSS ${budgets.rssBeforeMb}→${budgets.peakRssMb} MB; stalled: ${describe(stalled)}; slow: ${describe(slow)}`,
    };
  } finally {
    clearInterval(sampler);
    // The next scenario (api-load) starts its own fleets.
    await ctx.stopFleet();
  }
}
