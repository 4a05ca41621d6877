/**
 * PROTOCOL.md §10 digest, computed from scratch with BigInt, read straight from the spec text. The
 * one test-side reference: the store's, the server's and the client's fast incremental digests are
 * all checked against it, never against each other.
 */
import { createHash } from 'node:crypto';

const MASK = (1n << 64n) - 1n;

export function entryHash(key: string, value: Uint8Array): bigint {
  const k = Buffer.from(key, 'utf8');
  const len = Buffer.allocUnsafe(4);
  len.writeUInt32BE(k.length, 0);
  return createHash('sha256').update(len).update(k).update(value).digest().readBigUInt64BE(0);
}

export function digestOf(entries: Iterable<readonly [string, Uint8Array]>): Buffer {
  const sums = new Array<bigint>(256).fill(0n);
  for (const [key, value] of entries) {
    const h = entryHash(key, value);
    const b = Number(h >> 56n);
    sums[b] = ((sums[b] ?? 0n) + h) & MASK;
  }
  const out = Buffer.alloc(2048);
  sums.forEach((s, i) => out.writeBigUInt64BE(s, i * 8));
  return createHash('sha256').update(out).digest().subarray(0, 8);
}
