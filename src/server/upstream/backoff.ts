/**
 * Exponential backoff with jitter, client-go's reflector values: 800 ms doubling to 30 s, jitter
 * 1.0 (a delay is drawn from [d, 2d), capped), reset once the last failure is `resetAfterMs` old
 * (two minutes of health). At the cap a failing reflector makes about one attempt per 30 s.
 */
export interface BackoffOptions {
  /** @default 800 */
  initialMs?: number;
  /** @default 30_000 */
  maxMs?: number;
  /** @default 120_000 */
  resetAfterMs?: number;
  /** Uniform [0, 1) source; injected by tests. @default Math.random */
  random?: () => number;
}

export class Backoff {
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly resetAfterMs: number;
  private readonly random: () => number;
  private failures = 0;
  private lastFailureMs: number | undefined;

  constructor(options: BackoffOptions = {}) {
    this.initialMs = options.initialMs ?? 800;
    this.maxMs = options.maxMs ?? 30_000;
    this.resetAfterMs = options.resetAfterMs ?? 120_000;
    this.random = options.random ?? Math.random;
  }

  /** Records a failure at `nowMs` (monotonic) and returns how long to wait before the next attempt. */
  failure(nowMs: number): number {
    if (this.lastFailureMs !== undefined && nowMs - this.lastFailureMs >= this.resetAfterMs) this.failures = 0;
    this.lastFailureMs = nowMs;
    const base = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.failures, 30));
    this.failures++;
    return Math.min(this.maxMs, Math.round(base * (1 + this.random())));
  }

  /** Consecutive failures counted (for logs and tests). */
  get count(): number {
    return this.failures;
  }
}
