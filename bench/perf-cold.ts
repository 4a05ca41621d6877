/**
 * Where a fan-out cold start's CPU goes, per target, from a `perf` recording of bench/fanout.ts:
 * kernel, zlib, V8's compiler, GC, builtins, optimized and unoptimized JavaScript, V8's runtime,
 * libc; main thread and other threads (src/bench/perf-samples.ts says why perf and not a V8
 * profile). Milliseconds per cold start of each target.
 *
 *   perf record -q -F 1999 -k CLOCK_MONOTONIC -o <dir>/perf.data -- \
 *     node --expose-gc --perf-basic-prof-only-functions dist/bench/fanout.js --cold-only --runs 3 \
 *       --targets net,wsplain,ws --windows <dir>/windows.json --out <dir>/fanout
 *   node dist/bench/perf-cold.js <dir>/perf.data <dir>/windows.json [--freq 1999] [--pid N]
 *
 * The windows are bench/fanout.ts's `cold` windows (first connect to the last client's snapshot),
 * in CLOCK_MONOTONIC like the recording. The benchmark's process is the lowest pid with samples in
 * them unless --pid says otherwise (perf starts it; the load client it forks comes later). The
 * figures are sample counts over the sampling frequency: good to a few ms, and perf's own sampling
 * costs a few per cent. Needs `perf` and kernel.perf_event_paranoid ≤ 2 for your own processes.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { MeasureWindow } from './fanout-runs.js';
import { PERF_CATEGORIES, type TimeWindow, parsePerfScript, splitSamples } from '../src/bench/perf-samples.js';

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
}

function main(): void {
  const args = process.argv.slice(2);
  const [dataPath, windowsPath] = args.filter((a, i) => !a.startsWith('--') && !(args[i - 1] ?? '').startsWith('--'));
  if (dataPath === undefined || windowsPath === undefined) {
    console.error('usage: perf-cold <perf.data> <windows.json> [--freq 1999] [--pid N]');
    process.exitCode = 2;
    return;
  }
  const freq = Number(option(args, 'freq') ?? 1999);
  const cold = (JSON.parse(readFileSync(windowsPath, 'utf8')) as MeasureWindow[]).filter((w) => w.side === 'cold');
  if (cold.length === 0) {
    console.error('perf-cold: no cold windows in the file; run bench/fanout.ts --cold-only with --windows');
    process.exitCode = 2;
    return;
  }
  const windows: TimeWindow[] = cold.map((w) => ({ label: w.target, t0: w.t0, t1: w.t1 }));
  // perf script's text of a few minutes' recording is tens of MB.
  const text = execFileSync('perf', ['script', '-i', dataPath, '-F', 'pid,tid,time,ip,sym,dso'], { encoding: 'utf8', maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'ignore'] });
  const samples = parsePerfScript(text);
  const inside = samples.filter((s) => windows.some((w) => s.tUs >= w.t0 && s.tUs <= w.t1));
  const pid = Number(option(args, 'pid') ?? Math.min(...inside.map((s) => s.pid)));
  if (!Number.isFinite(pid)) {
    console.error('perf-cold: no samples inside the cold windows (was the recording made with -k CLOCK_MONOTONIC?)');
    process.exitCode = 2;
    return;
  }
  const split = splitSamples(samples, pid, windows);
  const labels = [...new Set(windows.map((w) => w.label))];
  const count = new Map(labels.map((l) => [l, windows.filter((w) => w.label === l).length]));
  const ms = (label: string, thread: string, cat: string): number => ((split.get(label)?.get(`${thread}\t${cat}`) ?? 0) / freq / (count.get(label) ?? 1)) * 1000;
  const cols = labels.flatMap((l) => [`${l} main`, `${l} other`]);
  console.log(`pid ${pid}; ms per cold start (${labels.map((l) => `${l}: ${count.get(l)}`).join(', ')} cold starts)\n`);
  console.log(`| where | ${cols.join(' | ')} |`);
  console.log(`| --- | ${cols.map(() => '---').join(' | ')} |`);
  for (const cat of [...PERF_CATEGORIES, 'all'] as const) {
    const cells = labels.flatMap((l) => (['main', 'other'] as const).map((t) => (cat === 'all' ? PERF_CATEGORIES.reduce((a, c) => a + ms(l, t, c), 0) : ms(l, t, cat)).toFixed(0)));
    console.log(`| ${cat} | ${cells.join(' | ')} |`);
  }
}

main();
