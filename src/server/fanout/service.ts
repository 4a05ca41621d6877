/**
 * Per-connection service: brings one connection as far forward as its socket allows, for agents
 * the shared flush could not serve.
 *
 *   HELLO / socket 'drain' / snapshot progress / skipped by a flush ──► queue(conn) ──► next loop
 *   turn, within one turn budget (TurnQueue: bytes and time), HELLOs and catch-ups before snapshot
 *   streams:
 *       handshake: answer the HELLO (Session.onHello: WELCOME, then resume or snapshot)
 *       snapshot phase: stream the shared snapshot frames while under the high-water mark, even
 *                       while the build is still running (each slice wakes its subscribers)
 *       live but behind: ONE compacted catch-up DELTA from its revision (since()), or an in-band
 *                        snapshot when the revision left the delta log
 *
 * Nothing per client is queued in userland: a slow agent costs its cursor, its socket's own
 * buffer (bounded by the high-water mark plus one flush), and frames built for it alone (bounded
 * by maxClientBytes, enforced by Connection.writeOwn).
 *
 * Rejected: waiting for ACKs as flow control (socket backpressure is the real signal; ACKs only
 * measure lag).
 */
import type { HelloMessage } from '../../../proto/index.js';
import type { Connection, FeedCursor } from '../transport/connection.js';
import { encodeDelta, isEntryTooLarge } from '../transport/framing.js';
import { catchUpFits } from '../transport/own-frames.js';
import type { FanOutContext } from './context.js';
import { TurnQueue } from './turn-queue.js';
import { encodeNodePart, encodeSharedPart, splitOf } from './scoped.js';
import type { SplitChanges } from '../scoping/view.js';

/** The longest a service round keeps its catch-up caches without a flush (expireRound). */
export const CATCH_UP_CACHE_MAX_AGE_MS = 5_000;

export class ServiceQueue {
  private readonly queued: TurnQueue<Connection>;
  private scheduled = false;
  /** Set by the service of one connection when it stopped at the high-water mark (see service()). */
  private blocked = false;
  /** Catch-up frames of this round by feed, revision, compression and frame size (see service()). */
  private catchUpCache = new Map<string, Buffer[]>();
  /** Scoped feeds' change splits of this round, by feed and revisions (see scopedCatchUp). */
  private splitCache = new Map<string, SplitChanges>();
  /**
   * Scoped feeds' shared catch-up parts of this round (scopedCatchUp). A map of their own: keyed
   * beside the agents' whole catch-ups, whose keys end in the node's name, a node named like the
   * shared part's key read the other's frames (a HELLO's node is not validated without mTLS).
   */
  private sharedPartCache = new Map<string, Buffer[]>();
  /** Monotonic ms the current round began (newRound). */
  private roundStartedMs: number;
  /** HELLOs waiting for their turn (see queueHello); at most one per connection. */
  private readonly hellos = new Map<Connection, HelloMessage>();
  /** Answers one HELLO (Session.onHello); set by the fan-out, which owns both. */
  answerHello: (conn: Connection, m: HelloMessage) => void = () => undefined;

  constructor(private readonly ctx: FanOutContext) {
    this.queued = new TurnQueue(ctx.o.clock, ctx.o.serviceTurn);
    this.roundStartedMs = ctx.o.clock.monotonic();
  }

  /** A new flush started: catch-ups computed before it are no longer to the newest revision. */
  newRound(): void {
    // Every flush starts a round; most rounds computed no catch-up, so nothing to drop.
    if (this.catchUpCache.size > 0) this.catchUpCache = new Map();
    if (this.splitCache.size > 0) this.splitCache = new Map();
    if (this.sharedPartCache.size > 0) this.sharedPartCache = new Map();
    this.roundStartedMs = this.ctx.o.clock.monotonic();
  }

  /**
   * Drops the round's caches once it is older than CATCH_UP_CACHE_MAX_AGE_MS (the sweep asks).
   * A round ends at the next flush, and a quiet cluster may not flush for hours: after a burst,
   * the catch-ups of a scoped feed (one per node) stayed referenced until then, long after their
   * sockets took them. Agents that fall behind together are served within the same second or
   * two, so the cache still does its work; a later one recomputes its catch-up once.
   */
  expireRound(nowMs: number): void {
    if (nowMs - this.roundStartedMs > CATCH_UP_CACHE_MAX_AGE_MS) this.newRound();
  }

  /** The round's cached catch-up frames: keys and their bytes (`cattail_catchup_cache_bytes`; the split cache beside it holds the same changes' keys, not frames). */
  cachedCatchUps(): { entries: number; bytes: number } {
    // Each Buffer once: a scoped catch-up's frames are its shared part's Buffers (also held in
    // sharedPartCache) and its node part, so summing per entry counted the shared part once per
    // node, plus once: tens of GB reported for 5,000 nodes behind at one revision.
    const seen = new Set<Buffer>();
    let bytes = 0;
    const add = (frames: readonly Buffer[]): void => {
      for (const f of frames) {
        if (seen.has(f)) continue;
        seen.add(f);
        bytes += f.length;
      }
    };
    for (const frames of this.catchUpCache.values()) add(frames);
    for (const frames of this.sharedPartCache.values()) add(frames);
    return { entries: this.catchUpCache.size + this.sharedPartCache.size, bytes };
  }

  /**
   * Connections streaming a snapshot wait behind the others: a catch-up is one small compacted
   * DELTA to an agent that already holds the state, a snapshot stream is bulk that can wait a turn.
   */
  queue(conn: Connection): void {
    if (!conn.open) return;
    this.queued.add(conn, !conn.cursors.some((c) => c.phase === 'snapshot'));
    this.scheduleRun();
  }

  /**
   * A HELLO is answered in a service turn, before catch-ups and snapshot streams, not in the
   * socket's read callback. Why: a reconnect storm delivers hundreds of HELLOs in one poll phase,
   * and answering them there (plan, WELCOME, snapshot subscription: ~100-150 µs each) held the
   * loop for 100-200 ms in the cold-start benchmark. In a turn they share its time budget, so
   * timers, live flushes and drains run between. A lone HELLO waits one loop turn.
   */
  queueHello(conn: Connection, m: HelloMessage): void {
    if (!conn.open) return;
    this.hellos.set(conn, m);
    this.queued.add(conn, true);
    this.scheduleRun();
  }

  forget(conn: Connection): void {
    this.queued.delete(conn);
    this.hellos.delete(conn);
  }

  /** HELLOs received and not yet answered (the `cattail_handshake_queue_length` gauge). */
  get hellosWaiting(): number {
    return this.hellos.size;
  }

  /** Connections waiting for their turn (the `cattail_service_queue_length` gauge). */
  get length(): number {
    return this.queued.size;
  }

  private scheduleRun(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.ctx.guarded('service', () => this.run()));
  }

  private run(): void {
    this.scheduled = false;
    const cut = this.queued.runTurn((conn) => this.serveOne(conn));
    this.ctx.stats.serviceTurns++;
    if (cut) this.ctx.stats.serviceTurnsCut++;
    // The next turn comes after the loop's timers and I/O: flushes to caught-up agents go between.
    if (this.queued.size > 0) this.scheduleRun();
  }

  /**
   * One connection's service with its failure kept to it: an exception from its step (a bug, a
   * transport that throws on write) closes that connection with its code (CATTAIL_INTERNAL, 4012,
   * for anything uncoded) and the turn goes on. Unguarded, the exception ended the whole turn in
   * `guarded`: the connections queued after it waited for some later event to queue them again
   * (hours on a quiet cluster), and the failing one stayed open, served by nothing.
   */
  private serveOne(conn: Connection): number {
    try {
      return this.service(conn);
    } catch (err) {
      this.ctx.o.log?.error({ err, node: conn.node }, 'serving a connection failed; closing it');
      conn.failWith(err);
      return 0;
    }
  }

  /** Brings one connection as far forward as its socket allows; returns the bytes handed to it. */
  service(conn: Connection): number {
    const hello = this.hellos.get(conn);
    if (hello !== undefined) {
      this.hellos.delete(conn);
      if (conn.state !== 'handshake') return 0;
      const before = conn.bytesWritten;
      try {
        this.answerHello(conn, hello);
      } catch (err) {
        conn.failWith(err);
      }
      // Its snapshot or catch-up (queued by the answer) goes out in a later turn.
      return conn.bytesWritten - before;
    }
    if (conn.state !== 'streaming') return 0;
    const { o, stats } = this.ctx;
    const hwm = o.socketHighWaterBytes;
    const now = o.clock.monotonic();
    let pending = false;
    let shared = 0;
    let own = 0;
    this.blocked = false;
    conn.beginBatch();
    try {
      for (const cursor of conn.cursors) {
        if (conn.state !== 'streaming') return shared + own;
        if (cursor.phase === 'snapshot') {
          shared += this.pumpSnapshot(conn, cursor, now);
          if (cursor.phase === 'snapshot') { pending = true; continue; }
        }
        const feed = cursor.feed;
        if (cursor.revision < feed.store.revision && cursor.revision < feed.flushedRevision) {
          if (conn.writableBytes > hwm) { pending = true; this.blocked = true; continue; }
          // Agents that fell behind together (a burst, a slow network segment) sit at the same
          // revision: their catch-up is computed and encoded once per service round.
          const to = feed.store.revision;
          const key = `${feed.id}:${cursor.revision}:${to}:${conn.compression}:${conn.maxBodyBytes}${feed.scope !== undefined ? `:${conn.scopeNode}` : ''}`;
          let frames = this.catchUpCache.get(key);
          // Encoded in this round for agents behind together, but maybe no longer held by any
          // socket: writing it again must fit the process's bound too (own-frames.ts).
          let overOwn = false;
          if (frames !== undefined && o.ownFrames !== undefined) {
            const add = o.ownFrames.newBytes(frames);
            if (add > 0 && !o.ownFrames.admits(add)) {
              frames = undefined;
              overOwn = true;
            }
          }
          if (frames === undefined) {
            const s = feed.store.since(cursor.revision);
            // A catch-up bigger than half the agent's own budget would only get it closed with
            // 4008 (after encoding it whole in this turn): the shared snapshot instead, as a
            // resume does (handshake.ts), newer than what the agent holds (a build at its own
            // revision would leave it where it is, with the same catch-up ahead: the same build
            // again, until the build's reuse window ended), and with watermarks no older than the
            // ones recorded at its revision (a build of that revision made before a watermark-only
            // change the agent applied since carries older ones). Not today's watermarks, as a
            // repair takes (repair.ts): every batch moves one, so no build made before the latest
            // batch would do and each slow agent of a busy cluster got a build of its own.
            // Past what frames built for single agents may hold together (own-frames.ts): the
            // shared snapshot as well.
            const tooLarge = s.kind === 'delta' && (overOwn || !catchUpFits(s.bytes, o.maxClientBytes, o.ownFrames));
            if (s.kind !== 'delta' || tooLarge) {
              if (tooLarge) this.startSnapshot(conn, cursor, now, true, cursor.revision + 1, feed.store.watermarksAt(cursor.revision) ?? feed.store.meta().watermarks);
              else this.startSnapshot(conn, cursor, now, true);
              shared += this.pumpSnapshot(conn, cursor, now);
              if ((cursor.phase as FeedCursor['phase']) === 'snapshot') { pending = true; continue; }
              // Done in this same pump (a small feed, a finished build reused): live now, but
              // maybe at a revision before the store's (a build within the reuse window) or with
              // a status its END did not carry. On to the STATUS check below, and a catch-up in a
              // later turn; skipped with `continue`, as this once was, the connection was left
              // with needsService false, revisited by nothing until the feed changed again.
              if (cursor.revision < feed.store.revision) this.queue(conn);
            } else {
              try {
                frames = feed.scope === undefined
                  ? encodeDelta(feed.id, s.from, s.to, s.upserts, s.deletes, conn.compression, conn.maxBodyBytes, o.compressMinBytes)
                  : this.scopedCatchUp(feed.scope, feed.id, s, conn, o.compressMinBytes);
              } catch (err) {
                if (!isEntryTooLarge(err)) throw err;
                conn.fail('CATTAIL_SERVER_ENTRY_TOO_LARGE', err.message);
                return shared + own;
              }
              this.catchUpCache.set(key, frames);
            }
          }
          if (frames !== undefined) {
            // scope.watermarks (PROTOCOL.md §4.7): the unit ends with the revision's watermarks and
            // token: the digest-free STATUS when the digest-bearing one is held back, i.e. when the
            // agent holds the held key (it was told in-sync with a digest), else the STATUS it is
            // owed, in the same write. Left to the STATUS check below, that one waited for the
            // socket to drain when the catch-up took it past the high-water mark, and the next
            // unit could come first: a replica crashing meanwhile left the agent presenting
            // watermarks behind the state it held. (Agents are admitted only once every feed is
            // in sync and a feed never leaves it, so an agent never told in-sync is not expected
            // here; a STATUS without digest to one would be refused, 4002.) Not cached with the
            // frames: a status-only change keeps the revision.
            let owedKey: string | undefined;
            if (feed.scope !== undefined && conn.scopeWatermarks && feed.store.meta().status === 'in-sync') {
              if (feed.currentStatusKey() === cursor.statusKey) frames = [...frames, feed.undigestedStatusFrame(o.compressMinBytes)];
              else {
                const st = feed.statusFrame(o.compressMinBytes, conn.scopeNode);
                frames = [...frames, st.frame];
                owedKey = st.key;
              }
            }
            if (!conn.writeOwn(frames)) return shared + own;
            if (owedKey !== undefined) cursor.statusKey = owedKey;
            const n = frames.reduce((a, f) => a + f.length, 0);
            stats.ownBytes += n;
            own += n;
            cursor.revision = to;
            cursor.behindSinceMs = undefined;
            feed.stats.catchUps++;
          }
        }
        if (cursor.phase === 'live' && cursor.revision === feed.store.revision && conn.writableBytes <= hwm) {
          const key = feed.currentStatusKey();
          if (key !== cursor.statusKey) {
            const st = feed.statusFrame(o.compressMinBytes, conn.scopeNode);
            conn.writeShared(st.frame);
            shared += st.frame.length;
            cursor.statusKey = st.key;
          }
        } else if (cursor.revision < feed.flushedRevision || cursor.statusKey !== feed.flushedStatusKey) {
          pending = true;
          if (conn.writableBytes > hwm) this.blocked = true;
        }
      }
      conn.needsService = pending;
    } finally {
      if (conn.endBatch()) stats.serviceWrites++;
      stats.sharedBytes += shared;
    }
    // It stopped at the high-water mark counting the batch, but the batch went out as one write
    // that the kernel may have taken whole: then no drain will come (uWS signals drain only for
    // bytes it buffered), so the connection goes on in a later turn by itself.
    if (this.blocked && conn.state === 'streaming' && conn.writableBytes <= hwm) this.queue(conn);
    return shared + own;
  }

  /**
   * A scoped feed's catch-up for one agent: the shared part is split and encoded once per round
   * for agents behind at the same revision, the node's part per node (#20).
   */
  /**
   * FanOut.owedStatus: a scoped agent behind, about to be sent GOODBYE: the catch-up from its
   * revision to now and the STATUS of now, or nothing when that catch-up is not one a service
   * turn would build for it (too old, above half its budget, or past maxOwnHeldBytes). Written by
   * the close itself, past the socket's high-water mark: the connection ends after it.
   */
  catchUpForGoodbye(conn: Connection, cursor: FeedCursor): Buffer[] {
    const { o } = this.ctx;
    const feed = cursor.feed;
    if (feed.scope === undefined) return [];
    const s = feed.store.since(cursor.revision);
    if (s.kind !== 'delta' || !catchUpFits(s.bytes, o.maxClientBytes, o.ownFrames)) return [];
    const frames = this.scopedCatchUp(feed.scope, feed.id, s, conn, o.compressMinBytes);
    // Counted until the socket closes (fail() writes them itself): a shutdown fails every agent
    // in one loop, and each one's admits() must see the catch-ups of those before it.
    conn.countOwn(frames);
    const st = feed.statusFrame(o.compressMinBytes, conn.scopeNode);
    cursor.revision = s.to;
    cursor.statusKey = st.key;
    return [...frames, st.frame];
  }

  private scopedCatchUp(scope: NonNullable<FeedCursor['feed']['scope']>, feedId: number, s: Extract<ReturnType<FeedCursor['feed']['store']['since']>, { kind: 'delta' }>, conn: Connection, min: number): Buffer[] {
    const base = `${feedId}:${s.from}:${s.to}`;
    let split = this.splitCache.get(base);
    if (split === undefined) this.splitCache.set(base, (split = splitOf(scope, s)));
    const sharedKey = `${base}:${conn.compression}:${conn.maxBodyBytes}`;
    let shared = this.sharedPartCache.get(sharedKey);
    if (shared === undefined) this.sharedPartCache.set(sharedKey, (shared = encodeSharedPart(feedId, s, split, conn.compression, conn.maxBodyBytes, min)));
    return [...shared, ...encodeNodePart(feedId, s, split, conn.scopeNode, conn.compression, conn.maxBodyBytes, min)];
  }

  /** Puts a cursor in its snapshot phase on the shared build for its feed, revision and encoding. */
  /**
   * `minRevision`: the snapshot must be at least this recent; `floor`: its watermarks at least
   * these (an agent's notBefore); see SnapshotCache.acquire.
   */
  startSnapshot(conn: Connection, cursor: FeedCursor, now: number, inBand: boolean, minRevision = 0, floor?: Readonly<Record<string, string>>): void {
    const build = cursor.feed.scope !== undefined
      ? this.ctx.o.cache.acquireScoped(cursor.feed, conn.scopeNode, conn.compression, conn.maxBodyBytes, minRevision, floor)
      : this.ctx.o.cache.acquire(cursor.feed, conn.compression, conn.maxBodyBytes, minRevision, floor);
    cursor.snapshot?.unsubscribe();
    cursor.feed.leaveLive(cursor);
    cursor.phase = 'snapshot';
    cursor.snapshot = { build, next: 0, unsubscribe: build.subscribe(() => this.queue(conn)), startedMs: now, progressMs: now };
    cursor.behindSinceMs ??= now;
    cursor.graceUntilMs = now + this.ctx.o.newClientGracePeriodMs;
    if (inBand) cursor.feed.stats.inBandSnapshots++;
  }

  /** Writes available snapshot frames while the socket is under its high-water mark. */
  private pumpSnapshot(conn: Connection, cursor: FeedCursor, now: number): number {
    const snap = cursor.snapshot;
    if (snap === undefined) return 0;
    const { build } = snap;
    const { o } = this.ctx;
    if (build.failed !== undefined) {
      if (isEntryTooLarge(build.failed)) {
        o.log?.warn({ err: build.failed, feed: cursor.feed.name, node: conn.node }, 'an entry does not fit in the agent\'s frame size; closing it');
        conn.fail('CATTAIL_SERVER_ENTRY_TOO_LARGE', build.failed.message);
        return 0;
      }
      o.log?.error({ err: build.failed, feed: cursor.feed.name }, 'snapshot build failed');
      conn.fail('CATTAIL_INTERNAL', `snapshot of feed ${cursor.feed.name} could not be built`);
      return 0;
    }
    let bytes = 0;
    while (snap.next < build.frameCount && conn.writableBytes <= o.socketHighWaterBytes) {
      const f = build.frameAt(snap.next);
      conn.writeShared(f);
      bytes += f.length;
      snap.next++;
    }
    if (snap.next < build.frameCount) this.blocked = true;
    // The stream moved, or it waits for frames the build has not made yet (our delay, not the agent's).
    if (bytes > 0 || snap.next === build.frameCount) snap.progressMs = now;
    if (bytes > 0) conn.lastStreamProgressMs = now;
    if (build.done && snap.next === build.frameCount) {
      // Once per snapshot sent, not per frame: a labelled observe is cheap at that rate.
      o.metrics.snapshotSendDuration.observe({ feed: cursor.feed.name }, Math.max(0, now - snap.startedMs) / 1000);
      const fs = cursor.feed.stats;
      fs.snapshotsSent++;
      fs.snapshotRawBytesSent += build.rawBytes;
      fs.snapshotWireBytesSent += build.wireBytes;
      snap.unsubscribe();
      cursor.snapshot = undefined;
      cursor.phase = 'live';
      cursor.revision = build.revision;
      cursor.snapshotRevision = build.revision;
      if (conn.state === 'streaming') cursor.feed.joinLive(cursor);
      // END carried the status of the build's view. At the current revision and with the same
      // status, staleness and watermarks, the agent holds the current one (for a scoped feed, the
      // key held for its cadence); otherwise a STATUS goes out next (after the catch-up, if any):
      // a status change without a new revision while it streamed was sent to live agents only,
      // and a build reused at an unchanged revision can be far older than its status.
      const feed = cursor.feed;
      cursor.statusKey = build.revision === feed.store.revision && build.endStatusKey === feed.baseStatusKey() ? feed.currentStatusKey() : undefined;
      cursor.graceUntilMs = now + o.newClientGracePeriodMs;
      cursor.behindSinceMs = build.revision < cursor.feed.flushedRevision ? now : undefined;
    }
    return bytes;
  }
}
