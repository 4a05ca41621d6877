/**
 * Pools the per-run ratios of several `bench:fanout` results files (paired runs of the same
 * product code): one reference run of 7 moves its median by several per cent between sessions on
 * this machine, so a target near its line is judged on every paired run there is, not on one.
 *
 *   node dist/bench/fanout-pool.js --out bench/results/fanout-pool FILE.json...
 *
 * Per file, Node line, target and client count: the per-run ratio of Cattail's CPU per delivery
 * (and its lock-step latency) to the floor's paired with it in the same run, then the median of
 * all of them with the interquartile range. Reads only what bench/fanout.ts wrote (its `runs`).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { type RunRec, coldRatios, runRatios } from './fanout-runs.js';

interface ResultsFile { meta: { node: string; date: string }; runs: RunRec[] }

const KEYS = [['burstCpuUsPerDelivery', 'CPU per delivery'], ['lockstepLastClientP50Ms', 'latency to the last client']] as const;

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const i = (sorted.length - 1) * q;
  const lo = Math.floor(i);
  const hi = Math.ceil(i);
  return (sorted[lo] as number) + ((sorted[hi] as number) - (sorted[lo] as number)) * (i - lo);
}

function main(): void {
  const args = process.argv.slice(2);
  const o = args.indexOf('--out');
  const out = o >= 0 ? args[o + 1] : undefined;
  const files = o >= 0 ? args.filter((_, i) => i !== o && i !== o + 1) : args;
  if (files.length === 0) throw new Error('usage: fanout-pool [--out PREFIX] FILE.json...');
  const pools = new Map<string, { ratios: number[]; perFile: string[] }>();
  /** One file's ratios into the pool `id`, with the file's own median and count. */
  const add = (id: string, path: string, rs: number[]): void => {
    const p = pools.get(id) ?? { ratios: [], perFile: [] };
    p.ratios.push(...rs);
    p.perFile.push(`${basename(path, '.json')} ${quantile([...rs].sort((a, b) => a - b), 0.5).toFixed(2)} (${rs.length})`);
    pools.set(id, p);
  };
  for (const path of files) {
    const f = JSON.parse(readFileSync(path, 'utf8')) as ResultsFile;
    const line = f.meta.node.split('.')[0] as string;
    const targets = [...new Set(f.runs.filter((r) => r.scenario === 'main').map((r) => r.target))].sort();
    const counts = [...new Set(f.runs.filter((r) => r.scenario === 'main').map((r) => r.n))].sort((a, b) => a - b);
    for (const [key, label] of KEYS) {
      for (const t of targets) {
        for (const n of counts) {
          // Cattail's paired records over the floor's of its session (pairedSession in fanout.ts).
          const rs = runRatios(f.runs, n, t, 'main', key, `main:${t}`);
          if (rs.length === 0) continue;
          add(`${label}|${line}|${t}|${n}`, path, rs);
        }
      }
    }
    // Cold-start CPU over the two floors around it (coldRatios), from files that bracket them.
    const bracketed = f.runs.filter((r) => r.scenario === 'cold' && typeof r.values['coldSlot'] === 'number');
    for (const t of [...new Set(bracketed.map((r) => r.target))].filter((x) => x !== 'net').sort()) {
      const rs = coldRatios(bracketed, t, 'coldServerCpuS');
      if (rs.length === 0) continue;
      add(`cold-start CPU|${line}|${t}|${bracketed[0]?.n ?? ''}`, path, rs);
    }
  }
  const rows = [...pools].map(([id, p]) => {
    const [label, line, t, n] = id.split('|');
    const s = [...p.ratios].sort((a, b) => a - b);
    return `| ${label} | ${line} | ${t} | ${n} | ${quantile(s, 0.5).toFixed(3)} | ${quantile(s, 0.25).toFixed(2)}–${quantile(s, 0.75).toFixed(2)} | ${s.length} | ${p.perFile.join('; ')} |`;
  });
  const md = [
    '# Fan-out: paired runs pooled (bench/fanout-pool.ts)',
    '',
    `Files: ${files.map((f) => basename(f)).join(', ')}. Ratio: Cattail (and, in the cold start, the plain \`ws\` server) ÷ the \`net\` floor paired with it in the same run (bench/fanout.ts, pairedSession; the cold start: ÷ the mean of the two floor cold starts around it, from files that bracket them); median and interquartile range over every run of every file; per file its median (runs).`,
    '',
    '| measure | Node | target | clients | pooled median | IQR | runs | per file |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
    '',
  ].join('\n');
  if (out !== undefined) writeFileSync(`${out}.md`, md);
  process.stdout.write(md);
}

main();
