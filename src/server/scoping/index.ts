/**
 * A scoped feed's per-node index (#20): which node every node-bound key belongs to (remembered
 * per key, so a deletion finds its node even when the node was read from the value), N's full
 * entries, and what the digest of N's view needs, maintained incrementally from the store.
 *
 * Digest of N's view (PROTOCOL.md §10 sums are additive per bucket): with T = the store's bucket
 * sums (the full state) and, per node-bound key k with full hash f_k and slim hash s_k (0 when
 * others get nothing),
 *     S      = T + Σ_k (s_k − f_k)             the shared view (cluster-wide + every slim form)
 *     view_N = S + Σ_{k of N} (f_k − s_k)
 * so digest_N = SHA-256(view_N)[0..8]: one 2 KiB copy, |N| bucket updates and one hash per node
 * and revision; nothing is rehashed. Entry counts and raw bytes follow the same way.
 *
 * The index follows the store lazily: `sync()` applies store.since(its revision) (or rebuilds
 * from the current view when the log no longer reaches back), so it is exact at store.revision
 * whenever it is read. Pure apart from reading the store.
 */
import { digestOfSumBytes, entryHashInto } from '../../../proto/digest.js';
import { compareKeys } from '../../../proto/key-order.js';
import type { ServedStore, StoreEntry } from '../pipeline/store-port.js';
import type { ScopePolicy } from './policy.js';
import { slimValue } from './slim.js';

interface KeyRecord {
  readonly node: string;
  readonly value: Buffer;
  readonly fHi: number;
  readonly fLo: number;
  /** Slim hash, or 0/0 when others get nothing. */
  readonly sHi: number;
  readonly sLo: number;
  /** UTF-8 bytes of the key. */
  readonly keyBytes: number;
  /** Bytes the key and value take in the shared view (0 when omitted). */
  readonly sharedBytes: number;
}

const BUCKETS = 256;

/** Adds (sign 1) or subtracts (sign −1) the 64-bit h = (hi, lo) to its bucket of u64be sums. */
function addInto(buf: Buffer, hi: number, lo: number, sign: 1 | -1): void {
  addAt(buf, hi >>> 24, hi, lo, sign);
}

/** Adds or subtracts (hi, lo) to bucket `b`'s sum. */
function addAt(buf: Buffer, b: number, hi: number, lo: number, sign: 1 | -1): void {
  const off = b * 8;
  let sHi = buf.readUInt32BE(off);
  let sLo = buf.readUInt32BE(off + 4);
  if (sign === 1) {
    const l = sLo + lo;
    sHi = (sHi + hi + (l > 0xffffffff ? 1 : 0)) >>> 0;
    sLo = l >>> 0;
  } else {
    const l = sLo - lo;
    sHi = (sHi - hi - (l < 0 ? 1 : 0)) >>> 0;
    sLo = l >>> 0;
  }
  buf.writeUInt32BE(sHi, off);
  buf.writeUInt32BE(sLo, off + 4);
}

/** The digest of 256 u64be sums (PROTOCOL.md §10 step 3). */
export function digestOfSums(sums: Buffer): Buffer {
  return digestOfSumBytes(sums);
}

/** What a node's snapshot needs at one revision: the shared view's sums, count and bytes. */
export interface SharedAt {
  readonly revision: number;
  /** Bucket sums of the shared view (2,048 bytes). */
  readonly sums: Buffer;
  readonly count: number;
  readonly rawBytes: number;
}

export interface NodePart {
  /** N's full entries, ascending key order. */
  readonly entries: StoreEntry[];
  readonly digest: Buffer;
  /** Entries of N's view. */
  readonly count: number;
  /** Key and value bytes the node part carries. */
  readonly rawBytes: number;
}

/**
 * The most nodes a per-node cache holds between revisions (this index's digests, a scoped feed's
 * STATUS frames, a snapshot build's node parts). Kubernetes supports 5,000 nodes; four times that
 * leaves room for renames and churn. Above it a cache is dropped (or not added to) and rebuilt on
 * demand: without mTLS a HELLO names any node, and on a quiet cluster nothing else resets them.
 */
export const MAX_CACHED_NODES = 20_000;

export class ScopeIndex {
  private readonly records = new Map<string, KeyRecord>();
  /** Each node's records by key (iterated per digest: no per-key lookups). */
  private readonly byNode = new Map<string, Map<string, KeyRecord>>();
  /** Revision of the last change of each node's own entries. */
  private readonly changedAt = new Map<string, number>();
  /**
   * Nodes without entries, by the revision they lost their last one (insertion order is revision
   * order: an entry is re-inserted on every change). Their changedAt is forgotten once that
   * revision is at or before the oldest one the store's delta log answers from; a node deleted
   * from the cluster would otherwise stay here for the life of the process (autoscaled clusters
   * churn through node names). Safe, because snapshot-cache.ts reuses a build only at a revision
   * since() still answers with a delta, i.e. at or after the log's oldest revision, where such a
   * changedAt (not after the build) made no difference.
   */
  private readonly emptySince = new Map<string, number>();
  /** Σ_k (s_k − f_k) per bucket, u64be (the shared view's offset from the full state). */
  private offset = Buffer.alloc(BUCKETS * 8);
  private boundCount = 0;
  /** Σ over node-bound keys of (shared bytes − full key and value bytes). */
  private bytesOffset = 0;
  private revision = -1;
  private sharedCache: SharedAt | undefined;
  private digestCache = new Map<string, Buffer>();

  constructor(
    readonly policy: ScopePolicy,
    private readonly store: ServedStore,
  ) {}

  /** Brings the index to store.revision. */
  sync(): void {
    const rev = this.store.revision;
    if (rev === this.revision) return;
    const s = this.revision < 0 ? undefined : this.store.since(this.revision);
    if (s !== undefined && s.kind === 'delta') {
      for (const [k, v] of s.upserts) this.upsert(k, v, s.to);
      for (const k of s.deletes) this.remove(k, s.to);
    } else {
      this.rebuild();
    }
    this.revision = rev;
    this.sharedCache = undefined;
    this.digestCache = new Map();
    this.forgetEmptyNodes();
  }

  /** Nodes whose own entries' last change is remembered (for tests; bounded as the note at emptySince says). */
  /** Node digests cached at this revision (bounded by MAX_CACHED_NODES). */
  get digestsCached(): number {
    return this.digestCache.size;
  }

  get nodesTracked(): number {
    return this.changedAt.size;
  }

  private forgetEmptyNodes(): void {
    if (this.emptySince.size === 0) return;
    const oldest = this.store.stats().oldestRevision;
    for (const [node, rev] of this.emptySince) {
      if (rev > oldest) break;
      this.emptySince.delete(node);
      this.changedAt.delete(node);
    }
  }

  /** The revision since which `node`'s own entries have not changed (−1: never seen). */
  nodeChangedAt(node: string): number {
    this.sync();
    return this.changedAt.get(node) ?? -1;
  }

  /** The node of a key the index holds (node-bound keys only). */
  nodeOfHeld(key: string): string | undefined {
    return this.records.get(key)?.node;
  }

  /** The shared view's sums, count and bytes at store.revision. */
  shared(): SharedAt {
    this.sync();
    if (this.sharedCache !== undefined) return this.sharedCache;
    const sums = this.store.bucketSums?.();
    if (sums === undefined) throw new Error('a scoped feed needs a store with bucketSums()');
    const out = Buffer.from(sums);
    for (let b = 0; b < BUCKETS; b++) addAt(out, b, this.offset.readUInt32BE(b * 8), this.offset.readUInt32BE(b * 8 + 4), 1);
    const stats = this.store.stats();
    const size = this.store.current().size;
    const count = size - this.boundCount + (this.policy.others === 'slim' ? this.boundCount : 0);
    this.sharedCache = { revision: this.revision, sums: out, count, rawBytes: stats.keyBytes + stats.valueBytes + this.bytesOffset };
    return this.sharedCache;
  }

  /** The digest of `node`'s view at store.revision (cached per node and revision). */
  digest(node: string): Buffer {
    this.sync();
    let d = this.digestCache.get(node);
    if (d === undefined) {
      // The STATUS path (every node, every revision): sums only, no sort, no entry list.
      const sums = this.scratch;
      this.shared().sums.copy(sums);
      const own = this.byNode.get(node);
      if (own !== undefined) {
        const slim = this.policy.others === 'slim';
        for (const r of own.values()) {
          addInto(sums, r.fHi, r.fLo, 1);
          if (slim) addInto(sums, r.sHi, r.sLo, -1);
        }
      }
      d = digestOfSums(sums);
      // Bounded: without mTLS a HELLO names any node, and on a quiet cluster (no new revision to
      // reset the cache) random names grew it without end. Dropped whole and rebuilt on demand.
      if (this.digestCache.size >= MAX_CACHED_NODES) this.digestCache = new Map();
      this.digestCache.set(node, d);
    }
    return d;
  }

  /**
   * N's part against a shared view `at`: valid when N's entries did not change since at.revision
   * (the caller checks nodeChangedAt), since the part is read from the current index.
   */
  nodePartAt(at: SharedAt, node: string): NodePart {
    this.sync();
    const keys = [...(this.byNode.get(node)?.keys() ?? [])].sort(compareKeys);
    const sums = Buffer.from(at.sums);
    const entries: StoreEntry[] = [];
    let rawBytes = 0;
    for (const k of keys) {
      const r = this.records.get(k) as KeyRecord;
      addInto(sums, r.fHi, r.fLo, 1);
      if (this.policy.others === 'slim') addInto(sums, r.sHi, r.sLo, -1);
      entries.push([k, r.value]);
      rawBytes += r.keyBytes + r.value.length;
    }
    const count = at.count + keys.length - (this.policy.others === 'slim' ? keys.length : 0);
    return { entries, digest: digestOfSums(sums), count, rawBytes };
  }

  private rebuild(): void {
    this.records.clear();
    this.byNode.clear();
    this.offset = Buffer.alloc(BUCKETS * 8);
    this.boundCount = 0;
    this.bytesOffset = 0;
    const view = this.store.current();
    for (const [k, v] of view.entries()) this.upsert(k, v, view.revision);
    // Nodes whose entries are gone after the rebuild changed at its revision (their remove() never ran).
    for (const node of this.changedAt.keys()) {
      if (this.byNode.has(node) || this.emptySince.has(node)) continue;
      this.changedAt.set(node, view.revision);
      this.emptySince.set(node, view.revision);
    }
  }

  private readonly h = new Uint32Array(2);
  private readonly scratch = Buffer.alloc(BUCKETS * 8);

  private upsert(key: string, value: Buffer, revision: number): void {
    this.remove(key, revision);
    const node = this.policy.nodeOf(key, value);
    if (node === undefined) return;
    const keyBytes = Buffer.byteLength(key, 'utf8');
    entryHashInto(key, value, this.h, keyBytes);
    const fHi = this.h[0] as number;
    const fLo = this.h[1] as number;
    let sHi = 0;
    let sLo = 0;
    let sharedBytes = 0;
    if (this.policy.others === 'slim') {
      const slim = slimValue(value);
      entryHashInto(key, slim, this.h, keyBytes);
      sHi = this.h[0] as number;
      sLo = this.h[1] as number;
      sharedBytes = keyBytes + slim.length;
      addInto(this.offset, sHi, sLo, 1);
    }
    addInto(this.offset, fHi, fLo, -1);
    this.bytesOffset += sharedBytes - (keyBytes + value.length);
    this.boundCount++;
    const rec: KeyRecord = { node, value, fHi, fLo, sHi, sLo, keyBytes, sharedBytes };
    this.records.set(key, rec);
    let own = this.byNode.get(node);
    if (own === undefined) this.byNode.set(node, (own = new Map()));
    own.set(key, rec);
    this.changedAt.set(node, revision);
    this.emptySince.delete(node);
  }

  private remove(key: string, revision: number): void {
    const r = this.records.get(key);
    if (r === undefined) return;
    this.records.delete(key);
    addInto(this.offset, r.fHi, r.fLo, 1);
    if (this.policy.others === 'slim') addInto(this.offset, r.sHi, r.sLo, -1);
    this.bytesOffset -= r.sharedBytes - (r.keyBytes + r.value.length);
    this.boundCount--;
    const own = this.byNode.get(r.node);
    own?.delete(key);
    if (own !== undefined && own.size === 0) {
      this.byNode.delete(r.node);
      this.emptySince.delete(r.node);
      this.emptySince.set(r.node, revision);
    }
    this.changedAt.set(r.node, revision);
  }
}

