/**
 * The run records bench/fanout.ts writes (its results JSON's `runs`, its --windows file) and the per-run ratio of a
 * target to its floor, shared by fanout.ts (one invocation's table) and fanout-pool.ts (several
 * results files pooled), so both compute a ratio the same way.
 */

/**
 * One burst block of bench/fanout.ts (its --windows file): whose it was (`floor` or `cattail` in
 * the alternation of a paired session, `floor-alone`, `coalesced`), its span in µs on the monotonic clock (a CPU profile's sample
 * times), and the deliveries in it (changes × sockets; at the default flush window, changes
 * delivered, not frames).
 */
export interface MeasureWindow {
  /** `floor`: a floor block alternated with Cattail's; `floor-alone`: the control's and the warm-up; `cold`: a cold start (its target's, `deliveries` its clients). */
  side: 'floor' | 'floor-alone' | 'cattail' | 'coalesced' | 'cold';
  /** The Cattail target of the session (`ws`, `uws`) and its client count. */
  target: string;
  n: number;
  t0: number;
  t1: number;
  deliveries: number;
  changes: number;
}

export interface RunRec {
  run: number;
  n: number;
  target: string;
  scenario: string;
  values: Record<string, number | string | boolean | undefined>;
}

/**
 * Per run, `key` of `target` in `scenario` over the same of `floor` in `floorScenario`, same run
 * and client count (a Cattail target paired with the `net` floor: `main` over `main:<target>`).
 */
export function runRatios(runs: readonly RunRec[], n: number, target: string, scenario: string, key: string, floorScenario = scenario, floor = 'net'): number[] {
  const out: number[] = [];
  for (const r of runs) {
    if (r.n !== n || r.target !== target || r.scenario !== scenario) continue;
    const a = r.values[key];
    const b = runs.find((x) => x.run === r.run && x.n === n && x.target === floor && x.scenario === floorScenario)?.values[key];
    if (typeof a === 'number' && typeof b === 'number' && b > 0) out.push(a / b);
  }
  return out;
}

/**
 * Per run, `key` of a cold-start `target` over the mean of the two `net` floor cold starts that
 * bracket it in the same run (bench/fanout.ts runs floor, target, floor, target, …, floor; each
 * record carries its place as `coldSlot`), or over the one there is when the other failed. The kernel's share of a cold start (the loopback
 * receiver's work and its loss recovery, charged to the writer) moved threefold between runs with
 * the floor always first; a floor on each side of the target cancels drift within the run. A
 * record without `coldSlot` (files written before the bracketing) falls back to the run's first
 * floor, as runRatios does.
 */
export function coldRatios(runs: readonly RunRec[], target: string, key: string): number[] {
  const out: number[] = [];
  for (const r of runs) {
    if (r.target !== target || r.scenario !== 'cold') continue;
    const a = r.values[key];
    const slot = r.values['coldSlot'];
    const floors = runs.filter((x) => x.run === r.run && x.target === 'net' && x.scenario === 'cold' && (typeof slot !== 'number' || x.values['coldSlot'] === slot - 1 || x.values['coldSlot'] === slot + 1));
    const bs = (typeof slot === 'number' ? floors : floors.slice(0, 1)).map((x) => x.values[key]).filter((v): v is number => typeof v === 'number');
    const b = bs.reduce((x, y) => x + y, 0) / bs.length;
    if (typeof a === 'number' && bs.length > 0 && b > 0) out.push(a / b);
  }
  return out;
}

/**
 * One run's cold starts: the `net` floor before and after every other target (floor, a, floor, b,
 * floor), the others rotated by the run so that none always follows the floor's first cold start
 * (coldRatios divides by the two floors around each). With the floor run once,
 * first, its system time was 2.2-2.6 s in full runs, where it followed the 5,000-connection
 * sessions, and 0.7-1.0 s in --cold-only runs, while Cattail's stayed at 0.9-1.6 s.
 */
export function coldOrder<T extends string>(targets: readonly T[], run: number): T[] {
  const floor = targets.find((t) => t === 'net');
  const others = targets.filter((t) => t !== 'net');
  if (floor === undefined) return others;
  const k = others.length === 0 ? 0 : run % others.length;
  const rotated = [...others.slice(k), ...others.slice(0, k)];
  return [floor, ...rotated.flatMap((t) => [t, floor])];
}
