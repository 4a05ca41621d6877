/**
 * The public types of the snapshot store's API (see index.ts for the model and costs).
 */
import type { FeedMeta, SyncStatus } from './meta.js';

/** One change: `value` null deletes the key. */
export interface Update {
  readonly key: string;
  /** Plain MessagePack of the projection; copied only if it is not an exact-size Buffer. */
  readonly value: Uint8Array | null;
  /**
   * The key changed and came back within what this batch merges (A→B→A, or deleted and created
   * again): a change even when `value` equals the held bytes. A rebase (PROTOCOL.md §7.1) answers
   * an agent holding B, from a replica that applied B on its own, with the keys changed since a
   * revision at or below its watermarks; skipped as a no-op, this key was missing and the agent
   * kept B. A key given twice in one batch with different values counts as forced by itself.
   */
  readonly force?: boolean;
}

export interface Batch {
  /** Applied atomically as one revision; for a key given twice, the last update wins. */
  readonly updates: readonly Update[];
  /** Per resource id, the last resourceVersion this batch brings the feed to (decimal string). */
  readonly watermarks?: Readonly<Record<string, string>>;
  /** Recorded after the batch's last update (at the new revision if the batch changed data). */
  readonly status?: SyncStatus;
  readonly stale?: boolean;
  /**
   * The batch ends a relist after a watch gap (410, an older list): its diff cannot show objects
   * created and deleted inside the gap, which another replica's agent may hold, so no agent whose
   * watermarks are below this batch's is rebased from a revision before it (PROTOCOL.md §7.1).
   */
  readonly barrier?: boolean;
}

export interface ApplyResult {
  /** The store revision after this batch (unchanged if `changed` is false). */
  readonly revision: number;
  /** True if the batch created a new revision (some entry was added, changed or deleted). */
  readonly changed: boolean;
  /** True if status, stale or watermarks changed (see `FeedMeta.seq`). */
  readonly metaChanged: boolean;
  /** Upserts that added or changed an entry. */
  readonly applied: number;
  /** Upserts byte-identical to the stored value and not forced (Update.force): dropped (absorbs status and heartbeat churn). */
  readonly skippedNoOp: number;
  /** Deletions of existing entries. */
  readonly deleted: number;
  /** Deletions of keys the store does not hold: harmless, counted. */
  readonly deletedUnknown: number;
  /** Updates overridden by a later update of the same key in the same batch. */
  readonly superseded: number;
  /** Values that were not exact-size Buffers and were copied so no shared slab stays pinned. */
  readonly copied: number;
  /** Watermarks that went below the recorded one (recorded anyway; the upstream decides). */
  readonly watermarkRegressions: number;
  /** Tombstones dropped by the trim that follows every apply. */
  readonly trimmed: number;
}

export type SinceResult =
  | {
      readonly kind: 'delta';
      readonly from: number;
      readonly to: number;
      /** Latest value of every key changed after `from`, ordered by last-change revision. */
      readonly upserts: Array<[string, Buffer]>;
      /**
       * Keys deleted after `from` and absent now. May name keys the reader never had (created and
       * deleted after `from`); deleting an unknown key must be a no-op for readers.
       */
      readonly deletes: string[];
      /** Key (UTF-8) plus value bytes of upserts, plus key bytes of deletes. */
      readonly bytes: number;
      readonly meta: FeedMeta;
    }
  /** `from` is older than the retained history: the reader needs a snapshot (`current()`). */
  | { readonly kind: 'too-old'; readonly oldestRevision: number }
  /** `from` is newer than this store: a revision from another epoch or replica. */
  | { readonly kind: 'future'; readonly revision: number };

export interface TrimResult {
  readonly droppedTombstones: number;
  readonly droppedBytes: number;
  readonly oldestRevision: number;
}

export interface StoreStats {
  readonly feed: string;
  readonly epoch: string;
  readonly revision: number;
  /** Live entries. */
  readonly entries: number;
  readonly keyBytes: number;
  readonly valueBytes: number;
  /** The retained history ("delta log"): deletions not yet trimmed. */
  readonly tombstones: number;
  /** Bytes of the retained tombstones (key bytes plus TOMBSTONE_HEAP_BYTES each), the quantity bounded by `logMaxBytes`. */
  readonly logBytes: number;
  /** `since(r)` answers a delta for every r in [oldestRevision, revision]. */
  readonly oldestRevision: number;
  readonly logMaxAgeMs: number;
  readonly logMaxBytes: number;
  /**
   * Keys changed since the snapshot index (B+ tree) was last brought up to date: what the next
   * `current()` replays. Kept below 4096 + entries/8 by `apply`.
   */
  readonly unflushedKeys: number;
}

export interface FeedStoreOptions {
  /** Feed name, for errors and stats. */
  readonly feed: string;
  /**
   * How long a deletion stays answerable by `since()`, measured against the `nowMs` callers pass.
   * Must cover the server's `maxFallBehindMs` so any client the server keeps can resume by delta.
   * @default 600_000
   */
  readonly logMaxAgeMs?: number;
  /**
   * Cap on the bytes of retained deletions: each counts its key's bytes plus TOMBSTONE_HEAP_BYTES
   * (200), the heap it holds besides. The latest revision's deletions are always kept
   * (so `since(revision - 1)` always answers), so the bound may be exceeded by one batch.
   * @default 67_108_864 (64 MiB)
   */
  readonly logMaxBytes?: number;
  /** 16 lowercase hex characters; random by default. Inject only in tests. */
  readonly epoch?: string;
  /**
   * How many revisions' watermarks are remembered for rebases (PROTOCOL.md §7.1); older revisions
   * of the log can still be resumed by token, not rebased onto.
   * @default 65_536
   */
  readonly watermarkRecords?: number;
}
