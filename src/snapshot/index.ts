/**
 * The versioned snapshot store: Typha's snapshot cache and breadcrumbs (Calico's typha/pkg/snapcache)
 * with the I/O removed and catch-up made O(changes). Pure: no I/O, no timers, no logging, no clock
 * reads — time is passed in as `nowMs`.
 *
 * ## Model
 * One {@link FeedStore} per feed. Its `revision` counts the applied batches that changed something
 * (0 = empty; a batch that changes nothing, including one of byte-identical upserts, creates no
 * revision, unless a key went A→B→A within it: Update.force). Keys are `<group>/<plural>/<namespace>/<name>` (registry `objectKey`); values are the
 * feed's projection as plain MessagePack in exact-size Buffers ({@link encodeValue}); the store never
 * decodes them. Each store has a random 16-hex-digit `epoch`: a revision means something only
 * together with the epoch (resume tokens carry both).
 *
 * ```ts
 * const store = new FeedStore({ feed: 'felix' });            // logMaxAgeMs 600 s, logMaxBytes 64 MiB
 * const r = store.apply({ updates: [{ key, value: encodeValue(obj) }, { key: gone, value: null }],
 *                         watermarks: { pods: '12345' }, status: 'in-sync' }, clock.now());
 * // r: { revision, changed, metaChanged, applied, skippedNoOp, deleted, deletedUnknown,
 * //      superseded, copied, watermarkRegressions, trimmed }
 * const view = store.current();     // frozen copy-on-write view: revision, size, bytes, digest,
 *                                   // meta, get/has/entries()/forEach in key order
 * const d = store.since(clientRev); // { kind: 'delta', from, to, upserts, deletes, bytes, meta }
 *                                   // | { kind: 'too-old', oldestRevision } | { kind: 'future', revision }
 * store.trim(clock.now());          // apply() trims too; call this for quiet feeds
 * store.digest(); store.meta(); store.stats();
 * ```
 *
 * ## Costs
 * - `apply`: per update one Map lookup, one byte compare, one SHA-256 of key+value, O(1) list moves.
 *   It does not touch the B+ tree.
 * - `since(r)`: O(distinct keys changed after r); never more than the state plus retained deletions.
 * - `bucketSums()`: O(256). `repair(r, buckets)` (range repair, PROTOCOL.md §7.2): one pass over the
 *   live keys, a bit test per key from its kept entry hash (no hashing), plus since(r)'s deletions;
 *   the result is O(entries of the buckets + keys changed after r).
 * - `current()`: O(1) clone of the B+ tree after replaying the keys changed since the previous
 *   `current()` into it (each key once, however often it changed); repeated calls at the same
 *   revision return the same view. Followers need only `since()`; take views for snapshots.
 * - Memory: the state, one node per key, the deletions not yet trimmed, and the superseded values
 *   the not-yet-replayed tree still references (at most 4096 + entries/8; `apply` replays beyond
 *   that). Views keep what they reference until dropped.
 *
 * ## Invariants
 * - A batch is atomic: validated whole before any change (bad input → CATTAIL_SNAPSHOT_INVALID_BATCH,
 *   store untouched); for a key given twice, the last update wins.
 * - Status, stale and watermarks are recorded after the batch's last update, at the revision the
 *   batch produced (or the current one if it changed no data): "in-sync" never labels a partial state.
 *   Metadata changes alone bump `meta().seq`, not the revision.
 * - `current().revision + since(current().revision)` reproduces the state at `since`'s `to`.
 * - `since(revision - 1)` and `since(revision)` always answer a delta.
 * - The digest is kept incrementally and always equals {@link computeDigest} of the entries.
 * - Views never change after later applies.
 */
export { FeedStore, DEFAULT_LOG_MAX_AGE_MS, DEFAULT_LOG_MAX_BYTES, TOMBSTONE_HEAP_BYTES } from './store.js';
export type { ApplyResult, Batch, FeedStoreOptions, SinceResult, StoreStats, TrimResult, Update } from './types.js';
export type { StoreView } from './view.js';
export { DEFAULT_WATERMARK_RECORDS, MAX_REBASE_RESOURCES, WatermarkLog } from './watermark-log.js';
export type { RebaseResult, Watermarks } from './watermark-log.js';
export { SYNC_STATUSES } from './meta.js';
export type { FeedMeta, SyncStatus } from './meta.js';
// The digest is part of the protocol (PROTOCOL.md §10) and lives in proto/; re-exported for the store's users.
export { computeDigest, entryHash, DIGEST_BYTES, DIGEST_BUCKETS, DIGEST_VERSION } from '../../proto/digest.js';
export { decodeValue, encodeValue, exactBuffer, isExactBuffer } from './value.js';
