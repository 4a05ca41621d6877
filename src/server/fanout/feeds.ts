/**
 * A served feed at run time: its store, what the fan-out last broadcast, and the frames every
 * client of the feed shares (STATUS at the current revision, the resume token).
 */
import type { FeedDefinition } from '../pipeline/seams.js';
import type { ServedStore, StoreMeta } from '../pipeline/store-port.js';
import { epochString } from '../pipeline/store-port.js';
import { encodeToken } from '../transport/tokens.js';
import { encodeMessage } from '../transport/framing.js';
import type { FeedStats } from './stats.js';
import type { FeedCursor } from '../transport/connection.js';
import type { ScopeIndex } from '../scoping/index.js';

/** Revisions whose flush time is remembered for lag; older acks count from the oldest kept. */
const FLUSH_TIMES_KEPT = 4_096;

export class FeedRuntime {
  /** The revision every caught-up client is at: the `to` of the last shared DELTA. */
  flushedRevision: number;
  /** Identity of the last status broadcast; a client whose own differs gets a STATUS frame. */
  flushedStatusKey: string;
  private readonly flushTimes: { revision: number; atMs: number }[] = [];
  private statusCache: { key: string; revision: number; frame: Buffer } | undefined;
  private tokenCache: { revision: number; token: Buffer } | undefined;
  readonly epoch: string;
  /**
   * Set when this feed is scoped per node (#20, scopedFeeds): the per-node index its units,
   * snapshots and per-node STATUS digests are built from. Undefined: a cluster-wide feed.
   */
  scope: ScopeIndex | undefined;
  /** Per-node STATUS frames of a scoped feed, for `nodeStatusKey`. */
  private nodeStatus = new Map<string, Buffer>();
  private nodeStatusKey: string | undefined;
  /**
   * The cursors in their live phase on streaming connections, densely packed: a flush of this feed
   * alone walks this array (cursor → socket) instead of every connection's cursor list. Order is
   * not meaningful (removal swaps the last cursor into the hole).
   */
  readonly live: FeedCursor[] = [];
  /** The watermarks each recent revision stands for: what an ACK means upstream (convergence). */

  /**
   * The feed's id in frame headers. PROTOCOL.md lets each connection assign ids; we use the feed's
   * index in the server's list on every connection, which is what lets one Buffer serve all sockets.
   */
  constructor(
    readonly id: number,
    readonly def: FeedDefinition,
    readonly store: ServedStore,
    readonly serverId: string,
    /** This feed's fan-out counters (shared with the metrics, see stats.ts). */
    readonly stats: FeedStats,
  ) {
    this.flushedRevision = store.revision;
    this.epoch = epochString(store.epoch);
    this.flushedStatusKey = statusKey(store.revision, store.meta());
    this.scope = undefined;
  }

  get name(): string {
    return this.def.name;
  }

  joinLive(c: FeedCursor): void {
    if (c.liveIndex >= 0) return;
    c.liveIndex = this.live.length;
    this.live.push(c);
  }

  leaveLive(c: FeedCursor): void {
    const i = c.liveIndex;
    if (i < 0) return;
    const last = this.live.pop() as FeedCursor;
    if (last !== c) {
      this.live[i] = last;
      last.liveIndex = i;
    }
    c.liveIndex = -1;
  }

  token(revision: number): Buffer {
    if (this.tokenCache?.revision === revision) return this.tokenCache.token;
    const token = encodeToken({ serverId: this.serverId, epoch: this.epoch, feed: this.def.name, revision, projectionVersion: this.def.projectionVersion });
    this.tokenCache = { revision, token };
    return token;
  }

  recordFlush(revision: number, atMs: number): void {
    this.flushTimes.push({ revision, atMs });
    if (this.flushTimes.length > FLUSH_TIMES_KEPT) this.flushTimes.splice(0, this.flushTimes.length - FLUSH_TIMES_KEPT);
  }

  /** Milliseconds a client at `revision` is behind: since the first flush it has not applied. */
  lagMs(revision: number, nowMs: number): number {
    if (revision >= this.flushedRevision) return 0;
    for (const f of this.flushTimes) if (f.revision > revision) return Math.max(0, nowMs - f.atMs);
    const oldest = this.flushTimes[0];
    return oldest === undefined ? 0 : Math.max(0, nowMs - oldest.atMs);
  }

  /**
   * The STATUS frame for the current revision (which is `flushedRevision` whenever it is used:
   * statuses are written right after the flush that reached it). Never compressed: it is small,
   * and one frame then serves every compression.
   */
  statusFrame(compressMinBytes: number, node?: string): { key: string; frame: Buffer } {
    const meta = this.store.meta();
    const revision = this.store.revision;
    const key = statusKey(revision, meta);
    if (this.scope !== undefined && node !== undefined) return { key, frame: this.nodeStatusFrame(key, node, compressMinBytes) };
    if (this.statusCache !== undefined && this.statusCache.key === key) return this.statusCache;
    const frame = encodeMessage(
      {
        type: 'status', feedId: this.id, revision, status: meta.status, stale: meta.stale, watermarks: { ...meta.watermarks }, token: this.token(revision),
        ...(meta.status === 'in-sync' ? { digest: this.store.digest() } : {}),
      },
      'none',
      compressMinBytes,
    );
    this.statusCache = { key, revision, frame };
    return this.statusCache;
  }

  /**
   * A scoped feed's STATUS for one node: its digest is the node's view's (PROTOCOL.md §7.3),
   * encoded once per node and status key, and only for nodes that have an agent to send it to.
   */
  private nodeStatusFrame(key: string, node: string, compressMinBytes: number): Buffer {
    if (this.nodeStatusKey !== key) {
      this.nodeStatus = new Map();
      this.nodeStatusKey = key;
    }
    let frame = this.nodeStatus.get(node);
    if (frame === undefined) {
      const meta = this.store.meta();
      const revision = this.store.revision;
      frame = encodeMessage(
        {
          type: 'status', feedId: this.id, revision, status: meta.status, stale: meta.stale, watermarks: { ...meta.watermarks }, token: this.token(revision),
          ...(meta.status === 'in-sync' ? { digest: (this.scope as ScopeIndex).digest(node) } : {}),
        },
        'none',
        compressMinBytes,
      );
      this.nodeStatus.set(node, frame);
    }
    return frame;
  }
}

/**
 * What a STATUS frame says; equal keys mean "nothing new to tell". The revision is part of it: a
 * STATUS follows every shared DELTA, because its token is how an agent resumes from exactly the
 * revision it holds (a token older than the agent's state would make the resume DELTA start
 * before the agent's revision). It rides in the same corked write, so it costs bytes, not syscalls.
 */
export function statusKey(revision: number, meta: StoreMeta): string {
  return `${revision}|${meta.status}|${meta.stale ? 1 : 0}|${JSON.stringify(meta.watermarks)}`;
}

