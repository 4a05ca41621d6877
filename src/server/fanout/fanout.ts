/**
 * The fan-out: per-client cursors over each feed's revisions, one encoding per frame. This file
 * wires its parts and is the connections' host; each part is one concept:
 *
 *   flush.ts     the shared unit: one DELTA per feed and flush, same Buffers to every caught-up socket
 *   service.ts   per connection: snapshot streaming and compacted catch-ups for agents the flush skipped
 *   session.ts   HELLO → WELCOME → resume or snapshot (answered in service turns); ACK (lag) and PONG (liveness)
 *   convergence.ts  the barrier: waiters judged on HELLO, ACK and close (applied-watermarks.ts)
 *   sweep.ts     one interval for every socket: deadlines and pings
 *   shed.ts      closing agents on purpose: shedding above the target, the paced drain
 *   stats.ts     the counters the metrics are built from
 *
 * Invariants (see DESIGN.md "Fan-out"):
 *  - A cursor only moves forward, and only by frames written in order on its socket, so an agent
 *    never sees an older state than one it applied.
 *  - Nothing per client is queued in userland; a stalled socket is never written to above the
 *    high-water mark, so it delays nobody.
 */
import { CLOSE_CODES, type HelloMessage } from '../../../proto/index.js';
import type { Connection, ConnectionHost, FeedCursor } from '../transport/connection.js';
import { FanOutContext, type FanOutOptions } from './context.js';
import type { ConvergenceTracker } from './convergence.js';
import { Flusher } from './flush.js';
import { ServiceQueue } from './service.js';
import { Session } from './session.js';
import type { FanOutStats } from './stats.js';
import { Sweeper } from './sweep.js';

/** Close codes the closes metric labels by number (PROTOCOL.md §1.3, and 1005: no code given). */
const LISTED_CLOSE_CODES: ReadonlySet<number> = new Set([...Object.values(CLOSE_CODES).map((c) => c.code), 1005]);

export type { FanOutOptions } from './context.js';

export class FanOut implements ConnectionHost {
  private readonly ctx: FanOutContext;
  private readonly service: ServiceQueue;
  private readonly flusher: Flusher;
  private readonly session: Session;
  private readonly sweeper: Sweeper;
  private readonly emptyWaiters: (() => void)[] = [];

  constructor(o: FanOutOptions) {
    this.ctx = new FanOutContext(o);
    this.service = new ServiceQueue(this.ctx);
    this.flusher = new Flusher(this.ctx, this.service);
    this.session = new Session(this.ctx, this.service);
    this.service.answerHello = (conn, m) => this.session.onHello(conn, m);
    this.sweeper = new Sweeper(this.ctx, this.service);
  }

  get connections(): ReadonlySet<Connection> {
    return this.ctx.connections;
  }

  get convergence(): ConvergenceTracker {
    return this.ctx.convergence;
  }

  get stats(): FanOutStats {
    return this.ctx.stats;
  }

  get sweepIntervalMs(): number {
    return this.sweeper.intervalMs;
  }

  get lastSweepMs(): number {
    return this.sweeper.lastSweepMs;
  }

  get lastFlushMs(): number {
    return this.flusher.lastFlushMs;
  }

  /** The service round's cached catch-up frames (entries and bytes). */
  get catchUpCache(): { entries: number; bytes: number } {
    return this.service.cachedCatchUps();
  }

  /** Connections waiting in the service queue. */
  get serviceQueueLength(): number {
    return this.service.length;
  }

  start(): void {
    this.sweeper.start();
  }

  stop(): void {
    this.sweeper.stop();
    this.flusher.stop();
  }

  add(conn: Connection): void {
    conn.connectedAtMs = this.ctx.o.clock.now();
    this.ctx.connections.add(conn);
    this.ctx.o.metrics.connectionsAccepted.inc();
    this.ctx.o.metrics.connectionsActive.inc();
  }

  scheduleFlush(): void {
    this.flusher.schedule();
  }

  flush(): void {
    this.flusher.flush();
  }

  sweep(): void {
    this.sweeper.sweep();
  }

  // ---- connection host ------------------------------------------------------------------------

  onHello(conn: Connection, m: HelloMessage): void {
    this.service.queueHello(conn, m);
  }

  /** HELLOs received and not yet answered. */
  get handshakeQueueLength(): number {
    return this.service.hellosWaiting;
  }

  onAck(_conn: Connection, cursor: FeedCursor, revision: number): void {
    this.session.onAck(cursor, revision);
  }

  onRepairRequest(conn: Connection, cursor: FeedCursor, revision: number, sums: Buffer): void {
    this.session.onRepairRequest(conn, cursor, revision, sums);
  }

  onPong(conn: Connection, t: number): void {
    this.session.onPong(conn, t);
  }

  /**
   * Runs the pending flush now when a feed's store is ahead of what was flushed. Not from inside
   * fail(): a flush writes to every socket, and fail() can be reached with a batch open.
   */
  flushIfBehind(): void {
    if (this.ctx.o.feeds.some((f) => f.store.revision !== f.flushedRevision)) this.flusher.flush();
  }

  owedStatus(conn: Connection): Buffer[] {
    const out: Buffer[] = [];
    const min = this.ctx.o.compressMinBytes;
    for (const cursor of conn.cursors) {
      const feed = cursor.feed;
      if (cursor.phase === 'live' && cursor.revision < feed.store.revision && feed.scope !== undefined && !conn.scopeWatermarks) {
        // A scoped agent behind, without scope.watermarks: a STATUS held back (§4.7, up to a
        // second) may never have followed its last units, and none at its revision can be made
        // now (its node's digest at that revision is gone). Without one it left with the token
        // and watermarks of an older state, and the next replica could serve it a snapshot
        // older than what it holds. So its catch-up to now, then the STATUS of now, when the
        // catch-up is one that would be built for it (else GOODBYE goes without, as before).
        out.push(...this.service.catchUpForGoodbye(conn, cursor));
        continue;
      }
      // Only at the store's revision: a STATUS is at the revision it names, and the agent must
      // hold it (an agent behind, or in its snapshot, is owed nothing it could apply).
      if (cursor.phase !== 'live' || cursor.revision !== feed.store.revision) continue;
      if (cursor.statusKey === feed.baseStatusKey()) continue;
      const st = feed.statusFrame(min, conn.scopeNode);
      cursor.statusKey = feed.baseStatusKey();
      out.push(st.frame);
    }
    return out;
  }

  onDrain(conn: Connection): void {
    if (conn.needsService) this.service.queue(conn);
  }

  onClosed(conn: Connection, code: number): void {
    if (!this.ctx.connections.delete(conn)) return;
    if (this.ctx.connections.size === 0) for (const w of this.emptyWaiters.splice(0)) w();
    this.service.forget(conn);
    this.ctx.convergence.onAgentLeft(conn);
    const m = this.ctx.o.metrics;
    m.connectionsActive.dec();
    // The code may be the agent's (its close frame): only the codes PROTOCOL.md lists are kept as
    // labels, the rest count as `other`, so a client cannot grow the metric's series.
    m.connectionsClosed.inc({ code: LISTED_CLOSE_CODES.has(code) ? String(code) : 'other' });
    for (const c of conn.cursors) m.connectionsStreaming.dec({ feed: c.feed.name });
  }

  // ---- shutdown -------------------------------------------------------------------------------

  /** Resolves when no connection is left, or after `timeoutMs` on the injected clock, whichever is first. */
  whenEmpty(timeoutMs: number): Promise<void> {
    if (this.ctx.connections.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = this.ctx.o.clock.setTimeout(done, timeoutMs);
      function done(): void {
        timer.cancel();
        resolve();
      }
      this.emptyWaiters.push(done);
    });
  }
}
