/**
 * Cuts a CPU profile of bench/fanout.ts into the floor's burst blocks and Cattail's, and says where
 * each side's time per delivery goes: the kernel write and Node's write path (the same on both
 * sides), the fan-out loop's own code, and the work done once per change.
 *
 *   node --expose-gc --cpu-prof --cpu-prof-interval 100 --cpu-prof-dir <dir> dist/bench/fanout.js \
 *        --burst-only --clients 1000 --targets net,ws --runs 1 --windows <dir>/windows.json --out <dir>/fanout
 *   node dist/bench/profile-split.js <dir>/<the server's .cpuprofile> <dir>/windows.json [label]
 *
 * Why: the per-run CPU ratio moves by ±10 % on this machine, too much to see a change of a few
 * per cent; a profile taken in the same blocks tells the categories apart, and the write path,
 * which is most of the time and the same code on both sides, checks the cut (it comes out equal
 * per delivery). Times are the sampled main thread's (process.cpuUsage also counts V8's other
 * threads; bench/fanout.ts reports the main thread's share beside it). Only the blocks of the
 * alternation count (not the floor's control and warm-up blocks), of one session: run it with
 * `--targets net,ws` and one client count. The write path is Node's `net` path, so the split
 * means what it says for `ws` only (uWS's native sends would land in "own code").
 */
import { readFileSync } from 'node:fs';
import type { MeasureWindow } from './fanout-runs.js';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** The categories, in the order the table lists them. */
const CATEGORIES = [
  'write path (Node + kernel)',
  'fan-out loop, own code',
  'per change: upstream apply (store, digest, log)',
  'per change: flush setup (units, STATUS, metrics)',
  'per change: the load generator (the change itself)',
  'timers (sweep, pings) and event-loop machinery',
  'garbage collector',
  'native, outside JS ("(program)")',
] as const;
type Category = (typeof CATEGORIES)[number];

const WRITE_URLS = ['node:net', 'node:internal/streams/writable', 'node:internal/stream_base_commons'];
const WRITE_NATIVES = new Set(['writeBuffer', 'writev', 'writeUtf8String', 'writeLatin1String']);

/** The category of one sample's stack (leaf first); undefined for idle. */
function categorize(stack: readonly CallFrame[]): Category | undefined {
  const leaf = stack[0] as CallFrame;
  if (leaf.functionName === '(idle)') return undefined;
  if (leaf.functionName === '(garbage collector)') return 'garbage collector';
  if (leaf.functionName === '(program)') return 'native, outside JS ("(program)")';
  const has = (name: string): boolean => stack.some((f) => f.functionName === name);
  const inLoop = has('flushOneFeed') || has('flushAll') || has('floorChange');
  const inWrite = stack.some((f) => WRITE_URLS.includes(f.url) || (f.url === '' && WRITE_NATIVES.has(f.functionName)));
  // The load generator first: the floor's loop builds its change too (floorRound → change).
  if (has('change') && !inWrite) return 'per change: the load generator (the change itself)';
  if (inLoop) return inWrite ? 'write path (Node + kernel)' : 'fan-out loop, own code';
  if (inWrite) return 'write path (Node + kernel)';
  if (has('onBatch')) return 'per change: upstream apply (store, digest, log)';
  if (has('flush') || has('floorRound')) return 'per change: flush setup (units, STATUS, metrics)';
  return 'timers (sweep, pings) and event-loop machinery';
}

function main(): void {
  const [profilePath, windowsPath, label = ''] = process.argv.slice(2);
  if (profilePath === undefined || windowsPath === undefined) {
    console.error('usage: profile-split <profile.cpuprofile> <windows.json> [label]');
    process.exitCode = 2;
    return;
  }
  const p = JSON.parse(readFileSync(profilePath, 'utf8')) as CpuProfile;
  const all = JSON.parse(readFileSync(windowsPath, 'utf8')) as MeasureWindow[];
  // The alternated blocks only: the floor's control and warm-up blocks and the coalesced burst are
  // not part of the paired comparison.
  const windows = all.filter((w) => w.side === 'floor' || w.side === 'cattail');
  const sessions = new Set(windows.map((w) => `${w.target} at ${w.n}`));
  if (sessions.size !== 1) {
    console.error(`profile-split: the windows hold ${sessions.size === 0 ? 'no paired blocks' : `several sessions (${[...sessions].join(', ')})`}; run bench/fanout.ts with one Cattail target and one client count`);
    process.exitCode = 2;
    return;
  }
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const sides = ['floor', 'cattail'] as const;
  const us = new Map<string, Map<Category, number>>(sides.map((s) => [s, new Map()]));
  const deliveries = new Map<string, number>();
  const changes = new Map<string, number>();
  for (const w of windows) {
    deliveries.set(w.side, (deliveries.get(w.side) ?? 0) + w.deliveries);
    changes.set(w.side, (changes.get(w.side) ?? 0) + w.changes);
  }
  if (sides.some((side) => !((deliveries.get(side) ?? 0) > 0))) {
    console.error('profile-split: a side has no deliveries in its windows');
    process.exitCode = 2;
    return;
  }
  // Windows in time order, walked with the samples (both ascending).
  const ws = [...windows].sort((a, b) => a.t0 - b.t0);
  let t = p.startTime;
  let wi = 0;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] as number;
    while (wi < ws.length && t >= (ws[wi] as MeasureWindow).t1) wi++;
    const w = ws[wi];
    if (w === undefined) break;
    if (t < w.t0) continue;
    // A sample stands for the time until the next one.
    const weight = p.timeDeltas[i + 1] ?? p.timeDeltas[i] ?? 0;
    const stack: CallFrame[] = [];
    for (let id: number | undefined = p.samples[i]; id !== undefined; id = parent.get(id)) stack.push((byId.get(id) as ProfileNode).callFrame);
    const cat = categorize(stack);
    if (cat === undefined) continue;
    const m = us.get(w.side) as Map<Category, number>;
    m.set(cat, (m.get(cat) ?? 0) + weight);
  }
  const per = (side: string, cat: Category): number => (us.get(side)?.get(cat) ?? 0) / (deliveries.get(side) as number);
  const total = (side: string): number => CATEGORIES.reduce((s, c) => s + per(side, c), 0);
  const perChange = (side: string, cat: Category): number => (us.get(side)?.get(cat) ?? 0) / (changes.get(side) as number);
  const f = (x: number, d = 3): string => x.toFixed(d);
  const lines = [
    `| ${label || 'category'} | floor µs/delivery | Cattail µs/delivery | Cattail − floor | floor µs/change | Cattail µs/change |`,
    '| --- | --- | --- | --- | --- | --- |',
    ...CATEGORIES.map((c) => `| ${c} | ${f(per('floor', c))} | ${f(per('cattail', c))} | ${f(per('cattail', c) - per('floor', c))} | ${f(perChange('floor', c), 1)} | ${f(perChange('cattail', c), 1)} |`),
    `| **busy, all categories** | ${f(total('floor'))} | ${f(total('cattail'))} | ${f(total('cattail') - total('floor'))} (${f(total('cattail') / total('floor'), 3)}×) | | |`,
  ];
  console.log(lines.join('\n'));
  console.log(`\ndeliveries: floor ${deliveries.get('floor') ?? 0}, Cattail ${deliveries.get('cattail') ?? 0}; changes: floor ${changes.get('floor') ?? 0}, Cattail ${changes.get('cattail') ?? 0}`);
}

main();
