/**
 * An agent's session after the upgrade: the HELLO (feeds planned, WELCOME, then a resume DELTA or
 * a snapshot per feed), ACKs (lag) and PONGs (liveness). The handshake's decisions themselves are
 * in handshake.ts; this file applies them to a connection.
 */
import type { HelloMessage } from '../../../proto/index.js';
import type { Connection, FeedCursor } from '../transport/connection.js';
import { encodeDelta, isEntryTooLarge } from '../transport/framing.js';
import type { FanOutContext } from './context.js';
import { recordAck } from './applied-watermarks.js';
import type { FeedRuntime } from './feeds.js';
import { type FeedPlan, bodySizeFor, checkHello, chooseCompression, planFeeds, welcomeFrame } from './handshake.js';
import { serveRepair } from './repair.js';
import { CAP_FEED_RESOURCES, CAP_REPAIR_BUCKETS, CAP_SCOPE_WATERMARKS, behindResources } from '../../../proto/index.js';
import type { ServiceQueue } from './service.js';
import { CattailError } from '../../errors.js';
import { encodeScopedDelta, nodeKnown, provenNode } from './scoped.js';

/** PONG timestamps further from now than this are an agent's clock bug, not a latency. */
const MAX_PLAUSIBLE_RTT_MS = 3_600_000;

/** WELCOME frames kept for reuse (see Session.welcomeFor); cleared when full. */
const WELCOME_CACHE_MAX = 256;

export class Session {
  private readonly byName: ReadonlyMap<string, FeedRuntime>;
  private readonly welcomes = new Map<string, Buffer>();

  constructor(
    private readonly ctx: FanOutContext,
    private readonly service: ServiceQueue,
  ) {
    this.byName = new Map(ctx.o.feeds.map((f) => [f.name, f]));
  }

  onHello(conn: Connection, m: HelloMessage): void {
    const { o } = this.ctx;
    const hello = checkHello(m);
    const now = o.clock.monotonic();
    const cluster = o.cluster?.();
    const plans = planFeeds(hello, this.byName, o.serverId, o.maxClientBytes, cluster, o.ownFrames);
    const behind = plans.filter((p) => p.mode === 'snapshot' && p.reason === 'behind');
    if (behind.length > 0) {
      // PROTOCOL.md §7.1: the agent's state is newer than ours (we restarted from a checkpoint, or
      // lag); a snapshot would be refused by its watermark check after the whole download. Refuse
      // before any byte of one: it keeps its state and comes back when we have caught up.
      for (const p of behind) o.metrics.handshakeFeeds.inc({ feed: p.feed.name, mode: 'refused', reason: 'behind' });
      // A resource the upstream does not serve moves its watermark only when we look again
      // (not-served.ts): an agent from a replica that looked later is ahead of us on it until then.
      o.onAgentAhead?.(aheadResources(behind));
      throw new CattailError('CATTAIL_SERVER_REPLICA_BEHIND', `this replica is behind the watermarks presented for ${behind.map((p) => p.feed.name).join(', ')}; keep the state and retry later or elsewhere`);
    }
    // Per-node scoping (#20): an agent on a scoped feed gets its proven node's view, never another's.
    const scoped = plans.some((p) => p.feed.scope !== undefined);
    if (scoped) {
      conn.scopeNode = provenNode({ helloNode: hello.node, caps: hello.caps, tls: conn.tlsPeer, uriSanPrefix: o.scopeNodeUriSanPrefix });
      conn.scopeWatermarks = hello.caps.includes(CAP_SCOPE_WATERMARKS);
      for (const p of plans) {
        if (p.feed.scope === undefined || nodeKnown(p.feed, conn.scopeNode) !== false) continue;
        o.metrics.scopedUnknownNode.inc({ feed: p.feed.name });
        o.log?.warn({ feed: p.feed.name, node: conn.scopeNode, clientId: hello.clientId }, 'an agent names a node this feed has no Node for (a wrong --node?): its scoped view holds none of its own entries');
      }
    }
    conn.node = hello.node;
    conn.clientId = hello.clientId;
    conn.compression = chooseCompression(hello.caps, o.compressions);
    conn.repairCapable = hello.caps.includes(CAP_REPAIR_BUCKETS);
    conn.maxBodyBytes = Math.min(o.maxFrameBytes, bodySizeFor(hello.maxFrameBytes));
    const welcome = this.welcomeFor(plans, conn, scoped, hello.caps.includes(CAP_FEED_RESOURCES), cluster);
    conn.state = 'streaming';
    conn.lastPongMs = now;
    conn.nextPingMs = now + this.ctx.nextPingDelayMs();
    conn.beginBatch();
    try {
      if (!conn.writeOwn([welcome])) return;
      for (const p of plans) {
        // What a flush touches per cursor first (field order is memory layout; see Connection).
        const cursor: FeedCursor = {
          conn, revision: 0, statusKey: undefined, feed: p.feed, phase: 'live', liveIndex: -1, snapshot: undefined,
          behindSinceMs: undefined, graceUntilMs: now + o.newClientGracePeriodMs, graceCounted: false, ackedRevision: 0, appliedFloor: undefined,
        };
        conn.cursors.push(cursor);
        o.metrics.connectionsStreaming.inc({ feed: p.feed.name });
        o.metrics.handshakeFeeds.inc({ feed: p.feed.name, mode: p.mode, reason: p.mode === 'snapshot' ? p.reason : '' });
        if (p.mode !== 'snapshot') {
          const s = p.since;
          let frames: Buffer[];
          try {
            frames = p.feed.scope === undefined
              ? encodeDelta(p.feed.id, s.from, s.to, s.upserts, s.deletes, conn.compression, conn.maxBodyBytes, o.compressMinBytes)
              : encodeScopedDelta(p.feed.id, s, p.feed.scope, conn.scopeNode, conn.compression, conn.maxBodyBytes, o.compressMinBytes);
          } catch (err) {
            if (!isEntryTooLarge(err)) throw err;
            conn.fail('CATTAIL_SERVER_ENTRY_TOO_LARGE', err.message);
            return;
          }
          if (!conn.writeOwn(frames)) return;
          cursor.revision = s.to;
          // The protocol promises a STATUS after a resume's DELTA (§1.2), even when nothing changed.
          const st = p.feed.statusFrame(o.compressMinBytes, conn.scopeNode);
          conn.writeShared(st.frame);
          cursor.statusKey = st.key;
          p.feed.joinLive(cursor);
          p.feed.stats.catchUps++;
          if (cursor.revision < p.feed.flushedRevision) conn.needsService = true;
        } else {
          this.service.startSnapshot(conn, cursor, now, false, p.minRevision ?? 0, p.floor);
          conn.needsService = true;
        }
      }
    } finally {
      conn.endBatch();
    }
    this.ctx.convergence.onAgentChanged(conn);
    o.log?.debug({ conn: conn.id, node: conn.node, clientId: conn.clientId, feeds: plans.map((p) => `${p.feed.name}:${p.mode}`) }, 'agent streaming');
    if (conn.needsService) this.service.queue(conn);
  }

  /**
   * WELCOME for these plans. Agents of a reconnect storm mostly get the same one (same feeds,
   * modes, reasons, compression and frame size), and encoding it cost ~50 µs each in the
   * cold-start benchmark, so the frames are kept by what they say (at most WELCOME_CACHE_MAX).
   */
  private welcomeFor(plans: readonly FeedPlan[], conn: Connection, scoped: boolean, listResources: boolean, cluster: string | undefined): Buffer {
    let key = `${conn.compression}|${conn.maxBodyBytes}|${scoped ? 1 : 0}|${listResources ? 1 : 0}|${cluster ?? ''}`;
    for (const p of plans) key += `|${p.feed.id}:${p.mode}:${p.mode === 'snapshot' ? p.reason : p.mode === 'rebase' ? p.since.from : ''}`;
    let frame = this.welcomes.get(key);
    if (frame === undefined) {
      const { o } = this.ctx;
      frame = welcomeFrame(plans, {
        serverId: o.serverId, ...(cluster !== undefined ? { cluster } : {}), pingIntervalMs: o.pingIntervalMs, pongTimeoutMs: o.pongTimeoutMs,
        maxFrameBytes: conn.maxBodyBytes, maxInboundBytes: o.maxInboundBytes, compression: conn.compression,
      }, scoped, listResources);
      if (this.welcomes.size >= WELCOME_CACHE_MAX) this.welcomes.clear();
      this.welcomes.set(key, frame);
    }
    return frame;
  }

  onAck(cursor: FeedCursor, revision: number): void {
    // An ACK of nothing newer changes nothing (the acknowledged revision only grows): returned
    // before the convergence barrier re-judges the agent against every waiter concerning it. An
    // agent repeating one ACK at line rate (~1,900 from one 64 KiB read) against 1,000 waiters
    // held the loop for seconds.
    if (cursor.acked === true && revision <= cursor.ackedRevision) return;
    recordAck(cursor, revision);
    this.ctx.convergence.onAgentChanged(cursor.conn);
    const lag = cursor.feed.lagMs(revision, this.ctx.o.clock.monotonic());
    this.ctx.o.metrics.clientLag.observe(lag / 1000, cursor.feed.name);
  }

  onRepairRequest(conn: Connection, cursor: FeedCursor, revision: number, sums: Buffer): void {
    serveRepair(this.ctx, this.service, conn, cursor, revision, sums);
  }

  onPong(conn: Connection, t: number): void {
    const now = this.ctx.o.clock.monotonic();
    conn.lastPongMs = now;
    this.ctx.stats.pongsReceived++;
    if (t <= now && now - t < MAX_PLAUSIBLE_RTT_MS) this.ctx.o.metrics.pingLatency.observe((now - t) / 1000);
  }
}

/** The resources on which the agent's presented watermarks (the plans' floors) are newer than (or unknown to) the feeds refusing it. */
function aheadResources(behind: readonly FeedPlan[]): string[] {
  const out = new Set<string>();
  for (const p of behind) {
    if (p.mode !== 'snapshot' || p.floor === undefined) continue;
    for (const b of behindResources(p.floor, p.feed.store.meta().watermarks)) out.add(b.resource);
  }
  return [...out];
}
