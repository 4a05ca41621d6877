/**
 * The pipe from the upstream to the sockets:
 *
 *   Upstream (src/server/upstream, or a scripted source in tests)
 *      │ FeedSink.onBatch(feed, batch)           synchronous, never throws back
 *      ▼
 *   Pipeline ──► FeedStore.apply(batch, now)     one store per feed (src/snapshot, pure)
 *      │            └─ no-op updates skipped, revision++ when something changed
 *      ▼
 *   FanOut.scheduleFlush()                       changes within flushWindowMs become one DELTA
 *      ▼
 *   sockets (same Buffers for every caught-up agent)
 *
 * The upstream never sees a store or a socket, the fan-out never sees Kubernetes (seams.ts).
 */
import type { Clock } from '../../clock.js';
import type { Logger } from '../../log.js';
import type { FanOut } from '../fanout/fanout.js';
import type { FeedRuntime } from '../fanout/feeds.js';
import type { FeedBatch, FeedSink } from './seams.js';

export class Pipeline implements FeedSink {
  private readonly byName: ReadonlyMap<string, FeedRuntime>;
  private readonly warnedUnknown = new Set<string>();
  /** Batches the store refused (a bug upstream or in the store); counted, logged, never thrown. */
  rejectedBatches = 0;

  constructor(
    feeds: readonly FeedRuntime[],
    private readonly fanout: FanOut,
    private readonly clock: Clock,
    private readonly log: Logger | undefined,
  ) {
    this.byName = new Map(feeds.map((f) => [f.name, f]));
  }

  onBatch(feedName: string, batch: FeedBatch): void {
    const feed = this.byName.get(feedName);
    if (feed === undefined) {
      if (!this.warnedUnknown.has(feedName)) {
        this.warnedUnknown.add(feedName);
        this.log?.warn({ feed: feedName }, 'upstream delivered a batch for a feed this server does not serve; ignored');
      }
      return;
    }
    let r;
    try {
      r = feed.store.apply(batch, this.clock.monotonic());
    } catch (err) {
      this.rejectedBatches++;
      this.log?.error({ feed: feedName, err }, 'store rejected a batch');
      return;
    }
    // A batch that changed no entry may still advance the watermarks agents at this revision hold.
    this.fanout.convergence.onWatermarks();
    // Plain numbers the metrics read at scrape time (stats.ts): a prom-client call here costs tens
    // of µs a change at 1,000 agents, where each change runs with caches the flush's writes emptied.
    feed.stats.updates += batch.updates.length;
    feed.stats.updatesSkipped += r.skippedNoOp + r.deletedUnknown;
    // Even a batch that changed no entry may carry a status or watermarks worth a STATUS frame.
    this.fanout.scheduleFlush();
  }

  trim(): void {
    const now = this.clock.monotonic();
    for (const f of this.byName.values()) f.store.trim(now);
  }
}
