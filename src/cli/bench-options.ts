import { commonOptions } from '../config/common.js';
import { opt } from '../config/options.js';

/** `cattail bench`: load benchmarks against loopback servers; every loop is bounded. */
export const benchOptions = {
  ...commonOptions,
  clients: opt.int({ default: 1_000, unit: 'count', min: 1, max: 20_000, help: 'Simulated agents (loopback connections).' }),
  durationMs: opt.int({ default: 30_000, unit: 'ms', min: 1_000, max: 600_000, help: 'Hard bound on the run; the benchmark stops by itself.' }),
  out: opt.string({ default: undefined, help: 'Write the results (JSON) to this file, e.g. bench/results/fanout.json.' }),
} as const;
