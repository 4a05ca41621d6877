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

/**
 * Keys compare as JavaScript strings (UTF-16 code units). That is the order views iterate in;
 * nothing depends on it matching UTF-8 byte order (the digest is order-independent).
 * Cheaper than the library's default comparator, which also accepts numbers, dates and arrays.
 */
function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Branching factor; the library default. See bench/snapshot.ts for clone and write costs. */
const BTREE_MAX_NODE_SIZE = 64;

export function newKeyTree(): KeyTree {
  return new BTree(undefined, compareKeys, BTREE_MAX_NODE_SIZE);
}
