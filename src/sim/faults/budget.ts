/**
 * The shared blocking budget of slow-watcher handling, after the cacher's `timeBudget`
 * (k8s.io/apiserver/pkg/storage/cacher/time_budget.go): when a watcher's queue is full the
 * dispatcher may wait for it, but all watchers together may wait at most `refillMsPerSec` per
 * second, banked up to `maxMs`. A watcher still full when its share runs out is terminated.
 * Time comes from the injected clock, read lazily (no refill timer).
 */
import type { Clock } from '../../clock.js';

export class TimeBudget {
  private available: number;
  private lastMs: number;

  constructor(
    private readonly clock: Clock,
    private readonly refillMsPerSec = 50,
    private readonly maxMs = 100,
  ) {
    this.available = maxMs;
    this.lastMs = clock.monotonic();
  }

  private refill(): void {
    const now = this.clock.monotonic();
    this.available = Math.min(this.maxMs, this.available + ((now - this.lastMs) * this.refillMsPerSec) / 1000);
    this.lastMs = now;
  }

  /** Takes everything available (ms). */
  takeAvailable(): number {
    this.refill();
    const t = this.available;
    this.available = 0;
    return t;
  }

  /** Gives back what a wait did not use. */
  returnUnused(ms: number): void {
    this.refill();
    this.available = Math.min(this.maxMs, this.available + Math.max(0, ms));
  }
}
