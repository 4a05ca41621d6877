/**
 * msgpackr's `pack()` writes into one buffer that every Packr of the process shares (a module
 * variable in msgpackr 2.x) and returns a view into it. The buffer grows to fit the largest value
 * packed (×4 up to 16 MiB, ×1.25 above 64 MiB) and never shrinks; when it fills, a new one of the
 * same size replaces it while older views keep theirs alive.
 *
 * Two ways that cost memory for good, both found in review: a replica checkpoint (~100 MB at
 * 150,000 pods) left the shared buffer at its size for the process's life, and every view kept
 * anywhere (a feed's cached resume token) pinned whichever buffer it was cut from, one more
 * checkpoint-sized buffer per quiet feed. An agent's checkpoint of its feeds did the same on every
 * node. So every Cattail pack goes through packDetached: the result is copied out into an
 * exact-size, unpooled allocation (a `Buffer.from` copy lands in Node's shared 8 KiB pool, where a
 * kept slice pins the whole slab), and after a large value msgpackr is handed a small buffer again.
 */
import type { Packr } from 'msgpackr';

/** A value above this leaves msgpackr with a fresh buffer of START_BYTES (packDetached). */
export const RELEASE_ABOVE_BYTES = 1024 * 1024;
/** msgpackr's own first buffer size. */
const START_BYTES = 8192;

/** Packs `value` into a Buffer of exactly its bytes that shares nothing with msgpackr. */
export function packDetached(packr: Packr, value: unknown): Buffer {
  const packed = packr.pack(value);
  const out = Buffer.allocUnsafeSlow(packed.length);
  out.set(packed);
  if (packed.length > RELEASE_ABOVE_BYTES) packr.useBuffer(Buffer.allocUnsafeSlow(START_BYTES));
  return out;
}
