/**
 * A seeded uniform [0, 1) source (mulberry32): benchmarks, test workloads and jitter that must
 * replay exactly from a seed. Tiny and fast; never for anything security-related.
 * (src/sim/rng.ts wraps the same generator with seed mixing and helpers for the simulator.)
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
