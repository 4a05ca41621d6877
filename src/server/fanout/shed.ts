/**
 * Closing agents on purpose, to move them to another replica: shedding above the target share of
 * connections, and the paced drain at shutdown. Each close is a GOODBYE with where to go
 * (`endpoints`, the peers shuffled per agent) and when (`reconnectDelayMs`), then 4009 (shed) or
 * 4010 (shutting down). See DESIGN.md "Drain and shedding" for the choices and what was rejected.
 *
 *   shedding: every shedIntervalMs (±10 %), while more agents are open than the target, ONE agent
 *             is shed: never one in its handshake or snapshot; caught-up agents that acknowledged
 *             a state first (they keep using a complete state while they move, and hold a token
 *             that resumes here should every peer refuse them).
 *   drain:    admission refuses (governor), then ONE agent is closed per interval, the interval
 *             re-planned at each close so the last one goes by 90 % of the time left before the
 *             cut-off (never more than 1 s apart, ±10 % jitter). At the cut-off (shutdownTimeoutMs
 *             less the 2 s a closing handshake may take) the rest are closed at once, with their
 *             reconnect delays spread so they still do not arrive at the peers together.
 *
 * Time and randomness come from the injected clock and random source, so a test replays a drain
 * exactly on a FakeClock.
 */
import type { Clock, Timer } from '../../clock.js';
import type { Logger } from '../../log.js';
import type { ServerMetrics } from '../ops/metrics.js';
import type { Connection } from '../transport/connection.js';
import type { Governor } from '../transport/governor.js';
import { CLOSE_GRACE_MS } from './sweep.js';

/** Longest gap between two paced drain closes (Typha's ShutdownConnectionDropIntervalMaxSecs). */
const DRAIN_MAX_INTERVAL_MS = 1_000;
/** Share of the time before the cut-off that the paced closes may use; the rest absorbs jitter. */
const DRAIN_PACE_SHARE = 0.9;
/** What a closing handshake may take: the sweep destroys a closing socket after as long. */
export const CLOSE_WAIT_MS = CLOSE_GRACE_MS;
/**
 * Reconnect spread of agents closed at once: 20 ms per agent (50 arrivals per second over the
 * peers), at most 30 s (an agent keeps its state meanwhile, but it does not hear of changes).
 */
const AT_ONCE_SPREAD_PER_AGENT_MS = 20;
const AT_ONCE_SPREAD_MAX_MS = 30_000;
/**
 * Most a shed agent is asked to wait before reconnecting (GOODBYE reconnectDelayMs, spread at
 * random below it), in ms. It was spread over shedIntervalMs, so a slow rebalance
 * (--shed-interval-ms=600000) kept each shed node away from every replica for 5 minutes on
 * average (the client waits that long before any attempt), hearing no change meanwhile. One shed
 * per interval needs no wide spread; the hints send the agent to a peer.
 */
const SHED_RECONNECT_SPREAD_MAX_MS = 1_000;

/**
 * over-target: shed above the target; drain: a paced close; drain-timeout: left at the drain's
 * cut-off; drain-forced: left when the drain was cut short (a second signal); shutdown: a close
 * without a drain.
 */
export type ShedReason = 'over-target' | 'drain' | 'drain-timeout' | 'drain-forced' | 'shutdown';

export interface ShedderOptions {
  readonly clock: Clock;
  /** Uniform [0, 1): jitter, reconnect delays, and which of equally good agents goes. */
  readonly random: () => number;
  readonly metrics: ServerMetrics;
  readonly log: Logger | undefined;
  readonly connections: () => ReadonlySet<Connection>;
  /** Target, peers (redirect hints) and the drain flag that admission also reads. */
  readonly governor: Governor;
  readonly shedIntervalMs: number;
  readonly shutdownTimeoutMs: number;
  /** Resolves when no connection is left or after `timeoutMs` (the fan-out's). */
  readonly whenEmpty: (timeoutMs: number) => Promise<void>;
  /**
   * Runs a flush now when a feed has changes not yet flushed (FanOut.flushIfBehind): called before
   * GOODBYEs, so the STATUS a moved agent is owed is at the revision the store is at (within
   * flushWindowMs of a change it was behind, and got none).
   */
  readonly flushPending?: () => void;
}

/** A connection whose snapshot is not yet all written, or written but not yet acknowledged. */
function inSnapshot(conn: Connection): boolean {
  return conn.cursors.some((c) => c.phase === 'snapshot' || (c.acked !== true && conn.writableBytes > 0));
}

/**
 * Shedding order (lower first; undefined: never shed). Caught up and acknowledged on every feed:
 * it holds a complete state and a resume token, so it keeps working while it moves and resumes
 * with a DELTA if it comes back here. Then caught up; then behind.
 */
function shedRank(conn: Connection): number | undefined {
  if (conn.state !== 'streaming' || inSnapshot(conn)) return undefined;
  const caughtUp = !conn.needsService && conn.cursors.every((c) => c.behindSinceMs === undefined);
  if (!caughtUp) return 2;
  return conn.cursors.every((c) => c.acked === true) ? 0 : 1;
}

/**
 * Drain order: everyone goes, so this only decides who waits. Handshakes first (they have nothing
 * to lose), agents mid-snapshot last (the wait may let them finish and hold a whole state while
 * they move).
 */
function drainRank(conn: Connection): number | undefined {
  if (!conn.open) return undefined;
  if (conn.state === 'handshake') return 0;
  return inSnapshot(conn) ? 2 : 1;
}

/** A uniformly random one among the best-ranked. */
function pickVictim(conns: Iterable<Connection>, rank: (c: Connection) => number | undefined, random: () => number): Connection | undefined {
  let best: Connection[] = [];
  let bestRank = Infinity;
  for (const c of conns) {
    const r = rank(c);
    if (r === undefined || r > bestRank) continue;
    if (r < bestRank) {
      bestRank = r;
      best = [];
    }
    best.push(c);
  }
  return best[Math.min(best.length - 1, Math.floor(random() * best.length))];
}

export class Shedder {
  private shedTimer: Timer | undefined;
  private drainTimer: Timer | undefined;
  private cutOffTimer: Timer | undefined;
  private draining: Promise<void> | undefined;
  /** Monotonic ms by which the paced closes should be done. */
  private paceEndMs = 0;

  constructor(private readonly o: ShedderOptions) {}

  /** Starts the shedding loop (it only acts while a target is set and exceeded). */
  start(): void {
    this.armShed();
  }

  /** Stops every loop and timer (the server then closes the rest itself). */
  stop(): void {
    for (const t of [this.shedTimer, this.drainTimer, this.cutOffTimer]) t?.cancel();
    this.shedTimer = this.drainTimer = this.cutOffTimer = undefined;
  }

  private open(): Connection[] {
    return [...this.o.connections()].filter((c) => c.open);
  }

  private jitter(ms: number): number {
    return ms * (0.9 + 0.2 * this.o.random());
  }

  private armShed(): void {
    this.shedTimer = this.o.clock.setTimeout(() => this.shedTick(), this.jitter(this.o.shedIntervalMs)).unref();
  }

  private shedTick(): void {
    try {
      this.shedOne();
    } catch (err) {
      // A bug here must not stop shedding for good, nor take the server down.
      this.o.log?.error({ err }, 'shedding step failed');
    }
    if (this.draining === undefined) this.armShed();
  }

  /** Sheds one agent when over the target; returns it (tests), or undefined. */
  shedOne(): Connection | undefined {
    const target = this.o.governor.targetConnections;
    if (target === undefined || this.o.governor.isDraining) return undefined;
    const open = this.open();
    if (open.length <= target) return undefined;
    const victim = pickVictim(open, shedRank, this.o.random);
    if (victim === undefined) {
      this.o.log?.debug({ open: open.length, target }, 'over target, but every agent is in its handshake or snapshot; shedding later');
      return undefined;
    }
    const delay = Math.floor(this.o.random() * Math.min(this.o.shedIntervalMs, SHED_RECONNECT_SPREAD_MAX_MS));
    this.o.log?.info({ conn: victim.id, node: victim.node, open: open.length, target, reconnectDelayMs: delay }, 'shedding an agent above the target share');
    this.flushFirst();
    victim.fail('CATTAIL_SERVER_SHED', `this replica holds ${open.length} agents, above its target of ${target}; try another`, 'shed', delay, this.o.governor.hint());
    this.o.metrics.connectionsShed.inc({ reason: 'over-target' });
    return victim;
  }

  /**
   * The paced drain: refuse new agents, close the open ones one at a time, and resolve when the
   * last is gone or shutdownTimeoutMs has passed (the rest closed at once just before). Idempotent.
   */
  /**
   * The pending flush before a deliberate close (see flushPending), its failure kept to itself: it
   * runs in the shed and drain timers and in shutdown, where a throw crashed the process mid-drain
   * (every agent at once, 1006: what the paced drain is there to avoid) or rejected shutdown()
   * before the upstream and the transport were stopped. The agent still gets its GOODBYE; its
   * STATUS may lag, as with no flush at all.
   */
  private flushFirst(): void {
    try {
      this.o.flushPending?.();
    } catch (err) {
      this.o.log?.error({ err }, 'the flush before closing agents failed; closing them anyway');
    }
  }

  drain(): Promise<void> {
    this.draining ??= this.runDrain();
    return this.draining;
  }

  private async runDrain(): Promise<void> {
    const { clock, governor, shutdownTimeoutMs } = this.o;
    governor.drain();
    this.shedTimer?.cancel();
    const start = clock.monotonic();
    const cutOffMs = Math.max(0, shutdownTimeoutMs - CLOSE_WAIT_MS);
    this.paceEndMs = start + cutOffMs * DRAIN_PACE_SHARE;
    const n = this.open().length;
    this.o.log?.info({ agents: n, shutdownTimeoutMs, peers: governor.peerEndpoints.length }, 'draining: refusing new agents, closing the open ones one at a time');
    this.cutOffTimer = clock.setTimeout(() => this.closeRest('drain-timeout'), cutOffMs);
    if (n > 0) this.drainTimer = clock.setTimeout(() => this.drainTick(), this.nextDrainGapMs(n));
    await this.o.whenEmpty(Math.max(shutdownTimeoutMs, CLOSE_WAIT_MS));
    this.stop();
  }

  /** The gap to the next paced close: the time left shared by the agents left, jittered. */
  private nextDrainGapMs(remaining: number): number {
    const left = Math.max(0, this.paceEndMs - this.o.clock.monotonic());
    return this.jitter(Math.min(DRAIN_MAX_INTERVAL_MS, left / Math.max(1, remaining)));
  }

  private drainTick(): void {
    this.drainTimer = undefined;
    const open = this.open();
    const victim = pickVictim(open, drainRank, this.o.random);
    if (victim === undefined) return;
    const gap = this.nextDrainGapMs(open.length - 1);
    // Closes come one per gap; a delay within one gap smooths the arrivals at the peers further
    // without holding any agent away from a server for long.
    const delay = Math.floor(this.o.random() * Math.max(gap, 1));
    this.flushFirst();
    victim.fail('CATTAIL_SERVER_SHUTTING_DOWN', 'server shutting down; try another replica', 'shutdown', delay, this.o.governor.hint());
    this.o.metrics.connectionsShed.inc({ reason: 'drain' });
    if (open.length > 1) this.drainTimer = this.o.clock.setTimeout(() => this.drainTick(), gap);
  }

  /**
   * GOODBYE + 4010 to every open agent at once (the drain's cut-off, a second signal, or a close
   * without a drain), each with a reconnect delay spread over a window that grows with their
   * number, so that even this does not become a reconnect storm at the peers.
   */
  closeRest(reason: Exclude<ShedReason, 'over-target' | 'drain'>): number {
    const open = this.open();
    if (open.length === 0) return 0;
    const spreadMs = Math.min(AT_ONCE_SPREAD_MAX_MS, open.length * AT_ONCE_SPREAD_PER_AGENT_MS);
    this.o.log?.info({ agents: open.length, reason, spreadMs }, 'closing the remaining agents at once');
    this.flushFirst();
    for (const conn of open) {
      const delay = Math.floor(this.o.random() * spreadMs);
      conn.fail('CATTAIL_SERVER_SHUTTING_DOWN', 'server shutting down; try another replica', 'shutdown', delay, this.o.governor.hint());
      this.o.metrics.connectionsShed.inc({ reason });
    }
    return open.length;
  }
}
