/**
 * burst: the simulator's own churn driver writes `burstChanges` changes within about a second (an
 * HTTP request per change from the coordinator would measure the coordinator); a marker change
 * after it tells when everything arrived at every agent.
 */
import type { BenchContext, BenchRecord } from '../context.js';

export async function burst(ctx: BenchContext): Promise<BenchRecord> {
  const { o, sim } = ctx;
  const before = ctx.total('frames');
  const t = Date.now();
  const started0 = await sim.admin<{ changes: number }>('POST', '/churn', { ratePerSec: o.burstChanges, seed: o.seed });
  await new Promise((r) => setTimeout(r, 1_000));
  const stopped = await sim.admin<{ changes: number }>('DELETE', '/churn');
  const writtenMs = Date.now() - t;
  const marker = Number((await ctx.writeOne()).rv);
  const doneMs = await ctx.until('the burst reached every agent', ctx.left(), () => ctx.allHave(marker), 50);
  const written = stopped.changes - started0.changes;
  return {
    scenario: 'burst', changesRequested: o.burstChanges, changesWritten: written, writtenMs, timeToAllAgentsMs: writtenMs + doneMs, framesReceived: ctx.total('frames') - before,
    summary: `${written} changes in ${(writtenMs / 1000).toFixed(1)} s; every agent had all of them ${((writtenMs + doneMs) / 1000).toFixed(1)} s after the first`,
  };
}
