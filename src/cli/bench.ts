/**
 * `cattail bench`: runs src/bench/run.ts with a live progress display (redrawn in place on a
 * terminal, plain lines otherwise), writes the JSON, the SVG plots and the Markdown that links
 * them, and prints the final table.
 */
import { accessSync, constants, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderPlots } from '../bench/plots.js';
import { Progress } from '../bench/progress.js';
import { renderMarkdown, renderTable } from '../bench/report.js';
import { type BenchReport, type Scenario, runBench } from '../bench/run.js';
import type { ConfigOf } from '../config/options.js';
import { ConfigError } from '../errors.js';
import type { benchOptions } from './bench-options.js';
import type { CommandContext } from './commands.js';

/** --quick: small enough for CI (under a minute on a loaded 2-core machine), every scenario still real. */
const QUICK = {
  agents: 200, nodes: 100, podsPerNode: 5, churnPerSec: 20, churnMs: 2_500, burstChanges: 300, agentsPerWorker: 100,
  stallMs: 3_000, apiLoadAgents: 10,
} as const;

/** Earlier results in `dir` (other sizes and rates), so the plots put this run beside them. */
function earlierReports(dir: string, except: string): BenchReport[] {
  if (!existsSync(dir)) return [];
  const out: BenchReport[] = [];
  for (const f of readdirSync(dir)) {
    if (!/^bench(-[\w.-]+)?\.json$/.test(f) || f === except) continue;
    try {
      const r = JSON.parse(readFileSync(join(dir, f), 'utf8')) as BenchReport;
      if (Array.isArray(r.records) && typeof r.parameters?.agents === 'number') out.push(r);
    } catch {
      // not a bench report: ignored
    }
  }
  return out;
}

export async function runBenchCommand(config: ConfigOf<typeof benchOptions>, ctx: CommandContext): Promise<number> {
  const sizes = config.quick
    ? QUICK
    : { agents: config.agents, nodes: config.nodes, podsPerNode: config.podsPerNode, churnPerSec: config.churnPerSec, churnMs: config.churnMs, burstChanges: config.burstChanges, agentsPerWorker: config.agentsPerWorker, stallMs: config.stallMs, apiLoadAgents: config.apiLoadAgents };
  // Before the run, not after it: a directory that cannot be written lost a whole run's report.
  try {
    mkdirSync(config.out, { recursive: true });
    accessSync(config.out, constants.W_OK);
  } catch (err) {
    throw new ConfigError('CATTAIL_CONFIG_INVALID_VALUE', `option out (--out): cannot write reports to ${JSON.stringify(config.out)}: ${(err as Error).message}`, { cause: err, details: { option: 'out', value: config.out } });
  }
  const t0 = Date.now();
  const progress = new Progress(ctx.stdout, (ctx.stdout as { isTTY?: boolean }).isTTY === true, () => Date.now() - t0);
  const report = await runBench({
    ...sizes,
    transport: config.transport,
    slowAgentsPercent: config.slowAgentsPercent,
    slowReadBytesPerSec: config.slowReadBytesPerSec,
    stalledAgentsPercent: config.stalledAgentsPercent,
    scenarios: config.scenario as Scenario[],
    seed: config.seed,
    deadlineMs: config.durationMs,
  }, progress, ctx.signal);
  const base = config.name ?? (config.quick ? 'bench-quick' : 'bench');
  mkdirSync(config.out, { recursive: true });
  const reports = [report, ...(config.quick ? [] : earlierReports(config.out, `${base}.json`))];
  writeFileSync(join(config.out, `${base}.json`), `${JSON.stringify(report, null, 2)}\n`);
  const { plots, note } = await renderPlots(reports, config.out, base);
  writeFileSync(join(config.out, `${base}.md`), renderMarkdown(report, plots, note));
  ctx.stdout.write(`\n${renderTable(report)}\nwritten: ${join(config.out, `${base}.json`)}, ${base}.md${plots.length > 0 ? `, ${plots.length} SVG plots` : ''}\n`);
  return report.errors.length > 0 ? 1 : 0;
}
