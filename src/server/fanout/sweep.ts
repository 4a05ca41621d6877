/**
 * The sweep: ONE periodic pass over every connection for the deadlines a connection keeps as
 * plain numbers (handshake, PONG, fall-behind, closing) and for its pings. Thousands of sockets
 * share one interval instead of owning thousands of timers (the ws/undici pattern); the cost is
 * deadline precision of one sweep interval, which is at most a quarter of the shortest deadline
 * and a twentieth of the ping interval (context.ts sweepIntervalMs).
 */
import type { Timer } from '../../clock.js';
import type { Connection } from '../transport/connection.js';
import { NodeSnapshot, type SnapshotBuild } from './snapshot-cache.js';
import { encodeMessage } from '../transport/framing.js';
import type { FanOutContext } from './context.js';
import type { ServiceQueue } from './service.js';

/** snapshotPinnedMaxBytes' default: 256 MiB (options.ts says why). */
export const DEFAULT_SNAPSHOT_PINNED_MAX_BYTES = 268_435_456;

/**
 * A snapshot reader that took no frame for this long may be closed when outdated builds pinned by
 * slow readers pass snapshotPinnedMaxBytes (boundPinned). What the server sees of a reader is
 * what its socket takes: with megabytes of kernel buffers on both ends, a slow reader frees room
 * for the next frame only every several seconds (a window update after half its receive buffer).
 * One minute spares those; a reader silent that long is not reading.
 */
export const PINNED_IDLE_MS = 60_000;

/** How long a closing socket may take to finish the closing handshake before it is destroyed. */
export const CLOSE_GRACE_MS = 2_000;

export class Sweeper {
  readonly intervalMs: number;
  /** Monotonic ms of the last sweep (health: a sweep that stops coming is a stuck event loop). */
  lastSweepMs: number;
  private timer: Timer | undefined;

  constructor(
    private readonly ctx: FanOutContext,
    private readonly service: ServiceQueue,
  ) {
    this.intervalMs = ctx.sweepIntervalMs;
    this.lastSweepMs = ctx.o.clock.monotonic();
  }

  start(): void {
    this.timer = this.ctx.o.clock.setInterval(() => this.ctx.guarded('sweep', () => this.sweep()), this.intervalMs).unref();
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  sweep(): void {
    const { o, stats } = this.ctx;
    const now = o.clock.monotonic();
    this.lastSweepMs = now;
    o.cache.purge();
    this.service.expireRound(now);
    for (const f of o.feeds) o.metrics.cacheSize.set({ feed: f.name }, f.store.current().size);
    let ping: Buffer | undefined;
    for (const conn of this.ctx.connections) {
      switch (conn.state) {
        case 'handshake':
          // A HELLO that arrived and waits for its answer (service turns) is not the agent's delay.
          if (!conn.helloReceived && now >= conn.handshakeDeadlineMs) conn.fail('CATTAIL_SERVER_HANDSHAKE_TIMEOUT', `no HELLO within handshakeTimeoutMs (${o.handshakeTimeoutMs} ms)`);
          break;
        case 'closing':
          if (conn.closeDeadlineMs === 0) conn.closeDeadlineMs = now + CLOSE_GRACE_MS;
          else if (now >= conn.closeDeadlineMs) conn.socket.terminate();
          break;
        case 'streaming':
          // A PING queued behind a snapshot arrives after it: while the stream moves, the agent
          // is reading, so the deadline runs from its last move. Measured from the PONG alone, a
          // cold-start storm (every snapshot slow) closed agents mid-snapshot with 4005 (1,583 of
          // 2,000 with a 4 s timeout in the benchmark). Partial: a PING also waits behind bytes
          // already in the kernel's buffers, which no counter here sees read (DESIGN.md).
          if (now - Math.max(conn.lastPongMs, conn.lastStreamProgressMs) > o.pongTimeoutMs) {
            conn.fail('CATTAIL_SERVER_PONG_TIMEOUT', `no PONG within pongTimeoutMs (${o.pongTimeoutMs} ms)`);
            break;
          }
          if (this.checkFallBehind(conn, now)) break;
          // Safety net: 'drain' fires only after a write returned false (above the socket's own
          // 16 KiB mark); a socket skipped between our high-water mark and that one, on an idle
          // feed, would otherwise wait for the next change.
          if (conn.needsService && conn.writableBytes <= o.socketHighWaterBytes) this.service.queue(conn);
          if (now >= conn.nextPingMs) {
            ping ??= encodeMessage({ type: 'ping', t: Math.round(now) });
            conn.nextPingMs = now + this.ctx.nextPingDelayMs();
            // A socket that throws fails its connection, not the sweep of the others.
            try {
              if (conn.writeOwn([ping])) stats.pingsSent++;
            } catch (err) {
              conn.failWith(err);
            }
          }
          break;
        default:
          break;
      }
    }
    this.boundPinned(now);
  }

  /**
   * Bounds what idle readers pin (snapshotPinnedMaxBytes): outdated builds, no longer held for
   * reuse, that agents still stream. The fall-behind rule alone does not bound them: it closes a
   * reader only after maxFallBehindMs without taking a frame, so one that takes a frame now and
   * then keeps its build for as long as it reads. Above the bound, readers of the oldest pinned
   * builds (creation order) that took no frame for PINNED_IDLE_MS are closed with 4007 until what
   * is left fits; they reconnect to a current build others share (or resume with a token).
   * Readers that are moving are never closed for it: in a reconnect storm with churn every reuse
   * window leaves a build behind, each streamed by agents that read as fast as the replica lets
   * them, and closing them (the earliest, nearest to done, first) would throw their progress away
   * and feed the storm; their builds stay visible in cattail_snapshot_pinned_bytes. Rejected:
   * counting a pinned build into each reader's maxClientBytes (a shared build would count once
   * per reader); closing by revision (revisions of different feeds are not comparable).
   */
  private boundPinned(now: number): void {
    const o = this.ctx.o;
    const max = o.snapshotPinnedMaxBytes ?? DEFAULT_SNAPSHOT_PINNED_MAX_BYTES;
    const streaming: SnapshotBuild[] = [];
    for (const conn of this.ctx.connections) {
      if (conn.state !== 'streaming') continue;
      for (const c of conn.cursors) if (c.snapshot !== undefined) streaming.push(c.snapshot.build);
    }
    if (streaming.length === 0) return;
    const pinned = o.cache.pinnedBuilds(streaming);
    if (pinned.bytes <= max) return;
    // Only above the bound (most sweeps return above): readers by the build they pin (a node
    // snapshot's is its shared build), idle or not.
    const readers = new Map<SnapshotBuild, { conn: Connection; idle: boolean }[]>();
    for (const conn of this.ctx.connections) {
      if (conn.state !== 'streaming') continue;
      for (const c of conn.cursors) {
        if (c.snapshot === undefined) continue;
        const b = c.snapshot.build;
        const owner = b instanceof NodeSnapshot ? b.shared : b;
        let list = readers.get(owner);
        if (list === undefined) readers.set(owner, (list = []));
        // The connection's progress too: while another feed's snapshot holds its socket at the
        // high-water mark, this one takes no frame although the agent is reading.
        list.push({ conn, idle: now - Math.max(c.snapshot.progressMs, conn.lastStreamProgressMs) > PINNED_IDLE_MS });
      }
    }
    let over = pinned.bytes - max;
    for (const { build, bytes } of pinned.builds) {
      if (over <= 0) break;
      const all = readers.get(build) ?? [];
      const idle = all.filter((r) => r.idle);
      for (const { conn } of idle) {
        if (conn.state !== 'streaming') continue;
        o.metrics.snapshotPinnedCloses.inc({ feed: build.feed.name });
        o.log?.info({ conn: conn.id, node: conn.node, feed: build.feed.name, revision: build.revision, pinnedBytes: pinned.bytes, max }, 'closing an idle reader of an outdated snapshot: pinned builds above snapshotPinnedMaxBytes');
        conn.fail('CATTAIL_SERVER_FELL_BEHIND', `feed ${build.feed.name}: no frame taken for ${PINNED_IDLE_MS} ms of the snapshot at revision ${build.revision} while outdated snapshots pinned by slow readers hold ${pinned.bytes} bytes (snapshotPinnedMaxBytes ${max})`, 'fell-behind');
      }
      // A build frees its bytes only when its last reader goes: moving readers keep it.
      if (idle.length === all.length) over -= bytes;
    }
  }

  /**
   * Closes with 4007 an agent behind longer than maxFallBehindMs past its grace; true if closed.
   *
   * An agent still streaming its snapshot is behind by construction, and how fast the stream goes
   * is mostly up to this replica: a fleet-wide cold start shares the replica's bandwidth among
   * every agent, so each one's snapshot takes longer the more agents there are. Judged by age
   * alone, every agent still streaming when the grace ran out was closed at once and, holding no
   * token, started its snapshot over, throwing away what it had read: the benchmark's 5,000-agent
   * cold start on a 150,000-pod cluster stalled at 1,160 in sync after 350 s (issue #15), and a
   * 2,000-agent run with both windows at 5 s closed 1,327 agents mid-snapshot. So while a snapshot
   * streams, only a stream that took no frame for maxFallBehindMs (the agent stopped reading: a
   * paused reader fills its socket buffers, then the stream stops) counts as falling behind.
   * Rejected: extending the grace to the end of the snapshot (a frozen agent in its snapshot would
   * then be kept until the PONG timeout only, holding its socket buffers).
   * The connection's stream counts for every feed while any of its snapshots streams: a service
   * turn streams an agent's feeds in order, so a second feed's snapshot (or catch-up) takes no
   * frame while the first one's fills the socket, and judged alone it closed a reading agent.
   */
  private checkFallBehind(conn: Connection, now: number): boolean {
    const o = this.ctx.o;
    const streaming = conn.cursors.some((x) => x.snapshot !== undefined);
    for (const c of conn.cursors) {
      if (c.behindSinceMs === undefined) continue;
      if (streaming && now - Math.max(c.snapshot?.progressMs ?? 0, conn.lastStreamProgressMs) <= o.maxFallBehindMs) continue;
      const ageMs = now - c.behindSinceMs;
      if (ageMs <= o.maxFallBehindMs) continue;
      if (now < c.graceUntilMs) {
        if (!c.graceCounted) {
          c.graceCounted = true;
          o.metrics.connectionsGraceUsed.inc({ feed: c.feed.name });
        }
        continue;
      }
      o.log?.info({ conn: conn.id, node: conn.node, feed: c.feed.name, clientRev: c.revision, latestRev: c.feed.flushedRevision, ageMs }, 'agent fell behind; closing');
      conn.fail('CATTAIL_SERVER_FELL_BEHIND', `feed ${c.feed.name}: behind for ${Math.round(ageMs)} ms (maxFallBehindMs ${o.maxFallBehindMs})`, 'fell-behind');
      return true;
    }
    return false;
  }
}
