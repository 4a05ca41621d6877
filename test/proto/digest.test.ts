import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BucketSums, computeDigest, entryHash } from '../../proto/digest.js';
import { digestOf } from '../support/digest.js';

// An independent, BigInt-based reading of the PROTOCOL.md digest text (version 1), so the fast
// implementation is checked against the spec rather than against itself.
const MASK = (1n << 64n) - 1n;
function referenceDigest(entries: ReadonlyArray<readonly [string, Uint8Array]>): string {
  return digestOf(entries).toString('hex');
}

const entriesArb = fc.uniqueArray(fc.tuple(fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }), fc.uint8Array({ maxLength: 300 })), { selector: (e) => e[0], maxLength: 60 });

describe('digest (PROTOCOL.md version 1)', () => {
  it('pins the empty state: the first 8 bytes of SHA-256 of 2048 zero bytes', () => {
    expect(computeDigest([]).toString('hex')).toBe('e5a00aa9991ac8a5');
    expect(createHash('sha256').update(Buffer.alloc(2048)).digest().subarray(0, 8).toString('hex')).toBe('e5a00aa9991ac8a5');
  });

  it('pins a small known state', () => {
    const state: Array<[string, Buffer]> = [
      ['/pods/default/web-0', Buffer.from([0x81, 0xa2, 0x69, 0x70, 0xa8, ...Buffer.from('10.0.0.1')])],
      ['/nodes//node-1', Buffer.from([0xc0])],
      ['crd.projectcalico.org/ippools//default-ipv4-ippool', Buffer.alloc(0)],
    ];
    // h of one entry, then the digest of the state; both also re-derived by the reference above.
    expect(entryHash('/nodes//node-1', Buffer.from([0xc0])).toString(16).padStart(16, '0')).toBe('a365ac63e19bca15');
    expect(referenceEntry('/nodes//node-1', Buffer.from([0xc0]))).toBe('a365ac63e19bca15');
    expect(computeDigest(state).toString('hex')).toBe('bf1b00db584b1220');
    expect(referenceDigest(state)).toBe(computeDigest(state).toString('hex'));
  });

  it('matches the BigInt reference for random states, whatever the order (UTF-8 keys, lone surrogates too)', () => {
    fc.assert(fc.property(entriesArb, (entries) => {
      const fast = computeDigest(entries).toString('hex');
      expect(fast).toBe(referenceDigest(entries));
      expect(computeDigest([...entries].reverse()).toString('hex')).toBe(fast);
    }), { numRuns: 150 });
  });

  it('bucket sums add and subtract modulo 2^64 with carries and borrows', () => {
    fc.assert(fc.property(fc.array(fc.tuple(fc.boolean(), fc.bigInt({ min: 0n, max: MASK })), { maxLength: 80 }), (ops) => {
      const sums = new BucketSums();
      const ref = new Array<bigint>(256).fill(0n);
      for (const [add, h] of ops) {
        const hi = Number(h >> 32n);
        const lo = Number(h & 0xffffffffn);
        const b = Number(h >> 56n);
        if (add) { sums.add(hi, lo); ref[b] = ((ref[b] as bigint) + h) & MASK; } else { sums.sub(hi, lo); ref[b] = ((ref[b] as bigint) - h) & MASK; }
      }
      const buf = Buffer.alloc(2048);
      ref.forEach((s, i) => buf.writeBigUInt64BE(s, i * 8));
      expect(sums.digest().toString('hex')).toBe(createHash('sha256').update(buf).digest().subarray(0, 8).toString('hex'));
    }), { numRuns: 200 });
  });
});

function referenceEntry(key: string, value: Uint8Array): string {
  const k = Buffer.from(key, 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(k.length);
  return createHash('sha256').update(Buffer.concat([len, k, value])).digest().subarray(0, 8).toString('hex');
}
