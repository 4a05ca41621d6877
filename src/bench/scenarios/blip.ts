/** blip: every agent drops its connection at once and reconnects: resume bytes against snapshot bytes. */
import type { BenchContext, BenchRecord } from '../context.js';

export async function blip(ctx: BenchContext): Promise<BenchRecord> {
  const { o } = ctx;
  const bytes0 = ctx.total('bytes');
  const snaps0 = ctx.total('snapshots');
  const resumes0 = ctx.total('resumes');
  for (const w of ctx.workers) w.blip();
  await new Promise((r) => setTimeout(r, 500));
  const ms = await ctx.until('every agent back in sync after the blip', ctx.left(), () => ctx.total('inSync') >= o.agents, 100);
  const resumeBytes = ctx.total('bytes') - bytes0;
  const snapshotBytes = ctx.snapshotBytesPerAgent * o.agents;
  return {
    scenario: 'blip', agents: o.agents, timeToAllInSyncMs: ms + 500, resumes: ctx.total('resumes') - resumes0, snapshots: ctx.total('snapshots') - snaps0,
    bytesPerAgent: Math.round(resumeBytes / o.agents), snapshotBytesPerAgent: ctx.snapshotBytesPerAgent, fractionOfSnapshot: +(resumeBytes / Math.max(1, snapshotBytes)).toFixed(4),
    summary: `blip: every agent back in ${((ms + 500) / 1000).toFixed(1)} s; ${Math.round(resumeBytes / o.agents)} B per agent = ${((100 * resumeBytes) / Math.max(1, snapshotBytes)).toFixed(2)} % of a snapshot`,
  };
}
