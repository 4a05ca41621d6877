/**
 * SVG plots of `cattail bench` results, rendered headlessly with Vega-Lite → Vega (no browser, no
 * canvas: Vega's SVG renderer estimates text widths without one). Four plots, from every results
 * JSON given (this run's, plus earlier runs in the same directory, so points at other sizes and
 * rates line up):
 *
 *   latency-vs-agents        last-agent latency p50/p99 per run: Cattail, the plain-TCP floor,
 *                            the normal agents beside slow ones
 *   deliveries-vs-rate       deliveries/s against the change rate (steady churn and the burst)
 *   bytes-per-agent          bytes an agent receives per scenario (log scale)
 *   api-requests             the API server's requests, watches, bytes and CPU, direct vs Cattail
 *
 * vega and vega-lite are development dependencies, loaded only here, so a production install
 * (npm ci --omit=dev, the image) does not carry them; without them the plots are skipped with a
 * note. Rejected: a browser-based renderer (Puppeteer: hundreds of MB) and hand-written SVG (axes,
 * scales and legends are exactly what a plotting library is for).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type * as Vega from 'vega';
import type * as VegaLite from 'vega-lite';
import type { BenchReport } from './run.js';

type Row = Record<string, string | number>;
type Rec = Record<string, unknown>;
const obj = (v: unknown): Rec => (typeof v === 'object' && v !== null ? (v as Rec) : {});
const n = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

export interface Plot {
  readonly file: string;
  readonly title: string;
  readonly spec: Rec;
}

function rec(r: BenchReport, scenario: string): Rec | undefined {
  return r.records.find((x) => x.scenario === scenario) as Rec | undefined;
}

/** The Vega-Lite specs of the four plots (pure: tested without rendering). */
export function plotSpecs(reports: readonly BenchReport[], base: string): Plot[] {
  const latency: Row[] = [];
  const rates: Row[] = [];
  const bytes: Row[] = [];
  const api: Row[] = [];
  for (const r of reports) {
    const agents = r.parameters.agents;
    const run = `${agents} agents, ${r.at.slice(0, 16)}`;
    const churn = rec(r, 'churn');
    const add = (series: string, l: Rec): void => {
      for (const p of ['p50', 'p99'] as const) {
        const v = n(l[p]);
        if (v !== undefined) latency.push({ agents, series: `${series} ${p}`, ms: v });
      }
    };
    if (churn !== undefined) {
      add('Cattail, last agent', obj(churn['lastAgentLatencyMs']));
      add('plain-TCP floor, last socket', obj(obj(churn['floor'])['lastSocketLatencyMs']));
      const d = n(churn['deliveriesPerSec']);
      if (d !== undefined) rates.push({ run, kind: 'steady churn', changesPerSec: r.parameters.churnPerSec, deliveriesPerSec: d });
      const perAgent = n(churn['bytesPerDelivery']);
      const changes = n(churn['changes']);
      if (perAgent !== undefined && changes !== undefined) bytes.push({ run, scenario: `churn (${changes} changes)`, bytes: perAgent * changes });
    }
    const slow = rec(r, 'slow-agents');
    if (slow !== undefined) add('beside slow agents, last normal agent', obj(slow['normalLastAgentLatencyMs']));
    const burst = rec(r, 'burst');
    const written = n(burst?.['changesWritten']);
    const writtenMs = n(burst?.['writtenMs']);
    const allMs = n(burst?.['timeToAllAgentsMs']);
    if (written !== undefined && writtenMs !== undefined && allMs !== undefined && writtenMs > 0 && allMs > 0) {
      rates.push({ run, kind: 'burst', changesPerSec: Math.round(written / (writtenMs / 1000)), deliveriesPerSec: Math.round((written * agents) / (allMs / 1000)) });
    }
    const cold = n(rec(r, 'cold-start')?.['bytesPerAgent']);
    if (cold !== undefined) bytes.push({ run, scenario: 'cold start (snapshot)', bytes: cold });
    const blip = n(rec(r, 'blip')?.['bytesPerAgent']);
    if (blip !== undefined) bytes.push({ run, scenario: 'blip (resume)', bytes: Math.max(1, blip) });
    const loss = n(rec(r, 'replica-loss')?.['bytesPerMovedAgent']);
    if (loss !== undefined) bytes.push({ run, scenario: 'replica loss (per moved agent)', bytes: Math.max(1, loss) });
    const a = rec(r, 'api-load');
    if (a !== undefined) {
      for (const [side, key] of [['direct list/watch', 'direct'], ['behind Cattail', 'withCattail']] as const) {
        const s = obj(a[key]);
        const label = `${String(a['agents'])} agents`;
        for (const [metric, v] of [['LIST+WATCH requests', n(s['requests'])], ['watches open', n(s['watchesOpen'])], ['MiB sent', (n(s['bytesSent']) ?? 0) / 2 ** 20], ['simulator CPU s', n(s['simCpuS'])]] as const) {
          if (v !== undefined) api.push({ run: `${run} (${label})`, side, metric, value: +v.toFixed(2) });
        }
      }
    }
  }
  const common = { $schema: 'https://vega.github.io/schema/vega-lite/v5.json', config: { font: 'sans-serif', legend: { labelLimit: 400 }, axis: { labelLimit: 300 } } };
  return [
    {
      file: `${base}-latency-vs-agents.svg`, title: 'Write → receipt latency against agents (last agent, p50 and p99)',
      spec: {
        ...common, title: 'Write → last receipt latency', width: 420, height: 260, data: { values: latency },
        mark: { type: 'line', point: true },
        encoding: { x: { field: 'agents', type: 'quantitative', title: 'agents' }, y: { field: 'ms', type: 'quantitative', title: 'ms', scale: { type: 'symlog' } }, color: { field: 'series', type: 'nominal', title: null } },
      },
    },
    {
      file: `${base}-deliveries-vs-rate.svg`, title: 'Deliveries per second against the change rate',
      spec: {
        ...common, title: 'Deliveries/s against change rate', width: 420, height: 260, data: { values: rates },
        mark: { type: 'point', filled: true, size: 80 },
        encoding: { x: { field: 'changesPerSec', type: 'quantitative', title: 'changes/s', scale: { type: 'log' } }, y: { field: 'deliveriesPerSec', type: 'quantitative', title: 'deliveries/s (changes × agents)', scale: { type: 'log' } }, color: { field: 'kind', type: 'nominal', title: null }, shape: { field: 'run', type: 'nominal', title: 'run' } },
      },
    },
    {
      file: `${base}-bytes-per-agent.svg`, title: 'Bytes per agent per scenario',
      spec: {
        ...common, title: 'Bytes received per agent', width: 420, height: 220, data: { values: bytes },
        mark: 'bar',
        encoding: { y: { field: 'scenario', type: 'nominal', title: null, sort: '-x' }, x: { field: 'bytes', type: 'quantitative', title: 'bytes (log)', scale: { type: 'log' } }, color: { field: 'run', type: 'nominal', title: 'run' }, yOffset: { field: 'run' } },
      },
    },
    {
      file: `${base}-api-requests.svg`, title: 'API-server load with and without Cattail',
      spec: {
        ...common, title: 'API server: direct list/watch vs behind Cattail', data: { values: api },
        facet: { column: { field: 'metric', type: 'nominal', title: null } },
        spec: { width: 120, height: 200, mark: 'bar', encoding: { x: { field: 'side', type: 'nominal', title: null }, y: { field: 'value', type: 'quantitative', title: null }, color: { field: 'side', type: 'nominal', title: null } } },
        resolve: { scale: { y: 'independent' } },
      },
    },
  ];
}

/**
 * Renders the plots to `dir`; the ones written, or a note saying why none were (vega missing).
 * A plot without data is skipped.
 */
export async function renderPlots(reports: readonly BenchReport[], dir: string, base: string): Promise<{ plots: { file: string; title: string }[]; note?: string }> {
  let vega: typeof Vega;
  let vl: typeof VegaLite;
  try {
    vega = await import('vega');
    vl = await import('vega-lite');
  } catch (err) {
    return { plots: [], note: `Plots skipped: vega and vega-lite (development dependencies) are not installed (${(err as Error).message.split('\n')[0] ?? ''}).` };
  }
  const out: { file: string; title: string }[] = [];
  for (const p of plotSpecs(reports, base)) {
    const values = obj(p.spec['data'])['values'];
    if (!Array.isArray(values) || values.length === 0) continue;
    const compiled = vl.compile(p.spec as unknown as Parameters<typeof vl.compile>[0]).spec;
    const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
    const svg = await view.toSVG();
    view.finalize();
    writeFileSync(join(dir, p.file), svg);
    out.push({ file: p.file, title: p.title });
  }
  return { plots: out };
}
