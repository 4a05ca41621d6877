import { compareResourceVersions, isResourceVersion } from '../../../proto/index.js';
import { type Clock, realClock, type Timer } from '../../clock.js';
import type { Logger } from '../../log.js';
import type { FeedBatch, FeedSink, FeedUpdate, SyncStatus } from '../pipeline/seams.js';
import type { FeedSpec } from './feeds.js';

/**
 * The shortest time between two batches of a feed whose only news is newer watermarks (events of
 * its resources that changed none of its entries, e.g. node heartbeats in a feed that does not
 * project them). Without such batches a quiet feed reports the watermarks of its last change, so
 * an agent comparing replicas (PROTOCOL.md §8) refuses a healthy one that started earlier. Without
 * the limit every such event would be a STATUS to every agent: 5,000 nodes' heartbeats are ~500
 * events/s. One second bounds that to one STATUS per second per feed, and is how long a replica's
 * watermarks may trail its own upstream (PROTOCOL.md §8 says so).
 */
export const WATERMARK_ONLY_INTERVAL_MS = 1_000;

/**
 * Per feed: the updates queued since the last flush, the sync status, the stale flag and the
 * resource watermarks. A flush turns them into FeedBatch objects for the sink.
 *
 * Invariants:
 * - Status only moves forward (waiting → resyncing → in-sync); a later relist never sends a feed
 *   back to resyncing — its diff is ordinary updates.
 * - "in-sync" travels in the same batch as the last update of the initial lists (the last chunk
 *   when a batch is split), never before it.
 * - Within one flush a key appears once, with its latest value.
 * - Every batch carries the feed's current watermarks; newer watermarks alone make a batch at most
 *   once per WATERMARK_ONLY_INTERVAL_MS, and always within it (a trailing flush), except that a
 *   replica checkpoint flushes them at once (flush(true)), at most once per checkpoint.
 */
export class FeedState {
  readonly synced = new Set<string>();
  status: SyncStatus = 'waiting';
  stale = false;
  pending = new Map<string, Buffer | null>();
  /** Pending keys whose value was replaced by a different one since the last batch (see queue). */
  bounced = new Set<string>();
  dirty = false;
  /** A watermark of one of its resources moved since its last batch. */
  watermarksMoved = false;
  /** Monotonic ms of its last batch (the watermark-only rate limit counts from it). */
  lastBatchMs = -Infinity;
  /** A relist of one of its resources committed since its last batch (FeedBatch.barrier). */
  barrier = false;

  constructor(readonly spec: FeedSpec) {}

  get name(): string {
    return this.spec.name;
  }
}

export class FeedDispatcher {
  readonly feeds: FeedState[];
  private readonly byResource = new Map<string, FeedState[]>();
  private readonly watermarks = new Map<string, string>();
  private sink: FeedSink | undefined;
  /** The trailing flush for watermark-only changes held back by the rate limit. */
  private watermarkTimer: Timer | undefined;
  /** Set by stop(): flush() delivers nothing more. */
  private stopped = false;

  constructor(
    specs: readonly FeedSpec[],
    private readonly logger: Logger,
    private readonly maxBatchUpdates = 10_000,
    private readonly clock: Clock = realClock,
  ) {
    this.feeds = specs.map((s) => new FeedState(s));
    for (const f of this.feeds) {
      for (const r of f.spec.resources) {
        let list = this.byResource.get(r);
        if (!list) this.byResource.set(r, (list = []));
        list.push(f);
      }
    }
  }

  feed(name: string): FeedState | undefined {
    return this.feeds.find((f) => f.name === name);
  }

  feedsOf(resource: string): readonly FeedState[] {
    return this.byResource.get(resource) ?? [];
  }

  /** Starts delivery: every feed announces that its resync is in progress. */
  start(sink: FeedSink): void {
    this.sink = sink;
    for (const f of this.feeds) {
      f.status = 'resyncing';
      f.dirty = true;
    }
    this.flush();
  }

  queue(feed: FeedState, key: string, value: Buffer | null): void {
    // A pending value replaced by a different one: the key changed within what this batch merges,
    // so it is a change even if its last value equals what the store holds (A→B→A: the store's
    // Update.force; a rebase relies on it, PROTOCOL.md §7.1). The same value again (a status
    // heartbeat) is not.
    if (feed.pending.has(key) && !sameValue(feed.pending.get(key) ?? null, value)) feed.bounced.add(key);
    // Re-insert so the key moves to the end: batch order follows the order of the last change.
    feed.pending.delete(key);
    feed.pending.set(key, value);
  }

  /**
   * Moves a resource's watermark forward. Never back: agents hold what a replica reported, and a
   * lower value would be a replica going back in time (the reflector already refuses an older
   * list; this also covers a not-served probe answered by a lagging API server, not-served.ts).
   */
  setWatermark(resource: string, rv: string | undefined): void {
    // The reflector refuses a non-decimal resourceVersion (failure.ts checkedResourceVersion); one
    // that got here anyway is not a watermark: the store would refuse every batch carrying it.
    if (!isResourceVersion(rv)) return;
    const cur = this.watermarks.get(resource);
    if (cur === rv) return;
    if (cur !== undefined && compareResourceVersions(rv, cur) < 0) return;
    this.watermarks.set(resource, rv);
    for (const f of this.feedsOf(resource)) f.watermarksMoved = true;
  }

  /**
   * Cancels the trailing flush and delivers nothing more (the upstream is stopping). A reflector
   * winding down after it still calls flush(): that armed a new trailing flush, whose batch reached
   * the store up to a second after stop() resolved, past the fan-out's own stop.
   */
  stop(): void {
    this.stopped = true;
    this.watermarkTimer?.cancel();
    this.watermarkTimer = undefined;
  }

  /** A relist of the resource committed (or its first list after a not-served watermark): its feeds' next batch is a barrier. */
  relisted(resource: string): void {
    for (const f of this.feedsOf(resource)) {
      f.barrier = true;
      f.dirty = true;
    }
  }

  /** The resource's initial list completed (or it is missing): feeds may become in sync. */
  resourceSynced(resource: string): void {
    for (const f of this.feedsOf(resource)) {
      f.synced.add(resource);
      if (f.status !== 'in-sync' && f.synced.size >= new Set(f.spec.resources).size) {
        f.status = 'in-sync';
        f.dirty = true;
      }
    }
  }

  setStale(feed: FeedState, stale: boolean): void {
    if (feed.stale === stale) return;
    feed.stale = stale;
    feed.dirty = true;
  }

  /**
   * `now`: also the watermark-only changes held back by WATERMARK_ONLY_INTERVAL_MS. A replica
   * checkpoint wants that (upstream.ts): it records the reflectors' resourceVersions, and with a
   * change held the store, and every agent, stood up to a second behind them, so an agent
   * drained then could not rebase onto the restarted replica (it needs a revision at or below
   * its own watermarks).
   */
  flush(now = false): void {
    const sink = this.sink;
    if (sink === undefined || this.stopped) return;
    const nowMs = this.clock.monotonic();
    let holdMs = Infinity;
    for (const f of this.feeds) {
      if (f.pending.size === 0 && !f.dirty) {
        if (!f.watermarksMoved) continue;
        const waitMs = f.lastBatchMs + WATERMARK_ONLY_INTERVAL_MS - nowMs;
        if (waitMs > 0 && !now) {
          holdMs = Math.min(holdMs, waitMs);
          continue;
        }
      }
      const updates: FeedUpdate[] = [];
      const bounced = f.bounced;
      for (const [key, value] of f.pending) updates.push(bounced.has(key) ? { key, value, force: true } : { key, value });
      f.pending = new Map();
      if (bounced.size > 0) f.bounced = new Set();
      f.dirty = false;
      const barrier = f.barrier;
      f.barrier = false;
      f.watermarksMoved = false;
      f.lastBatchMs = nowMs;
      const watermarks: Record<string, string> = {};
      for (const r of f.spec.resources) {
        const rv = this.watermarks.get(r);
        if (rv !== undefined) watermarks[r] = rv;
      }
      for (let start = 0; start < updates.length || start === 0; start += this.maxBatchUpdates) {
        const last = start + this.maxBatchUpdates >= updates.length;
        const batch: FeedBatch = last
          ? { updates: updates.slice(start), watermarks, status: f.status, stale: f.stale, ...(barrier ? { barrier: true } : {}) }
          : { updates: updates.slice(start, start + this.maxBatchUpdates), watermarks, stale: f.stale };
        try {
          sink.onBatch(f.name, batch);
        } catch (err) {
          // The sink must not throw; if it does, the upstream keeps going (and says so loudly).
          this.logger.error({ err, feed: f.name }, 'feed sink threw; batch dropped');
        }
        if (last) break;
      }
    }
    if (holdMs !== Infinity && this.watermarkTimer === undefined) {
      this.watermarkTimer = this.clock.setTimeout(() => {
        this.watermarkTimer = undefined;
        this.flush();
      }, holdMs).unref();
    }
  }
}

/** Same bytes, or both deletions. */
function sameValue(a: Buffer | null, b: Buffer | null): boolean {
  return a === null || b === null ? a === b : a === b || a.equals(b);
}
