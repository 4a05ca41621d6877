/**
 * The server's metrics: a private prom-client Registry (never the global one, so two servers in
 * one process — tests, benches — do not collide). Names follow Typha's (../shared/reference/typha.md
 * §4) with a `cattail_` prefix so existing dashboards translate one-to-one.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface ServerMetrics {
  readonly registry: Registry;
  readonly connectionsAccepted: Counter;
  readonly connectionsRefused: Counter<'reason'>;
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
  readonly deltasEncoded: Counter<'feed'>;
  readonly deltaBytesEncoded: Counter<'feed'>;
  readonly bytesWritten: Counter<'kind'>;
  readonly writes: Counter;
  readonly clientsSkipped: Counter<'feed'>;
  readonly catchUps: Counter<'feed'>;
  readonly inBandSnapshots: Counter<'feed'>;
  readonly clientLag: Histogram<'feed'>;
  readonly pingLatency: Histogram;
}

export function createMetrics(opts: { defaultMetrics?: boolean } = {}): ServerMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'cattail_' });
  const r = [registry];
  return {
    registry,
    connectionsAccepted: new Counter({ name: 'cattail_connections_accepted_total', help: 'WebSocket connections accepted.', registers: r }),
    connectionsRefused: new Counter({ name: 'cattail_connections_refused_total', help: 'Upgrades refused with 503 (over maxConnections, draining).', labelNames: ['reason'], registers: r }),
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
    deltasEncoded: new Counter({ name: 'cattail_deltas_encoded_total', help: 'Shared DELTA units encoded (once per flush and compression).', labelNames: ['feed'], registers: r }),
    deltaBytesEncoded: new Counter({ name: 'cattail_delta_bytes_encoded_total', help: 'Wire bytes of shared DELTA units encoded.', labelNames: ['feed'], registers: r }),
    bytesWritten: new Counter({ name: 'cattail_bytes_written_total', help: 'Bytes handed to sockets, by kind (shared, own).', labelNames: ['kind'], registers: r }),
    writes: new Counter({ name: 'cattail_socket_writes_total', help: 'Corked write batches handed to sockets (about one syscall each).', registers: r }),
    clientsSkipped: new Counter({ name: 'cattail_clients_skipped_total', help: 'Times a caught-up agent was skipped because its socket was above socketHighWaterBytes.', labelNames: ['feed'], registers: r }),
    catchUps: new Counter({ name: 'cattail_client_catchups_total', help: 'Compacted catch-up DELTAs sent to agents that drained after being skipped, or resumed.', labelNames: ['feed'], registers: r }),
    inBandSnapshots: new Counter({ name: 'cattail_client_inband_snapshots_total', help: 'Snapshots sent on an open connection because the agent\'s revision left the delta log.', labelNames: ['feed'], registers: r }),
    clientLag: new Histogram({ name: 'cattail_client_lag_seconds', help: 'Age of the revision an agent acked, behind the newest (Typha: client_latency_secs).', labelNames: ['feed'], buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 300], registers: r }),
    pingLatency: new Histogram({ name: 'cattail_ping_latency_seconds', help: 'PING to PONG round trip.', buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers: r }),
  };
}
