/**
 * The one retry backoff: exponential with a cap, and jitter, for the client's reconnects and the
 * upstream reflector's list/watch retries alike. The random source is injected so tests get exact
 * delays, and the clock is the caller's (a monotonic `nowMs` is passed in, never read here).
 *
 * The delay for failure n (0-based) is d = min(maxMs, initialMs × 2^n), then the random part:
 * d × (1 − jitter) + d × jitter × random(). With jitter 0.5 delays spread over [d/2, d]: never
 * shorter than half the nominal delay (a recovering server gets breathing room) yet spread wide
 * enough to break lock-step, also at the cap. Rejected: "full jitter" ([0, d]) lets a fraction of
 * a herd retry almost at once after every failure, which is what a recovering server cannot take;
 * client-go's [d, 2d) capped at maxMs loses all jitter once it reaches the cap.
 */
export interface BackoffOptions {
  /** First nominal delay, in ms. */
  initialMs: number;
  /** Largest nominal delay, in ms (the delay never exceeds it). */
  maxMs: number;
  /** Fraction of each delay that is random, 0..1: the delay is drawn from [d × (1 − jitter), d]. */
  jitter: number;
  /**
   * Forget the failures when the last one is at least this old, in ms (a long-healthy resource
   * starts again from `initialMs`). Unset: only `reset()` forgets them.
   */
  resetAfterMs?: number;
  /** Uniform [0, 1) source. */
  random: () => number;
}

export class Backoff {
  private attempt = 0;
  private lastFailureMs: number | undefined;

  constructor(private readonly o: BackoffOptions) {}

  /**
   * Counts one more failed attempt (at monotonic `nowMs`, which only `resetAfterMs` needs) and
   * returns the delay before the next attempt, in ms.
   */
  next(nowMs?: number): number {
    if (this.o.resetAfterMs !== undefined && nowMs !== undefined) {
      if (this.lastFailureMs !== undefined && nowMs - this.lastFailureMs >= this.o.resetAfterMs) this.attempt = 0;
      this.lastFailureMs = nowMs;
    }
    const nominal = Math.min(this.o.maxMs, this.o.initialMs * 2 ** Math.min(this.attempt, 40));
    this.attempt++;
    return this.jittered(nominal);
  }

  /** The longest delay (with jitter): for rejections a quick retry will not fix. */
  longest(): number {
    return this.jittered(this.o.maxMs);
  }

  /** Failed attempts since the last reset. */
  get failures(): number {
    return this.attempt;
  }

  /** Called once the thing retried proved healthy (a client reached in-sync). */
  reset(): void {
    this.attempt = 0;
  }

  private jittered(nominal: number): number {
    const j = Math.min(Math.max(this.o.jitter, 0), 1);
    return Math.round(nominal * (1 - j) + nominal * j * clamp01(this.o.random()));
  }
}

function clamp01(x: number): number {
  return Number.isFinite(x) ? Math.min(Math.max(x, 0), 1) : 0.5;
}
