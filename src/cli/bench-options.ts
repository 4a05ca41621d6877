import { commonOptions } from '../config/common.js';
import { opt } from '../config/options.js';
import { SCENARIOS } from '../bench/run.js';

/** `cattail bench`: the fleet benchmark on loopback (src/bench/run.ts); every phase is bounded. */
export const benchOptions = {
  ...commonOptions,
  agents: opt.int({ default: 5_000, unit: 'count', min: 1, max: 20_000, help: 'Simulated node agents (discard mode, in worker processes, on loopback).' }),
  nodes: opt.int({ default: 5_000, unit: 'count', min: 1, help: 'Nodes of the generated cluster.' }),
  podsPerNode: opt.int({ default: 30, unit: 'count', min: 0, help: 'Pods per node of the generated cluster.' }),
  churnPerSec: opt.int({ default: 50, unit: 'changes/s', min: 1, max: 5_000, help: 'Pod label flips per second in the churn scenario.' }),
  churnMs: opt.int({ default: 20_000, unit: 'ms', min: 1_000, help: 'Length of the churn scenario.' }),
  burstChanges: opt.int({ default: 10_000, unit: 'count', min: 1, help: 'Changes written at once in the burst scenario.' }),
  agentsPerWorker: opt.int({ default: 2_500, unit: 'count', min: 1, help: 'Agents per worker process.' }),
  scenario: opt.list({ default: [...SCENARIOS], values: SCENARIOS, help: 'Scenarios to run, in this order (repeat or comma-separate).' }),
  seed: opt.int({ default: 1, min: 0, help: 'Seed of the generated cluster and of the agents.' }),
  durationMs: opt.int({ default: 900_000, unit: 'ms', min: 10_000, help: 'Hard bound on the whole run; the benchmark stops by itself.' }),
  quick: opt.boolean({ default: false, help: 'A small run (200 agents, 100 nodes × 5 pods, short phases) that finishes in under a minute: the CI smoke test. Overrides the sizes.' }),
  out: opt.string({ default: 'bench/results', help: 'Directory for bench.json and bench.md (quick runs write bench-quick.*).' }),
} as const;
