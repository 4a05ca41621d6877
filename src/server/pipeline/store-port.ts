/**
 * What the fan-out needs from a feed's store (src/snapshot `FeedStore`), as a structural type.
 *
 * The server depends on this shape, not on the class, so the pipeline can be driven by the real
 * store in production and by a reference model in tests. It mirrors the store's API exactly; a
 * mismatch is a type error at the one place the real store is constructed (pipeline.ts).
 */
import type { FeedBatch, SyncStatus } from './seams.js';


export type StoreEntry = readonly [key: string, value: Buffer];

/** An immutable view of a feed at one revision (O(1) copy-on-write clone). */
export interface StoreView {
  readonly revision: number;
  readonly size: number;
  /** Sum of key (UTF-8) and value bytes: SNAPSHOT_BEGIN's rawBytes. */
  readonly bytes: number;
  /** 8-byte digest, PROTOCOL.md §10. */
  readonly digest: Buffer;
  /** Status, staleness and watermarks at this revision. */
  readonly meta: StoreMeta;
  get(key: string): Buffer | undefined;
  /** Entries in ascending key order (UTF-8 byte order). */
  entries(): Iterable<StoreEntry>;
}

export type SinceResult =
  | {
      readonly kind: 'delta';
      readonly from: number;
      readonly to: number;
      readonly upserts: readonly StoreEntry[];
      readonly deletes: readonly string[];
      /** Bytes of keys and values in the change set. */
      readonly bytes: number;
    }
  | { readonly kind: 'too-old'; readonly oldestRevision: number }
  | { readonly kind: 'future' };

export interface ApplyResult {
  readonly revision: number;
  readonly changed: boolean;
  readonly applied: number;
  readonly skippedNoOp: number;
  readonly deleted: number;
  readonly deletedUnknown: number;
}

export interface StoreMeta {
  readonly status: SyncStatus;
  readonly stale: boolean;
  readonly statusRevision: number;
  readonly watermarks: Readonly<Record<string, string>>;
}

/** The store's retained history, as its `stats()` reports it (gauges at scrape time). */
export interface StoreLogStats {
  /** Deletions retained so since() can answer: the delta log (upserts are answered from the live state). */
  readonly tombstones: number;
  /** Key bytes of those deletions, the quantity bounded by logMaxBytes. */
  readonly logBytes: number;
  /** Bytes of the live state's keys and values: what a snapshot costs, against which a rebase is weighed. */
  readonly keyBytes: number;
  readonly valueBytes: number;
  /** The oldest revision since() answers with a delta; older ones are 'too-old'. */
  readonly oldestRevision: number;
}

/** Where an agent at the given upstream watermarks can continue (src/snapshot watermark-log.ts). */
export type RebaseResult =
  | { readonly kind: 'revision'; readonly revision: number }
  | { readonly kind: 'behind' }
  | { readonly kind: 'none' };

export interface ServedStore {
  readonly revision: number;
  /** Random per store instance; part of resume tokens so a restart invalidates them. */
  readonly epoch: string | number | Uint8Array;
  apply(batch: FeedBatch, nowMs: number): ApplyResult;
  /** A view for snapshots (the fan-out's flush path never takes one: it needs only since()). */
  current(): StoreView;
  /** The current state's 8-byte digest, O(buckets). */
  digest(): Buffer;
  since(revision: number): SinceResult;
  /** The 256 bucket sums, u64be each (PROTOCOL.md §10); optional: without it and `repair`, range repairs are answered with snapshots. */
  bucketSums?(): Buffer;
  /** A range repair (PROTOCOL.md §7.2): since(revision) plus every entry of `buckets` (a 32-byte bit set). */
  repair?(revision: number, buckets: Uint8Array, maxBytes?: number): SinceResult;
  /** The upstream watermarks a state at `revision` stands for; undefined when older than the log keeps. */
  watermarksAt(revision: number): Readonly<Record<string, string>> | undefined;
  /** The revision from which `since()` brings a state at `watermarks` (untrusted input) to ours. */
  rebase(watermarks: unknown): RebaseResult;
  trim(nowMs: number): unknown;
  /**
   * The feed's status and watermarks. A change returns a new object (the fan-out memoises the
   * STATUS key by this object's identity and the revision), never the same one mutated.
   */
  meta(): StoreMeta;
  stats(): StoreLogStats;
}

export interface StoreFactoryOptions {
  readonly feed: string;
  readonly logMaxAgeMs: number;
  readonly logMaxBytes: number;
}

export type StoreFactory = (options: StoreFactoryOptions) => ServedStore;

/** The epoch as a string, whatever representation the store uses. */
export function epochString(epoch: ServedStore['epoch']): string {
  if (typeof epoch === 'string') return epoch;
  if (typeof epoch === 'number') return String(epoch);
  return Buffer.from(epoch.buffer, epoch.byteOffset, epoch.byteLength).toString('hex');
}
