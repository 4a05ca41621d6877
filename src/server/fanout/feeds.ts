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
import { MAX_CACHED_NODES, type ScopeIndex } from '../scoping/index.js';

/**
 * Revisions whose flush time is remembered for lag, at least; older acks count from the oldest
 * kept. Trimmed when twice as many are held, so a flush moves no array (one splice per 4,096
 * flushes instead of a 4,096-element shift per flush).
 */
const FLUSH_TIMES_KEPT = 4_096;

export class FeedRuntime {
  /** The revision every caught-up client is at: the `to` of the last shared DELTA. */
  flushedRevision: number;
  /** Identity of the last status broadcast; a client whose own differs gets a STATUS frame. */
  flushedStatusKey: string;
  private readonly flushTimes: { revision: number; atMs: number }[] = [];
  private statusCache: { key: string; revision: number; frame: Buffer } | undefined;
  private undigested: { key: string; frame: Buffer } | undefined;
  private tokenCache: { revision: number; token: Buffer } | undefined;
  readonly epoch: string;
  /**
   * Set when this feed is scoped per node (#20, scopedFeeds): the per-node index its units,
   * snapshots and per-node STATUS digests are built from. Undefined: a cluster-wide feed.
   */
  scope: ScopeIndex | undefined;
  /** Monotonic ms (the server's clock), for the digest cadence of scoped feeds. */
  monotonic: () => number = () => performance.now();
  /** Scoped: the status key currently held (see currentStatusKey), and the status and staleness it said. */
  private heldKey: string | undefined;
  private heldMeta: { status: string; stale: boolean } | undefined;
  private lastStatusMs = -Infinity;
  private keyMemo: { revision: number; meta: StoreMeta; key: string } | undefined;
  /** Scoped: when the held key is to be replaced by the current one (a STATUS is owed). */
  private statusDueMs: number | undefined;
  /** The STATUS of `nodeStatusKey` with a placeholder digest at byte `at` (−1: not found, encode per node). */
  private statusTemplate: { frame: Buffer; at: number } | undefined;
  /** Per-node STATUS frames of a scoped feed, for `nodeStatusKey`. */
  private nodeStatus = new Map<string, Buffer>();
  private nodeStatusKey: string | undefined;
  /** Per-node STATUS frames held for the current status key (bounded by MAX_CACHED_NODES; tests). */
  get nodeStatusCached(): number {
    return this.nodeStatus.size;
  }

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

  /**
   * The projection version resume tokens carry: the definition's, changed when the feed is scoped
   * (#20), so a token of a cluster-wide state never resumes a scoped feed nor the reverse (the
   * agent would keep the other form of every entry that does not change): it gets a snapshot
   * with reason `projection-changed`, and a rebase between replicas that scope differently is
   * refused the same way.
   */
  get projectionVersion(): number {
    return this.scope === undefined ? this.def.projectionVersion : (this.def.projectionVersion ^ SCOPED_VERSION_TAG) & 0x7fffffff;
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
    const token = encodeToken({ serverId: this.serverId, epoch: this.epoch, feed: this.def.name, revision, projectionVersion: this.projectionVersion });
    this.tokenCache = { revision, token };
    return token;
  }

  recordFlush(revision: number, atMs: number): void {
    this.flushTimes.push({ revision, atMs });
    if (this.flushTimes.length >= 2 * FLUSH_TIMES_KEPT) this.flushTimes.splice(0, this.flushTimes.length - FLUSH_TIMES_KEPT);
  }

  /** Milliseconds a client at `revision` is behind: since the first flush it has not applied. */
  lagMs(revision: number, nowMs: number): number {
    if (revision >= this.flushedRevision) return 0;
    // The first flush past `revision` (flush revisions ascend): a binary search, since an ack
    // asks this and up to 8,191 flushes are held.
    const times = this.flushTimes;
    let lo = 0;
    let hi = times.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((times[mid] as { revision: number }).revision > revision) hi = mid;
      else lo = mid + 1;
    }
    // None past it kept (older than the oldest, or flushed without a record): the oldest kept.
    const first = times[lo] ?? times[0];
    return first === undefined ? 0 : Math.max(0, nowMs - first.atMs);
  }

  /**
   * The STATUS frame for the current revision (which is `flushedRevision` whenever it is used:
   * statuses are written right after the flush that reached it). Never compressed: it is small,
   * and one frame then serves every compression.
   */
  statusFrame(compressMinBytes: number, node?: string): { key: string; frame: Buffer } {
    const meta = this.store.meta();
    const revision = this.store.revision;
    if (this.scope !== undefined && node !== undefined) {
      // The frame is always at the current revision (with the node's digest); the key is the one
      // held for the cadence (currentStatusKey), so most deltas go without a STATUS.
      return { key: this.currentStatusKey(), frame: this.nodeStatusFrame(this.baseStatusKey(), node, compressMinBytes) };
    }
    const key = this.baseStatusKey();
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
   * The key of the STATUS to send now ("nothing new to tell" while it is the one a cursor holds).
   * Unscoped: statusKey() of the revision and meta, so a STATUS follows every DELTA. Scoped: a
   * STATUS carries each node's digest of its view (one 2 KiB hash per node), so it follows the
   * deltas at most once per SCOPED_DIGEST_INTERVAL_MS: the key is held while only revisions and
   * watermarks change, and replaced at once when status or staleness change (or while the feed is
   * not in sync). A held key owes a STATUS: the flusher calls promoteStatus() when it is due, and
   * every live agent then gets one at the revision it holds (PROTOCOL.md §4.7, §7.3).
   */
  currentStatusKey(): string {
    const meta = this.store.meta();
    const base = this.baseStatusKey();
    if (this.scope === undefined || base === this.heldKey) return base;
    const now = this.monotonic();
    const held = this.heldMeta;
    const urgent = held === undefined || meta.status !== 'in-sync' || held.status !== meta.status || held.stale !== meta.stale;
    if (urgent || now - this.lastStatusMs >= SCOPED_DIGEST_INTERVAL_MS) {
      this.heldKey = base;
      this.heldMeta = { status: meta.status, stale: meta.stale };
      this.lastStatusMs = now;
      this.statusDueMs = undefined;
      return base;
    }
    this.statusDueMs = this.lastStatusMs + SCOPED_DIGEST_INTERVAL_MS;
    return this.heldKey as string;
  }

  /**
   * statusKey() of the current revision and meta, built once per revision and meta: a flush asks
   * for it in buildUnits and again for the STATUS frame (and, scoped, per agent), and building it
   * stringifies the watermarks.
   */
  baseStatusKey(): string {
    const meta = this.store.meta();
    const revision = this.store.revision;
    const memo = this.keyMemo;
    if (memo !== undefined && memo.revision === revision && memo.meta === meta) return memo.key;
    const key = statusKey(revision, meta);
    this.keyMemo = { revision, meta, key };
    return key;
  }

  /**
   * Scoped, in sync: the STATUS at the current revision without digest (PROTOCOL.md §4.7,
   * scope.watermarks), one frame for every node. Sent after a DELTA unit while the digest-bearing
   * STATUS is held back, so the agent's watermarks and token always describe the state it holds:
   * it is what the agent presents to the next replica (notBefore, token) if this one crashes.
   * The per-node digest is the costly part (a 2 KiB hash per node); this frame costs its bytes
   * (~120 per agent for felix) and no CPU per node.
   */
  undigestedStatusFrame(compressMinBytes: number): Buffer {
    const key = this.baseStatusKey();
    if (this.undigested?.key === key) return this.undigested.frame;
    const frame = this.encodeStatus(undefined, compressMinBytes);
    this.undigested = { key, frame };
    return frame;
  }

  /** Scoped: when the held key owes a STATUS (undefined: none owed). */
  statusDueAtMs(): number | undefined {
    return this.statusDueMs;
  }

  /** Scoped: the owed STATUS is due; the next currentStatusKey() is the current one. */
  promoteStatus(): void {
    this.lastStatusMs = -Infinity;
    this.statusDueMs = undefined;
  }

  private encodeStatus(digest: Buffer | undefined, compressMinBytes: number): Buffer {
    const meta = this.store.meta();
    const revision = this.store.revision;
    return encodeMessage(
      { type: 'status', feedId: this.id, revision, status: meta.status, stale: meta.stale, watermarks: { ...meta.watermarks }, token: this.token(revision), ...(digest !== undefined ? { digest } : {}) },
      'none',
      compressMinBytes,
    );
  }

  private encodeTemplate(_key: string, compressMinBytes: number): { frame: Buffer; at: number } {
    const frame = this.encodeStatus(PLACEHOLDER, compressMinBytes);
    const needle = Buffer.concat([DIGEST_PREFIX, PLACEHOLDER]);
    const i = frame.indexOf(needle);
    // Unique, or per-node encoding (a token or watermark holding the same bytes: never in practice).
    const at = i >= 0 && frame.lastIndexOf(needle) === i ? i + DIGEST_PREFIX.length : -1;
    return { frame, at };
  }

  /**
   * A scoped feed's STATUS for one node: its digest is the node's view's (PROTOCOL.md §7.3),
   * encoded once per node and status key, and only for nodes that have an agent to send it to.
   */
  private nodeStatusFrame(key: string, node: string, compressMinBytes: number): Buffer {
    if (this.nodeStatusKey !== key) {
      this.nodeStatus = new Map();
      this.nodeStatusKey = key;
      this.statusTemplate = undefined;
    }
    let frame = this.nodeStatus.get(node);
    if (frame === undefined) {
      const meta = this.store.meta();
      if (meta.status !== 'in-sync') {
        // No digest: one frame serves every node.
        frame = this.statusFrame(compressMinBytes).frame;
      } else {
        // Encoded once per status key with a placeholder digest; each node's is a copy with its
        // digest written over the placeholder (an uncompressed frame: the bytes are in place).
        const t = (this.statusTemplate ??= this.encodeTemplate(key, compressMinBytes));
        const digest = (this.scope as ScopeIndex).digest(node);
        if (t.at < 0) {
          frame = this.encodeStatus(digest, compressMinBytes);
        } else {
          frame = Buffer.allocUnsafe(t.frame.length);
          t.frame.copy(frame);
          digest.copy(frame, t.at);
        }
      }
      if (this.nodeStatus.size >= MAX_CACHED_NODES) this.nodeStatus = new Map();
      this.nodeStatus.set(node, frame);
    }
    return frame;
  }
}

/** Mixed into a scoped feed's projection version (see FeedRuntime.projectionVersion); change it when a scope policy or the slim form changes. */
const SCOPED_VERSION_TAG = 0x53c0de01;

/** A scoped feed's per-node digests are computed at most this often (PROTOCOL.md §7.3). */
export const SCOPED_DIGEST_INTERVAL_MS = 1_000;

const PLACEHOLDER = Buffer.from('c7a77a11d16e57ff', 'hex');
/** msgpack `"digest"` then bin8 of length 8: what precedes the digest bytes in a STATUS body. */
const DIGEST_PREFIX = Buffer.concat([Buffer.from([0xa6]), Buffer.from('digest'), Buffer.from([0xc4, 0x08])]);

/**
 * What a STATUS frame says; equal keys mean "nothing new to tell". The revision is part of it: a
 * STATUS follows every shared DELTA, because its token is how an agent resumes from exactly the
 * revision it holds (a token older than the agent's state would make the resume DELTA start
 * before the agent's revision). It rides in the same corked write, so it costs bytes, not syscalls.
 */
export function statusKey(revision: number, meta: StoreMeta): string {
  return `${revision}|${meta.status}|${meta.stale ? 1 : 0}|${JSON.stringify(meta.watermarks)}`;
}

