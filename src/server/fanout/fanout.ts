/**
 * The fan-out: per-client cursors over each feed's revisions, one encoding per frame.
 *
 *   batch applied ──► scheduleFlush (flushWindowMs) ──► flush():
 *       per feed: since(flushedRevision) ──► ONE shared DELTA unit (+ STATUS), encoded lazily once
 *                 per compression, WebSocket-framed
 *       per connection: cork ─ same Buffers for every caught-up feed ─ uncork   (≈ one syscall)
 *           socket above socketHighWaterBytes ──► skipped; cursor stays; needsService
 *   socket 'drain' / snapshot progress / skipped ──► service queue (bounded batch per loop turn):
 *       snapshot phase: stream shared snapshot frames while under the high-water mark
 *       live but behind: ONE compacted catch-up DELTA from its revision (since()), or an in-band
 *                        snapshot when the revision left the delta log
 *   sweep (one interval for every socket): handshake, pong, fall-behind deadlines; pings
 *
 * Invariants:
 *  - A cursor only moves forward, and only by frames written in order on its socket, so an agent
 *    never sees an older state than one it applied.
 *  - Nothing per client is queued in userland: a slow agent costs its cursor, its socket's own
 *    buffer (bounded by the high-water mark plus one flush), and frames built for it alone
 *    (bounded by maxClientBytes).
 *  - A stalled socket is never written to above the high-water mark, so it delays nobody.
 *
 * Rejected: per-client queues (memory grows with lag × clients, Typha rejected them too); ws's
 * send() per client (frames per socket); waiting for ACKs as flow control (socket backpressure is
 * the real signal; ACKs only measure lag).
 */
import type { Clock, Timer } from '../../clock.js';
import type { Logger } from '../../log.js';
import { type Connection, type ConnectionHost, type FeedCursor } from '../transport/connection.js';
import { type FeedRuntime, statusKey } from './feeds.js';
import type { HelloMessage } from '../../../proto/index.js';
import { checkHello, chooseCompression, planFeeds, welcomeFrame } from './handshake.js';
import type { ServerMetrics } from '../ops/metrics.js';
import type { SnapshotCache } from './snapshot-cache.js';
import type { StoreEntry } from '../pipeline/store-port.js';
import { type Compression, CloseCode, encodeDelta, encodeMessage } from '../transport/framing.js';

export interface FanOutOptions {
  readonly clock: Clock;
  readonly metrics: ServerMetrics;
  readonly log: Logger | undefined;
  readonly serverId: string;
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
  readonly maxInboundBytes: number;
  readonly maxFrameBytes: number;
  readonly compressMinBytes: number;
}

/** Connections serviced per event-loop turn: starting 5,000 snapshot sends never blocks for long. */
const SERVICE_BATCH = 256;
/** How long a closing socket may take to finish the closing handshake before it is destroyed. */
const CLOSE_GRACE_MS = 2_000;

interface SharedUnit {
  readonly feed: FeedRuntime;
  readonly from: number;
  readonly to: number;
  readonly upserts: readonly StoreEntry[];
  readonly deletes: readonly string[];
  readonly hasDelta: boolean;
  /** Encoded frames per compression, then per frame size (no string keys on the per-socket path). */
  readonly frames: Map<Compression, Map<number, Buffer[]>>;
  /** The STATUS at `to`, computed once per flush. */
  status: { key: string; frame: Buffer } | undefined;
  /** DELTA frames + STATUS in one Buffer per compression and frame size: one plain write per socket. */
  readonly withStatus: Map<Compression, Map<number, Buffer>>;
}

export class FanOut implements ConnectionHost {
  readonly connections = new Set<Connection>();
  private readonly byName: ReadonlyMap<string, FeedRuntime>;
  private flushPending = false;
  private flushTimer: Timer | undefined;
  private readonly serviceQueue = new Set<Connection>();
  private serviceScheduled = false;
  private sweepTimer: Timer | undefined;
  private catchUpCache = new Map<string, Buffer[]>();
  private readonly emptyWaiters: (() => void)[] = [];
  readonly sweepIntervalMs: number;
  lastSweepMs: number;
  lastFlushMs: number;
  /** Counters for tests and benches. */
  readonly counts = { pings: 0, pongs: 0, flushes: 0, deltaUnitsEncoded: 0, deltaBytesEncoded: 0, corkedWrites: 0, skips: 0, catchUps: 0, inBandSnapshots: 0 };

  constructor(private readonly o: FanOutOptions) {
    this.byName = new Map(o.feeds.map((f) => [f.name, f]));
    this.sweepIntervalMs = Math.max(5, Math.min(1_000, Math.floor(Math.min(o.pingIntervalMs, o.pongTimeoutMs, o.handshakeTimeoutMs, o.maxFallBehindMs) / 4)));
    this.lastSweepMs = o.clock.monotonic();
    this.lastFlushMs = this.lastSweepMs;
  }

  start(): void {
    this.sweepTimer = this.o.clock.setInterval(() => this.guarded('sweep', () => this.sweep()), this.sweepIntervalMs).unref();
  }

  stop(): void {
    this.sweepTimer?.cancel();
    this.flushTimer?.cancel();
    this.sweepTimer = undefined;
  }

  add(conn: Connection): void {
    this.connections.add(conn);
    this.o.metrics.connectionsAccepted.inc();
    this.o.metrics.connectionsActive.inc();
  }

  // ---- flush ----------------------------------------------------------------------------------

  scheduleFlush(): void {
    if (this.flushPending) return;
    this.flushPending = true;
    if (this.o.flushWindowMs === 0) setImmediate(() => this.guarded('flush', () => this.flush()));
    else this.flushTimer = this.o.clock.setTimeout(() => this.guarded('flush', () => this.flush()), this.o.flushWindowMs);
  }

  /**
   * Runs a timer-driven step so that a bug in it is logged instead of ending the process: one
   * broken flush must not take 5,000 agents' server down with it (they would all resync).
   */
  private guarded(what: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.o.log?.error({ err, what }, 'fan-out step failed');
    }
  }

  flush(): void {
    this.flushPending = false;
    this.flushTimer = undefined;
    const now = this.o.clock.monotonic();
    this.lastFlushMs = now;
    this.catchUpCache = new Map();
    const units: (SharedUnit | undefined)[] = [];
    let any = false;
    for (const feed of this.o.feeds) {
      const rev = feed.store.revision;
      const sk = statusKey(rev, feed.store.meta());
      if (rev === feed.flushedRevision && sk === feed.flushedStatusKey) continue;
      let unit: SharedUnit = { feed, from: feed.flushedRevision, to: rev, upserts: [], deletes: [], hasDelta: false, frames: new Map(), status: undefined, withStatus: new Map() };
      if (rev > feed.flushedRevision) {
        const s = feed.store.since(feed.flushedRevision);
        // too-old here means the log was trimmed past our own flush point: live agents at the old
        // revision are then behind and get an in-band snapshot from service().
        if (s.kind === 'delta') unit = { ...unit, upserts: s.upserts, deletes: s.deletes, hasDelta: true };
        feed.recordFlush(rev, now);
      }
      feed.flushedRevision = rev;
      feed.flushedStatusKey = sk;
      this.o.metrics.feedRevision.set({ feed: feed.name }, rev);
      units[feed.id] = unit;
      any = true;
    }
    if (!any) return;
    this.counts.flushes++;
    const hwm = this.o.socketHighWaterBytes;
    // Metrics are summed here and recorded once: a labelled prom-client update per socket would
    // cost more than the write it counts.
    let writes = 0;
    let totalBytes = 0;
    for (const conn of this.connections) {
      if (conn.state !== 'streaming') continue;
      const above = conn.writableBytes > hwm;
      let corked = false;
      let bytes = 0;
      for (const cursor of conn.cursors) {
        const u = units[cursor.feed.id];
        if (u === undefined || cursor.phase !== 'live') continue;
        if (u.hasDelta && cursor.revision === u.from) {
          if (above) {
            this.markBehind(conn, cursor, now);
            this.counts.skips++;
            this.o.metrics.clientsSkipped.inc({ feed: cursor.feed.name }); // rare: only for backed-up sockets
            continue;
          }
          if (!corked) { conn.cork(); corked = true; }
          const st = (u.status ??= cursor.feed.statusFrame(this.o.compressMinBytes));
          if (st.key !== cursor.statusKey) {
            bytes += conn.writeShared([this.unitWithStatus(u, conn, st.frame)]);
            cursor.statusKey = st.key;
          } else {
            bytes += conn.writeShared(this.unitFrames(u, conn));
          }
          cursor.revision = u.to;
          continue;
        } else if (cursor.revision < cursor.feed.flushedRevision) {
          this.markBehind(conn, cursor, now);
          continue;
        }
        if (!above && cursor.revision === cursor.feed.flushedRevision) {
          const st = (u.status ??= cursor.feed.statusFrame(this.o.compressMinBytes));
          if (st.key !== cursor.statusKey) {
            if (!corked) { conn.cork(); corked = true; }
            bytes += conn.writeShared([st.frame]);
            cursor.statusKey = st.key;
          }
        }
      }
      if (corked) {
        conn.uncork();
        writes++;
        totalBytes += bytes;
      }
      if (conn.needsService && !above) this.queueService(conn);
    }
    this.counts.corkedWrites += writes;
    if (writes > 0) {
      this.o.metrics.writes.inc(writes);
      this.o.metrics.bytesWritten.inc({ kind: 'shared' }, totalBytes);
    }
  }

  private markBehind(conn: Connection, cursor: FeedCursor, now: number): void {
    cursor.behindSinceMs ??= now;
    conn.needsService = true;
  }

  private unitWithStatus(u: SharedUnit, conn: Connection, status: Buffer): Buffer {
    let bySize = u.withStatus.get(conn.compression);
    if (bySize === undefined) u.withStatus.set(conn.compression, (bySize = new Map()));
    let buf = bySize.get(conn.maxBodyBytes);
    if (buf === undefined) bySize.set(conn.maxBodyBytes, (buf = Buffer.concat([...this.unitFrames(u, conn), status])));
    return buf;
  }

  private unitFrames(u: SharedUnit, conn: Connection): Buffer[] {
    let bySize = u.frames.get(conn.compression);
    if (bySize === undefined) u.frames.set(conn.compression, (bySize = new Map()));
    let frames = bySize.get(conn.maxBodyBytes);
    if (frames === undefined) {
      frames = encodeDelta(u.feed.id, u.from, u.to, u.upserts, u.deletes, conn.compression, conn.maxBodyBytes, this.o.compressMinBytes);
      bySize.set(conn.maxBodyBytes, frames);
      const n = frames.reduce((s, f) => s + f.length, 0);
      this.counts.deltaUnitsEncoded++;
      this.counts.deltaBytesEncoded += n;
      this.o.metrics.deltasEncoded.inc({ feed: u.feed.name });
      this.o.metrics.deltaBytesEncoded.inc({ feed: u.feed.name }, n);
    }
    return frames;
  }

  // ---- service: snapshots and catch-ups ---------------------------------------------------------

  queueService(conn: Connection): void {
    if (!conn.open) return;
    this.serviceQueue.add(conn);
    if (this.serviceScheduled) return;
    this.serviceScheduled = true;
    setImmediate(() => this.guarded('service', () => this.runServiceQueue()));
  }

  private runServiceQueue(): void {
    this.serviceScheduled = false;
    let n = 0;
    for (const conn of this.serviceQueue) {
      if (n++ >= SERVICE_BATCH) break;
      this.serviceQueue.delete(conn);
      this.service(conn);
    }
    if (this.serviceQueue.size > 0 && !this.serviceScheduled) {
      this.serviceScheduled = true;
      setImmediate(() => this.guarded('service', () => this.runServiceQueue()));
    }
  }

  /** Brings one connection as far forward as its socket allows. */
  service(conn: Connection): void {
    if (conn.state !== 'streaming') return;
    const hwm = this.o.socketHighWaterBytes;
    const now = this.o.clock.monotonic();
    let pending = false;
    let shared = 0;
    conn.cork();
    try {
      for (const cursor of conn.cursors) {
        if (conn.state !== 'streaming') return;
        if (cursor.phase === 'snapshot') {
          shared += this.pumpSnapshot(conn, cursor, now);
          if (cursor.phase === 'snapshot') { pending = true; continue; }
        }
        const feed = cursor.feed;
        if (cursor.revision < feed.store.revision && cursor.revision < feed.flushedRevision) {
          if (conn.writableBytes > hwm) { pending = true; continue; }
          // Agents that fell behind together (a burst, a slow network segment) sit at the same
          // revision: their catch-up is computed and encoded once per service round.
          const to = feed.store.revision;
          const key = `${feed.id}:${cursor.revision}:${to}:${conn.compression}:${conn.maxBodyBytes}`;
          let frames = this.catchUpCache.get(key);
          if (frames === undefined) {
            const s = feed.store.since(cursor.revision);
            if (s.kind !== 'delta') {
              this.startSnapshot(conn, cursor, now, true);
              shared += this.pumpSnapshot(conn, cursor, now);
              pending ||= (cursor.phase as FeedCursor['phase']) === 'snapshot';
              continue;
            }
            frames = encodeDelta(feed.id, s.from, s.to, s.upserts, s.deletes, conn.compression, conn.maxBodyBytes, this.o.compressMinBytes);
            this.catchUpCache.set(key, frames);
          }
          if (!conn.writeOwn(frames)) return;
          this.o.metrics.bytesWritten.inc({ kind: 'own' }, frames.reduce((a, f) => a + f.length, 0));
          cursor.revision = to;
          cursor.behindSinceMs = undefined;
          this.counts.catchUps++;
          this.o.metrics.catchUps.inc({ feed: feed.name });
        }
        if (cursor.phase === 'live' && cursor.revision === feed.store.revision && conn.writableBytes <= hwm) {
          const st = feed.statusFrame(this.o.compressMinBytes);
          if (st.key !== cursor.statusKey) {
            shared += conn.writeShared([st.frame]);
            cursor.statusKey = st.key;
          }
        } else if (cursor.revision < feed.flushedRevision || cursor.statusKey !== feed.flushedStatusKey) {
          pending = true;
        }
      }
      conn.needsService = pending;
    } finally {
      conn.uncork();
      this.o.metrics.writes.inc();
      if (shared > 0) this.o.metrics.bytesWritten.inc({ kind: 'shared' }, shared);
    }
  }

  private startSnapshot(conn: Connection, cursor: FeedCursor, now: number, inBand: boolean): void {
    const build = this.o.cache.acquire(cursor.feed, conn.compression, conn.maxBodyBytes);
    cursor.snapshot?.unsubscribe();
    cursor.phase = 'snapshot';
    cursor.snapshot = { build, next: 0, unsubscribe: build.subscribe(() => this.queueService(conn)) };
    cursor.behindSinceMs ??= now;
    cursor.graceUntilMs = now + this.o.newClientGracePeriodMs;
    if (inBand) {
      this.counts.inBandSnapshots++;
      this.o.metrics.inBandSnapshots.inc({ feed: cursor.feed.name });
    }
  }

  /** Writes available snapshot frames while the socket is under its high-water mark. */
  private pumpSnapshot(conn: Connection, cursor: FeedCursor, now: number): number {
    const snap = cursor.snapshot;
    if (snap === undefined) return 0;
    const { build } = snap;
    if (build.failed !== undefined) {
      this.o.log?.error({ err: build.failed, feed: cursor.feed.name }, 'snapshot build failed');
      conn.fail(CloseCode.INTERNAL_ERROR, 'CATTAIL_INTERNAL', `snapshot of feed ${cursor.feed.name} could not be built`);
      return 0;
    }
    let bytes = 0;
    while (snap.next < build.frames.length && conn.writableBytes <= this.o.socketHighWaterBytes) {
      bytes += conn.writeShared([build.frames[snap.next] as Buffer]);
      snap.next++;
    }
    if (build.done && snap.next === build.frames.length) {
      snap.unsubscribe();
      cursor.snapshot = undefined;
      cursor.phase = 'live';
      cursor.revision = build.revision;
      const v = cursor.feed.store.meta();
      // END carried the status of the snapshot's revision; a newer one goes out after the catch-up.
      cursor.statusKey = build.revision === cursor.feed.store.revision ? statusKey(build.revision, v) : undefined;
      cursor.graceUntilMs = now + this.o.newClientGracePeriodMs;
      cursor.behindSinceMs = build.revision < cursor.feed.flushedRevision ? now : undefined;
    }
    return bytes;
  }

  // ---- connection host ------------------------------------------------------------------------

  onHello(conn: Connection, m: HelloMessage): void {
    const hello = checkHello(m);
    const now = this.o.clock.monotonic();
    const plans = planFeeds(hello, this.byName, this.o.serverId, this.o.maxClientBytes);
    conn.node = hello.node;
    conn.clientId = hello.clientId;
    conn.compression = chooseCompression(hello.caps, this.o.compressions);
    conn.maxBodyBytes = Math.min(this.o.maxFrameBytes, hello.maxFrameBytes ?? Infinity);
    const welcome = welcomeFrame(plans, {
      serverId: this.o.serverId, pingIntervalMs: this.o.pingIntervalMs, pongTimeoutMs: this.o.pongTimeoutMs,
      maxFrameBytes: conn.maxBodyBytes, maxInboundBytes: this.o.maxInboundBytes, compression: conn.compression,
    });
    conn.state = 'streaming';
    conn.lastPongMs = now;
    conn.nextPingMs = now + this.jitteredPingMs();
    conn.cork();
    try {
      if (!conn.writeOwn([welcome])) return;
      for (const p of plans) {
        const cursor: FeedCursor = {
          feed: p.feed, revision: 0, phase: 'live', snapshot: undefined, statusKey: undefined,
          behindSinceMs: undefined, graceUntilMs: now + this.o.newClientGracePeriodMs, graceCounted: false, ackedRevision: 0,
        };
        conn.cursors.push(cursor);
        this.o.metrics.connectionsStreaming.inc({ feed: p.feed.name });
        if (p.mode === 'resume') {
          const s = p.since;
          const frames = encodeDelta(p.feed.id, s.from, s.to, s.upserts, s.deletes, conn.compression, conn.maxBodyBytes, this.o.compressMinBytes);
          if (!conn.writeOwn(frames)) return;
          cursor.revision = s.to;
          // The protocol promises a STATUS after a resume's DELTA (§1.2), even when nothing changed.
          const st = p.feed.statusFrame(this.o.compressMinBytes);
          conn.writeShared([st.frame]);
          cursor.statusKey = st.key;
          this.counts.catchUps++;
          this.o.metrics.catchUps.inc({ feed: p.feed.name });
          if (cursor.revision < p.feed.flushedRevision) conn.needsService = true;
        } else {
          this.startSnapshot(conn, cursor, now, false);
          conn.needsService = true;
        }
      }
    } finally {
      conn.uncork();
    }
    this.o.log?.debug({ conn: conn.id, node: conn.node, clientId: conn.clientId, feeds: plans.map((p) => `${p.feed.name}:${p.mode}`) }, 'agent streaming');
    if (conn.needsService) this.queueService(conn);
  }

  onAck(conn: Connection, cursor: FeedCursor, revision: number): void {
    cursor.ackedRevision = Math.max(cursor.ackedRevision, revision);
    const lag = cursor.feed.lagMs(revision, this.o.clock.monotonic());
    this.o.metrics.clientLag.observe({ feed: cursor.feed.name }, lag / 1000);
  }

  onPong(conn: Connection, t: number): void {
    const now = this.o.clock.monotonic();
    conn.lastPongMs = now;
    this.counts.pongs++;
    if (t <= now && now - t < 3_600_000) this.o.metrics.pingLatency.observe((now - t) / 1000);
  }

  onDrain(conn: Connection): void {
    if (conn.needsService) this.queueService(conn);
  }

  /** Resolves when no connection is left (or after `timeoutMs`, whichever is first). */
  whenEmpty(timeoutMs: number): Promise<void> {
    if (this.connections.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.emptyWaiters.push(done);
    });
  }

  onClosed(conn: Connection, code: number): void {
    if (!this.connections.delete(conn)) return;
    if (this.connections.size === 0) for (const w of this.emptyWaiters.splice(0)) w();
    this.serviceQueue.delete(conn);
    this.o.metrics.connectionsActive.dec();
    this.o.metrics.connectionsClosed.inc({ code: String(code) });
    for (const c of conn.cursors) this.o.metrics.connectionsStreaming.dec({ feed: c.feed.name });
  }

  // ---- sweep ----------------------------------------------------------------------------------

  private jitteredPingMs(): number {
    return Math.round(this.o.pingIntervalMs * (0.9 + Math.random() * 0.2));
  }

  /** The one periodic pass over every connection: deadlines and pings. */
  sweep(): void {
    const now = this.o.clock.monotonic();
    this.lastSweepMs = now;
    this.o.cache.purge();
    for (const f of this.o.feeds) this.o.metrics.cacheSize.set({ feed: f.name }, f.store.current().size);
    let ping: Buffer | undefined;
    for (const conn of this.connections) {
      switch (conn.state) {
        case 'handshake':
          if (now >= conn.handshakeDeadlineMs) conn.fail(CloseCode.HANDSHAKE_TIMEOUT, 'CATTAIL_SERVER_HANDSHAKE_TIMEOUT', `no HELLO within handshakeTimeoutMs (${this.o.handshakeTimeoutMs} ms)`);
          break;
        case 'closing':
          if (conn.closeDeadlineMs === 0) conn.closeDeadlineMs = now + CLOSE_GRACE_MS;
          else if (now >= conn.closeDeadlineMs) conn.ws.terminate();
          break;
        case 'streaming':
          if (now - conn.lastPongMs > this.o.pongTimeoutMs) {
            conn.fail(CloseCode.PONG_TIMEOUT, 'CATTAIL_SERVER_PONG_TIMEOUT', `no PONG within pongTimeoutMs (${this.o.pongTimeoutMs} ms)`);
            break;
          }
          if (this.checkFallBehind(conn, now)) break;
          // Safety net: 'drain' fires only after a write returned false (above the socket's own
          // 16 KiB mark); a socket skipped between our high-water mark and that one, on an idle
          // feed, would otherwise wait for the next change.
          if (conn.needsService && conn.writableBytes <= this.o.socketHighWaterBytes) this.queueService(conn);
          if (now >= conn.nextPingMs) {
            ping ??= encodeMessage({ type: 'ping', t: Math.round(now) });
            if (conn.writeOwn([ping])) this.counts.pings++;
            conn.nextPingMs = now + this.jitteredPingMs();
          }
          break;
        default:
          break;
      }
    }
  }

  /** Closes with 4007 an agent behind longer than maxFallBehindMs past its grace; true if closed. */
  private checkFallBehind(conn: Connection, now: number): boolean {
    for (const c of conn.cursors) {
      if (c.behindSinceMs === undefined) continue;
      const ageMs = now - c.behindSinceMs;
      if (ageMs <= this.o.maxFallBehindMs) continue;
      if (now < c.graceUntilMs) {
        if (!c.graceCounted) {
          c.graceCounted = true;
          this.o.metrics.connectionsGraceUsed.inc({ feed: c.feed.name });
        }
        continue;
      }
      this.o.log?.info({ conn: conn.id, node: conn.node, feed: c.feed.name, clientRev: c.revision, latestRev: c.feed.flushedRevision, ageMs }, 'agent fell behind; closing');
      conn.fail(CloseCode.FELL_BEHIND, 'CATTAIL_SERVER_FELL_BEHIND', `feed ${c.feed.name}: behind for ${Math.round(ageMs)} ms (maxFallBehindMs ${this.o.maxFallBehindMs})`, 'fell-behind');
      return true;
    }
    return false;
  }

  /** GOODBYE + 4010 to every connection (part 2 paces this over the termination grace period). */
  closeAll(reason: string, message: string): void {
    for (const conn of this.connections) {
      if (conn.open) conn.fail(CloseCode.SHUTTING_DOWN, 'CATTAIL_SERVER_SHUTTING_DOWN', message, reason);
    }
  }
}
