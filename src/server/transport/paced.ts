/** Time one turn of upgrade answers may take in the ws transport (at least one is answered per turn). */
export const UPGRADE_TURN_MS = 5;

/**
 * Work that arrives in bursts, done in event-loop turns of bounded time: each turn runs items in
 * arrival order until `turnMs` have passed (at least one item per turn, so the queue always moves),
 * then yields to timers and I/O and goes on in the next turn.
 *
 * Why: a reconnect storm completes hundreds of upgrade requests in one poll phase; answering them
 * all there held the event loop for 40-80 ms per 1,000 in the fan-out benchmark, while live deltas
 * and pings waited. The queue is bounded by what is admitted upstream of it (the HTTP server's
 * maxConnections), not here. uWS answers its upgrades in its own callback (docs/transport.md).
 *
 * Time is read from `now` (a monotonic millisecond clock; performance.now by default): a transport
 * does I/O and may read the real clock, and tests pass their own.
 */
export class PacedTurns<T> {
  private readonly items: T[] = [];

  constructor(
    /** Time one turn may take (ms); at least one item runs per turn. */
    private readonly turnMs: number,
    /** Does one item; a throw is passed to `failed` and the turn goes on. */
    private readonly run: (item: T) => void,
    private readonly failed: (item: T, err: unknown) => void,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Items waiting for their turn. */
  get size(): number {
    return this.items.length;
  }

  push(item: T): void {
    this.items.push(item);
    if (this.items.length === 1) setImmediate(this.turn);
  }

  /** Takes every waiting item out (at close: the caller ends them). */
  drain(): T[] {
    return this.items.splice(0);
  }

  private readonly turn = (): void => {
    const start = this.now();
    let i = 0;
    while (i < this.items.length && (i === 0 || this.now() - start < this.turnMs)) {
      const item = this.items[i++] as T;
      try {
        this.run(item);
      } catch (err) {
        this.failed(item, err);
      }
    }
    this.items.splice(0, i);
    if (this.items.length > 0) setImmediate(this.turn);
  };
}
