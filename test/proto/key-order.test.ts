/**
 * The snapshot's key order (PROTOCOL.md §4.4) is UTF-8 byte order; compareKeys must agree with
 * comparing the UTF-8 bytes for every pair of well-formed strings, including the pairs where
 * JavaScript's own `<` (UTF-16 code units) does not. And the store's views iterate in it.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareKeys } from '../../proto/key-order.js';
import { FeedStore } from '../../src/snapshot/index.js';

const utf8Order = (a: string, b: string): number => Math.sign(Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));

/** Characters from the ranges where UTF-16 and UTF-8 order part: ASCII, U+E000-FFFF, and above U+FFFF. */
const tricky = fc.constantFrom('a', 'z', '/', '-', '\uE000', '\uFF01', '\uFFFF', '\u{10000}', '\u{1F600}', '\u{10FFFF}', 'é', '\u07FF', '\u0800');
const key = fc.oneof(fc.string({ unit: 'grapheme' }), fc.array(tricky, { maxLength: 6 }).map((cs) => cs.join('')));

describe('compareKeys', () => {
  it('orders as UTF-8 bytes, where UTF-16 code units do not', () => {
    expect('\uFF01' < '\u{1F600}').toBe(false); // JavaScript: the surrogate first
    expect(compareKeys('\uFF01', '\u{1F600}')).toBeLessThan(0); // UTF-8: EF BC 81 before F0 9F 98 80
    expect(compareKeys('pods/x\uFFFF', 'pods/x\u{10000}')).toBeLessThan(0);
    expect(compareKeys('a', 'a')).toBe(0);
    expect(compareKeys('a', 'ab')).toBeLessThan(0);
  });

  it('agrees with comparing UTF-8 bytes for any two well-formed strings', () => {
    fc.assert(
      fc.property(key, key, (a, b) => {
        expect(Math.sign(compareKeys(a, b))).toBe(utf8Order(a, b));
      }),
      { numRuns: 5_000 },
    );
  });

  it('is the order a store view iterates in', () => {
    fc.assert(
      fc.property(fc.uniqueArray(key.filter((k) => k !== ''), { minLength: 1, maxLength: 40 }), (keys) => {
        const store = new FeedStore({ feed: 'keys' });
        store.apply({ updates: keys.map((key) => ({ key, value: Buffer.from([0xc0]) })) }, 0);
        const seen = [...store.current().entries()].map(([k]) => k);
        expect(seen).toEqual([...keys].sort((a, b) => utf8Order(a, b)));
      }),
      { numRuns: 300 },
    );
  });
});
