/**
 * The fan-out's counters: plain numbers bumped on the hot path, read by the metrics at scrape time
 * and by tests and benchmarks through `snapshot()`. There is one copy of each count: the
 * prom-client metrics that report them are built from this object (ops/metrics.ts registers
 * `collect` callbacks over it), never incremented beside it.
 *
 * Why not prom-client counters directly: a labelled `inc()` costs a label-hash lookup per call,
 * which per socket write would cost more than the write it counts; and tests need exact totals
 * without parsing the exposition format.
 */

/** Counts kept per feed (reported with a `feed` label). */
export interface FeedStats {
  /** Shared DELTA units encoded (once per flush, compression and frame size). */
  deltaUnitsEncoded: number;
  /** Wire bytes of those units. */
  deltaBytesEncoded: number;
  /** Caught-up agents skipped by a flush because their socket was above socketHighWaterBytes. */
  skips: number;
  /** Compacted catch-up DELTAs sent (after a skip, or on resume). */
  catchUps: number;
  /** Snapshots sent on an open connection because the agent's revision left the delta log. */
  inBandSnapshots: number;
  /** Snapshots streamed to an agent to the end (initial and in-band). */
  snapshotsSent: number;
  /** Uncompressed body bytes of those snapshots (what the agent decodes). */
  snapshotRawBytesSent: number;
  /** Wire bytes of those snapshots (compressed where negotiated, with frame headers). */
  snapshotWireBytesSent: number;
  /** Updates received from the upstream (pipeline.ts). */
  updates: number;
  /** Of them, byte-identical no-ops and deletions of unknown keys (the store skipped them). */
  updatesSkipped: number;
}

export function newFeedStats(): FeedStats {
  return { deltaUnitsEncoded: 0, deltaBytesEncoded: 0, skips: 0, catchUps: 0, inBandSnapshots: 0, snapshotsSent: 0, snapshotRawBytesSent: 0, snapshotWireBytesSent: 0, updates: 0, updatesSkipped: 0 };
}

/** Counts kept for the whole fan-out. */
export class FanOutStats {
  /** Flushes that had something to send. */
  flushes = 0;
  /** Corked write batches a flush handed to sockets: one per socket per flush is the target. */
  flushWrites = 0;
  /** Corked write batches the service queue handed to sockets (snapshots, catch-ups). */
  serviceWrites = 0;
  /** Service turns run (each bounded in bytes and time, see turn-queue.ts). */
  serviceTurns = 0;
  /** Service turns the budget ended with connections still queued (a storm being spread out). */
  serviceTurnsCut = 0;
  /** Bytes of frames shared between sockets, handed to sockets. */
  sharedBytes = 0;
  /** Bytes of frames built for one agent alone, handed to sockets. */
  ownBytes = 0;
  pingsSent = 0;
  pongsReceived = 0;
  readonly byFeed = new Map<string, FeedStats>();

  /** The stats of one feed, created on first use. */
  feed(name: string): FeedStats {
    let s = this.byFeed.get(name);
    if (s === undefined) this.byFeed.set(name, (s = newFeedStats()));
    return s;
  }

  /** A copy with the per-feed counts summed: what tests and benchmarks compare before and after. */
  snapshot(): FanOutStatsSnapshot {
    const total = newFeedStats();
    for (const s of this.byFeed.values()) {
      for (const k of Object.keys(total) as (keyof FeedStats)[]) total[k] += s[k];
    }
    return {
      flushes: this.flushes, flushWrites: this.flushWrites, serviceWrites: this.serviceWrites, serviceTurns: this.serviceTurns, serviceTurnsCut: this.serviceTurnsCut, sharedBytes: this.sharedBytes, ownBytes: this.ownBytes,
      pingsSent: this.pingsSent, pongsReceived: this.pongsReceived, ...total,
    };
  }
}

export type FanOutStatsSnapshot = Readonly<FeedStats & Pick<FanOutStats, 'flushes' | 'flushWrites' | 'serviceWrites' | 'serviceTurns' | 'serviceTurnsCut' | 'sharedBytes' | 'ownBytes' | 'pingsSent' | 'pongsReceived'>>;
