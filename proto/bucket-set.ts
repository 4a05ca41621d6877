/**
 * Sets of digest buckets (PROTOCOL.md §7.2, §10) as the 32-byte bit sets REPAIR carries: bucket i
 * is bit `0x80 >> (i & 7)` of byte `i >> 3`. Pure helpers shared by the server (which compares
 * bucket sums and builds the set) and the client (which deletes its keys of those buckets that the
 * repair did not send).
 *
 * Why a fixed 32-byte bit set rather than a list of bucket numbers: it has one valid size (a
 * decoder checks it with one length test, a hostile list cannot be long or repeat), and it costs
 * 32 bytes however many buckets mismatch.
 */
import { DIGEST_BUCKETS } from './digest.js';
import { InvalidArgumentError } from '../src/errors.js';
import { REPAIR_BUCKET_SET_BYTES, REPAIR_SUMS_BYTES } from './types.js';

/** The bucket of an entry hash whose high 32 bits are `hi` (§10 step 2: the top byte of h). */
export function bucketOfHashHi(hi: number): number {
  return hi >>> 24;
}

export function emptyBucketSet(): Buffer {
  return Buffer.alloc(REPAIR_BUCKET_SET_BYTES);
}

export function hasBucket(set: Uint8Array, bucket: number): boolean {
  return ((set[bucket >>> 3] as number) & (0x80 >>> (bucket & 7))) !== 0;
}

export function addBucket(set: Uint8Array, bucket: number): void {
  set[bucket >>> 3] = (set[bucket >>> 3] as number) | (0x80 >>> (bucket & 7));
}

/** Number of buckets in the set (0…256). */
export function bucketCount(set: Uint8Array): number {
  let n = 0;
  for (let b = 0; b < DIGEST_BUCKETS; b++) if (hasBucket(set, b)) n++;
  return n;
}

/**
 * The buckets whose sums differ between two 2,048-byte sum vectors (§10 step 2, u64be each).
 * O(2,048 bytes). Equal sums are taken as equal contents: see DESIGN.md "Range repair" for the odds.
 */
export function mismatchedBuckets(a: Uint8Array, b: Uint8Array): Buffer {
  if (a.length !== REPAIR_SUMS_BYTES || b.length !== REPAIR_SUMS_BYTES) {
    throw new InvalidArgumentError(`bucket sums must be ${REPAIR_SUMS_BYTES} bytes, got ${a.length} and ${b.length}`, { details: { a: a.length, b: b.length } });
  }
  const set = emptyBucketSet();
  for (let bucket = 0; bucket < DIGEST_BUCKETS; bucket++) {
    const o = bucket * 8;
    for (let i = 0; i < 8; i++) {
      if (a[o + i] !== b[o + i]) {
        addBucket(set, bucket);
        break;
      }
    }
  }
  return set;
}
