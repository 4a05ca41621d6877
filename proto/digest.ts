/**
 * The feed-state digest, version 1 (PROTOCOL.md "Digest"). Pure and language-neutral, so a client in
 * any language can recompute it from the entries it holds:
 *
 * 1. Per entry, `h` = the first 8 bytes, as an unsigned big-endian 64-bit integer, of
 *    `SHA-256( u32be(byteLength(keyUtf8)) || keyUtf8 || valueBytes )`.
 * 2. `bucketSum[h >> 56] += h` (mod 2^64), 256 buckets.
 * 3. digest = the first 8 bytes of `SHA-256( bucketSum[0] || … || bucketSum[255] )`, each u64be
 *    (2048 bytes). The empty state hashes 2048 zero bytes.
 *
 * Why a sum of hashes: it is order-independent and updatable in O(1) per change (subtract the old
 * `h`, add the new), so the store keeps it current on every apply and reads it in O(buckets).
 * Why buckets and a final hash rather than one 64-bit sum: the final hash makes the published
 * value uninvertible, and the 256 sums would let a later protocol version compare bucket by bucket
 * to locate a divergence without sending the state.
 *
 * 64-bit arithmetic is done on two uint32 halves (no BigInt in the hot path).
 */
import * as nodeCrypto from 'node:crypto';

export const DIGEST_VERSION = 1;
export const DIGEST_BYTES = 8;
export const DIGEST_BUCKETS = 256;

// Speed (see bench/results/snapshot.md): `crypto.hash` (one-shot, Node ≥ 20.12) with a *string*
// output is ~4x cheaper than asking for a Buffer, because creating the result Buffer dominates the
// hashing of a few hundred bytes; 'latin1' maps each digest byte to one char code. Older Node 20
// falls back to createHash.
type OneShotHash = (algorithm: string, data: Uint8Array, outputEncoding: 'latin1') => string;
const oneShot: OneShotHash | undefined = typeof (nodeCrypto as { hash?: unknown }).hash === 'function'
  ? (nodeCrypto as unknown as { hash: OneShotHash }).hash
  : undefined;

function sha256Latin1(data: Uint8Array): string {
  return oneShot !== undefined ? oneShot('sha256', data, 'latin1') : nodeCrypto.createHash('sha256').update(data).digest().toString('latin1');
}

function u32At(s: string, i: number): number {
  return ((s.charCodeAt(i) << 24) | (s.charCodeAt(i + 1) << 16) | (s.charCodeAt(i + 2) << 8) | s.charCodeAt(i + 3)) >>> 0;
}

// One reusable scratch buffer for `u32be(len) || key || value`, plus cached views of its prefixes
// by length (creating a subarray per call costs as much as the hash). Never escapes this module.
const SCRATCH_VIEW_CACHE_MAX = 8192;
let scratch = Buffer.allocUnsafeSlow(SCRATCH_VIEW_CACHE_MAX);
let scratchViews: Array<Buffer | undefined> = [];

/**
 * Writes the entry hash `h` of (key, value) into `out` as [high 32 bits, low 32 bits].
 * `keyBytes` is `Buffer.byteLength(key)` when the caller already knows it.
 */
export function entryHashInto(key: string, value: Uint8Array, out: Uint32Array, keyBytes = Buffer.byteLength(key, 'utf8')): void {
  const total = 4 + keyBytes + value.byteLength;
  if (total > scratch.length) {
    scratch = Buffer.allocUnsafeSlow(Math.max(total, scratch.length * 2));
    scratchViews = [];
  }
  scratch.writeUInt32BE(keyBytes, 0);
  scratch.write(key, 4, 'utf8');
  scratch.set(value, 4 + keyBytes);
  let view = scratchViews[total];
  if (view === undefined) {
    view = scratch.subarray(0, total);
    if (total <= SCRATCH_VIEW_CACHE_MAX) scratchViews[total] = view;
  }
  const h = sha256Latin1(view);
  out[0] = u32At(h, 0);
  out[1] = u32At(h, 4);
}

/** The entry hash `h` as a BigInt (tests and other-language reference; not the hot path). */
export function entryHash(key: string, value: Uint8Array): bigint {
  const out = new Uint32Array(2);
  entryHashInto(key, value, out);
  return (BigInt(out[0] ?? 0) << 32n) | BigInt(out[1] ?? 0);
}

const sumsScratch = Buffer.allocUnsafeSlow(DIGEST_BUCKETS * 8);

/** The 256 bucket sums, mod 2^64 each, as uint32 halves. */
export class BucketSums {
  private readonly hi = new Uint32Array(DIGEST_BUCKETS);
  private readonly lo = new Uint32Array(DIGEST_BUCKETS);

  /** Adds `h` = (hi, lo) to its bucket. */
  add(hi: number, lo: number): void {
    const b = hi >>> 24;
    const sumLo = (this.lo[b] as number) + lo;
    // Typed-array stores wrap modulo 2^32, so only the carry needs computing.
    this.lo[b] = sumLo;
    this.hi[b] = (this.hi[b] as number) + hi + (sumLo > 0xffffffff ? 1 : 0);
  }

  /** Subtracts `h` = (hi, lo) from its bucket. */
  sub(hi: number, lo: number): void {
    const b = hi >>> 24;
    const diffLo = (this.lo[b] as number) - lo;
    this.lo[b] = diffLo;
    this.hi[b] = (this.hi[b] as number) - hi - (diffLo < 0 ? 1 : 0);
  }

  /**
   * The 256 sums as §10 step 3 hashes them (u64be each, 2,048 bytes): what a REPAIR_REQUEST
   * carries (§7.2). Writes into `out` when given (it must hold 2,048 bytes), else a new Buffer.
   */
  toBytes(out: Buffer = Buffer.allocUnsafe(DIGEST_BUCKETS * 8)): Buffer {
    for (let b = 0; b < DIGEST_BUCKETS; b++) {
      out.writeUInt32BE(this.hi[b] as number, b * 8);
      out.writeUInt32BE(this.lo[b] as number, b * 8 + 4);
    }
    return out;
  }

  /** The 8-byte digest of the current sums: one SHA-256 over 2048 bytes. */
  digest(): Buffer {
    const buf = this.toBytes(sumsScratch);
    // Unpooled: digests are kept by views and a pooled 8-byte slice would pin an 8 KiB slab.
    const out = Buffer.allocUnsafeSlow(DIGEST_BYTES);
    out.write(sha256Latin1(buf), 0, DIGEST_BYTES, 'latin1');
    return out;
  }
}

/** The 8-byte digest (§10 step 3) of 256 sums already written as u64be (2,048 bytes). */
export function digestOfSumBytes(sums: Uint8Array): Buffer {
  const out = Buffer.allocUnsafeSlow(DIGEST_BYTES);
  out.write(sha256Latin1(sums), 0, DIGEST_BYTES, 'latin1');
  return out;
}

/**
 * The digest of a state computed from scratch (pure; for tests and clients). Keys must be unique;
 * the result does not depend on iteration order.
 */
export function computeDigest(entries: Iterable<readonly [string, Uint8Array]>): Buffer {
  const sums = new BucketSums();
  const h = new Uint32Array(2);
  for (const [key, value] of entries) {
    entryHashInto(key, value, h);
    sums.add(h[0] as number, h[1] as number);
  }
  return sums.digest();
}
