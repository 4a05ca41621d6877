/**
 * FeedStore: one feed's versioned state. See index.ts for the model and DESIGN.md "Store" for the
 * reasoning; this file holds the mechanics and the invariants next to the code enforcing them.
 *
 * Data structures (all owned by one store, mutated only by `apply` and `trim`):
 *
 *   tree   sorted-btree, key → value, live entries only: the snapshot index, cloned (O(1)) for
 *          views. Brought up to date lazily by `current()` (see #flushTree), not by `apply`.
 *   nodes  Map key → KeyNode: the key's current value (or tombstone), its entry hash, and the
 *          revision of its last change. One node per live key plus one per retained tombstone.
 *   live   doubly linked list of live KeyNodes ordered by last-change revision (oldest first).
 *   tombs  the same for tombstones; also ordered by deletion time (clamped monotonic).
 *
 *   since(r) walks `live` and `tombs` backwards from their tails while node.rev > r: the cost is
 *   the number of distinct keys changed after r, and the result is compacted by construction
 *   (a node holds only the latest value). Superseded values are never retained, so the only
 *   history the store keeps is the tombstones: the "delta log" is bounded by trimming them.
 *
 * Why the tree is updated lazily: a random write into a 150k-key B+ tree costs ~2 µs, mostly cache
 * misses, as much as everything else in apply together. Followers are served by since(), which
 * never touches the tree; only snapshots (new or too-old readers) need it. So apply records changes
 * in the nodes only, and current() replays the keys changed since the tree's revision (each key
 * once, however often it changed; unsorted, see #flushTree), then clones. apply replays by itself past a bound
 * (FLUSH_MIN_KEYS), so the stale tree never pins many superseded values. Same total work as eager writes when a view is
 * taken after every batch, less when several batches pass between views.
 */
import { randomBytes } from 'node:crypto';
import { CattailError, InvalidArgumentError } from '../errors.js';
import { newKeyTree, type KeyTree } from './btree.js';
import { BucketSums, entryHashInto } from '../../proto/digest.js';
import { compareResourceVersions, isResourceVersion } from '../../proto/index.js';
import { bucketOfHashHi, hasBucket } from '../../proto/bucket-set.js';
import { REPAIR_BUCKET_SET_BYTES } from '../../proto/types.js';
import { INITIAL_META, SYNC_STATUSES, type FeedMeta } from './meta.js';
import type { ApplyResult, Batch, FeedStoreOptions, SinceResult, StoreStats, TrimResult, Update } from './types.js';
import { exactBuffer } from './value.js';
import { TreeView, type StoreView } from './view.js';
import { DEFAULT_WATERMARK_RECORDS, WatermarkLog, validRebaseWatermarks, type RebaseResult } from './watermark-log.js';

export const DEFAULT_LOG_MAX_AGE_MS = 600_000;

/**
 * The lazy tree is replayed by apply itself once more than FLUSH_MIN_KEYS + state/2^FLUSH_STATE_SHIFT
 * keys changed since the last replay: the stale tree then pins at most that many superseded values
 * (1/8 of the state plus 4096), and no current() replays more.
 */
const FLUSH_MIN_KEYS = 4096;
const FLUSH_STATE_SHIFT = 3;
export const DEFAULT_LOG_MAX_BYTES = 64 * 1024 * 1024;

interface KeyNode {
  readonly key: string;
  readonly keyBytes: number;
  /** Current value; null for a tombstone. The same Buffer the tree holds: never copied. */
  value: Buffer | null;
  /** Revision of the last change (upsert or deletion). */
  rev: number;
  /** Entry hash halves of the live value, so an overwrite subtracts without rehashing. */
  hHi: number;
  hLo: number;
  /** Tombstones only: when the deletion was applied (clamped monotonic). */
  deletedAtMs: number;
  prev: KeyNode | null;
  next: KeyNode | null;
}

/** Intrusive doubly linked list ordered by insertion (and therefore by node.rev). */
class NodeList {
  head: KeyNode | null = null;
  tail: KeyNode | null = null;
  length = 0;

  push(node: KeyNode): void {
    node.prev = this.tail;
    node.next = null;
    if (this.tail === null) this.head = node;
    else this.tail.next = node;
    this.tail = node;
    this.length++;
  }

  remove(node: KeyNode): void {
    if (node.prev === null) this.head = node.next;
    else node.prev.next = node.next;
    if (node.next === null) this.tail = node.prev;
    else node.next.prev = node.prev;
    node.prev = null;
    node.next = null;
    this.length--;
  }
}

const EPOCH_PATTERN = /^[0-9a-f]{16}$/;

function randomEpoch(): string {
  return randomBytes(8).toString('hex');
}

function checkLimit(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new InvalidArgumentError(`FeedStore: ${name} must be a non-negative integer, got ${String(value)}`, { details: { option: name, value } });
  }
  return value;
}

function badBatch(feed: string, message: string, details: Record<string, unknown>): CattailError {
  return new CattailError('CATTAIL_SNAPSHOT_INVALID_BATCH', `feed ${feed}: ${message}; nothing of the batch was applied`, { details: { feed, ...details } });
}

/**
 * Heap a retained deletion holds besides its key's bytes (its KeyNode, the boxed deletion time,
 * its entry in the key map and the tombstone list), counted into `logMaxBytes` with the key: the
 * bound is on memory, not on key bytes alone. Measured on Node 20 (200,000 deletions of 43-byte
 * keys kept against trimmed: 245 bytes each, the key included); counted as key bytes only, a
 * 256 MiB log held ~1.5 GB of heap.
 */
export const TOMBSTONE_HEAP_BYTES = 200;

export class FeedStore {
  readonly feed: string;
  readonly epoch: string;
  readonly logMaxAgeMs: number;
  readonly logMaxBytes: number;

  #revision = 0;
  readonly #tree: KeyTree = newKeyTree();
  /** The revision the tree reflects; changes after it live only in the nodes until #flushTree. */
  #treeRevision = 0;
  /** Keys changed after #treeRevision (an upper bound: trimmed tombstones are not subtracted). */
  #unflushed = 0;
  readonly #nodes = new Map<string, KeyNode>();
  readonly #live = new NodeList();
  readonly #tombs = new NodeList();
  readonly #sums = new BucketSums();
  readonly #h = new Uint32Array(2);
  #keyBytes = 0;
  #valueBytes = 0;
  #tombBytes = 0;
  #oldestRevision = 0;
  #lastNowMs = -Infinity;
  #meta: FeedMeta = INITIAL_META;
  #digest: Buffer | null = null;
  #view: TreeView | null = null;
  /** The watermarks each revision of the log was made at (rebase, see watermark-log.ts). */
  readonly #marks: WatermarkLog;
  /** The current revision was made by a batch without watermarks, and no batch has recorded it since (see apply). */
  #unrecorded = false;
  /** The last barrier was set at watermarks older than its state (a batch without its own): set again at the next ones. */
  #barrierPending = false;

  constructor(options: FeedStoreOptions) {
    if (typeof options?.feed !== 'string' || options.feed === '') {
      throw new InvalidArgumentError('FeedStore: feed must be a non-empty string', { details: { option: 'feed' } });
    }
    this.feed = options.feed;
    this.logMaxAgeMs = checkLimit('logMaxAgeMs', options.logMaxAgeMs, DEFAULT_LOG_MAX_AGE_MS);
    this.logMaxBytes = checkLimit('logMaxBytes', options.logMaxBytes, DEFAULT_LOG_MAX_BYTES);
    if (options.epoch !== undefined && !EPOCH_PATTERN.test(options.epoch)) {
      throw new InvalidArgumentError(`FeedStore: epoch must be 16 lowercase hex characters, got ${JSON.stringify(options.epoch)}`, { details: { option: 'epoch' } });
    }
    this.epoch = options.epoch ?? randomEpoch();
    this.#marks = new WatermarkLog(checkLimit('watermarkRecords', options.watermarkRecords, DEFAULT_WATERMARK_RECORDS));
  }

  /** Count of applied batches that changed something; 0 is the empty initial state. */
  get revision(): number {
    return this.#revision;
  }

  /** Metadata (status, stale, watermarks) with the revision it belongs to. */
  meta(): FeedMeta {
    return this.#meta;
  }

  /**
   * Applies a batch atomically. The whole batch is validated before anything changes: a malformed
   * batch throws CATTAIL_SNAPSHOT_INVALID_BATCH and leaves the store untouched.
   * @param nowMs the caller's clock; used to age deletions (clamped so time never runs backwards).
   */
  apply(batch: Batch, nowMs: number): ApplyResult {
    const effective = this.#validate(batch);
    const now = this.#advanceClock(nowMs);
    const updates = batch.updates;
    if (this.#revision >= Number.MAX_SAFE_INTEGER - 1) {
      throw new CattailError('CATTAIL_INTERNAL', `feed ${this.feed}: revision space exhausted`, { details: { feed: this.feed } });
    }
    const newRev = this.#revision + 1;
    let applied = 0;
    let skippedNoOp = 0;
    let deleted = 0;
    let deletedUnknown = 0;
    let copied = 0;
    for (let i = 0; i < updates.length; i++) {
      if (effective !== null && effective[i] === 0) continue;
      const update = updates[i] as Update;
      const key = update.key;
      const node = this.#nodes.get(key);
      const value = update.value;
      const firstChangeSinceFlush = node === undefined || node.rev <= this.#treeRevision;
      if (value === null) {
        if (node === undefined || node.value === null) {
          deletedUnknown++;
          continue;
        }
        this.#sums.sub(node.hHi, node.hLo);
        this.#keyBytes -= node.keyBytes;
        this.#valueBytes -= node.value.byteLength;
        this.#live.remove(node);
        node.value = null;
        node.rev = newRev;
        node.deletedAtMs = now;
        node.hHi = 0;
        node.hLo = 0;
        this.#tombs.push(node);
        this.#tombBytes += node.keyBytes + TOMBSTONE_HEAP_BYTES;
        if (firstChangeSinceFlush) this.#unflushed++;
        deleted++;
        continue;
      }
      // Byte-identical dedupe: what absorbs pod-status and node-heartbeat churn. Not for a key that
      // changed and came back within the batch (Update.force; 2 in the mask: a duplicate differed).
      const forced = update.force === true || (effective !== null && effective[i] === 2);
      if (!forced && node !== undefined && node.value !== null && (node.value === value || node.value.equals(value))) {
        skippedNoOp++;
        continue;
      }
      const buf = exactBuffer(value);
      if (buf !== value) copied++;
      let target: KeyNode;
      if (node === undefined) {
        target = {
          key, keyBytes: Buffer.byteLength(key, 'utf8'), value: null, rev: 0,
          hHi: 0, hLo: 0, deletedAtMs: 0, prev: null, next: null,
        };
        this.#nodes.set(key, target);
        this.#keyBytes += target.keyBytes;
      } else if (node.value === null) {
        target = node;
        this.#tombs.remove(node);
        this.#tombBytes -= node.keyBytes + TOMBSTONE_HEAP_BYTES;
        this.#keyBytes += node.keyBytes;
      } else {
        target = node;
        this.#sums.sub(node.hHi, node.hLo);
        this.#valueBytes -= node.value.byteLength;
        this.#live.remove(node);
      }
      entryHashInto(key, buf, this.#h, target.keyBytes);
      target.hHi = this.#h[0] as number;
      target.hLo = this.#h[1] as number;
      this.#sums.add(target.hHi, target.hLo);
      target.value = buf;
      target.rev = newRev;
      this.#live.push(target);
      this.#valueBytes += buf.byteLength;
      if (firstChangeSinceFlush) this.#unflushed++;
      applied++;
    }
    const changed = applied + deleted > 0;
    if (changed) {
      this.#revision = newRev;
      this.#digest = null;
      // Forget the cached view: holding it would keep superseded values alive inside the store.
      this.#view = null;
    }
    const { metaChanged, regressions } = this.#applyMeta(batch);
    // After the meta: the revision stands for the watermarks the batch brought the store to (a
    // batch that changed no entry moves the current revision's record). A batch that changed
    // entries without watermarks of its own (tier 2 releasing changes whose STATUS never came)
    // gets no record: the store's watermarks are the previous ones, and recorded at them the
    // revision would be a rebase base for agents that lack its changes. The record before it
    // stays the base (its since() includes them); the next batch with watermarks records them.
    // A batch that changed no entry moves the current revision's record only when the revision has
    // one, or the batch brings the watermarks it stands for (tier 1's late STATUS): a stale- or
    // status-only batch after such an unrecorded revision recorded it at the previous watermarks,
    // and an agent at those was rebased from after changes it lacked (review of the store).
    const brings = batch.watermarks !== undefined;
    if (changed) this.#unrecorded = !brings;
    if ((changed && brings) || (!changed && metaChanged && (brings || !this.#unrecorded))) {
      this.#marks.record(this.#revision, this.#meta.watermarks);
      this.#unrecorded = false;
    }
    if (deletedUnknown > 0 || batch.barrier === true) {
      this.#marks.barrier(this.#revision, this.#meta.watermarks);
      // Without watermarks of its own the store's are older than the state the deletion left:
      // agents between the two would pass a barrier at them. Set again at the next watermarks
      // (a later revision, higher watermarks: only stricter).
      this.#barrierPending = !brings;
    } else if (brings && this.#barrierPending) {
      this.#marks.barrier(this.#revision, this.#meta.watermarks);
      this.#barrierPending = false;
    }
    // Bound what the stale tree pins (superseded values) and what the next current() replays.
    if (this.#unflushed > FLUSH_MIN_KEYS + (this.#live.length >>> FLUSH_STATE_SHIFT)) this.#flushTree();
    const trimmed = this.#trim(now).droppedTombstones;
    return {
      revision: this.#revision, changed, metaChanged, applied, skippedNoOp, deleted, deletedUnknown,
      superseded: effective === null ? 0 : updates.length - countKept(effective), copied,
      watermarkRegressions: regressions, trimmed,
    };
  }

  /**
   * A read-only view of the current state: an O(1) clone of the B+ tree, after replaying into it the
   * keys changed since the previous call (see the file comment), plus one O(buckets) digest per
   * revision. Repeated calls at the same revision and metadata return the same view.
   */
  current(): StoreView {
    const cached = this.#view;
    if (cached !== null) {
      if (cached.meta === this.#meta) return cached;
      this.#view = cached.withMeta(this.#meta);
      return this.#view;
    }
    this.#flushTree();
    const clone = this.#tree.clone();
    clone.freeze();
    this.#view = new TreeView(this.epoch, this.#revision, clone, this.#keyBytes + this.#valueBytes, this.digest(), this.#meta);
    return this.#view;
  }

  /**
   * The compacted change set from `revision` to now: one entry per changed key, its latest value or
   * its deletion. Cost: the number of distinct keys changed after `revision`, never the state size
   * unless everything changed. `since(this.revision)` is an empty delta.
   */
  since(revision: number): SinceResult {
    if (!Number.isSafeInteger(revision) || revision < 0) {
      throw new InvalidArgumentError(`feed ${this.feed}: since() needs a non-negative integer revision, got ${String(revision)}`, { details: { feed: this.feed, revision } });
    }
    if (revision > this.#revision) return { kind: 'future', revision: this.#revision };
    if (revision < this.#oldestRevision) return { kind: 'too-old', oldestRevision: this.#oldestRevision };
    const upserts: Array<[string, Buffer]> = [];
    const deletes: string[] = [];
    let bytes = 0;
    for (let n = this.#live.tail; n !== null && n.rev > revision; n = n.prev) {
      upserts.push([n.key, n.value as Buffer]);
      bytes += n.keyBytes + (n.value as Buffer).byteLength;
    }
    for (let n = this.#tombs.tail; n !== null && n.rev > revision; n = n.prev) {
      deletes.push(n.key);
      bytes += n.keyBytes;
    }
    upserts.reverse();
    deletes.reverse();
    return { kind: 'delta', from: revision, to: this.#revision, upserts, deletes, bytes, meta: this.#meta };
  }

  /** The upstream watermarks a state at `revision` stands for (watermark-log.ts `at`); undefined when older than the log. */
  watermarksAt(revision: number): Readonly<Record<string, string>> | undefined {
    return this.#marks.at(revision);
  }

  /**
   * Where an agent whose state is at upstream `watermarks` (from another replica) can continue
   * here: the newest revision r made at or below them, when this store is at or above them and
   * in sync; then `since(r)` is what that agent lacks (PROTOCOL.md §7.1, DESIGN.md "Rebase").
   * The caller still checks that since(r) answers a delta and is worth sending.
   */
  rebase(watermarks: unknown): RebaseResult {
    if (!validRebaseWatermarks(watermarks)) return { kind: 'none' };
    // Out of sync, the current watermarks may name lists not yet applied: not a state to continue.
    if (this.#meta.status !== 'in-sync') return { kind: 'behind' };
    const found = this.#marks.find(watermarks, this.#meta.watermarks);
    if (found.kind === 'revision' && found.revision < this.#oldestRevision) return { kind: 'none' };
    return found;
  }

  /**
   * Drops deletions older than `logMaxAgeMs` (relative to `nowMs`) and, oldest first, beyond
   * `logMaxBytes`; `oldestRevision` moves past every dropped one. `apply` calls this itself; call
   * it on a timer for feeds that go quiet.
   */
  trim(nowMs: number): TrimResult {
    return this.#trim(this.#advanceClock(nowMs));
  }

  /** The 256 bucket sums of the current state, u64be each (2,048 bytes; §10 step 2). O(buckets). */
  bucketSums(): Buffer {
    return this.#sums.toBytes();
  }

  /**
   * A range repair (PROTOCOL.md §7.2) for a reader at `revision` whose buckets `buckets` (a 32-byte
   * bit set) may differ from this store: one compacted change set to the current revision holding
   * every live entry of those buckets, plus `since(revision)` for the keys outside them. Applied
   * by the reader, followed by deleting its keys of those buckets that `upserts` lacks, it yields
   * the current state (DESIGN.md "Range repair").
   *
   * Cost: one pass over the live entries (O(entries), a bucket test per node from the entry hash
   * the node already keeps: no hashing, no tree walk) plus the deletions after `revision`. Result:
   * O(entries of the buckets + keys changed after `revision`). Consistent by construction: it reads
   * the nodes at the current revision in one synchronous pass.
   * `maxBytes`: the pass stops once the upserts are above it (the caller then sends a snapshot):
   * a request naming all 256 buckets collected every entry before the caller's check.
   * @returns as since(): `too-old` / `future` when `revision` cannot be continued from here; a
   *   delta whose `bytes` is above `maxBytes` is incomplete and only says "too large".
   */
  repair(revision: number, buckets: Uint8Array, maxBytes = Number.POSITIVE_INFINITY): SinceResult {
    if (!(buckets instanceof Uint8Array) || buckets.length !== REPAIR_BUCKET_SET_BYTES) {
      throw new InvalidArgumentError(`feed ${this.feed}: repair() needs a ${REPAIR_BUCKET_SET_BYTES}-byte bucket set`, { details: { feed: this.feed } });
    }
    const base = this.since(revision);
    if (base.kind !== 'delta') return base;
    const upserts: Array<[string, Buffer]> = [];
    let bytes = 0;
    for (let n = this.#live.head; n !== null; n = n.next) {
      if (n.rev <= revision && !hasBucket(buckets, bucketOfHashHi(n.hHi))) continue;
      upserts.push([n.key, n.value as Buffer]);
      bytes += n.keyBytes + (n.value as Buffer).byteLength;
      if (bytes > maxBytes) break;
    }
    // Deletions inside the buckets are implied by the bucket set; sending them too is harmless
    // (a tombstone keeps no hash, so its bucket is unknown here) and keeps this one pass.
    for (const key of base.deletes) bytes += Buffer.byteLength(key, 'utf8');
    return { kind: 'delta', from: revision, to: this.#revision, upserts, deletes: base.deletes, bytes, meta: this.#meta };
  }

  /** The 8-byte digest of the current state (cached per revision; O(buckets) to compute). */
  digest(): Buffer {
    this.#digest ??= this.#sums.digest();
    return this.#digest;
  }

  stats(): StoreStats {
    return {
      feed: this.feed, epoch: this.epoch, revision: this.#revision, entries: this.#live.length,
      keyBytes: this.#keyBytes, valueBytes: this.#valueBytes, tombstones: this.#tombs.length,
      logBytes: this.#tombBytes, oldestRevision: this.#oldestRevision,
      logMaxAgeMs: this.logMaxAgeMs, logMaxBytes: this.logMaxBytes, unflushedKeys: this.#unflushed,
    };
  }

  /** Replays into the tree every key changed after #treeRevision, latest state only. */
  #flushTree(): void {
    const from = this.#treeRevision;
    if (from === this.#revision) return;
    // Replayed in revision order, unsorted. Sorting first (for leaf locality) was measured slower in
    // total: with a JS comparator apply ran at 133k updates/s, with V8's native string sort 166k/s,
    // unsorted 187k/s, and current() after 10,000 changed keys took 47 ms sorted vs 29 ms unsorted
    // (bench/results/snapshot.md). The sort costs more than the cache misses it saves.
    for (let n = this.#live.tail; n !== null && n.rev > from; n = n.prev) this.#tree.set(n.key, n.value as Buffer);
    for (let n = this.#tombs.tail; n !== null && n.rev > from; n = n.prev) this.#tree.delete(n.key);
    this.#treeRevision = this.#revision;
    this.#unflushed = 0;
  }

  #advanceClock(nowMs: number): number {
    if (typeof nowMs !== 'number' || !Number.isFinite(nowMs)) {
      throw new InvalidArgumentError(`feed ${this.feed}: nowMs must be a finite number, got ${String(nowMs)}`, { details: { feed: this.feed } });
    }
    // A clock step backwards must not reorder tombstones (trim walks them oldest first).
    if (nowMs > this.#lastNowMs) this.#lastNowMs = nowMs;
    return this.#lastNowMs;
  }

  #trim(now: number): TrimResult {
    const cutoff = now - this.logMaxAgeMs;
    let dropped = 0;
    let droppedBytes = 0;
    for (let n = this.#tombs.head; n !== null; n = this.#tombs.head) {
      // The latest revision's deletions stay, so since(revision - 1) always answers: the fan-out
      // can always encode the newest step as a delta.
      if (n.rev === this.#revision) break;
      if (n.deletedAtMs >= cutoff && this.#tombBytes <= this.logMaxBytes) break;
      this.#tombs.remove(n);
      this.#nodes.delete(n.key);
      // Not yet flushed: delete now, or the tree would keep the key with nothing left to say it went.
      if (n.rev > this.#treeRevision) this.#tree.delete(n.key);
      this.#tombBytes -= n.keyBytes + TOMBSTONE_HEAP_BYTES;
      if (n.rev > this.#oldestRevision) this.#oldestRevision = n.rev;
      dropped++;
      droppedBytes += n.keyBytes + TOMBSTONE_HEAP_BYTES;
    }
    if (dropped > 0) this.#marks.dropBelow(this.#oldestRevision);
    return { droppedTombstones: dropped, droppedBytes, oldestRevision: this.#oldestRevision };
  }

  /**
   * Checks the whole batch before any mutation. Returns null when every update is effective, else
   * a mask (1 = effective, 2 = effective and forced) where only the last update of each duplicated
   * key is kept.
   */
  #validate(batch: Batch): Uint8Array | null {
    if (typeof batch !== 'object' || batch === null || !Array.isArray(batch.updates)) {
      throw badBatch(this.feed, 'a batch needs an updates array', {});
    }
    const updates = batch.updates;
    for (let i = 0; i < updates.length; i++) {
      const u = updates[i];
      if (typeof u !== 'object' || u === null || typeof u.key !== 'string' || u.key === '') {
        throw badBatch(this.feed, `update ${i} needs a non-empty string key`, { index: i });
      }
      if (u.value !== null && !(u.value instanceof Uint8Array)) {
        throw badBatch(this.feed, `update ${i} (${u.key}) needs a Buffer/Uint8Array value or null`, { index: i, key: u.key });
      }
    }
    if (batch.status !== undefined && !SYNC_STATUSES.includes(batch.status)) {
      throw badBatch(this.feed, `unknown status ${JSON.stringify(batch.status)}`, { status: batch.status });
    }
    if (batch.stale !== undefined && typeof batch.stale !== 'boolean') {
      throw badBatch(this.feed, 'stale must be a boolean', {});
    }
    if (batch.watermarks !== undefined) {
      if (typeof batch.watermarks !== 'object' || batch.watermarks === null) throw badBatch(this.feed, 'watermarks must be an object', {});
      for (const [resource, rv] of Object.entries(batch.watermarks)) {
        if (!isResourceVersion(rv)) throw badBatch(this.feed, `watermark of ${resource} is not a decimal resourceVersion: ${JSON.stringify(rv)}`, { resource });
      }
    }
    if (updates.length < 2) return null;
    // Last wins for a key given twice. A key set A→B→A within one batch is still a change (below):
    // an agent of another replica may hold B, and a rebase relies on the key being in since().
    const last = new Map<string, number>();
    for (let i = 0; i < updates.length; i++) last.set((updates[i] as Update).key, i);
    if (last.size === updates.length) return null;
    const mask = new Uint8Array(updates.length);
    for (const i of last.values()) mask[i] = 1;
    // An earlier value of a key that differs from its last: the key went A→B→A within the batch,
    // a change even if the last equals the held value (2: see Update.force).
    for (let i = 0; i < updates.length; i++) {
      if (mask[i] !== 0) continue;
      const u = updates[i] as Update;
      const j = last.get(u.key) as number;
      if (!sameBytes(u.value, (updates[j] as Update).value)) mask[j] = 2;
    }
    return mask;
  }

  #applyMeta(batch: Batch): { metaChanged: boolean; regressions: number } {
    const old = this.#meta;
    const status = batch.status ?? old.status;
    const stale = batch.stale ?? old.stale;
    let watermarks = old.watermarks;
    let regressions = 0;
    if (batch.watermarks !== undefined) {
      let next: Record<string, string> | null = null;
      for (const [resource, rv] of Object.entries(batch.watermarks)) {
        const prev = watermarks[resource];
        if (prev === rv) continue;
        if (prev !== undefined && compareResourceVersions(rv, prev) < 0) regressions++;
        next ??= { ...watermarks };
        next[resource] = rv;
      }
      if (next !== null) watermarks = Object.freeze(next);
    }
    const statusChanged = status !== old.status;
    if (!statusChanged && stale === old.stale && watermarks === old.watermarks) {
      return { metaChanged: false, regressions };
    }
    this.#meta = Object.freeze({
      status,
      // Recorded after the batch's updates: at the new revision when the batch changed data.
      statusRevision: statusChanged ? this.#revision : old.statusRevision,
      stale,
      watermarks,
      revision: this.#revision,
      seq: old.seq + 1,
    });
    return { metaChanged: true, regressions };
  }
}

/** Updates the mask keeps (1 or 2). */
function countKept(mask: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i] !== 0) n++;
  return n;
}

/** Same bytes, or both deletions. */
function sameBytes(a: Uint8Array | null, b: Uint8Array | null): boolean {
  if (a === null || b === null) return a === b;
  return a === b || Buffer.compare(a, b) === 0;
}
