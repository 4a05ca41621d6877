/**
 * `cattail bench`'s outputs besides the JSON: the Markdown page (machine, every parameter, one row
 * per scenario, the key figures side by side, links to the SVG plots) and the final table printed
 * on the terminal.
 */
import type { BenchReport } from './run.js';

type Rec = Record<string, unknown>;
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const f = (v: unknown, digits = 1): string => (num(v) === undefined ? '–' : (v as number).toFixed(digits));
const obj = (v: unknown): Rec => (typeof v === 'object' && v !== null ? (v as Rec) : {});

/** One line per scenario for the final table: its key figure (latency, time, bytes). */
function keyFigures(r: BenchReport): [string, string][] {
  return r.records.map((x): [string, string] => {
    const rec = x as Rec;
    switch (x.scenario) {
      case 'cold-start':
        return [x.scenario, `${f(num(rec['timeToAllInSyncMs'])! / 1000)} s to all in sync, ${f(num(rec['bytesPerAgent'])! / 1024, 0)} KiB/agent, ${String(rec['snapshotBuilds'])} builds`];
      case 'churn':
        return [x.scenario, `last agent p50 ${f(obj(rec['lastAgentLatencyMs'])['p50'])} ms (×${String(rec['lastAgentP50VsFloor'] ?? '–')} floor), ${f(rec['serverCpuUsPerDelivery'], 2)} µs CPU/delivery (×${String(rec['serverCpuPerDeliveryVsFloor'] ?? '–')} floor)`];
      case 'burst':
        return [x.scenario, `${String(rec['changesWritten'])} changes, last agent complete after ${f(num(rec['timeToAllAgentsMs'])! / 1000)} s`];
      case 'blip':
        return [x.scenario, `${f(num(rec['timeToAllInSyncMs'])! / 1000)} s back, ${f(100 * num(rec['fractionOfSnapshot'])!, 2)} % of a snapshot`];
      case 'replica-loss':
        return [x.scenario, `${String(rec['movedAgents'])} moved, ${f(num(rec['timeToAllInSyncMs'])! / 1000)} s to all in sync, ${f(100 * num(rec['fractionOfSnapshot'])!, 1)} % of a snapshot each`];
      case 'replica-restart': {
        const [cold, , kill] = (rec['phases'] as Rec[] | undefined) ?? [];
        return [x.scenario, `API: cold ${String(obj(cold)['apiListRequests'])} LISTs + ${String(obj(cold)['apiInitialEvents'])} initial events, warm ${String(obj(kill)['apiListRequests'])} + ${String(obj(kill)['apiInitialEvents'])}; agents after a crash: ${String(obj(kill)['snapshots'])} snapshots, ${f(100 * num(obj(kill)['fractionOfSnapshot'])!, 2)} % of a snapshot`];
      }
      case 'slow-agents':
        return [x.scenario, `normal p50 ${f(obj(rec['normalLastAgentLatencyMs'])['p50'])} ms (×${String(rec['p50VsBaseline'] ?? '–')} churn), socket peak ${f(num(obj(rec['memory'])['peakSocketBufferedBytesMax'])! / 1024, 0)} KiB`];
      case 'api-load': {
        const d = obj(rec['direct']);
        const c = obj(rec['withCattail']);
        return [x.scenario, `${String(rec['agents'])} agents: ${String(d['requests'])} vs ${String(c['requests'])} requests, ${String(d['watchesOpen'])} vs ${String(c['watchesOpen'])} watches (direct vs Cattail)`];
      }
    }
  });
}

/** The table printed at the end of a run (aligned columns, plain text). */
export function renderTable(r: BenchReport): string {
  const rows = keyFigures(r);
  const w = Math.max(8, ...rows.map(([s]) => s.length));
  return [`${'scenario'.padEnd(w)}  result`, `${'-'.repeat(w)}  ${'-'.repeat(60)}`, ...rows.map(([s, t]) => `${s.padEnd(w)}  ${t}`), ...r.errors.map((e) => `FAILED  ${e}`), ''].join('\n');
}

function apiLoadTable(rec: Rec): string[] {
  const d = obj(rec['direct']);
  const c = obj(rec['withCattail']);
  const x = obj(rec['directOverCattail']);
  const row = (label: string, k: string, fmt: (v: unknown) => string = String): string => `| ${label} | ${fmt(d[k])} | ${fmt(c[k])} | ${x[k] === undefined ? '–' : `×${String(x[k])}`} |`;
  return [
    '',
    `### API server, ${String(rec['agents'])} agents: direct list/watch vs behind Cattail`,
    '',
    String(rec['note']),
    '',
    '| | direct | behind Cattail | direct / Cattail |',
    '|---|---|---|---|',
    row('LIST + WATCH requests', 'requests'),
    row('watches open', 'watchesOpen'),
    row('bytes sent (MiB)', 'bytesSent', (v) => f(num(v)! / 2 ** 20, 1)),
    row('simulator CPU (s)', 'simCpuS'),
    row('time to all synced (ms)', 'timeToSyncMs'),
  ];
}

function replicaRestartTable(rec: Rec): string[] {
  const phases = (rec['phases'] as Rec[] | undefined) ?? [];
  const row = (label: string, k: string, fmt: (v: unknown) => string = String): string => `| ${label} | ${phases.map((p) => fmt(p[k])).join(' | ')} |`;
  return [
    '',
    `### Replica restart, ${String(rec['agents'])} agents, ${String(rec['changesWhileDown'])} pod changes while down`,
    '',
    `| | ${phases.map((p) => String(p['kind'])).join(' | ')} |`,
    `|---|${phases.map(() => '---|').join('')}`,
    row('LIST requests to the API server', 'apiListRequests'),
    row('WatchList initial events', 'apiInitialEvents'),
    row('watch requests', 'apiWatchRequests'),
    row('bytes from the API server (MiB)', 'apiBytesSent', (v) => f(num(v)! / 2 ** 20, 1)),
    row('ready after start (s)', 'readyMs', (v) => f(num(v)! / 1000)),
    row('every agent in sync after start (s)', 'allInSyncMs', (v) => f(num(v)! / 1000)),
    row('snapshots to agents', 'snapshots'),
    row('rebases or resumes', 'rebasesOrResumes'),
    row('bytes per agent (KiB)', 'bytesPerAgent', (v) => f(num(v)! / 1024, 1)),
    row('of a full snapshot', 'fractionOfSnapshot', (v) => `${f(100 * num(v)!, 2)} %`),
  ];
}

export function renderMarkdown(r: BenchReport, plots: readonly { file: string; title: string }[], plotNote?: string): string {
  const m = r.machine;
  const api = r.records.find((x) => x.scenario === 'api-load');
  const restart = r.records.find((x) => x.scenario === 'replica-restart');
  return [
    '# cattail bench',
    '',
    `${r.at} (${r.wallS} s), Node ${m.node}, ${m.os}, ${m.cpus} × ${m.cpuModel}, ${m.memoryGb} GiB; load average ${m.loadAverageBefore.join('/')} before, ${m.loadAverageAfter.join('/')} after (the machine is shared).`,
    `Processes: ${r.processes.pinning}; ${r.processes.replicas} replica(s) with \`${[...r.processes.replicaArgs, '--feeds', r.processes.feeds.join(',')].join(' ')}\` (and \`--log-level warn\`, the scenarios' replicas \`--state-dir\` with \`--state-checkpoint-interval-ms 5000\`; every other option at its default), ${r.processes.workers} agent worker(s), feeds ${r.processes.feeds.join(', ')}.`,
    '',
    `Parameters: \`${JSON.stringify(r.parameters)}\``,
    '',
    '| scenario | result |',
    '|---|---|',
    ...r.records.map((x) => `| ${x.scenario} | ${x.summary} |`),
    ...r.errors.map((e) => `| FAILED | ${e} |`),
    ...(restart !== undefined ? replicaRestartTable(restart as Rec) : []),
    ...(api !== undefined ? apiLoadTable(api as Rec) : []),
    '',
    ...(plots.length > 0 ? ['## Plots', '', ...plots.map((p) => `- [${p.title}](${p.file})`), ''] : []),
    ...(plotNote !== undefined ? [plotNote, ''] : []),
    'Full records: the JSON file beside this one.',
    '',
  ].join('\n');
}
