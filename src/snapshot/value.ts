/**
 * Stored values: the feed's projection as plain MessagePack (no msgpackr records/structures, so any
 * MessagePack decoder reads it), held in an exact-size Buffer.
 *
 * Why exact-size: msgpackr (and Node's `Buffer.from`/`allocUnsafe` under 4 KiB) hand out slices of a
 * shared 8 KiB slab. A store that keeps such a slice pins the whole slab; under churn the surviving
 * values end up spread over many slabs and memory grows by the slab-to-value ratio. `exactBuffer`
 * copies into an unpooled allocation that owns exactly its bytes.
 */
import { Packr } from 'msgpackr';
import { packDetached } from '../msgpack-pack.js';

const packr = new Packr({ useRecords: false, encodeUndefinedAsNil: true });

/** True when `bytes` is a Buffer that owns its whole backing store (nothing else is pinned). */
export function isExactBuffer(bytes: Uint8Array): bytes is Buffer {
  return Buffer.isBuffer(bytes) && bytes.byteOffset === 0 && bytes.buffer.byteLength === bytes.byteLength;
}

/** `bytes` itself when it is already exact, else an unpooled copy. */
export function exactBuffer(bytes: Uint8Array): Buffer {
  if (isExactBuffer(bytes)) return bytes;
  const out = Buffer.allocUnsafeSlow(bytes.byteLength);
  out.set(bytes);
  return out;
}

/** Encodes a projection to plain MessagePack in an exact-size Buffer, ready for `FeedStore.apply`. */
export function encodeValue(value: unknown): Buffer {
  return packDetached(packr, value);
}

/** Decodes a stored value (tests, debugging and clients; the store itself never decodes). */
export function decodeValue(bytes: Uint8Array): unknown {
  return packr.unpack(bytes);
}
