/**
 * The flush: every change applied within flushWindowMs becomes ONE shared DELTA unit per feed,
 * encoded lazily once per (compression, frame size) and written as the same Buffer to every
 * caught-up socket, one write (one syscall) per socket.
 *
 *   batch applied ──► schedule() (flushWindowMs) ──► flush():
 *       per feed: since(flushedRevision) ──► shared unit (+ STATUS at the new revision)
 *       one feed changed: walk feed.live (dense array of live cursors), one plain write each
 *       several changed: walk every connection, one batch (corked if >1 buffer) per socket
 *           socket above socketHighWaterBytes ──► skipped: cursor stays, needsService (service.ts)
 *
 * Invariant: a cursor only moves forward, and only by frames written in order on its socket, so
 * an agent never sees an older state than one it applied. A stalled socket is never written to
 * above the high-water mark, so it delays nobody.
 *
 * Rejected: ws's send() per client (frames per socket: measured ~25 % more CPU per delivery, and
 * a closure per send); per-client queues (memory grows with lag × clients; Typha rejected them too).
 */
import type { Timer } from '../../clock.js';
import type { Connection, FeedCursor } from '../transport/connection.js';
import type { AgentSink } from '../transport/seam.js';
import type { CattailError } from '../../errors.js';
import { type Compression, encodeDelta, isEntryTooLarge } from '../transport/framing.js';
import type { StoreEntry } from '../pipeline/store-port.js';
import type { FanOutContext } from './context.js';
import type { FeedRuntime } from './feeds.js';
import type { ServiceQueue } from './service.js';
import type { SplitChanges } from '../scoping/view.js';
import { encodeNodePart, encodeSharedPart, splitOf } from './scoped.js';

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
  /** DELTA frames alone (several with MORE) in one Buffer, for sockets whose STATUS is current. */
  readonly joined: Map<Compression, Map<number, Buffer>>;
  /** The buffer handed out last and what it was for. */
  last: { compression: Compression; maxBodyBytes: number; withStatus: boolean; buf: Buffer } | undefined;
  /** Frame sizes this unit cannot be encoded for (an entry above them), found once per size. */
  tooLarge: Map<number, CattailError> | undefined;
  /**
   * A scoped feed's unit (#20): the shared part (encoded once per compression and frame size,
   * every frame with MORE) and one part per node with own changes (encoded once per node), then
   * the node's STATUS. Nodes without own changes share one empty DELTA frame ending the unit.
   */
  scoped: ScopedUnit | undefined;
}

interface ScopedUnit {
  readonly split: SplitChanges;
  /** Shared frames joined, per `compression|size` (an empty Buffer: the shared part is empty, not sent). */
  readonly shared: Map<string, Buffer>;
  /** The node parts joined, per `compression|size|n|node` (own changes) or `compression|size|e` (the empty one). */
  readonly tails: Map<string, Buffer>;
  /** The STATUS key of this flush (asked once, not per agent). */
  statusKey: string | undefined;
  /** Shared part + empty node part in one Buffer, for the last encoding asked (see scopedBufferFor). */
  lastPlain: { compression: Compression; maxBodyBytes: number; watermarks: boolean; buf: Buffer } | undefined;
}

/** The second pass of flushOneFeed: sinks and what each gets (reused arrays, emptied after each flush). */
const pending = { sinks: [] as AgentSink[], bufs: [] as Buffer[], conns: [] as Connection[] };

/** Decisions per block of writes in flushOneFeed. */
const WRITE_BLOCK = 128;

/**
 * Writes the first `n` pending buffers to their sinks; returns 0 (the block is empty again). Never
 * throws: a sink that throws (a transport bug) closes its own connection, so the rest of the block
 * is written, and flushOneFeed's finally cannot write a buffer twice.
 */
function writePending(n: number): number {
  const { sinks, bufs, conns } = pending;
  for (let j = 0; j < n; j++) {
    try {
      if (!(sinks[j] as AgentSink).write(bufs[j] as Buffer)) (conns[j] as Connection).notQuiet();
    } catch (err) {
      (conns[j] as Connection).failWith(err);
    }
  }
  return 0;
}

export class Flusher {
  private pending = false;
  private timer: Timer | undefined;
  private digestTimer: Timer | undefined;
  /** A unit's encoding failure was logged in this flush (refuseUnit). */
  private failureLogged = false;
  /** Monotonic ms of the last flush (health: a flush that never comes is a stuck server). */
  lastFlushMs: number;

  constructor(
    private readonly ctx: FanOutContext,
    private readonly service: ServiceQueue,
  ) {
    this.lastFlushMs = ctx.o.clock.monotonic();
  }

  schedule(): void {
    if (this.pending) return;
    this.pending = true;
    const run = (): void => this.ctx.guarded('flush', () => this.flush());
    // flushWindowMs 0 means "after this loop turn": a batch applied in one turn is one DELTA.
    if (this.ctx.o.flushWindowMs === 0) setImmediate(run);
    else this.timer = this.ctx.o.clock.setTimeout(run, this.ctx.o.flushWindowMs);
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.digestTimer?.cancel();
    this.digestTimer = undefined;
  }

  /**
   * Scoped feeds that owe their agents a STATUS (FeedRuntime.currentStatusKey holds one back for
   * up to SCOPED_DIGEST_INTERVAL_MS) get it when it is due: one timer for the earliest, then a flush.
   */
  private scheduleDigests(): void {
    if (this.digestTimer !== undefined) return;
    let due = Infinity;
    for (const f of this.ctx.o.feeds) due = Math.min(due, f.statusDueAtMs() ?? Infinity);
    if (due === Infinity) return;
    const { clock } = this.ctx.o;
    this.digestTimer = clock.setTimeout(() => this.ctx.guarded('status', () => {
      this.digestTimer = undefined;
      const now = clock.monotonic();
      for (const f of this.ctx.o.feeds) {
        const at = f.statusDueAtMs();
        if (at !== undefined && at <= now) f.promoteStatus();
      }
      this.schedule();
      this.scheduleDigests();
    }), Math.max(0, due - clock.monotonic()));
  }

  flush(): void {
    const { o, stats } = this.ctx;
    this.pending = false;
    // Called early (FanOut.flushIfBehind, before GOODBYEs): the scheduled run has nothing left.
    this.timer?.cancel();
    this.timer = undefined;
    this.failureLogged = false;
    const now = o.clock.monotonic();
    this.lastFlushMs = now;
    this.service.newRound();
    const units = this.buildUnits(now);
    this.scheduleDigests();
    if (units === undefined) return;
    stats.flushes++;
    const changed = units.filter((u) => u !== undefined);
    const { writes, bytes } = changed.length === 1 ? this.flushOneFeed(changed[0] as SharedUnit, now) : this.flushAll(units, now);
    stats.flushWrites += writes;
    // Once per flush: how long the loop was busy encoding and handing frames to sockets.
    o.metrics.flushDuration.observe(Math.max(0, o.clock.monotonic() - now) / 1000);
    stats.sharedBytes += bytes;
  }

  /**
   * The common case, one feed changed: walk that feed's dense list of live cursors. Each socket
   * gets one buffer (DELTA frames, with the STATUS appended when it changed), so a plain write,
   * never a cork. Counts are summed here and recorded once per flush, not per socket.
   */
  private flushOneFeed(u: SharedUnit, now: number): { writes: number; bytes: number } {
    const hwm = this.ctx.o.socketHighWaterBytes;
    const list = u.feed.live;
    let writes = 0;
    let bytes = 0;
    let n = 0;
    // Two passes, per block of WRITE_BLOCK sockets. The first decides, per cursor, what its socket
    // gets and moves the cursor; the second only writes. Why: interleaved, every cursor and
    // connection was read right after the previous socket's write syscall had evicted them from
    // cache, one miss after another (most of Cattail's own time in the flush profile); read back
    // to back, their misses overlap. The second pass is the plain `net` loop: sink, buffer,
    // write. Nothing between the passes can change a decision: each connection has one cursor
    // per feed, and a write emits nothing synchronously (drain and errors come later).
    // Backwards: a cursor that leaves the list during the walk swaps in one already visited.
    // The finally writes the block's decided buffers even if the walk throws (a bug; a cursor's own
    // encoding failure is caught in bufferFor): their cursors have already moved to u.to.
    try {
      for (let i = list.length - 1; i >= 0; i--) {
        const cursor = list[i] as FeedCursor;
        const conn = cursor.conn;
        const above = conn.aboveHighWater(hwm);
        const buf = this.bufferFor(u, cursor, above, now);
        if (buf !== undefined) {
          if (Array.isArray(buf)) {
            // A scoped unit: shared part + node part, one corked write. A socket that throws is
            // this connection's failure, never the walk's (the cursors after it would get nothing).
            try {
              conn.beginBatch();
              for (const b of buf) {
                conn.writeShared(b);
                bytes += b.length;
              }
              conn.endBatch();
            } catch (err) {
              conn.failWith(err);
            }
          } else {
            const sink = conn.sinkFor(buf.length);
            if (sink === undefined) {
              try {
                conn.writeShared(buf);
              } catch (err) {
                conn.failWith(err);
              }
            } else {
              pending.sinks[n] = sink;
              pending.bufs[n] = buf;
              pending.conns[n] = conn;
              // In blocks: the first sockets need not wait for every decision (the latency of a
              // change to 5,000 agents), and a block is long enough for the misses to overlap.
              if (++n === WRITE_BLOCK) n = writePending(n);
            }
            bytes += buf.length;
          }
          writes++;
        }
        if (conn.needsService && !above) this.service.queue(conn);
      }
    } finally {
      writePending(n);
      // Not kept past the flush: closed sockets must not stay reachable from here.
      pending.sinks.length = 0;
      pending.bufs.length = 0;
      pending.conns.length = 0;
    }
    return { writes, bytes };
  }

  /**
   * Several feeds changed: walk every connection, so a socket on several of them still gets ONE
   * write (a batch: corked only when it really holds several buffers).
   */
  private flushAll(units: readonly (SharedUnit | undefined)[], now: number): { writes: number; bytes: number } {
    const hwm = this.ctx.o.socketHighWaterBytes;
    let writes = 0;
    let bytes = 0;
    for (const conn of this.ctx.connections) {
      if (conn.state !== 'streaming') continue;
      const above = conn.aboveHighWater(hwm);
      // Per connection: a socket that throws fails its own connection (its cursors already moved
      // past units it did not get), never the walk: the connections after it would get nothing
      // until some later flush found them behind.
      try {
        conn.beginBatch();
        for (const cursor of conn.cursors) {
          if (conn.state !== 'streaming') break; // closed by a unit it cannot take
          const u = units[cursor.feed.id];
          if (u === undefined || cursor.phase !== 'live') continue;
          const buf = this.bufferFor(u, cursor, above, now);
          if (buf !== undefined) {
            for (const b of Array.isArray(buf) ? buf : [buf]) {
              conn.writeShared(b);
              bytes += b.length;
            }
          }
        }
        if (conn.endBatch()) writes++;
      } catch (err) {
        conn.failWith(err);
        continue;
      }
      if (conn.needsService && !above) this.service.queue(conn);
    }
    return { writes, bytes };
  }

  /**
   * What one live cursor gets from its feed's unit: the DELTA (+ STATUS when it changed), a STATUS
   * alone, or nothing (skipped above the high-water mark, or behind: then marked for service).
   */
  private bufferFor(u: SharedUnit, cursor: FeedCursor, above: boolean, now: number): Buffer | Buffer[] | undefined {
    const conn = cursor.conn;
    if (cursor.feed.scope !== undefined) return this.scopedBufferFor(u, cursor, above, now);
    if (u.hasDelta && cursor.revision === u.from) {
      if (above) {
        markBehind(conn, cursor, now);
        cursor.feed.stats.skips++;
        return undefined;
      }
      const st = (u.status ??= cursor.feed.statusFrame(this.ctx.o.compressMinBytes));
      cursor.revision = u.to;
      const withStatus = st.key !== cursor.statusKey;
      if (withStatus) cursor.statusKey = st.key;
      try {
        return this.unitBuffer(u, conn, withStatus ? st.frame : undefined);
      } catch (err) {
        this.refuseUnit(conn, err);
        return undefined;
      }
    }
    if (cursor.revision < cursor.feed.flushedRevision) {
      markBehind(conn, cursor, now);
      return undefined;
    }
    if (cursor.revision === cursor.feed.flushedRevision) {
      const st = (u.status ??= cursor.feed.statusFrame(this.ctx.o.compressMinBytes));
      if (st.key !== cursor.statusKey) {
        // Above the mark the STATUS waits for the drain (the service sends it); dropped, a
        // status-only change (staleness, watermarks) reached it only with the next revision.
        if (above) {
          conn.needsService = true;
          return undefined;
        }
        cursor.statusKey = st.key;
        return st.frame;
      }
    }
    return undefined;
  }

  /** bufferFor for a scoped feed: [shared part, node part + its STATUS], or the node's STATUS alone. */
  private scopedBufferFor(u: SharedUnit, cursor: FeedCursor, above: boolean, now: number): Buffer | Buffer[] | undefined {
    const conn = cursor.conn;
    const feed = cursor.feed;
    const min = this.ctx.o.compressMinBytes;
    const sc = u.scoped;
    if (sc !== undefined && cursor.revision === u.from) {
      if (above) {
        markBehind(conn, cursor, now);
        feed.stats.skips++;
        return undefined;
      }
      // The key first: the frame (the node's digest) is built only when this agent is owed one.
      const key = (sc.statusKey ??= feed.currentStatusKey());
      cursor.revision = u.to;
      const withStatus = key !== cursor.statusKey;
      if (withStatus) cursor.statusKey = key;
      const own = sc.split.byNode.has(conn.scopeNode);
      // The common case, an agent of a node without own changes and no STATUS owed: one Buffer
      // (shared part + the empty DELTA ending the unit [+ the STATUS without digest]) for all of
      // them, as a cluster-wide unit.
      const fast = sc.lastPlain;
      if (!own && !withStatus && fast !== undefined && fast.compression === conn.compression && fast.maxBodyBytes === conn.maxBodyBytes && fast.watermarks === conn.scopeWatermarks) return fast.buf;
      const enc = `${conn.compression}|${conn.maxBodyBytes}`;
      try {
        let shared = sc.shared.get(enc);
        if (shared === undefined) {
          const frames = encodeSharedPart(feed.id, u, sc.split, conn.compression, conn.maxBodyBytes, min);
          shared = frames.length === 1 ? (frames[0] as Buffer) : Buffer.concat(frames);
          sc.shared.set(enc, shared);
          if (shared.length > 0) {
            feed.stats.deltaUnitsEncoded++;
            feed.stats.deltaBytesEncoded += shared.length;
          }
        }
        // Nodes without own changes share one node part: the empty DELTA that ends the unit.
        const partKey = own ? `${enc}|n|${conn.scopeNode}` : `${enc}|e`;
        let part = sc.tails.get(partKey);
        if (part === undefined) {
          const frames = encodeNodePart(feed.id, u, sc.split, own ? conn.scopeNode : undefined, conn.compression, conn.maxBodyBytes, min);
          part = frames.length === 1 ? (frames[0] as Buffer) : Buffer.concat(frames);
          sc.tails.set(partKey, part);
          if (own) {
            feed.stats.deltaUnitsEncoded++;
            feed.stats.deltaBytesEncoded += part.length;
          }
        }
        // No digest-bearing STATUS owed: an agent with scope.watermarks still gets the revision's
        // watermarks and token (PROTOCOL.md §4.7), one frame shared by every node.
        const undigested = !withStatus && conn.scopeWatermarks ? feed.undigestedStatusFrame(min) : undefined;
        if (!own && !withStatus) {
          const plainKey = `${enc}|p|${undigested === undefined ? 0 : 1}`;
          let buf = sc.tails.get(plainKey);
          if (buf === undefined) {
            const pieces = [shared, part, undigested].filter((b): b is Buffer => b !== undefined && b.length > 0);
            sc.tails.set(plainKey, (buf = pieces.length === 1 ? (pieces[0] as Buffer) : Buffer.concat(pieces)));
          }
          sc.lastPlain = { compression: conn.compression, maxBodyBytes: conn.maxBodyBytes, watermarks: conn.scopeWatermarks, buf };
          return buf;
        }
        // The node's STATUS (its digest is its view's) rides in the same write.
        const status = withStatus ? feed.statusFrame(min, conn.scopeNode).frame : undigested;
        const tail = status !== undefined ? Buffer.concat([part, status]) : part;
        return shared.length === 0 ? tail : [shared, tail];
      } catch (err) {
        this.refuseUnit(conn, err);
        return undefined;
      }
    }
    if (cursor.revision < feed.flushedRevision) {
      markBehind(conn, cursor, now);
      return undefined;
    }
    if (cursor.revision === feed.flushedRevision) {
      const key = feed.currentStatusKey();
      if (key !== cursor.statusKey) {
        // Above the mark: as in bufferFor, the STATUS waits for the drain.
        if (above) {
          conn.needsService = true;
          return undefined;
        }
        cursor.statusKey = key;
        return feed.statusFrame(min, conn.scopeNode).frame;
      }
    }
    return undefined;
  }

  /**
   * A unit this connection cannot be sent closes it alone: ENTRY_TOO_LARGE when a value does not
   * fit its frames, CATTAIL_INTERNAL (4012) when encoding for its compression and frame size
   * failed otherwise. Rethrown, any other error ended the whole walk in `guarded`: the cursors
   * not yet visited missed the unit until a later flush (none, on a quiet cluster), and the
   * failing agent stayed open at a revision its socket never got.
   */
  private refuseUnit(conn: Connection, err: unknown): void {
    // Once per flush: a failure of the shared encoding would otherwise log once per agent.
    if (!isEntryTooLarge(err) && !this.failureLogged) {
      this.ctx.o.log?.error({ err, node: conn.node }, 'encoding a delta for a connection failed; closing it (logged once per flush)');
      this.failureLogged = true;
    }
    // ENTRY_TOO_LARGE is a closing code: failWith closes with it (4003), anything else with 4012.
    conn.failWith(err);
  }

  /** One unit per feed that changed (revision or status) since the last flush; undefined if none did. */
  private buildUnits(now: number): (SharedUnit | undefined)[] | undefined {
    const units: (SharedUnit | undefined)[] = [];
    let any = false;
    for (const feed of this.ctx.o.feeds) {
      const rev = feed.store.revision;
      const sk = feed.currentStatusKey();
      if (rev === feed.flushedRevision && sk === feed.flushedStatusKey) continue;
      let unit: SharedUnit = { feed, from: feed.flushedRevision, to: rev, upserts: [], deletes: [], hasDelta: false, frames: new Map(), status: undefined, withStatus: new Map(), joined: new Map(), last: undefined, tooLarge: undefined, scoped: undefined };
      if (rev > feed.flushedRevision) {
        const s = feed.store.since(feed.flushedRevision);
        // too-old here means the log was trimmed past our own flush point: live agents at the old
        // revision are then behind and get an in-band snapshot from the service queue.
        if (s.kind === 'delta') {
          unit = { ...unit, upserts: s.upserts, deletes: s.deletes, hasDelta: true };
          if (feed.scope !== undefined) unit.scoped = { split: splitOf(feed.scope, s), shared: new Map(), tails: new Map(), statusKey: undefined, lastPlain: undefined };
        }
        feed.recordFlush(rev, now);
      }
      feed.flushedRevision = rev;
      feed.flushedStatusKey = sk;
      units[feed.id] = unit;
      any = true;
    }
    return any ? units : undefined;
  }

  /** The unit's frames (+ the STATUS) as one Buffer per compression and frame size: one write per socket. */
  private unitBuffer(u: SharedUnit, conn: Connection, status: Buffer | undefined): Buffer {
    // Nearly every socket asks for the same encoding: answer a repeat without two Map lookups.
    const last = u.last;
    if (last !== undefined && last.compression === conn.compression && last.maxBodyBytes === conn.maxBodyBytes && last.withStatus === (status !== undefined)) return last.buf;
    const buf = this.unitBufferSlow(u, conn, status);
    u.last = { compression: conn.compression, maxBodyBytes: conn.maxBodyBytes, withStatus: status !== undefined, buf };
    return buf;
  }

  private unitBufferSlow(u: SharedUnit, conn: Connection, status: Buffer | undefined): Buffer {
    const cache = status === undefined ? u.joined : u.withStatus;
    let bySize = cache.get(conn.compression);
    if (bySize === undefined) cache.set(conn.compression, (bySize = new Map()));
    let buf = bySize.get(conn.maxBodyBytes);
    if (buf === undefined) {
      const frames = this.unitFrames(u, conn);
      buf = status !== undefined ? Buffer.concat([...frames, status]) : frames.length === 1 ? (frames[0] as Buffer) : Buffer.concat(frames);
      bySize.set(conn.maxBodyBytes, buf);
    }
    return buf;
  }

  private unitFrames(u: SharedUnit, conn: Connection): Buffer[] {
    let bySize = u.frames.get(conn.compression);
    if (bySize === undefined) u.frames.set(conn.compression, (bySize = new Map()));
    let frames = bySize.get(conn.maxBodyBytes);
    if (frames === undefined) {
      const known = u.tooLarge?.get(conn.maxBodyBytes);
      if (known !== undefined) throw known;
      try {
        frames = encodeDelta(u.feed.id, u.from, u.to, u.upserts, u.deletes, conn.compression, conn.maxBodyBytes, this.ctx.o.compressMinBytes);
      } catch (err) {
        if (isEntryTooLarge(err)) (u.tooLarge ??= new Map()).set(conn.maxBodyBytes, err);
        throw err;
      }
      bySize.set(conn.maxBodyBytes, frames);
      u.feed.stats.deltaUnitsEncoded++;
      u.feed.stats.deltaBytesEncoded += frames.reduce((s, f) => s + f.length, 0);
    }
    return frames;
  }
}

/** Notes that a cursor lacks a flushed revision; the service queue catches it up when it can. */
function markBehind(conn: Connection, cursor: FeedCursor, now: number): void {
  cursor.behindSinceMs ??= now;
  conn.needsService = true;
}
