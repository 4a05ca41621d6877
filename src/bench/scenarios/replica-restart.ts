/**
 * replica-restart: the replica that carries every agent is restarted three times, with pod changes
 * while it is down: cold (its state directory emptied: it lists every resource, as every replica
 * without --state-dir does), warm after SIGTERM (the checkpoint taken when the drain started) and
 * warm after SIGKILL (the last periodic checkpoint, older than what its agents hold). For each:
 * what the restart cost the API server (the simulator's counters: LIST requests, WatchList initial
 * events, requests, bytes), how long until ready and until every agent was in sync again, and what
 * each agent received against a full snapshot.
 */
import { rmSync } from 'node:fs';
import { counterTotal, type CountersSnapshot, replicaListRequests } from '../../sim/counters.js';
import { type BenchContext, type BenchRecord } from '../context.js';
import type { ReplicaProc } from '../procs.js';

/** Pod changes written while the replica is down. */
const CHANGES_WHILE_DOWN = 50;

type Kind = 'cold' | 'warm-sigterm' | 'warm-sigkill';

async function restartOnce(ctx: BenchContext, r: ReplicaProc, kind: Kind): Promise<Record<string, unknown>> {
  const { o } = ctx;
  if (kind === 'warm-sigkill') {
    // A crash loses what changed after the last periodic checkpoint: wait for one, then change
    // more, so the agents hold a newer state than the checkpoint (the case the design is for).
    const written = async (): Promise<number> => (await r.metricByLabel('cattail_state_checkpoint_writes_total'))['result="ok"'] ?? 0;
    const before = await written();
    for (let i = 0; i < 5; i++) await ctx.writeOne();
    await ctx.until('a periodic checkpoint', ctx.left(), async () => (await written()) > before, 250);
    let last = { rv: '0' };
    for (let i = 0; i < 5; i++) last = await ctx.writeOne();
    await ctx.until('the agents hold the changes after the checkpoint', ctx.left(), () => ctx.allHave(Number(last.rv)), 100);
  }
  const bytes0 = ctx.total('bytes');
  const snaps0 = ctx.total('snapshots');
  const resumes0 = ctx.total('resumes');
  if (kind === 'warm-sigkill') await r.kill('SIGKILL');
  else {
    // The first SIGTERM takes the checkpoint and starts the paced drain; the second closes the
    // rest at once (the drain's pacing is the drain scenario's subject, not this one's).
    r.signal('SIGTERM');
    await new Promise((res) => setTimeout(res, 2_000));
    await r.kill('SIGTERM');
  }
  if (kind === 'cold' && r.stateDir !== undefined) rmSync(r.stateDir, { recursive: true, force: true });
  for (let i = 0; i < CHANGES_WHILE_DOWN; i++) await ctx.writeOne();
  await ctx.sim.admin('POST', '/counters/reset');
  const t0 = Date.now();
  await r.start();
  await r.ready(ctx.left());
  const readyMs = Date.now() - t0;
  await ctx.until(`every agent in sync after the ${kind} restart`, ctx.left(), () => ctx.total('inSync') >= o.agents && ctx.total('snapshots') + ctx.total('resumes') - snaps0 - resumes0 >= o.agents, 100);
  const allInSyncMs = Date.now() - t0;
  const c = await ctx.sim.admin<CountersSnapshot>('GET', '/counters');
  const mine = Object.entries(c.clients).filter(([id]) => id.includes(`(replica ${r.name})`));
  const bytesPerAgent = Math.round((ctx.total('bytes') - bytes0) / o.agents);
  return {
    kind, readyMs, allInSyncMs,
    apiListRequests: replicaListRequests(c, r.name),
    apiWatchRequests: mine.reduce((n, [, v]) => n + v.watchRequests, 0),
    apiInitialEvents: counterTotal(c.initialEvents),
    apiListItems: counterTotal(c.listItems),
    apiBytesSent: counterTotal(c.bytesSent),
    snapshots: ctx.total('snapshots') - snaps0,
    rebasesOrResumes: ctx.total('resumes') - resumes0,
    bytesPerAgent,
    fractionOfSnapshot: +(bytesPerAgent / Math.max(1, ctx.snapshotBytesPerAgent)).toFixed(4),
  };
}

export async function replicaRestart(ctx: BenchContext): Promise<BenchRecord | undefined> {
  const r = ctx.replicas[0];
  if (r === undefined || r.stateDir === undefined) return undefined;
  // Every agent on the one replica: the others (replica-loss left one dead) are stopped.
  for (const other of ctx.replicas.slice(1)) if (other.running) await other.kill('SIGKILL');
  await ctx.until('every agent in sync on one replica', ctx.left(), () => ctx.total('inSync') >= ctx.o.agents, 100);
  const phases: Record<string, unknown>[] = [];
  for (const kind of ['cold', 'warm-sigterm', 'warm-sigkill'] as const) phases.push(await restartOnce(ctx, r, kind));
  const [cold, term, kill] = phases as [Record<string, number>, Record<string, number>, Record<string, number>];
  const mib = (b: number): string => (b / 2 ** 20).toFixed(1);
  return {
    scenario: 'replica-restart', agents: ctx.o.agents, changesWhileDown: CHANGES_WHILE_DOWN, snapshotBytesPerAgent: ctx.snapshotBytesPerAgent, phases,
    summary: `replica restart, ${CHANGES_WHILE_DOWN} changes while down: cold ${cold['apiListRequests']} LISTs + ${cold['apiInitialEvents']} initial events, ${mib(cold['apiBytesSent']!)} MiB from the API, ready in ${(cold['readyMs']! / 1000).toFixed(1)} s; `
      + `warm (SIGTERM) ${term['apiListRequests']} LISTs, ${term['apiInitialEvents']} initial events, ${mib(term['apiBytesSent']!)} MiB, ready in ${(term['readyMs']! / 1000).toFixed(1)} s, ${term['snapshots']} snapshots, ${(100 * term['fractionOfSnapshot']!).toFixed(2)} % of a snapshot per agent; `
      + `warm (SIGKILL) ${kill['apiListRequests']} LISTs, ${mib(kill['apiBytesSent']!)} MiB, all in sync in ${(kill['allInSyncMs']! / 1000).toFixed(1)} s, ${kill['snapshots']} snapshots, ${(100 * kill['fractionOfSnapshot']!).toFixed(2)} % of a snapshot per agent`,
  };
}
