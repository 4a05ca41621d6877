/**
 * The client's status: one state at a time, reported edge-triggered (an event only when the state
 * changes, nats.js style), as events and as async iterators. The state machine is drawn in
 * src/client/README.md; `ALLOWED` below is that drawing in code, and tests check every observed
 * transition against it.
 */
import type { CattailError } from '../errors.js';

export const CLIENT_STATES = ['connecting', 'syncing', 'in-sync', 'upstream-stale', 'reconnecting', 'behind', 'closed'] as const;
export type ClientState = (typeof CLIENT_STATES)[number] | 'idle';

/** One edge of the state machine, with what caused it. */
export interface StatusEvent {
  /** The state entered. */
  state: Exclude<ClientState, 'idle'>;
  /** The state left. */
  from: ClientState;
  /** The endpoint involved (being connected to, connected to, or just left). */
  endpoint: string | undefined;
  /** The server's id once WELCOME arrived on the current connection. */
  serverId: string | undefined;
  /**
   * Why: set for `reconnecting`, `behind` and (unless a clean `close()`) `closed`: a coded error
   * whose `details` hold close codes, GOODBYE hints, behind resources and such.
   */
  reason: CattailError | undefined;
  /** `reconnecting` and `behind`: the wait before the next attempt, in ms. */
  delayMs: number | undefined;
  /** `upstream-stale`: the feeds whose server reports upstream trouble. */
  staleFeeds: string[] | undefined;
  /**
   * With `service` discovery: what the last look at the EndpointSlices found: how many replicas,
   * whether they are the not-ready fallback (no replica was ready), and the error of a failed look
   * (the previous list is then kept).
   */
  discovery: { endpoints: number; fallbackNotReady: boolean; error: CattailError | undefined } | undefined;
  /** Failed attempts since the client was last in sync. */
  attempt: number;
  /** `clock.now()` when the edge happened (wall ms). */
  at: number;
}

/** The edges of the state machine (the mermaid diagram in README.md). */
export const ALLOWED: Readonly<Record<ClientState, readonly ClientState[]>> = {
  idle: ['connecting', 'closed'],
  connecting: ['syncing', 'reconnecting', 'behind', 'closed'],
  syncing: ['in-sync', 'upstream-stale', 'reconnecting', 'behind', 'closed'],
  'in-sync': ['upstream-stale', 'syncing', 'reconnecting', 'behind', 'closed'],
  'upstream-stale': ['in-sync', 'syncing', 'reconnecting', 'behind', 'closed'],
  reconnecting: ['connecting', 'closed'],
  behind: ['connecting', 'closed'],
  closed: [],
};

/**
 * An unbounded-producer, bounded-buffer async queue. A consumer that stops reading must not grow
 * memory without bound: past `limit` the oldest items are dropped and counted (status events are
 * edges; the newest matter most). `end()` lets readers drain what is queued, then finish.
 */
export class AsyncQueue<T> implements AsyncIterableIterator<T> {
  private readonly items: T[] = [];
  private readonly waiters: ((r: IteratorResult<T>) => void)[] = [];
  private ended = false;
  dropped = 0;

  constructor(
    private readonly limit: number,
    private readonly onReturn?: () => void,
  ) {}

  push(item: T): void {
    if (this.ended) return;
    const w = this.waiters.shift();
    if (w !== undefined) {
      w({ value: item, done: false });
      return;
    }
    this.items.push(item);
    if (this.items.length > this.limit) {
      this.items.shift();
      this.dropped++;
    }
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    for (const w of this.waiters.splice(0)) w({ value: undefined, done: true });
  }

  next(): Promise<IteratorResult<T>> {
    if (this.items.length > 0) return Promise.resolve({ value: this.items.shift()!, done: false });
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  // A consumer that `break`s out of `for await` calls return(): stop queueing for it, or the
  // producer keeps a dead queue alive (nats.js learned this one the hard way).
  return(): Promise<IteratorResult<T>> {
    this.end();
    this.items.length = 0;
    this.onReturn?.();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}
