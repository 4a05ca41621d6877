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
  /** `floor`: a floor block alternated with Cattail's; `floor-alone`: the control's and the warm-up. */
  side: 'floor' | 'floor-alone' | 'cattail' | 'coalesced';
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
