/**
 * The server's metrics: a private prom-client Registry (never the global one, so two servers in
 * one process — tests, benches — do not collide). Names follow Typha's (Calico's typha/pkg/syncserver and snapcache
 * §4) with a `cattail_` prefix so existing dashboards translate one-to-one.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { FanOutStats, FeedStats } from '../fanout/stats.js';
import type { ServedStore } from '../pipeline/store-port.js';
import { CONNECTION_MODES, type Connection, type ConnectionMode } from '../transport/connection.js';
import { VERSION } from '../../version.js';
import { LOG_BUFFER_MAX_BYTES, droppedLogBytes } from '../../log.js';

export interface ServerMetrics {
  readonly registry: Registry;
  readonly connectionsAccepted: Counter;
  readonly connectionsRefused: Counter<'reason'>;
  /** Log bytes dropped at a stalled stderr (src/log.ts LOG_BUFFER_MAX_BYTES). */
  readonly logDropped: Counter;
  /** Agents closed on purpose to move them elsewhere (shed above the target, drained at shutdown). */
  readonly connectionsShed: Counter<'reason'>;
  readonly connectionsActive: Gauge;
  readonly connectionsStreaming: Gauge<'feed'>;
  readonly connectionsClosed: Counter<'code'>;
  readonly connectionsGraceUsed: Counter<'feed'>;
  readonly snapshotPinnedCloses: Counter<'feed'>;
  /** Agents closed with 4008 by the inbound budget (transport/inbound-budget.ts). */
  readonly inboundOverBudgetCloses: Counter;
  /** How each requested feed of a HELLO was answered: resume, rebase (another replica's agent), or snapshot with its reason. */
  readonly handshakeFeeds: Counter<'feed' | 'mode' | 'reason'>;
  /** Agents on a scoped feed whose node the feed's Nodes do not know (a wrong `--node`): see scoped.ts unknownNode. */
  readonly scopedUnknownNode: Counter<'feed'>;
  /** Range repairs (PROTOCOL.md §7.2) by outcome: repaired, or the snapshot it fell back to and why. */
  readonly repairs: Counter<'feed' | 'outcome'>;
  /** Uncompressed frame bytes of REPAIR + DELTA units sent. */
  readonly repairBytes: Counter<'feed'>;
  readonly cacheSize: Gauge<'feed'>;
  readonly snapshotsGenerated: Counter<'feed'>;
  readonly snapshotsStopped: Counter<'feed'>;
  readonly snapshotsEvicted: Counter<'feed'>;
  readonly snapshotsReused: Counter<'feed'>;
  readonly snapshotRawBytes: Gauge<'feed'>;
  readonly snapshotCompressedBytes: Gauge<'feed' | 'compression'>;
  /** cattail_client_lag_seconds, observed once per ACK through a batch (ObservationBatch). */
  readonly clientLag: ObservationBatch<'feed'>;
  readonly pingLatency: Histogram;
  readonly snapshotSendDuration: Histogram<'feed'>;
  /** cattail_flush_duration_seconds, observed once per flush through a batch (ObservationBatch). */
  readonly flushDuration: ObservationBatch;
  /**
   * Connections closed to move load elsewhere (close 4009), by reason. Defined here so the name and
   * help have one home; the shedding path increments it.
   */
  /** Agent-port TLS refusals by reason (tls/identity.ts TLS_REFUSAL_REASONS). */
  readonly tlsRefusals: Counter<'reason'>;
  /** Re-reads of changed TLS files: success (applied) or failure (previous set kept). */
  readonly tlsReloads: Counter<'result'>;
  readonly tlsCertificateExpiry: Gauge;
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

/** Observations a batch holds before it hands them to its histogram (a Float64Array: 8 KiB). */
export const OBSERVATION_BATCH_MAX = 1_024;

/**
 * A histogram observed on a hot path (once per flush, once per ACK): each observation is a store
 * into a typed array (and, with a label, a slot of a plain array), handed to prom-client in one go
 * when the array is full and at every scrape (the histogram's collect). Why: prom-client's
 * observe() touches its label hashing, bucket search and maps; in the fan-out benchmark at 1,000
 * agents one call took ~40 µs of a change's time, because each flush runs with caches that the
 * previous flush's socket writes emptied. Replayed back to back, the same calls take well under a
 * microsecond each. A scrape sees every observation made before it.
 *
 * `labelName`: the histogram's one label (each observation names its value), or none.
 */
export class ObservationBatch<L extends string = never> {
  private readonly pending = new Float64Array(OBSERVATION_BATCH_MAX);
  private readonly labelValues: string[];
  private n = 0;

  constructor(readonly histogram: Histogram<L>, private readonly labelName?: L) {
    this.labelValues = labelName === undefined ? [] : new Array<string>(OBSERVATION_BATCH_MAX).fill('');
  }

  /** `label`: the value of the batch's label, required when it has one (and only then). */
  observe(value: number, ...label: [L] extends [never] ? [] : [labelValue: string]): void {
    if (this.labelName !== undefined) this.labelValues[this.n] = label[0] ?? '';
    this.pending[this.n++] = value;
    if (this.n === OBSERVATION_BATCH_MAX) this.drain();
  }

  /** Hands the held observations to the histogram. */
  drain(): void {
    const n = this.n;
    this.n = 0;
    const name = this.labelName;
    if (name === undefined) {
      for (let i = 0; i < n; i++) this.histogram.observe(this.pending[i] as number);
      return;
    }
    for (let i = 0; i < n; i++) this.histogram.observe({ [name]: this.labelValues[i] } as Partial<Record<L, string>>, this.pending[i] as number);
  }
}

/** A histogram with at most one label behind an ObservationBatch, drained at every scrape. */
function batchedHistogram<L extends string = never>(config: { name: string; help: string; buckets: number[]; registers: Registry[]; labelName?: L }): ObservationBatch<L> {
  const { labelName, ...rest } = config;
  // collect runs at a scrape, long after `batch` is set.
  const histogram: Histogram<L> = new Histogram<L>({ ...rest, ...(labelName === undefined ? {} : { labelNames: [labelName] }), collect: (): void => batch.drain() });
  const batch: ObservationBatch<L> = new ObservationBatch<L>(histogram, labelName);
  return batch;
}

/** A gauge whose value is computed at scrape time from the server's state (never kept beside it). */
function stateGauge(name: string, help: string, registers: Registry[], read: () => number): Gauge {
  return new Gauge({ name, help, registers, collect() { this.set(read()); } });
}

/** A gauge with one label computed at scrape time; a label value `read()` no longer yields disappears. */
function labelledStateGauge(name: string, help: string, registers: Registry[], label: string, read: () => Iterable<[string, number]>): Gauge {
  return new Gauge({
    name, help, registers, labelNames: [label],
    collect() {
      this.reset();
      for (const [value, n] of read()) this.set({ [label]: value }, n);
    },
  });
}

/** What the gauges computed at scrape time read: the server's queues, logs and buffers. */
export interface StateSources {
  /** Open connections, walked once per gauge per scrape (10,000 connections: well under a millisecond). */
  readonly connections: () => Iterable<Connection>;
  /** Connections waiting in the service queue (snapshot streaming, catch-ups). */
  readonly serviceQueueLength: () => number;
  readonly catchUpCache: () => { entries: number; bytes: number };
  /** HELLOs waiting to be answered (they wait in the service queue too). */
  readonly handshakeQueueLength: () => number;
  /** Snapshot builds the cache holds for reuse and their frame bytes. */
  readonly snapshotCache: () => { builds: number; bytes: number };
  /** The transport's work waiting for a paced turn (AgentTransport.pacedWaiting). */
  readonly transportWaiting: () => number;
  /** Builds only agents still streaming them keep alive, and their frame bytes not counted above. */
  readonly snapshotPinned: () => { builds: number; bytes: number };
  readonly feeds: readonly { readonly name: string; readonly store: ServedStore }[];
  /** Unfinished inbound frames (transport/inbound-budget.ts); undefined when the transport cannot show them (uWS). */
  readonly inbound?: () => { readonly heldBytes: number; readonly holding: number };
  /** Frames built for one agent alone held unsent, each once (transport/own-frames.ts). */
  readonly ownFrames?: { readonly heldBytes: number; readonly refused: number };
}

/**
 * Registers one gauge per queue, log and buffer of the server (DESIGN.md invariant 2: every bounded
 * thing has a metric), each computed at scrape time from `src`, plus connections by mode.
 */
export function registerStateGauges(metrics: ServerMetrics, src: StateSources): void {
  const r = [metrics.registry];
  labelledStateGauge('cattail_connections_by_mode', 'Open connections by what they are doing: handshake, snapshot (streaming a snapshot on any feed), catching-up (behind the flushed revision on any feed), streaming (caught up), closing.', r, 'mode', () => {
    const counts = new Map<ConnectionMode, number>(CONNECTION_MODES.map((m) => [m, 0]));
    for (const c of src.connections()) counts.set(c.mode, (counts.get(c.mode) ?? 0) + 1);
    return counts;
  });
  stateGauge('cattail_socket_buffered_bytes', 'Bytes written to agent sockets that the kernel has not taken yet, summed over connections (each is skipped above socketHighWaterBytes).', r, () => {
    let n = 0;
    for (const c of src.connections()) n += c.writableBytes;
    return n;
  });
  stateGauge('cattail_socket_buffered_bytes_max', 'Bytes buffered for the most backed-up agent socket (compare with socketHighWaterBytes).', r, () => {
    let max = 0;
    for (const c of src.connections()) max = Math.max(max, c.writableBytes);
    return max;
  });
  stateGauge('cattail_client_own_bytes', 'Bytes of frames built for one agent alone (catch-ups, pings) not yet flushed by the kernel, summed over connections (each is bounded by maxClientBytes).', r, () => {
    let n = 0;
    for (const c of src.connections()) n += c.ownOutstandingBytes;
    return n;
  });
  const own = src.ownFrames;
  if (own !== undefined) {
    stateGauge('cattail_own_frames_held_bytes', 'Bytes of frames built for one agent alone (resume and rebase deltas, catch-ups, range repairs, WELCOMEs and PINGs) that sockets have not sent, each frame counted once however many agents it goes to (held to maxOwnHeldBytes).', r, () => own.heldBytes);
    statsCounter('cattail_own_frames_refused_total', 'Resumes, rebases, catch-ups and range repairs answered with a snapshot (and GOODBYEs sent without their catch-up) because their frames would have taken cattail_own_frames_held_bytes above maxOwnHeldBytes.', r, () => own.refused);
  }
  stateGauge('cattail_catchup_cache_bytes', 'Catch-up frames kept for agents behind at the same revision (encoded once per service round: until the next flush, at most 5 s).', r, () => src.catchUpCache().bytes);
  stateGauge('cattail_service_queue_length', 'Connections waiting in the service queue for a HELLO answer, snapshot frames or a catch-up (served within a time and byte budget per event-loop turn).', r, src.serviceQueueLength);
  stateGauge('cattail_transport_paced_waiting', 'Work the agent transport holds for a paced turn: upgrade requests not yet answered (ws, 5 ms turns), or sockets with inbound messages waiting (uWS); bounded by the connections admitted.', r, src.transportWaiting);
  stateGauge('cattail_handshake_queue_length', 'HELLOs received and not yet answered (answered first in each service turn; bounded by the connections admitted).', r, src.handshakeQueueLength);
  stateGauge('cattail_snapshot_cache_builds', 'Snapshot builds held for reuse (per feed, revision, compression and frame size; dropped after snapshotReuseWindowMs once outdated, or sooner when idle to keep cattail_snapshot_cache_bytes within snapshotHeldMaxBytes).', r, () => src.snapshotCache().builds);
  stateGauge('cattail_snapshot_cache_bytes', 'Wire bytes of the snapshot frames held for reuse, with the own frames of the node snapshots cached with a scoped build (bounded by snapshotHeldMaxBytes).', r, () => src.snapshotCache().bytes);
  stateGauge('cattail_snapshot_pinned_builds', 'Snapshot builds no longer held for reuse that agents still streaming them keep alive (slow readers of an outdated snapshot).', r, () => src.snapshotPinned().builds);
  stateGauge('cattail_snapshot_pinned_bytes', 'Wire bytes of those builds\' frames, beyond cattail_snapshot_cache_bytes (bounded by snapshotPinnedMaxBytes: above it the oldest builds\' readers are closed).', r, () => src.snapshotPinned().bytes);
  labelledStateGauge('cattail_feed_revision', 'Current revision of each feed\'s store, read at scrape time (Typha: breadcrumb_seq_number); caught-up agents get it within flushWindowMs.', r, 'feed', () => src.feeds.map((f) => [f.name, f.store.revision]));
  labelledStateGauge('cattail_delta_log_entries', "Deletions each feed's delta log retains so resuming agents get a delta (upserts are answered from the live state); trimmed by deltaLogMaxAgeMs and deltaLogMaxBytes.", r, 'feed', () => src.feeds.map((f) => [f.name, f.store.stats().tombstones]));
  const inbound = src.inbound;
  if (inbound !== undefined) {
    stateGauge('cattail_inbound_held_bytes', "Bytes agents' sockets hold of inbound frames not yet complete, summed, with 256 bytes per piece they are kept in (held to maxInboundHeldBytes; agents write small messages whole, so this stays near 0).", r, () => inbound().heldBytes);
    stateGauge('cattail_inbound_holding_sockets', 'Agent sockets holding part of an inbound frame.', r, () => inbound().holding);
  }
  labelledStateGauge('cattail_delta_log_bytes', "Bytes of each feed's delta log (each retained deletion: its key's bytes plus 200 of heap), the quantity bounded by deltaLogMaxBytes.", r, 'feed', () => src.feeds.map((f) => [f.name, f.store.stats().logBytes]));
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
  feedStatsCounter('cattail_snapshots_sent_total', 'Snapshots streamed to an agent to the end (initial and in-band).', r, fanout, 'snapshotsSent');
  feedStatsCounter('cattail_snapshot_sent_raw_bytes_total', 'Uncompressed body bytes of the snapshots sent to agents.', r, fanout, 'snapshotRawBytesSent');
  feedStatsCounter('cattail_snapshot_sent_wire_bytes_total', 'Wire bytes (compressed where negotiated, with frame headers) of the snapshots sent to agents.', r, fanout, 'snapshotWireBytesSent');
  feedStatsCounter('cattail_updates_total', 'Updates received from the upstream.', r, fanout, 'updates');
  feedStatsCounter('cattail_updates_skipped_total', 'Updates skipped as byte-identical no-ops (or deletions of unknown keys).', r, fanout, 'updatesSkipped');
  new Gauge({ name: 'cattail_build_info', help: 'Always 1; labels: the cattail version and the Node.js version running it.', labelNames: ['version', 'node'], registers: r }).set({ version: VERSION, node: process.version }, 1);
  return {
    registry,
    fanout,
    connectionsAccepted: new Counter({ name: 'cattail_connections_accepted_total', help: 'WebSocket connections accepted.', registers: r }),
    connectionsRefused: new Counter({ name: 'cattail_connections_refused_total', help: 'Upgrades refused, by reason: 503 for draining, not-ready (no upstream sync yet), max-connections, over-target; subprotocol is a 4001 close.', labelNames: ['reason'], registers: r }),
    connectionsShed: new Counter({ name: 'cattail_connections_shed_total', help: 'Agents closed with GOODBYE to move them to another replica, by reason: over-target (4009), drain (paced, 4010); the rest at once (4010): drain-timeout (left at the cut-off), drain-forced (a second signal), shutdown (closed without a drain).', labelNames: ['reason'], registers: r }),
    logDropped: statsCounter('cattail_log_dropped_bytes_total', `Bytes of log lines dropped because stderr did not take them while ${LOG_BUFFER_MAX_BYTES} bytes were already waiting (a stalled log pipe).`, r, droppedLogBytes),
    connectionsActive: new Gauge({ name: 'cattail_connections_active', help: 'Open connections, including those still in their handshake.', registers: r }),
    connectionsStreaming: new Gauge({ name: 'cattail_connections_streaming', help: 'Connections past their handshake, per feed.', labelNames: ['feed'], registers: r }),
    connectionsClosed: new Counter({ name: 'cattail_connections_closed_total', help: 'Connections closed, by close code (a code PROTOCOL.md does not list, as an agent may send: other).', labelNames: ['code'], registers: r }),
    inboundOverBudgetCloses: new Counter({ name: 'cattail_inbound_over_budget_closes_total', help: "Agents closed with 4008 because all agents' unfinished inbound frames held more than maxInboundHeldBytes (those whose unfinished message began first go first).", registers: r }),
    snapshotPinnedCloses: new Counter({ name: 'cattail_snapshot_pinned_closes_total', help: 'Agents closed with 4007 after a minute without taking a frame of an outdated snapshot, because outdated builds pinned by slow readers were above snapshotPinnedMaxBytes (readers of the oldest builds go first; moving readers stay).', labelNames: ['feed'], registers: r }),
    connectionsGraceUsed: new Counter({ name: 'cattail_connections_grace_used_total', help: 'Agents that were behind by more than maxFallBehindMs but kept inside their post-snapshot grace period.', labelNames: ['feed'], registers: r }),
    handshakeFeeds: new Counter({ name: 'cattail_handshake_feeds_total', help: 'Feeds requested in HELLOs, by how the WELCOME answered them: mode resume (token of this replica), rebase (another replica\'s agent continued from its watermarks, PROTOCOL.md §7.1) or snapshot, with reason for a snapshot (no-token, other-server, other-cluster, epoch-changed, projection-changed, too-old, too-large, bad-token), or refused with reason behind (the agent\'s watermarks are newer than this replica\'s state: ERROR + close 4015, no snapshot).', labelNames: ['feed', 'mode', 'reason'], registers: r }),
    scopedUnknownNode: new Counter({ name: 'cattail_scoped_unknown_node_total', help: 'Agents admitted to a feed scoped per node whose node (HELLO node, or the client certificate\'s) is not among the Nodes the feed holds: most likely a wrong node name (a host name that is not the Kubernetes node name), which gets a view without the agent\'s own entries. Logged at warn level with the node. Counted once per connection and feed.', labelNames: ['feed'], registers: r }),
    repairs: new Counter({ name: 'cattail_repairs_total', help: 'REPAIR_REQUESTs of agents whose digest did not match (PROTOCOL.md §7.2), by outcome: repaired (REPAIR + DELTA of the mismatching buckets), too-large (above maxRepairBytes or more than half the state\'s entries: in-band snapshot), too-old (the agent\'s revision left the log: in-band snapshot), too-soon (within 1 s of the previous repair of the feed: in-band snapshot), scoped (a feed scoped per node: in-band snapshot of the node\'s view), ignored (a snapshot was already streaming to it).', labelNames: ['feed', 'outcome'], registers: r }),
    repairBytes: new Counter({ name: 'cattail_repair_bytes_total', help: 'Uncompressed frame bytes of the REPAIR and DELTA units sent as range repairs.', labelNames: ['feed'], registers: r }),
    cacheSize: new Gauge({ name: 'cattail_cache_size', help: 'Entries held by each feed.', labelNames: ['feed'], registers: r }),
    snapshotsGenerated: new Counter({ name: 'cattail_snapshots_generated_total', help: 'Snapshot frame sets built (once per feed, revision, compression).', labelNames: ['feed'], registers: r }),
    snapshotsEvicted: new Counter({ name: 'cattail_snapshot_cache_evicted_total', help: 'Finished snapshot builds no agent was streaming, dropped from the reuse cache (least recently used first) to keep cattail_snapshot_cache_bytes within snapshotHeldMaxBytes; the next agent of their kind gets a new build.', labelNames: ['feed'], registers: r }),
    snapshotsStopped: new Counter({ name: 'cattail_snapshots_stopped_total', help: 'Snapshot builds stopped before their end: a newer build of their kind superseded them and no agent read them any more.', labelNames: ['feed'], registers: r }),
    snapshotsReused: new Counter({ name: 'cattail_snapshots_reused_total', help: 'Agents served a snapshot another agent caused to be built.', labelNames: ['feed'], registers: r }),
    snapshotRawBytes: new Gauge({ name: 'cattail_snapshot_raw_bytes', help: 'Uncompressed body bytes of the latest snapshot built.', labelNames: ['feed'], registers: r }),
    snapshotCompressedBytes: new Gauge({ name: 'cattail_snapshot_compressed_bytes', help: 'Wire bytes of the latest snapshot built, per compression.', labelNames: ['feed', 'compression'], registers: r }),
    clientLag: batchedHistogram({ name: 'cattail_client_lag_seconds', help: 'Age of the revision an agent acked, behind the newest (Typha: client_latency_secs).', labelName: 'feed', buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 300], registers: r }),
    pingLatency: new Histogram({ name: 'cattail_ping_latency_seconds', help: 'PING to PONG round trip.', buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers: r }),
    snapshotSendDuration: new Histogram({ name: 'cattail_client_snapshot_send_seconds', help: 'Seconds from the start of a snapshot send to its last frame handed to the socket, including the wait for the build and for a slow socket (Typha: client_snapshot_send_secs).', labelNames: ['feed'], buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300], registers: r }),
    tlsRefusals: new Counter({ name: 'cattail_tls_refusals_total', help: 'Agent-port TLS connections refused, by reason: plaintext (plain HTTP to the TLS port), handshake (TLS handshake failed or timed out), and after the upgrade (ERROR + close 4011) no-certificate, unknown-ca, expired, not-yet-valid, identity-not-allowed (CN / URI SAN not in clientCn / clientUriSan), invalid-certificate.', labelNames: ['reason'], registers: r }),
    tlsReloads: new Counter({ name: 'cattail_tls_reloads_total', help: 'Changed TLS files re-read, by result: success (new connections use them; open ones keep theirs) or failure (unusable set: the previous certificate stays in use, see the log).', labelNames: ['result'], registers: r }),
    tlsCertificateExpiry: new Gauge({ name: 'cattail_tls_certificate_expiry_timestamp_seconds', help: 'The notAfter of the server certificate in use (Unix seconds); alert before it passes. 0 without TLS.', registers: r }),
    flushDuration: batchedHistogram({ name: 'cattail_flush_duration_seconds', help: 'Seconds one flush took to encode its shared DELTA units and hand them to every caught-up socket: the write latency a change sees after flushWindowMs (Typha: client_write_latency_secs).', buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1], registers: r }),
  };
}
