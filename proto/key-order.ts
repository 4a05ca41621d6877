/**
 * The order of keys in a snapshot (PROTOCOL.md §4.4): ascending UTF-8 byte order, which is also
 * Unicode code point order. Language-neutral on purpose: a Go or Rust agent compares the bytes it
 * received, and only a JavaScript engine sees strings as UTF-16.
 *
 * JavaScript's `<` compares UTF-16 code units. That is code point order everywhere except where
 * the two strings first differ with a surrogate (U+D800-DFFF: half of a code point above U+FFFF)
 * against a unit in U+E000-FFFF: code units put the surrogate first, code points last. Both
 * strings then hold a unit at or above U+D800, so a key without one (Kubernetes names are ASCII)
 * compares right with `<` against anything. A B-tree search compares one key against many (the
 * second argument, in sorted-btree), so the last key found to be plain is remembered and the scan
 * is paid once per search, not per comparison: with a scan per comparison the store's apply
 * measured 17 % slower (bench/results/snapshot.md). Only keys with such units on both sides take
 * the loop. Keys are well-formed UTF-16 (Kubernetes names are ASCII, and the upstream refuses a
 * key with a lone surrogate: resource-view.ts): one would go on the wire as U+FFFD and compare
 * differently there. Rejected: comparing `Buffer.from(key)` bytes
 * (two allocations per comparison).
 */

/** A code unit at or above U+D800 (a surrogate or U+E000-FFFF): the only ones `<` may misorder. */
const HIGH_UNIT = /[\uD800-\uFFFF]/;

/**
 * The last second argument found to hold no such unit (one string kept alive). `!==` compares
 * contents, so an equal key in another string object is a hit too, at the cost of that compare.
 */
let lastPlain = '';

/** Negative, zero or positive as `a` sorts before, with or after `b` in UTF-8 byte order. */
export function compareKeys(a: string, b: string): number {
  if (b !== lastPlain) {
    if (HIGH_UNIT.test(b)) return HIGH_UNIT.test(a) ? compareCodePoints(a, b) : a < b ? -1 : a > b ? 1 : 0;
    lastPlain = b;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      // A surrogate stands for a code point above U+FFFF: after every unit of U+E000-FFFF.
      const sx = x < 0xe000 ? 1 : 0;
      const sy = y < 0xe000 ? 1 : 0;
      if (sx !== sy) return sx - sy;
    }
    return x - y;
  }
  return a.length - b.length;
}
