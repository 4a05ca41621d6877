import { commonOptions } from '../config/common.js';
import { opt } from '../config/options.js';
import { SCENARIOS } from '../bench/context.js';

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
  transport: opt.enum({ values: ['ws', 'uws'] as const, default: 'ws', help: 'Agent transport of the replicas (cattail serve --transport); recorded in the results.' }),
  slowAgentsPercent: opt.int({ default: 5, unit: '%', min: 0, max: 100, help: 'slow-agents: share of the agents that read slowly (from their first in-sync).' }),
  slowReadBytesPerSec: opt.int({ default: 16_384, unit: 'bytes/s', min: 1, help: 'slow-agents: read rate of a slow agent; below what the churn sends an agent (changes/s × bytes per change), so a slow agent falls behind and the fan-out has to skip it.' }),
  stalledAgentsPercent: opt.int({ default: 1, unit: '%', min: 0, max: 100, help: 'slow-agents: share of the agents that stop reading (from their first in-sync) for --stall-ms.' }),
  stallMs: opt.int({ default: 75_000, unit: 'ms', min: 0, help: 'slow-agents: how long a stalled agent stops reading; the default outlasts the server\'s 60 s pongTimeoutMs, so the run shows what a replica does with a frozen agent.' }),
  apiLoadAgents: opt.int({ default: 10, unit: 'count', min: 1, max: 1_000, help: 'api-load: agents on each side; each direct agent keeps its own copy of the projected cluster in one worker process (~140 MB each at 150,000 pods), so keep it at what the machine carries.' }),
  scenario: opt.list({ default: [...SCENARIOS], values: SCENARIOS, help: 'Scenarios to run, in this order (repeat the flag or separate with commas). cold-start always runs: every other scenario starts from its fleet.' }),
  seed: opt.int({ default: 1, min: 0, help: 'Seed of the generated cluster and of the agents.' }),
  durationMs: opt.int({ default: 1_800_000, unit: 'ms', min: 10_000, help: 'Hard bound on the whole run; the benchmark stops by itself. SIGTERM or SIGINT stops it sooner: the scenario under way ends, the rest are skipped, every process is stopped and the report of what was measured is written (exit status 1). The default run took 23 min on a shared 2-vCPU machine (two cold starts of 5,000 agents and 10 direct agents listing 150,000 pods each).' }),
  quick: opt.boolean({ default: false, help: 'A small run (200 agents, 100 nodes × 5 pods, 2.5 s of churn, a 3 s stall, 10 api-load agents) that finishes in about a minute: the CI smoke test. Overrides the sizes.' }),
  name: opt.string({ default: undefined, help: 'Base name of the result files (NAME.json, NAME.md, NAME-*.svg). Unset: bench, or bench-quick with --quick.' }),
  out: opt.string({ default: 'bench/results', help: 'Directory for bench.json, bench.md and the SVG plots (quick runs write bench-quick.*); earlier bench-*.json results there are plotted beside a full run.' }),
} as const;
