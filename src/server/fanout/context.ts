/**
 * What every part of the fan-out shares: its options, its connections, its counters, and a guard
 * for timer-driven steps. The parts (flush, service, session, sweep) each take this one object
 * instead of a reference to each other's internals, so each file reads as one concept.
 */
import type { OwnFrames } from '../transport/own-frames.js';
import type { Clock } from '../../clock.js';
import type { Logger } from '../../log.js';
import type { Connection } from '../transport/connection.js';
import type { Compression } from '../transport/framing.js';
import type { ServerMetrics } from '../ops/metrics.js';
import { ConvergenceTracker } from './convergence.js';
import type { FeedRuntime } from './feeds.js';
import type { SnapshotCache } from './snapshot-cache.js';
import type { FanOutStats } from './stats.js';
import type { TurnBudget } from './turn-queue.js';

export interface FanOutOptions {
  readonly clock: Clock;
  /** Uniform [0, 1) source for ping jitter; seeded in tests so a run replays exactly. */
  readonly random: () => number;
  readonly metrics: ServerMetrics;
  readonly log: Logger | undefined;
  readonly serverId: string;
  /** The upstream cluster's name for agents (Upstream.cluster), read at every HELLO. */
  readonly cluster?: () => string | undefined;
  readonly feeds: readonly FeedRuntime[];
  readonly cache: SnapshotCache;
  readonly compressions: readonly Compression[];
  readonly handshakeTimeoutMs: number;
  readonly pingIntervalMs: number;
  readonly pongTimeoutMs: number;
  readonly flushWindowMs: number;
  readonly maxFallBehindMs: number;
  readonly newClientGracePeriodMs: number;
  readonly socketHighWaterBytes: number;
  readonly maxClientBytes: number;
  /** Frames built for one agent alone held unsent, process-wide (transport/own-frames.ts); shared with the connections' limits. Unset: not bounded. */
  readonly ownFrames?: OwnFrames;
  /** Outdated snapshot builds slow readers may pin, in wire bytes (sweep.ts). @default DEFAULT_SNAPSHOT_PINNED_MAX_BYTES (256 MiB) */
  readonly snapshotPinnedMaxBytes?: number;
  /** Largest range repair sent, in key and value bytes (PROTOCOL.md §7.2); above it a snapshot. @default DEFAULT_MAX_REPAIR_BYTES (4 MiB) */
  readonly maxRepairBytes?: number;
  readonly maxInboundBytes: number;
  readonly maxFrameBytes: number;
  readonly compressMinBytes: number;
  /** Convergence requests that may wait at once. @default DEFAULT_MAX_WAITERS (1,000) */
  readonly maxConvergenceWaiters?: number;
  /** Per-node scoping: with a client certificate, the node is the rest of its first URI SAN after this prefix (unset: its CN). */
  readonly scopeNodeUriSanPrefix?: string | undefined;
  /** Told the resources an agent refused as behind (4015) is newer on; the upstream may look again (Upstream.recheckMissing). */
  readonly onAgentAhead?: (resources: readonly string[]) => void;
  /** Bytes and time one service turn may use. @default DEFAULT_TURN_BUDGET (10 ms, 8 MiB) */
  readonly serviceTurn?: TurnBudget;
}

export class FanOutContext {
  readonly connections = new Set<Connection>();
  readonly stats: FanOutStats;
  /** The convergence barrier's waiters, told of every HELLO, ACK and close (convergence.ts). */
  readonly convergence: ConvergenceTracker;
  /**
   * The period of the one sweep (sweep.ts) that checks every deadline and sends every PING. A
   * deadline is late by up to one period, so it is a quarter of the shortest deadline; and a PING
   * goes out on the first sweep at or after it is due, so the period is also the error of every
   * ping interval: at most a twentieth of pingIntervalMs, leaving room for the ±10 % jitter.
   */
  readonly sweepIntervalMs: number;

  constructor(readonly o: FanOutOptions) {
    this.stats = o.metrics.fanout;
    this.convergence = new ConvergenceTracker({
      clock: o.clock, serverId: o.serverId, feeds: o.feeds, connections: () => this.connections,
      ...(o.maxConvergenceWaiters !== undefined ? { maxWaiters: o.maxConvergenceWaiters } : {}),
    });
    this.sweepIntervalMs = Math.max(5, Math.min(1_000, Math.floor(Math.min(o.pingIntervalMs / 5, o.pongTimeoutMs, o.handshakeTimeoutMs, o.maxFallBehindMs) / 4)));
  }

  /**
   * Runs a timer-driven step so that a bug in it is logged instead of ending the process: one
   * broken flush must not take 5,000 agents' server down with it (they would all resync).
   */
  guarded(what: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.o.log?.error({ err, what }, 'fan-out step failed');
    }
  }

  /**
   * The delay to a connection's next PING, so that the interval the agent sees is pingIntervalMs
   * ±10 % (PROTOCOL.md §4.8): drawn uniformly from [0.9, 1.1) × pingIntervalMs less one sweep
   * period, because the PING is sent on the first sweep at or after the deadline (up to one period
   * later). Without that, the sends snapped to sweep ticks (1.00x or 1.25x at a quarter period).
   */
  nextPingDelayMs(): number {
    const p = this.o.pingIntervalMs;
    return 0.9 * p + this.o.random() * Math.max(0, 0.2 * p - this.sweepIntervalMs);
  }
}
