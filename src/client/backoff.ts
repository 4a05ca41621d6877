/**
 * Reconnect delays: exponential with a cap, and jitter, so that when a server restarts the thousands
 * of agents it served do not come back in the same millisecond (the reconnect storm). The random
 * source is injected so tests get exact delays.
 *
 * The delay for attempt n (0-based) is d = min(cap, initial × 2^n), then the random part:
 * d × (1 − jitter) + d × jitter × random(). With jitter 0.5 delays spread over [d/2, d]: never
 * shorter than half the nominal delay (a server gets breathing room) yet spread across a range
 * wide enough to break lock-step. Rejected: "full jitter" ([0, d]) lets a fraction of the herd
 * retry almost at once after every failure, which is exactly what a recovering server cannot take.
 */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly initialMs: number,
    private readonly maxMs: number,
    private readonly jitter: number,
    private readonly random: () => number,
  ) {}

  /** The delay before the next attempt, in ms; each call counts one more failed attempt. */
  next(): number {
    const nominal = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.attempt, 40));
    this.attempt++;
    return Math.round(nominal * (1 - this.jitter) + nominal * this.jitter * clamp01(this.random()));
  }

  /** The longest delay (with jitter): used for rejections a quick retry will not fix. */
  longest(): number {
    return Math.round(this.maxMs * (1 - this.jitter) + this.maxMs * this.jitter * clamp01(this.random()));
  }

  /** Failed attempts since the last reset. */
  get failures(): number {
    return this.attempt;
  }

  /** Called once a connection proved healthy (reached in-sync). */
  reset(): void {
    this.attempt = 0;
  }
}

function clamp01(x: number): number {
  return Number.isFinite(x) ? Math.min(Math.max(x, 0), 1) : 0.5;
}
