/**
 * The server's metrics: a private prom-client Registry (never the global one, so two servers in
 * one process — tests, benches — do not collide). Names follow Typha's (../shared/reference/typha.md
 * §4) with a `cattail_` prefix so existing dashboards translate one-to-one.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { FanOutStats, FeedStats } from '../fanout/stats.js';

export interface ServerMetrics {
  readonly registry: Registry;
  readonly connectionsAccepted: Counter;
  readonly connectionsRefused: Counter<'reason'>;
  /** Agents closed on purpose to move them elsewhere (shed above the target, drained at shutdown). */
  readonly connectionsShed: Counter<'reason'>;
  readonly connectionsActive: Gauge;
  readonly connectionsStreaming: Gauge<'feed'>;
  readonly connectionsClosed: Counter<'code'>;
  readonly connectionsGraceUsed: Counter<'feed'>;
  readonly feedRevision: Gauge<'feed'>;
  readonly cacheSize: Gauge<'feed'>;
  readonly updates: Counter<'feed'>;
  readonly updatesSkipped: Counter<'feed'>;
  readonly snapshotsGenerated: Counter<'feed'>;
  readonly snapshotsReused: Counter<'feed'>;
  readonly snapshotRawBytes: Gauge<'feed'>;
  readonly snapshotCompressedBytes: Gauge<'feed' | 'compression'>;
  readonly clientLag: Histogram<'feed'>;
  readonly pingLatency: Histogram;
  /** The fan-out's own counts, which the fan-out counters below report at scrape time. */
  readonly fanout: FanOutStats;
}

/**
 * A counter whose value is read from the fan-out's stats at scrape time (see fanout/stats.ts):
 * the hot path bumps a plain number and the metric never keeps a second copy.
 */
function statsCounter(name: string, help: string, registers: Registry[], read: () => number): Counter {
  return new Counter({
    name, help, registers,
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

/** A counter with one label whose values are read from the stats at scrape time. */
function labelledStatsCounter(name: string, help: string, registers: Registry[], label: string, read: () => Record<string, number>): Counter {
  return new Counter({
    name, help, registers, labelNames: [label],
    collect() {
      this.reset();
      for (const [value, n] of Object.entries(read())) this.inc({ [label]: value }, n);
    },
  });
}

/** A per-feed counter read from each feed's stats at scrape time. */
function feedStatsCounter(name: string, help: string, registers: Registry[], stats: FanOutStats, field: keyof FeedStats): Counter<'feed'> {
  return new Counter({
    name, help, registers, labelNames: ['feed'],
    collect() {
      this.reset();
      for (const [feed, s] of stats.byFeed) this.inc({ feed }, s[field]);
    },
  });
}

export function createMetrics(fanout: FanOutStats, opts: { defaultMetrics?: boolean } = {}): ServerMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'cattail_' });
  const r = [registry];
  feedStatsCounter('cattail_deltas_encoded_total', 'Shared DELTA units encoded (once per flush, compression and frame size).', r, fanout, 'deltaUnitsEncoded');
  feedStatsCounter('cattail_delta_bytes_encoded_total', 'Wire bytes of shared DELTA units encoded.', r, fanout, 'deltaBytesEncoded');
  feedStatsCounter('cattail_clients_skipped_total', 'Times a caught-up agent was skipped because its socket was above socketHighWaterBytes.', r, fanout, 'skips');
  feedStatsCounter('cattail_client_catchups_total', 'Compacted catch-up DELTAs sent to agents that drained after being skipped, or resumed.', r, fanout, 'catchUps');
  feedStatsCounter('cattail_client_inband_snapshots_total', "Snapshots sent on an open connection because the agent's revision left the delta log.", r, fanout, 'inBandSnapshots');
  labelledStatsCounter('cattail_bytes_written_total', 'Bytes handed to sockets, by kind (shared: the same frames for many sockets; own: built for one agent).', r, 'kind', () => ({ shared: fanout.sharedBytes, own: fanout.ownBytes }));
  labelledStatsCounter('cattail_socket_writes_total', 'Corked write batches handed to sockets (about one syscall each), by the path that wrote them (flush: shared deltas; service: snapshots and catch-ups).', r, 'path', () => ({ flush: fanout.flushWrites, service: fanout.serviceWrites }));
  statsCounter('cattail_flushes_total', 'Flushes that had a change or a status to send.', r, () => fanout.flushes);
  statsCounter('cattail_pings_sent_total', 'PING messages sent to agents.', r, () => fanout.pingsSent);
  statsCounter('cattail_pongs_received_total', 'PONG messages received from agents.', r, () => fanout.pongsReceived);
  return {
    registry,
    fanout,
    connectionsAccepted: new Counter({ name: 'cattail_connections_accepted_total', help: 'WebSocket connections accepted.', registers: r }),
    connectionsRefused: new Counter({ name: 'cattail_connections_refused_total', help: 'Upgrades refused, by reason: 503 for draining, not-ready (no upstream sync yet), max-connections, over-target; subprotocol is a 4001 close.', labelNames: ['reason'], registers: r }),
    connectionsShed: new Counter({ name: 'cattail_connections_shed_total', help: 'Agents closed with GOODBYE to move them to another replica, by reason: over-target (4009), drain (paced, 4010); the rest at once (4010): drain-timeout (left at the cut-off), drain-forced (a second signal), shutdown (closed without a drain).', labelNames: ['reason'], registers: r }),
    connectionsActive: new Gauge({ name: 'cattail_connections_active', help: 'Open connections, including those still in their handshake.', registers: r }),
    connectionsStreaming: new Gauge({ name: 'cattail_connections_streaming', help: 'Connections past their handshake, per feed.', labelNames: ['feed'], registers: r }),
    connectionsClosed: new Counter({ name: 'cattail_connections_closed_total', help: 'Connections closed, by close code.', labelNames: ['code'], registers: r }),
    connectionsGraceUsed: new Counter({ name: 'cattail_connections_grace_used_total', help: 'Agents that were behind by more than maxFallBehindMs but kept inside their post-snapshot grace period.', labelNames: ['feed'], registers: r }),
    feedRevision: new Gauge({ name: 'cattail_feed_revision', help: 'Current revision of each feed (Typha: breadcrumb_seq_number).', labelNames: ['feed'], registers: r }),
    cacheSize: new Gauge({ name: 'cattail_cache_size', help: 'Entries held by each feed.', labelNames: ['feed'], registers: r }),
    updates: new Counter({ name: 'cattail_updates_total', help: 'Updates received from the upstream.', labelNames: ['feed'], registers: r }),
    updatesSkipped: new Counter({ name: 'cattail_updates_skipped_total', help: 'Updates skipped as byte-identical no-ops (or deletions of unknown keys).', labelNames: ['feed'], registers: r }),
    snapshotsGenerated: new Counter({ name: 'cattail_snapshots_generated_total', help: 'Snapshot frame sets built (once per feed, revision, compression).', labelNames: ['feed'], registers: r }),
    snapshotsReused: new Counter({ name: 'cattail_snapshots_reused_total', help: 'Agents served a snapshot another agent caused to be built.', labelNames: ['feed'], registers: r }),
    snapshotRawBytes: new Gauge({ name: 'cattail_snapshot_raw_bytes', help: 'Uncompressed body bytes of the latest snapshot built.', labelNames: ['feed'], registers: r }),
    snapshotCompressedBytes: new Gauge({ name: 'cattail_snapshot_compressed_bytes', help: 'Wire bytes of the latest snapshot built, per compression.', labelNames: ['feed', 'compression'], registers: r }),
    clientLag: new Histogram({ name: 'cattail_client_lag_seconds', help: 'Age of the revision an agent acked, behind the newest (Typha: client_latency_secs).', labelNames: ['feed'], buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 300], registers: r }),
    pingLatency: new Histogram({ name: 'cattail_ping_latency_seconds', help: 'PING to PONG round trip.', buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers: r }),
  };
}
