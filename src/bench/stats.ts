/** Percentiles of the benchmark's samples (nearest rank on the sorted samples, 0 when there are none). */
export interface Percentiles {
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly samples: number;
}

export function pct(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

/** p50, p99 and max of `xs` (any order), rounded to 0.1. */
export function percentiles(xs: readonly number[]): Percentiles {
  const s = [...xs].sort((a, b) => a - b);
  return { p50: +pct(s, 50).toFixed(1), p99: +pct(s, 99).toFixed(1), max: +(s.at(-1) ?? 0).toFixed(1), samples: s.length };
}

/** a / b rounded to 2 digits, or null when b is not positive (no floor to compare with). */
export function ratio(a: number, b: number): number | null {
  return b > 0 ? +(a / b).toFixed(2) : null;
}
