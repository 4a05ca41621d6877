/**
 * A read-only view of one feed's state at one revision. Creating one is O(1): it wraps a frozen
 * `clone()` of the store's B+ tree, which shares every node with the store until the store writes
 * (then only the written path is copied). A view holds nothing else of the store, so it is
 * collected, with any nodes only it still references, as soon as its last holder drops it.
 */
import type { KeyTree } from './btree.js';
import type { FeedMeta } from './meta.js';

export interface StoreView {
  /** The store's epoch: revisions from another epoch are meaningless here. */
  readonly epoch: string;
  readonly revision: number;
  /** Number of entries. */
  readonly size: number;
  /** Sum of key (UTF-8) and value bytes of all entries: what a snapshot carries before framing. */
  readonly bytes: number;
  /** The 8-byte digest (PROTOCOL.md "Digest", version 1) of this state. */
  readonly digest: Buffer;
  /** Status, stale flag and watermarks as they were when the view was taken. */
  readonly meta: FeedMeta;
  get(key: string): Buffer | undefined;
  has(key: string): boolean;
  /** Entries in key order (JavaScript string order). The Buffers are the stored ones: do not mutate. */
  entries(): IterableIterator<[string, Buffer]>;
  /** Faster than `entries()` for a full scan (no iterator result objects). */
  forEach(callback: (value: Buffer, key: string) => void): void;
}

export class TreeView implements StoreView {
  readonly epoch: string;
  readonly revision: number;
  readonly bytes: number;
  readonly digest: Buffer;
  readonly meta: FeedMeta;
  readonly #tree: KeyTree;

  /** @internal `tree` must be a frozen clone that nobody else writes. */
  constructor(epoch: string, revision: number, tree: KeyTree, bytes: number, digest: Buffer, meta: FeedMeta) {
    this.epoch = epoch;
    this.revision = revision;
    this.#tree = tree;
    this.bytes = bytes;
    this.digest = digest;
    this.meta = meta;
  }

  get size(): number {
    return this.#tree.size;
  }

  get(key: string): Buffer | undefined {
    return this.#tree.get(key);
  }

  has(key: string): boolean {
    return this.#tree.has(key);
  }

  entries(): IterableIterator<[string, Buffer]> {
    return this.#tree.entries();
  }

  forEach(callback: (value: Buffer, key: string) => void): void {
    this.#tree.forEach(callback);
  }

  /** @internal Lets the store derive a view with new metadata at the same revision, sharing the tree. */
  withMeta(meta: FeedMeta): TreeView {
    return new TreeView(this.epoch, this.revision, this.#tree, this.bytes, this.digest, meta);
  }
}
