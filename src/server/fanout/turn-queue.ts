/**
 * A work queue drained in bounded event-loop turns: each turn stops once it has handed out
 * `maxBytes` or spent `maxMs` (on the injected clock), whichever comes first, and always does at
 * least one item so the queue moves. Urgent items go before the others.
 *
 * Why bytes and time, not a count: a cold start of 1,000 agents on a 50,000-entry feed queued 256
 * connections per turn at up to ~2 MiB each, and one turn held the event loop for 257-552 ms while
 * live deltas waited. A count cannot know how big each item is; bytes bound the kernel copies and
 * time bounds everything else (encoding catch-ups, a slow disk-backed page fault).
 */
import type { Clock } from '../../clock.js';

export interface TurnBudget {
  /** Stop a turn after this many milliseconds on the injected clock. */
  readonly maxMs: number;
  /** Stop a turn once the items served have handed this many bytes to sockets. */
  readonly maxBytes: number;
}

/**
 * The default: 10 ms, because a loop turn of a cold-start storm holds more than the service turn:
 * a snapshot build slice (snapshotBuildSliceMs, 5 ms), a turn of upgrade answers (5 ms), the poll
 * phase's accepts and reads, and garbage collection; with 20 ms the benchmark's loop delay reached
 * 60-77 ms (the target is 50 ms at any point). Shorter turns cost no throughput: the queue runs
 * again in the next turn. 8 MiB is ~2-4 ms of kernel copies at the 2-4 GB/s a core writes to
 * loopback sockets, so the time bound is the one that normally ends a turn of snapshot streaming.
 */
export const DEFAULT_TURN_BUDGET: TurnBudget = { maxMs: 10, maxBytes: 8 * 1024 * 1024 };

export class TurnQueue<T> {
  private readonly urgent = new Set<T>();
  private readonly rest = new Set<T>();

  constructor(
    private readonly clock: Clock,
    private readonly budget: TurnBudget = DEFAULT_TURN_BUDGET,
  ) {}

  get size(): number {
    return this.urgent.size + this.rest.size;
  }

  /** Queues an item once; an urgent add moves a waiting item to the front group. */
  add(item: T, urgent: boolean): void {
    if (urgent) {
      this.rest.delete(item);
      this.urgent.add(item);
    } else if (!this.urgent.has(item)) this.rest.add(item);
  }

  delete(item: T): void {
    this.urgent.delete(item);
    this.rest.delete(item);
  }

  /**
   * Serves items in order (urgent first) until the budget is spent; `serve` returns the bytes it
   * handed out. Items queued again while the turn runs wait for a later turn. Returns true when the
   * budget cut the turn short with items left.
   */
  runTurn(serve: (item: T) => number): boolean {
    const start = this.clock.monotonic();
    let bytes = 0;
    // Only the items present when the turn started: one re-queued by its own service (a build's
    // progress) goes to the end of a set and must wait for the next turn.
    const sizes = [this.urgent.size, this.rest.size];
    for (const [g, set] of [this.urgent, this.rest].entries()) {
      let left = sizes[g] as number;
      for (const item of set) {
        if (left-- <= 0) break;
        if (bytes >= this.budget.maxBytes || this.clock.monotonic() - start >= this.budget.maxMs) return true;
        set.delete(item);
        bytes += serve(item);
      }
    }
    return false;
  }
}
