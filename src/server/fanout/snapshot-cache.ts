/**
 * Snapshot frames, built once per (feed, revision, compression, frame size) and shared.
 *
 *   agent A arrives ──► acquire() ── no usable build ──► new SnapshotBuild(rev R) ── slices ──► frames[]
 *   agent B arrives while building ──► same build: streams frames[0..n) now, the rest as they appear
 *   agent C arrives ≤ snapshotReuseWindowMs after it finished ──► same build, then deltas since R
 *   agent D arrives later, the feed unchanged since R ──► same build (it is the current state)
 *   agent E arrives later, after changes ──► a new build at the current revision
 *
 * The build walks an O(1) copy-on-write view of the store, so it needs no lock and the store keeps
 * applying batches meanwhile. It encodes `snapshotBuildSliceEntries` entries per event-loop turn, so
 * a 150k-entry feed never blocks the loop for long. Frames are complete WebSocket frames (wire.ts):
 * every agent gets the same Buffers, never a copy.
 *
 * Rejected: Typha's "reuse only until a newer revision exists" rule. Our agents take the compacted
 * deltas since R right after the snapshot, so a slightly old snapshot is still the cheapest start,
 * and a reconnect storm during churn shares one build instead of one per revision.
 */
import type { Clock } from '../../clock.js';
import type { FeedRuntime } from './feeds.js';
import type { ServerMetrics } from '../ops/metrics.js';
import type { StoreEntry } from '../pipeline/store-port.js';
import { type Compression, encodeChunk, encodeMessage, entryBytes, entryTooLarge } from '../transport/framing.js';

/** Bytes of a chunk body besides its entries: map, key and array headers (upper bound). */
const BODY_SLACK_BYTES = 16;

export class SnapshotBuild {
  readonly frames: Buffer[] = [];
  done = false;
  /** Set when the build threw: an entry too large for its frame size (its agents are closed with 4003) or a bug (4012); the build is dropped. */
  failed: Error | undefined;
  finishedAtMs: number | undefined;
  rawBytes = 0;
  wireBytes = 0;
  private readonly listeners = new Set<() => void>();

  constructor(
    readonly feed: FeedRuntime,
    readonly revision: number,
    readonly compression: Compression,
    readonly maxBodyBytes: number,
  ) {}

  /** Called after every new frame and at the end; returns the unsubscribe function. */
  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  push(frame: Buffer): void {
    this.frames.push(frame);
    this.wireBytes += frame.length;
  }

  notify(): void {
    for (const fn of [...this.listeners]) fn();
  }
}

export interface SnapshotCacheOptions {
  readonly clock: Clock;
  readonly reuseWindowMs: number;
  readonly sliceEntries: number;
  readonly compressMinBytes: number;
  readonly metrics: ServerMetrics;
}

export class SnapshotCache {
  private builds: SnapshotBuild[] = [];
  /** Counts for tests and benches (the metrics hold the same numbers per feed). */
  builtCount = 0;
  reusedCount = 0;

  constructor(private readonly o: SnapshotCacheOptions) {}

  /** A build to stream for this feed: one in progress or recently finished, else a new one. */
  /**
   * `minRevision`: a build older than this is not reusable for the caller (an agent already at a
   * later revision, as a range repair's fallback is, would find its watermarks behind, §8).
   */
  acquire(feed: FeedRuntime, compression: Compression, maxBodyBytes: number, minRevision = 0): SnapshotBuild {
    this.purge();
    const now = this.o.clock.monotonic();
    for (let i = this.builds.length - 1; i >= 0; i--) {
      const b = this.builds[i] as SnapshotBuild;
      if (b.feed !== feed || b.compression !== compression || b.maxBodyBytes !== maxBodyBytes || b.revision < minRevision) continue;
      // A build of the current revision is the current state: always reusable (Typha's rule too).
      const fresh = !b.done || b.revision === feed.store.revision || (b.finishedAtMs !== undefined && now - b.finishedAtMs <= this.o.reuseWindowMs);
      // Reuse only while the deltas since the build's revision are still in the log, or the agent
      // would leave the snapshot already too old to catch up (and be sent the same one again).
      if (fresh && (b.revision === feed.store.revision || feed.store.since(b.revision).kind === 'delta')) {
        this.reusedCount++;
        this.o.metrics.snapshotsReused.inc({ feed: feed.name });
        return b;
      }
    }
    const view = feed.store.current();
    const build = new SnapshotBuild(feed, view.revision, compression, maxBodyBytes);
    this.builds.push(build);
    this.builtCount++;
    this.o.metrics.snapshotsGenerated.inc({ feed: feed.name });
    this.run(build, view);
    return build;
  }

  /** Builds held for reuse and their frame bytes (agents still streaming a dropped build pin it too). */
  held(): { builds: number; bytes: number } {
    let bytes = 0;
    for (const b of this.builds) bytes += b.wireBytes;
    return { builds: this.builds.length, bytes };
  }

  /** Drops finished builds that are outdated and older than the reuse window (agents still streaming keep their reference). */
  purge(): void {
    const now = this.o.clock.monotonic();
    this.builds = this.builds.filter((b) => !b.done || b.revision === b.feed.store.revision || (b.finishedAtMs !== undefined && now - b.finishedAtMs <= this.o.reuseWindowMs));
  }

  private run(build: SnapshotBuild, view: ReturnType<FeedRuntime['store']['current']>): void {
    const { feed, compression, maxBodyBytes } = build;
    const min = this.o.compressMinBytes;
    // rawBytes is announced up front (progress display), so one cheap pass over lengths first.
    let rawBytes = 0;
    for (const [k, v] of view.entries()) rawBytes += Buffer.byteLength(k) + v.length;
    build.rawBytes = rawBytes;
    build.push(encodeMessage({ type: 'snapshotBegin', feedId: feed.id, revision: build.revision, entries: view.size, rawBytes }, compression, min));
    const it = view.entries()[Symbol.iterator]();
    let chunk: StoreEntry[] = [];
    let chunkBytes = BODY_SLACK_BYTES;
    const flushChunk = (): void => {
      if (chunk.length === 0) return;
      build.push(encodeChunk(feed.id, build.revision, chunk, compression, min));
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
      for (let n = 0; n < this.o.sliceEntries; n++) {
        const r = it.next();
        if (r.done === true) {
          flushChunk();
          build.push(
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
          return;
        }
        const b = entryBytes(r.value);
        // An entry that fits no chunk body of this size fails the build for every agent of that
        // size (they would all meet it); the service closes them with ENTRY_TOO_LARGE.
        if (BODY_SLACK_BYTES + b > maxBodyBytes) throw entryTooLarge(r.value[0], BODY_SLACK_BYTES + b, maxBodyBytes);
        if (chunk.length > 0 && chunkBytes + b > maxBodyBytes) flushChunk();
        chunk.push(r.value);
        chunkBytes += b;
      }
      build.notify();
      setImmediate(slice);
    };
    slice();
  }
}
