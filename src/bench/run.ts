/**
 * `cattail bench`: the simulated API server with a generated cluster, Cattail replicas and agent
 * worker processes, all on loopback, pinned to different cores where the machine has them (the
 * replicas and the plain-TCP floor on CPU 0; the simulator, the agents and this coordinator on
 * CPU 1), through a sequence of scenarios that share one cluster (one file each under
 * src/bench/scenarios):
 *
 *   cold-start    all agents connect at once to a warmed replica
 *   churn         label flips at a steady rate: write → receipt latency, deliveries/s, server CPU
 *                 per delivery, and the plain-TCP floor in the same run (ratios to it)
 *   burst         a burst of changes at once: time until the last agent has all of them
 *   blip          every agent drops and reconnects: resume bytes against the cold start's bytes
 *   replica-loss  one of two replicas is killed (SIGKILL): time until every agent is in sync
 *                 again, bytes per moved agent against a full snapshot
 *   replica-restart  the replica carrying every agent restarts cold, warm after SIGTERM and warm
 *                 after SIGKILL (--state-dir): API-server requests and bytes, time to ready and
 *                 to all in sync, bytes per agent against a full snapshot
 *   slow-agents   5 % of the agents read slowly and 1 % stall: the others' latency against the
 *                 churn baseline, server memory against its budgets, what became of the stalled
 *   api-load      N agents with their own list/watch against N agents behind Cattail, measured
 *
 * Every phase has a deadline; every process is stopped at the end; the run stops by itself.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { BenchContext, type BenchOptions, type BenchRecord, FEEDS, STOPPED, type Scenario } from './context.js';
import { loopbackBlock, ReplicaProc, SimProc } from './procs.js';
import type { Progress } from './progress.js';
import { apiLoad } from './scenarios/api-load.js';
import { blip } from './scenarios/blip.js';
import { burst } from './scenarios/burst.js';
import { churn } from './scenarios/churn.js';
import { coldStart } from './scenarios/cold-start.js';
import { replicaLoss } from './scenarios/replica-loss.js';
import { replicaRestart } from './scenarios/replica-restart.js';
import { slowAgents } from './scenarios/slow-agents.js';

export { SCENARIOS, type BenchOptions, type BenchRecord, type Scenario } from './context.js';

export interface BenchMachine {
  readonly cpus: number;
  readonly cpuModel: string;
  readonly memoryGb: number;
  readonly node: string;
  readonly os: string;
  readonly pinned: boolean;
  /** 1, 5 and 15 minute load averages before and after the run: the machine is shared. */
  readonly loadAverageBefore: number[];
  readonly loadAverageAfter: number[];
}

export interface BenchReport {
  readonly at: string;
  readonly wallS: number;
  readonly machine: BenchMachine;
  readonly parameters: BenchOptions;
  /** How the processes were started: the replicas' extra flags (everything else is a default). */
  readonly processes: { replicaArgs: readonly string[]; replicas: number; workers: number; feeds: readonly string[]; pinning: string };
  readonly records: BenchRecord[];
  /** Scenarios that failed (the run goes on with the next one), with the error. */
  readonly errors: string[];
}

/**
 * @param signal aborted to stop early: the scenario under way ends at its next wait, the rest are
 *   skipped, every process is stopped, and the report holds what was measured (its `errors` say
 *   where it stopped). Without it the run ends only at its deadline.
 */
export async function runBench(o: BenchOptions, progress: Progress, signal: AbortSignal = new AbortController().signal): Promise<BenchReport> {
  const started = Date.now();
  const loadAverageBefore = loadavg().map((x) => +x.toFixed(2));
  const pinned = cpus().length > 1;
  const pins = { server: pinned ? 0 : undefined, load: pinned ? 1 : undefined };
  // A loopback block of its own per run (from the process id, not the seed): two runs on one
  // machine (engineers, CI) with the same seed took the same addresses and ports (EADDRINUSE).
  const host = loopbackBlock(7_000 + (process.pid % 20_000));
  const records: BenchRecord[] = [];
  const errors: string[] = [];
  const want = (s: Scenario): boolean => o.scenarios.includes(s);
  const replicaArgs = ['--transport', o.transport];
  progress.setPhase(`starting the simulator: ${o.nodes} nodes × ${o.podsPerNode} pods`);
  const sim = await SimProc.start({ host: host(1), nodes: o.nodes, podsPerNode: o.podsPerNode, seed: o.seed, ...(pins.load !== undefined ? { pin: pins.load } : {}) });
  // Each replica checkpoints into a directory of its own (--state-dir) for replica-restart.
  const stateRoot = mkdtempSync(join(tmpdir(), 'cattail-bench-state-'));
  const replicas = [0, 1].slice(0, want('replica-loss') ? 2 : 1).map((i) => new ReplicaProc(`bench-${i}`, host(10 + i), sim.kubeconfig, FEEDS, replicaArgs, pins.server, join(stateRoot, `bench-${i}`)));
  const ctx = new BenchContext(o, sim, replicas, progress, pins, signal);
  /** Runs one scenario; a failure is recorded and the run goes on (a later one may still work). */
  const step = async (s: Scenario, fn: () => Promise<BenchRecord | undefined>): Promise<void> => {
    if (!want(s)) return;
    if (signal.aborted) {
      errors.push(`${s}: not run (${STOPPED})`);
      return;
    }
    progress.setPhase(s);
    try {
      const r = await fn();
      if (r === undefined) return;
      records.push(r);
      progress.line(r.summary);
    } catch (err) {
      errors.push(`${s}: ${(err as Error).message}`);
      progress.line(`${s} failed: ${(err as Error).message}`);
    }
  };
  try {
    progress.setPhase(`starting ${replicas.length} replica(s), ${o.transport} transport`);
    await Promise.all(replicas.map((r) => r.start()));
    await Promise.all(replicas.map((r) => r.ready(ctx.left())));
    progress.line(`replicas warm: ${replicas.map((r) => r.url).join(', ')}`);
    // The cold start is the fleet every other scenario starts from: it always runs (unless stopped).
    progress.setPhase('cold-start');
    try {
      ctx.checkStopped();
      const cold = await coldStart(ctx);
      if (want('cold-start')) {
        records.push(cold);
        progress.line(cold.summary);
      }
    } catch (err) {
      // Stopped: the other scenarios are skipped below and the report says so. Anything else
      // leaves no fleet for them: as before, the run fails.
      if (!signal.aborted) throw err;
      errors.push(`cold-start: ${(err as Error).message}`);
    }
    await step('churn', () => churn(ctx));
    await step('burst', () => burst(ctx));
    await step('blip', () => blip(ctx));
    await step('replica-loss', () => replicaLoss(ctx));
    await step('replica-restart', () => replicaRestart(ctx));
    await step('slow-agents', () => slowAgents(ctx, records.find((r) => r.scenario === 'churn')));
    await step('api-load', () => apiLoad(ctx, host(20), replicaArgs));
  } finally {
    progress.setPhase('stopping every process');
    await ctx.stopFleet();
    await Promise.all(replicas.map((r) => r.kill('SIGKILL')));
    await sim.stop();
    rmSync(stateRoot, { recursive: true, force: true });
    progress.done();
  }
  return {
    at: new Date().toISOString(),
    wallS: Math.round((Date.now() - started) / 1000),
    machine: {
      cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', memoryGb: Math.round(totalmem() / 2 ** 30), node: process.version, os: `${process.platform} ${release()}`,
      pinned, loadAverageBefore, loadAverageAfter: loadavg().map((x) => +x.toFixed(2)),
    },
    parameters: { ...o },
    processes: {
      replicaArgs, replicas: replicas.length, workers: Math.ceil(o.agents / o.agentsPerWorker), feeds: FEEDS,
      pinning: pinned ? 'replicas and the plain-TCP floor on CPU 0; simulator, agent workers, raw clients and direct agents on CPU 1 (taskset); the coordinator unpinned' : 'not pinned (one core)',
    },
    records,
    errors,
  };
}
