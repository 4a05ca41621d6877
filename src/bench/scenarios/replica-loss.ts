/**
 * replica-loss: one of two replicas is killed (SIGKILL): time until every agent is in sync again
 * on the survivor, bytes per moved agent against a full snapshot, connections the survivor accepted.
 */
import { type BenchContext, type BenchRecord, diff } from '../context.js';

export async function replicaLoss(ctx: BenchContext): Promise<BenchRecord | undefined> {
  const { o } = ctx;
  if (ctx.replicas.length < 2) return undefined;
  const victim = ctx.replicas[1]!;
  const bytes0 = ctx.total('bytes');
  const snaps0 = ctx.total('snapshots');
  const resumes0 = ctx.total('resumes');
  const survivor0 = await ctx.replicas[0]!.metrics();
  await victim.kill('SIGKILL');
  const t = Date.now();
  await new Promise((r) => setTimeout(r, 300));
  await ctx.until('every agent in sync on the surviving replica', ctx.left(), () => ctx.total('inSync') >= o.agents, 100);
  const ms = Date.now() - t;
  const survivor1 = await ctx.replicas[0]!.metrics();
  const snapshots = ctx.total('snapshots') - snaps0;
  const accepted = diff(survivor0, survivor1, 'cattail_connections_accepted_total');
  // An agent that moved either took a snapshot or continued (rebase) from its watermarks.
  const moved = accepted;
  const perMoved = Math.round((ctx.total('bytes') - bytes0) / Math.max(1, moved));
  return {
    scenario: 'replica-loss', agents: o.agents, movedAgents: moved, snapshots, resumesOrRebases: ctx.total('resumes') - resumes0, timeToAllInSyncMs: ms,
    bytesPerMovedAgent: perMoved, snapshotBytesPerAgent: ctx.snapshotBytesPerAgent, fractionOfSnapshot: +(perMoved / Math.max(1, ctx.snapshotBytesPerAgent)).toFixed(4),
    survivorAcceptedConnections: accepted,
    summary: `replica loss: ${moved} agents moved (${snapshots} snapshots), all in sync in ${(ms / 1000).toFixed(1)} s; ${Math.round(perMoved / 1024)} KiB per moved agent = ${((100 * perMoved) / Math.max(1, ctx.snapshotBytesPerAgent)).toFixed(1)} % of a snapshot`,
  };
}
