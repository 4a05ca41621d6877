/**
 * The client's incremental state digest (PROTOCOL.md §10), kept beside each feed's state so that
 * checking it at SNAPSHOT_END or an in-sync STATUS costs one SHA-256 over 2 KiB, not a pass over
 * the state.
 *
 * Per entry h = first 8 bytes of SHA-256(u32be(len(key)) ‖ key ‖ value) as a u64; bucket = h >> 56;
 * bucketSum[bucket] += h (mod 2^64). Replacing a value subtracts the old entry's hash and adds the
 * new one, so the client rehashes the old value on replace: keeping 8 bytes per key instead would
 * cost a BigInt object per key for the life of the state, and replaces are rarer than reads.
 */
import { createHash } from 'node:crypto';

const MASK64 = (1n << 64n) - 1n;

/** h of one entry (§10 step 1). */
export function entryHash(key: string, value: Uint8Array): bigint {
  const keyBytes = Buffer.from(key, 'utf8');
  const len = Buffer.allocUnsafe(4);
  len.writeUInt32BE(keyBytes.length, 0);
  const d = createHash('sha256').update(len).update(keyBytes).update(value).digest();
  return d.readBigUInt64BE(0);
}

export class IncrementalDigest {
  private readonly sums = new BigUint64Array(256);

  add(key: string, value: Uint8Array): void {
    const h = entryHash(key, value);
    const b = Number(h >> 56n);
    this.sums[b] = (this.sums[b]! + h) & MASK64;
  }

  remove(key: string, value: Uint8Array): void {
    const h = entryHash(key, value);
    const b = Number(h >> 56n);
    this.sums[b] = (this.sums[b]! - h) & MASK64;
  }

  /** The 8-byte digest (§10 step 3). */
  digest(): Buffer {
    const buf = Buffer.allocUnsafe(2048);
    for (let i = 0; i < 256; i++) buf.writeBigUInt64BE(this.sums[i]!, i * 8);
    return createHash('sha256').update(buf).digest().subarray(0, 8);
  }

  copyFrom(other: IncrementalDigest): void {
    this.sums.set(other.sums);
  }
}
