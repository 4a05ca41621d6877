/**
 * Snapshot frames, built once per (feed, revision, compression, frame size) and shared.
 *
 *   agent A arrives ──► acquire() ── no usable build ──► new SnapshotBuild(rev R) ── slices ──► frames[]
 *   agent B arrives while building ──► same build: streams frames[0..n) now, the rest as they appear
 *   agent C arrives ≤ snapshotReuseWindowMs after it finished ──► same build, then deltas since R
 *   agent D arrives later, the feed unchanged since R ──► same build (it is the current state)
 *   (C and D: unless the build was evicted meanwhile to keep the cache within snapshotHeldMaxBytes)
 *   agent E arrives later, after changes ──► a new build at the current revision
 *
 * The build walks an O(1) copy-on-write view of the store, so it needs no lock and the store keeps
 * applying batches meanwhile. It encodes at most `snapshotBuildSliceEntries` entries and
 * `snapshotBuildSliceMs` per event-loop turn, so a 150k-entry feed never blocks the loop for long. Frames are complete WebSocket frames (wire.ts):
 * every agent gets the same Buffers, never a copy.
 *
 * Rejected: Typha's "reuse only until a newer revision exists" rule. Our agents take the compacted
 * deltas since R right after the snapshot, so a slightly old snapshot is still the cheapest start,
 * and a reconnect storm during churn shares one build instead of one per revision.
 */
import { CattailError } from '../../errors.js';
import type { Clock } from '../../clock.js';
import { type FeedRuntime, statusKey } from './feeds.js';
import type { ServerMetrics } from '../ops/metrics.js';
import type { StoreEntry } from '../pipeline/store-port.js';
import { type Compression, ScratchAllocator, encodeChunk, encodeMessage, entryBytes, entryTooLarge } from '../transport/framing.js';
import type { StoreMeta, StoreView } from '../pipeline/store-port.js';
import { MAX_CACHED_NODES, type ScopeIndex, type SharedAt } from '../scoping/index.js';
import { slimValue } from '../scoping/slim.js';
import { chunkBodyBytes } from '../../../proto/entries.js';
import { behindResources } from '../../../proto/index.js';

/**
 * Bytes of a chunk body besides its entries: map, key and array headers (an upper bound, for
 * cutting chunks). Whether one entry fits a chunk at all is judged exactly (oneEntryBody), as the
 * DELTA encoder judges a DELTA (PROTOCOL.md §2.2: the body of the frame that carries it); the
 * bound refused entries up to 6 bytes short of the limit that a one-entry chunk carries. A DELTA's
 * own overhead is larger (19 bytes against a chunk's 10), so an entry within 9 bytes of the limit
 * arrives in a snapshot and a change to it is refused (ENTRY_TOO_LARGE) in the DELTA.
 */
const BODY_SLACK_BYTES = 16;

/** Exact body bytes of a chunk holding only an entry of `entryBytes`. */
const oneEntryBody = (entryBytes: number): number => chunkBodyBytes(1, entryBytes);

/**
 * The default target body of a SNAPSHOT_CHUNK (snapshotChunkBytes), below the agent's frame size.
 * A chunk is encoded and compressed in one piece, so its size bounds the longest build step: a cold
 * 1 MiB chunk took 30-40 ms of one loop turn at the start of a 50,000-entry build. Smaller chunks
 * cost bytes, because deflate starts each one without history: on `cattail bench`'s 5,000-node
 * cluster, 256 KiB chunks sent +11.9 % bytes per agent and 512 KiB +6.3 % (against 1 MiB), and the
 * 512 KiB run used the least replica CPU (53 s; 62 s with 256 KiB, 57 s for the code before this
 * pacing, with 1 MiB chunks). With 512 KiB the fan-out benchmark's cold start stays within its
 * 50 ms loop-delay target.
 */
export const DEFAULT_SNAPSHOT_CHUNK_BYTES = 524_288;

/** What acquire matches builds on besides freshness: feed, encoding, and shared or scoped. */
function reuseKey(b: SnapshotBuild): string {
  return `${b.feed.id}|${b.compression}|${b.maxBodyBytes}|${b.scoped === undefined ? 'u' : 's'}`;
}

/** A build whose watermarks are behind `floor` (an agent's notBefore, PROTOCOL.md §8). */
function olderThan(b: SnapshotBuild, floor: Readonly<Record<string, string>> | undefined): boolean {
  return floor !== undefined && behindResources(floor, b.watermarks).length > 0;
}

/**
 * What holding a build costs: its frames, and for a scoped shared build the own frames of the node
 * snapshots cached with it (BEGIN, the node's chunks, END; up to MAX_CACHED_NODES of them).
 */
function heldBytes(b: SnapshotBuild): number {
  // A running sum (nodeSnapshot() adds each it caches): walking up to MAX_CACHED_NODES of them
  // on every acquire cost ~32 µs each time, a second of a 20,000-agent storm.
  return b.wireBytes + (b.scoped?.nodeBytes ?? 0);
}

/** Creation order of builds (a NodeSnapshot takes its shared build's): "oldest" across feeds, whose revisions are not comparable. */
let buildSeq = 0;

export class SnapshotBuild {
  readonly frames: Buffer[] = [];
  /** Creation order (see buildSeq). */
  seq = ++buildSeq;
  done = false;
  /** Set when the build threw: an entry too large for its frame size (its agents are closed with 4003) or a bug (4012); the build is dropped. */
  failed: Error | undefined;
  finishedAtMs: number | undefined;
  /** When acquire() last handed it out (monotonic ms): what the held-bytes bound evicts by (SnapshotCache.evictOverBound). */
  lastUsedMs = 0;
  rawBytes = 0;
  wireBytes = 0;
  private readonly listeners = new Set<() => void>();
  /**
   * A scoped feed's shared build (#20): only the chunks of the shared view (cluster-wide entries,
   * other nodes' slim forms); each node's snapshot (NodeSnapshot) wraps them in its own BEGIN,
   * node chunks and END. `at`: the shared view's sums, count and bytes at the build's revision.
   */
  scoped: { readonly at: SharedAt; readonly meta: StoreMeta; readonly nodes: Map<string, NodeSnapshot>; nodeBytes: number } | undefined;

  constructor(
    readonly feed: FeedRuntime,
    readonly revision: number,
    readonly compression: Compression,
    readonly maxBodyBytes: number,
    /** The watermarks its SNAPSHOT_END carries: the store's when the build took its view. */
    readonly watermarks: Readonly<Record<string, string>>,
    /**
     * statusKey() of what its SNAPSHOT_END says (the revision and the store's status, staleness
     * and watermarks when the build took its view): an agent at its end holds that, not the
     * feed's status of the moment, which may have changed meanwhile without a new revision.
     */
    readonly endStatusKey: string,
  ) {}

  /** How many follow this build's progress (agents streaming it; for a scoped shared build, its node snapshots). */
  get readers(): number {
    return this.listeners.size;
  }

  /**
   * A scoped shared build: agents streaming any node snapshot made from it, cached per node or
   * not (beyond MAX_CACHED_NODES a node's snapshot is its agent's alone, in no map to look in).
   */
  nodeReaders = 0;

  /** Called after every new frame and at the end; returns the unsubscribe function. */
  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  push(frame: Buffer): void {
    this.frames.push(frame);
    this.wireBytes += frame.length;
  }

  /** How many frames an agent can stream now (what `frameAt` answers for). */
  get frameCount(): number {
    return this.frames.length;
  }

  /** The `i`th frame of the snapshot, for i below frameCount. */
  frameAt(i: number): Buffer {
    return this.frames[i] as Buffer;
  }

  notify(): void {
    for (const fn of [...this.listeners]) fn();
  }
}

/**
 * One node's snapshot of a scoped feed: BEGIN (the node's view's count), the shared build's
 * chunks as they appear (the same Buffers every node gets), the node's own chunks (its full
 * entries, after the shared chunks so they win over their slim copies), END with the node view's
 * digest. Built once per node and revision; the agent's state is the node's view at the revision.
 */
export class NodeSnapshot extends SnapshotBuild {
  /**
   * Shared frames it has followed so far: frameAt reads them from the shared build. Copied into
   * a list of its own, every node snapshot held a reference per shared chunk (~50 KB a node with
   * 4 KiB frames at 100,000 pods, up to MAX_CACHED_NODES per build), which no byte count saw.
   */
  private copied = 0;

  /** Counted on the shared build too (nodeReaders): what tells the cache an agent still reads it. */
  override subscribe(fn: () => void): () => void {
    const stop = super.subscribe(fn);
    this.shared.nodeReaders++;
    let stopped = false;
    return () => {
      if (stopped) return;
      stopped = true;
      this.shared.nodeReaders--;
      stop();
    };
  }

  /** Its own frames (BEGIN, then the node's chunks and END once the shared build is done): the rest are its shared build's Buffers. */
  ownFrames(): Buffer[] {
    return this.frames;
  }

  /** Bytes of its own frames (what caching it costs beside its shared build). */
  ownBytes = 0;

  override get frameCount(): number {
    return this.copied + this.frames.length;
  }

  /** BEGIN, the shared build's frames, then its own chunks and END. */
  override frameAt(i: number): Buffer {
    if (i === 0) return this.frames[0] as Buffer;
    if (i <= this.copied) return this.shared.frames[i - 1] as Buffer;
    return this.frames[i - this.copied] as Buffer;
  }

  constructor(
    /** The shared build it wraps: a node snapshot is held (not pinned) while that one is. */
    readonly shared: SnapshotBuild,
    head: Buffer,
    tail: readonly Buffer[],
    rawBytes: number,
    clock: Clock,
    /**
     * The node's own part could not be encoded (an entry too large for the agent's frames): the
     * snapshot is failed and done from the start and follows nothing. It subscribed to the shared
     * build like any other once, and its listener stayed there (a closure over the node's frames)
     * until that build was dropped, since a done snapshot's follow returned before unsubscribing.
     */
    failed?: Error,
  ) {
    super(shared.feed, shared.revision, shared.compression, shared.maxBodyBytes, shared.watermarks, shared.endStatusKey);
    this.seq = shared.seq;
    this.rawBytes = rawBytes;
    this.push(head);
    // Its own part is encoded already (held by `follow` until the shared build ends): counted from
    // the start, so a storm's node snapshots made during the shared build count while it runs.
    this.ownBytes = head.length;
    if (failed === undefined) for (const f of tail) this.ownBytes += f.length;
    if (failed !== undefined) {
      this.failed = failed;
      this.done = true;
      this.finishedAtMs = clock.monotonic();
      return;
    }
    const sub: { stop?: () => void } = {};
    const follow = (): void => {
      if (this.done) return;
      this.copied = shared.frames.length;
      // Wire bytes of the snapshot an agent streams so far (the sent-bytes counter): BEGIN and the
      // shared frames; its own chunks and END when they are on.
      this.wireBytes = (this.frames[0] as Buffer).length + shared.wireBytes;
      if (shared.failed !== undefined) this.failed = shared.failed;
      if (shared.done) {
        if (this.failed === undefined) for (const f of tail) this.push(f);
        this.done = true;
        this.finishedAtMs = clock.monotonic();
        sub.stop?.();
      }
      this.notify();
    };
    sub.stop = shared.subscribe(follow);
    follow();
  }
}

export interface SnapshotCacheOptions {
  readonly clock: Clock;
  readonly reuseWindowMs: number;
  readonly sliceEntries: number;
  /** A build slice also ends after this many ms on the clock (checked after each chunk). */
  readonly sliceMs: number;
  /** Target chunk body bytes (chunks are at most the agent's frame size, and hold one entry at least). @default DEFAULT_SNAPSHOT_CHUNK_BYTES */
  readonly chunkBytes?: number;
  readonly compressMinBytes: number;
  readonly metrics: ServerMetrics;
  /**
   * Wire bytes the builds held for reuse may take together (held()); above it, finished builds no
   * agent streams are dropped, least recently handed out first. @default unbounded
   */
  readonly heldMaxBytes?: number;
}

export class SnapshotCache {
  private builds: SnapshotBuild[] = [];
  /** Counts for tests and benches (the metrics hold the same numbers per feed). */
  builtCount = 0;
  reusedCount = 0;
  /** Builds stopped before their end: superseded, and no agent read them (run()). */
  cancelledCount = 0;
  /** Finished builds dropped to keep held() within heldMaxBytes (evictOverBound()). */
  evictedCount = 0;
  /** Where each chunk is encoded before it is compressed or copied (one piece of memory, reused). */
  private readonly scratch = new ScratchAllocator();

  constructor(private readonly o: SnapshotCacheOptions) {}

  /** A build to stream for this feed: one in progress or recently finished, else a new one. */
  /**
   * `minRevision`: a build older than this is not reusable for the caller (an agent already at a
   * later revision, as a range repair's fallback is, would find its watermarks behind, §8).
   * `floor`: nor is one whose watermarks are behind it (an agent's notBefore, §8; a watermark-only
   * change moves the store's watermarks without a new revision, so revisions cannot tell). A new
   * build takes the store's current watermarks, which the caller checked against the floor.
   */
  acquire(feed: FeedRuntime, compression: Compression, maxBodyBytes: number, minRevision = 0, floor?: Readonly<Record<string, string>>): SnapshotBuild {
    // The bound is applied after the choice, sparing it: applied before, an idle build this agent
    // could reuse went first whenever another build was running (over the bound as it grows), and
    // the agent paid a whole build of the same kind.
    this.dropOutdated();
    const now = this.o.clock.monotonic();
    for (let i = this.builds.length - 1; i >= 0; i--) {
      const b = this.builds[i] as SnapshotBuild;
      if (!this.reusable(b, feed, compression, maxBodyBytes, minRevision, floor, now)) continue;
      b.lastUsedMs = now;
      this.reusedCount++;
      this.o.metrics.snapshotsReused.inc({ feed: feed.name });
      this.evictOverBound(b);
      return b;
    }
    const view = feed.store.current();
    const build = new SnapshotBuild(feed, view.revision, compression, maxBodyBytes, view.meta.watermarks, statusKey(view.revision, view.meta));
    build.lastUsedMs = now;
    this.builds.push(build);
    this.purge(); // the build it supersedes goes now
    this.builtCount++;
    this.o.metrics.snapshotsGenerated.inc({ feed: feed.name });
    this.run(build, view);
    return build;
  }

  /**
   * A scoped feed's snapshot for `node` (#20): a shared build (reused under the same rules as
   * acquire(), and only while the node's own entries have not changed since its revision, since
   * the node's part is read from the index now), wrapped per node once per build.
   */
  acquireScoped(feed: FeedRuntime, node: string, compression: Compression, maxBodyBytes: number, minRevision = 0, floor?: Readonly<Record<string, string>>): SnapshotBuild {
    const scope = feed.scope as ScopeIndex;
    this.dropOutdated(); // the bound after the choice, as in acquire()
    const now = this.o.clock.monotonic();
    const changedAt = scope.nodeChangedAt(node);
    for (let i = this.builds.length - 1; i >= 0; i--) {
      const b = this.builds[i] as SnapshotBuild;
      if (b.scoped === undefined || !this.reusable(b, feed, compression, maxBodyBytes, minRevision, floor, now)) continue;
      const known = b.scoped.nodes.get(node);
      if (known === undefined && changedAt > b.revision) continue;
      b.lastUsedMs = now;
      this.reusedCount++;
      this.o.metrics.snapshotsReused.inc({ feed: feed.name });
      const snap = known ?? this.nodeSnapshot(b, scope, node);
      this.evictOverBound(b);
      return snap;
    }
    const view = feed.store.current();
    const at = scope.shared();
    const build = new SnapshotBuild(feed, view.revision, compression, maxBodyBytes, view.meta.watermarks, statusKey(view.revision, view.meta));
    build.lastUsedMs = now;
    build.scoped = { at, meta: view.meta, nodes: new Map(), nodeBytes: 0 };
    this.builds.push(build);
    this.purge(); // the build it supersedes goes now
    this.builtCount++;
    this.o.metrics.snapshotsGenerated.inc({ feed: feed.name });
    const policy = scope.policy;
    this.run(build, view, (e) => {
      const n = policy.nodeOf(e[0], e[1]);
      if (n === undefined) return e;
      return policy.others === 'slim' ? [e[0], slimValue(e[1])] : undefined;
    });
    return this.nodeSnapshot(build, scope, node);
  }

  private nodeSnapshot(b: SnapshotBuild, scope: ScopeIndex, node: string): SnapshotBuild {
    const sc = b.scoped as NonNullable<SnapshotBuild['scoped']>;
    const { feed, compression, maxBodyBytes, revision } = b;
    const min = this.o.compressMinBytes;
    const target = this.chunkTarget(maxBodyBytes);
    const part = scope.nodePartAt(sc.at, node);
    const rawBytes = sc.at.rawBytes + part.rawBytes;
    const head = encodeMessage({ type: 'snapshotBegin', feedId: feed.id, revision, entries: part.count, rawBytes }, compression, min);
    const tail: Buffer[] = [];
    let failed: Error | undefined;
    try {
      let chunk: StoreEntry[] = [];
      let chunkBytes = BODY_SLACK_BYTES;
      for (const e of part.entries) {
        const eb = entryBytes(e);
        if (oneEntryBody(eb) > maxBodyBytes) throw entryTooLarge(e[0], oneEntryBody(eb), maxBodyBytes);
        if (chunk.length > 0 && chunkBytes + eb > target) {
          tail.push(encodeChunk(feed.id, revision, chunk, compression, min, this.scratch.alloc));
          chunk = [];
          chunkBytes = BODY_SLACK_BYTES;
        }
        chunk.push(e);
        chunkBytes += eb;
      }
      if (chunk.length > 0) tail.push(encodeChunk(feed.id, revision, chunk, compression, min, this.scratch.alloc));
    } catch (err) {
      failed = err instanceof Error ? err : new Error(String(err));
    }
    tail.push(encodeMessage(
      { type: 'snapshotEnd', feedId: feed.id, revision, digest: part.digest, watermarks: { ...sc.meta.watermarks }, status: sc.meta.status, stale: sc.meta.stale, token: feed.token(revision) },
      compression,
      min,
    ));
    const snap = new NodeSnapshot(b, head, tail, rawBytes, this.o.clock, failed);
    // Above the bound the part is this agent's alone (streamed, then dropped): see MAX_CACHED_NODES.
    if (sc.nodes.size < MAX_CACHED_NODES) {
      sc.nodes.set(node, snap);
      sc.nodeBytes += snap.ownBytes;
    }
    return snap;
  }

  /** Whether an agent follows `b`: its own readers, or for a scoped shared build, those of its node snapshots. */
  private hasReaders(b: SnapshotBuild): boolean {
    return b.scoped === undefined ? b.readers > 0 : b.nodeReaders > 0;
  }

  /** The body size chunks are cut at for agents of this frame size. */
  private chunkTarget(maxBodyBytes: number): number {
    return Math.min(maxBodyBytes, this.o.chunkBytes ?? DEFAULT_SNAPSHOT_CHUNK_BYTES);
  }

  /** Builds held for reuse and their frame bytes (agents still streaming a dropped build pin it too: see pinned). */
  held(): { builds: number; bytes: number } {
    let bytes = 0;
    for (const b of this.builds) bytes += heldBytes(b);
    return { builds: this.builds.length, bytes };
  }

  /**
   * Builds that only agents still streaming them keep alive (no longer held for reuse: outdated
   * and past the reuse window), and the bytes of their frames that nothing held shares: what slow
   * readers pin beyond held(). A node snapshot counts with its shared build: held while that is
   * held (its own BEGIN, node chunks and END are the reader's view, not an outdated build), else
   * pinned with it. Walks the frames of pinned builds only (the scrape, and the sweep's bound).
   */
  pinned(streaming: Iterable<SnapshotBuild>): { builds: number; bytes: number } {
    const p = this.pinnedBuilds(streaming);
    return { builds: p.builds.length, bytes: p.bytes };
  }

  /**
   * pinned() per pinned build (a shared build with the node snapshots streamed from it), oldest
   * first (creation order), each with the bytes only it holds: what closing its readers frees.
   */
  pinnedBuilds(streaming: Iterable<SnapshotBuild>): { builds: { build: SnapshotBuild; bytes: number }[]; bytes: number } {
    const held = new Set<SnapshotBuild>(this.builds);
    const owners = new Map<SnapshotBuild, SnapshotBuild[]>();
    for (const b of streaming) {
      const owner = b instanceof NodeSnapshot ? b.shared : b;
      if (held.has(owner)) continue;
      let list = owners.get(owner);
      if (list === undefined) owners.set(owner, (list = []));
      if (b !== owner) list.push(b);
    }
    if (owners.size === 0) return { builds: [], bytes: 0 };
    // Frames a held build also has (a reused chunk) free nothing when its readers go.
    const seen = new Set<Buffer>();
    for (const b of this.builds) for (const f of b.frames) seen.add(f);
    const out: { build: SnapshotBuild; bytes: number }[] = [];
    let total = 0;
    for (const [owner, nodes] of [...owners].sort((a, b) => a[0].seq - b[0].seq)) {
      let bytes = 0;
      for (const b of [owner, ...new Set(nodes)]) {
        // A node snapshot's copies of the shared frames are the owner's Buffers: walked once, there.
        for (const f of b instanceof NodeSnapshot ? b.ownFrames() : b.frames) {
          if (seen.has(f)) continue;
          seen.add(f);
          bytes += f.length;
        }
      }
      out.push({ build: owner, bytes });
      total += bytes;
    }
    return { builds: out, bytes: total };
  }

  /**
   * Still worth holding: in progress, of the feed's current revision (the current state: always
   * reusable, Typha's rule too), or finished within the reuse window.
   */
  private fresh(b: SnapshotBuild, now: number): boolean {
    return !b.done || b.revision === b.feed.store.revision || (b.finishedAtMs !== undefined && now - b.finishedAtMs <= this.o.reuseWindowMs);
  }

  /**
   * What acquire and acquireScoped both ask of a build (acquireScoped also that it is scoped):
   * this feed and encoding, not older than `minRevision` or `floor`, fresh, and only while the
   * deltas since its revision are still in the log (else the agent would leave the snapshot
   * already too old to catch up, and be sent the same one again).
   */
  private reusable(b: SnapshotBuild, feed: FeedRuntime, compression: Compression, maxBodyBytes: number, minRevision: number, floor: Readonly<Record<string, string>> | undefined, now: number): boolean {
    if (b.feed !== feed || b.compression !== compression || b.maxBodyBytes !== maxBodyBytes || b.revision < minRevision || olderThan(b, floor)) return false;
    // since() would answer `delta` exactly when the revision is within the log: asked here, it built
    // the whole compacted difference (every key changed since the build) on every HELLO of a storm.
    return this.fresh(b, now) && (b.revision === feed.store.revision || (b.revision < feed.store.revision && b.revision >= feed.store.stats().oldestRevision));
  }

  /**
   * Drops finished builds that are outdated and older than the reuse window (agents still
   * streaming keep their reference), then applies snapshotHeldMaxBytes (evictOverBound).
   */
  purge(): void {
    this.dropOutdated();
    this.evictOverBound();
  }

  private dropOutdated(): void {
    const now = this.o.clock.monotonic();
    const kept = this.builds.filter((b) => this.fresh(b, now));
    // Only the newest build of a feed, encoding and kind can be chosen: acquire walks newest
    // first, and a newer build is never less acceptable (revision, watermarks and freshness only
    // grow). The older ones would only hold memory: an agent's notBefore makes a new build at the
    // same revision after a watermark-only change, up to one a second. Agents streaming them keep
    // them alive (and counted as pinned).
    const newest = new Map<string, SnapshotBuild>();
    for (const b of kept) newest.set(reuseKey(b), b);
    this.builds = newest.size === kept.length ? kept : kept.filter((b) => newest.get(reuseKey(b)) === b);
  }

  /**
   * Keeps held() within heldMaxBytes by dropping finished builds no agent streams, least recently
   * handed out first. Why: a build of the current revision is held for as long as the feed does
   * not change, and there is one per feed, compression and frame size (3 x 9 of them, each a whole
   * state: an uncompressed one of a 50,000-pod feed is ~34 MB); a quiet cluster held every odd
   * agent's variant for hours. Builds being streamed are kept (their readers hold their frames
   * anyway, and the pinned bound covers readers of outdated ones), as is one still running; a
   * dropped build costs the next agent of its kind a new build, nothing else.
   */
  private evictOverBound(spare?: SnapshotBuild): void {
    const max = this.o.heldMaxBytes;
    if (max === undefined) return;
    let bytes = this.held().bytes;
    if (bytes <= max) return;
    const idle = this.builds.filter((b) => b !== spare && b.done && !this.hasReaders(b)).sort((a, b) => a.lastUsedMs - b.lastUsedMs);
    const dropped = new Set<SnapshotBuild>();
    for (const b of idle) {
      if (bytes <= max) break;
      dropped.add(b);
      bytes -= heldBytes(b);
      this.evictedCount++;
      this.o.metrics.snapshotsEvicted.inc({ feed: b.feed.name });
    }
    if (dropped.size > 0) this.builds = this.builds.filter((b) => !dropped.has(b));
  }

  /** `transform` (a scoped feed's shared build): what of each entry the shared view holds; no BEGIN or END (see NodeSnapshot). */
  private run(build: SnapshotBuild, view: StoreView, transform?: (e: StoreEntry) => StoreEntry | undefined): void {
    const { feed, compression, maxBodyBytes } = build;
    const min = this.o.compressMinBytes;
    const target = this.chunkTarget(maxBodyBytes);
    // rawBytes is announced up front (progress display). The store keeps the sum; counting it
    // here instead took ~45 ms of one loop turn at 50,000 entries (the cold-start benchmark).
    let rawBytes = build.scoped?.at.rawBytes ?? 0;
    if (transform === undefined) {
      rawBytes = view.bytes;
      build.rawBytes = rawBytes;
      build.push(encodeMessage({ type: 'snapshotBegin', feedId: feed.id, revision: build.revision, entries: view.size, rawBytes }, compression, min));
    } else {
      build.rawBytes = rawBytes;
    }
    const it = view.entries()[Symbol.iterator]();
    let chunk: StoreEntry[] = [];
    let chunkBytes = BODY_SLACK_BYTES;
    const flushChunk = (): void => {
      if (chunk.length === 0) return;
      build.push(encodeChunk(feed.id, build.revision, chunk, compression, min, this.scratch.alloc));
      chunk = [];
      chunkBytes = BODY_SLACK_BYTES;
    };
    const slice = (): void => {
      try {
        step();
      } catch (err) {
        build.failed = err instanceof Error ? err : new Error(String(err));
        build.done = true;
        build.finishedAtMs = this.o.clock.monotonic();
        this.builds = this.builds.filter((b) => b !== build);
        build.notify();
      }
    };
    const step = (): void => {
      // A build no agent reads any more, which a newer one of its kind superseded (purge dropped it
      // from `builds`, so nothing can pick it again), stops here. Run to the end, as every build
      // once was, a hostile agent bought a whole build per connection (a resume, one
      // REPAIR_REQUEST, whose snapshot fallback must be at least its revision, then goodbye), each
      // holding a full encoded snapshot until done; now at most one unread build of a kind runs.
      if (!this.builds.includes(build) && !this.hasReaders(build)) {
        build.failed = new CattailError('CATTAIL_INTERNAL', `snapshot build of feed ${feed.name} at revision ${build.revision} stopped: superseded, and no agent reads it`);
        build.done = true;
        build.finishedAtMs = this.o.clock.monotonic();
        this.cancelledCount++;
        this.o.metrics.snapshotsStopped.inc({ feed: feed.name });
        build.notify();
        return;
      }
      // A slice ends after sliceEntries entries or sliceMs, whichever comes first: the time is read
      // after each chunk (the costly part: encode and compress) and every 256 entries, never per entry.
      const start = this.o.clock.monotonic();
      for (let n = 0; n < this.o.sliceEntries; n++) {
        if ((n & 255) === 255 && this.o.clock.monotonic() - start >= this.o.sliceMs) break;
        const r = it.next();
        if (r.done === true) {
          flushChunk();
          if (transform === undefined) build.push(
            encodeMessage(
              { type: 'snapshotEnd', feedId: feed.id, revision: build.revision, digest: view.digest, watermarks: { ...view.meta.watermarks }, status: view.meta.status, stale: view.meta.stale, token: feed.token(build.revision) },
              compression,
              min,
            ),
          );
          build.done = true;
          build.finishedAtMs = this.o.clock.monotonic();
          this.o.metrics.snapshotRawBytes.set({ feed: feed.name }, rawBytes);
          this.o.metrics.snapshotCompressedBytes.set({ feed: feed.name, compression }, build.wireBytes);
          build.notify();
          // Its bytes are all counted now: others may have to go (after notify, its readers are
          // subscribed, so it is never its own victim while agents wait for it).
          this.evictOverBound();
          return;
        }
        const e = transform === undefined ? r.value : transform(r.value);
        if (e === undefined) continue;
        const b = entryBytes(e);
        // An entry that fits no chunk body of this size fails the build for every agent of that
        // size (they would all meet it); the service closes them with ENTRY_TOO_LARGE.
        if (oneEntryBody(b) > maxBodyBytes) throw entryTooLarge(e[0], oneEntryBody(b), maxBodyBytes);
        let flushed = false;
        if (chunk.length > 0 && chunkBytes + b > target) {
          flushChunk();
          flushed = true;
        }
        chunk.push(e);
        chunkBytes += b;
        if (flushed && this.o.clock.monotonic() - start >= this.o.sliceMs) break;
      }
      build.notify();
      setImmediate(slice);
    };
    // Not in the caller's turn: acquire() runs inside a HELLO's answer, within a service turn's budget.
    setImmediate(slice);
  }
}
