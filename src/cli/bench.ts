/**
 * `cattail bench`: runs src/bench/run.ts and writes its JSON and Markdown. Progress goes to stdout
 * as one line per step (a terminal and a CI log read the same lines); the table comes last.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Scenario, renderMarkdown, runBench } from '../bench/run.js';
import type { ConfigOf } from '../config/options.js';
import type { benchOptions } from './bench-options.js';
import type { CommandContext } from './commands.js';

export async function runBenchCommand(config: ConfigOf<typeof benchOptions>, ctx: CommandContext): Promise<number> {
  const sizes = config.quick
    ? { agents: 200, nodes: 100, podsPerNode: 5, churnPerSec: 20, churnMs: 3_000, burstChanges: 300, agentsPerWorker: 100 }
    : { agents: config.agents, nodes: config.nodes, podsPerNode: config.podsPerNode, churnPerSec: config.churnPerSec, churnMs: config.churnMs, burstChanges: config.burstChanges, agentsPerWorker: config.agentsPerWorker };
  const t0 = Date.now();
  const report = await runBench({
    ...sizes,
    scenarios: config.scenario as Scenario[],
    seed: config.seed,
    deadlineMs: config.durationMs,
    progress: (line) => ctx.stdout.write(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${line}\n`),
  });
  const base = config.quick ? 'bench-quick' : 'bench';
  mkdirSync(config.out, { recursive: true });
  writeFileSync(join(config.out, `${base}.json`), `${JSON.stringify(report, null, 2)}\n`);
  const md = renderMarkdown(report);
  writeFileSync(join(config.out, `${base}.md`), md);
  ctx.stdout.write(`\n${md}`);
  return 0;
}
