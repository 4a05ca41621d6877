/**
 * The persistent sorted map behind store views: `sorted-btree`'s B+ tree, whose `clone()` is O(1)
 * and copies nodes lazily on the next write to either copy (path copying).
 *
 * `sorted-btree` is CommonJS with `exports.default = BTree`. Node's native ESM loader hands us
 * `module.exports` as the default import, while vitest's loader unwraps `.default` for us, so the
 * class is resolved at run time rather than trusting either shape, and typed through the small
 * interface below (the only operations the store relies on).
 */
import * as btreeModule from 'sorted-btree';
// Views iterate in the snapshot's key order (UTF-8 bytes, PROTOCOL.md §4.4): chunks are cut from them as they come.
import { compareKeys } from '../../proto/key-order.js';

/** The subset of `sorted-btree` the store uses, specialised to string keys and Buffer values. */
export interface KeyTree {
  readonly size: number;
  get(key: string): Buffer | undefined;
  has(key: string): boolean;
  /** Returns true if the key was new. */
  set(key: string, value: Buffer): boolean;
  delete(key: string): boolean;
  /** O(1): both copies share nodes until either is written. */
  clone(): KeyTree;
  /** Makes later writes throw: views are read-only by construction, not by convention. */
  freeze(): void;
  entries(lowestKey?: string): IterableIterator<[string, Buffer]>;
  keys(lowestKey?: string): IterableIterator<string>;
  forEach(callback: (value: Buffer, key: string) => void): number;
}

type KeyTreeCtor = new (entries: undefined, compare: (a: string, b: string) => number, maxNodeSize: number) => KeyTree;

function resolveBTree(): KeyTreeCtor {
  const ns = btreeModule as unknown as { default?: unknown };
  const first = ns.default;
  if (typeof first === 'function') return first as KeyTreeCtor;
  const second = (first as { default?: unknown } | undefined)?.default;
  if (typeof second === 'function') return second as KeyTreeCtor;
  throw new TypeError('sorted-btree: cannot find the BTree class export');
}

const BTree: KeyTreeCtor = resolveBTree();

/** Branching factor; the library default. See bench/snapshot.ts for clone and write costs. */
const BTREE_MAX_NODE_SIZE = 64;

export function newKeyTree(): KeyTree {
  return new BTree(undefined, compareKeys, BTREE_MAX_NODE_SIZE);
}
