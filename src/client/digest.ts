/**
 * The client's incremental state digest (PROTOCOL.md §10), kept beside each feed's state so that
 * checking it at SNAPSHOT_END or an in-sync STATUS costs one SHA-256 over 2 KiB, not a pass over
 * the state. The arithmetic is the store's (proto/digest.ts: pure, BigInt-free), so server
 * and client cannot drift apart; the client's tests check both against an independent from-scratch
 * implementation in the fake server.
 *
 * Replacing a value subtracts the old entry's hash and adds the new one, so the client rehashes
 * the old value on replace: keeping 8 bytes per key instead would cost memory for the life of the
 * state, and replaces are rarer than reads.
 */
import { BucketSums, entryHashInto } from '../../proto/digest.js';

const h = new Uint32Array(2);

export class IncrementalDigest {
  private sums = new BucketSums();

  add(key: string, value: Uint8Array): void {
    entryHashInto(key, value, h);
    this.sums.add(h[0]!, h[1]!);
  }

  remove(key: string, value: Uint8Array): void {
    entryHashInto(key, value, h);
    this.sums.sub(h[0]!, h[1]!);
  }

  /** The 8-byte digest (§10 step 3). */
  digest(): Buffer {
    return this.sums.digest();
  }

  /** The 256 bucket sums, u64be each (2,048 bytes): what a REPAIR_REQUEST carries (PROTOCOL.md §7.2). */
  sumsBytes(): Buffer {
    return this.sums.toBytes();
  }

  /** Takes over `other`'s sums (the snapshot being collected becomes the state's). */
  adopt(other: IncrementalDigest): void {
    this.sums = other.sums;
    other.sums = new BucketSums();
  }
}
