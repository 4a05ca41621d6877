/**
 * The encode-once hot path (PROTOCOL.md §3.1, §2.3): DELTA and SNAPSHOT_CHUNK frames built from
 * `[key, value bytes]` entries without re-encoding any value.
 *
 * Each frame is sized exactly before it is written (msgpack headers are written by hand), so a
 * frame costs one allocation and one copy of every value; the 28-byte header sits in front of the
 * body in the same buffer, so the uncompressed frame is ready to send and `frame.subarray(28)` is
 * the body to compress for the other algorithms. A unit whose body would exceed `maxBodyBytes` is
 * split greedily into several frames, all but the last with MORE.
 *
 * Rejected: encoding `{upserts: entries.map(([k, v]) => [k, v])}` with msgpackr. It works (bin
 * stays bin), but it sizes the output by growing and copying, cannot split at a byte budget without
 * encoding twice, and its byte choices are not ours to pin in golden files.
 */
import { ProtocolError } from './errors.js';
import { writeHeader } from './header.js';
import {
  arrayHeaderBytes,
  binHeaderBytes,
  strHeaderBytes,
  writeArrayHeader,
  writeBinHeader,
  writeMapHeader,
  writeStr,
} from './msgpack.js';
import { Flags, HEADER_BYTES, MessageType, type Entry } from './types.js';

/** `upserts`, `deletes`, `entries` as fixstr: 1 header byte + the ASCII name. */
const UPSERTS_KEY_BYTES = 1 + 7;
const DELETES_KEY_BYTES = 1 + 7;
const ENTRIES_KEY_BYTES = 1 + 7;

/** Encoded size of one `[key, value]` entry with a key of `keyBytes` UTF-8 bytes. */
export function entryBytes(keyBytes: number, valueBytes: number): number {
  return 1 + strHeaderBytes(keyBytes) + keyBytes + binHeaderBytes(valueBytes) + valueBytes;
}

function deltaBodyBytes(nUp: number, upBytes: number, nDel: number, delBytes: number): number {
  return 1 + UPSERTS_KEY_BYTES + arrayHeaderBytes(nUp) + upBytes + DELETES_KEY_BYTES + arrayHeaderBytes(nDel) + delBytes;
}

/** Exact body size of a SNAPSHOT_CHUNK of `n` entries whose entryBytes sum to `bytes`. */
export function chunkBodyBytes(n: number, bytes: number): number {
  return 1 + ENTRIES_KEY_BYTES + arrayHeaderBytes(n) + bytes;
}

function writeEntry(buf: Buffer, pos: number, key: string, keyBytes: number, value: Buffer): number {
  buf[pos++] = 0x92; // fixarray(2)
  pos = writeStr(buf, pos, key, keyBytes);
  pos = writeBinHeader(buf, pos, value.length);
  // Buffer#copy rather than Uint8Array#set: never slower, and much faster before V8 has warmed
  // up `set` for Buffer sources from other ArrayBuffers; this copy is most of the hot path's cost.
  return pos + value.copy(buf, pos);
}

function tooLarge(key: string, bytes: number, maxBodyBytes: number): never {
  throw new ProtocolError('CATTAIL_PROTO_FRAME_TOO_LARGE', `entry ${JSON.stringify(key)} needs ${bytes} body bytes, above maxBodyBytes ${maxBodyBytes}`, { details: { key, bytes, maxBodyBytes } });
}

function checkMax(maxBodyBytes: number, emptyBodyBytes: number): void {
  // The smallest possible body (empty arrays) must fit, or no frame can be built at all.
  if (!Number.isInteger(maxBodyBytes) || maxBodyBytes < emptyBodyBytes) {
    throw new ProtocolError('CATTAIL_PROTO_FRAME_TOO_LARGE', `maxBodyBytes ${maxBodyBytes} cannot hold any frame`, { details: { maxBodyBytes } });
  }
}

/**
 * Where frames are allocated. The default, `Buffer.allocUnsafe`, gets fresh memory from the
 * allocator; on our VMs first-touch page faults of that memory cost ~10× the encoding itself
 * (bench/results/codec.md), so a server that reuses memory for transient frames can pass its own.
 * The returned buffer must have exactly `bytes` bytes; its contents may be garbage.
 */
export type FrameAllocator = (bytes: number) => Buffer;
const defaultAlloc: FrameAllocator = (bytes) => Buffer.allocUnsafe(bytes);

interface DeltaRange { u0: number; u1: number; d0: number; d1: number; bodyBytes: number }

/**
 * DELTA frames for one unit (§4.6): `fromRevision → toRevision`, upserts first, then deletes,
 * split so every body is ≤ `maxBodyBytes`. Always at least one frame (an empty delta is valid:
 * it moves the client's revision). Values are copied verbatim into `bin`.
 * @throws ProtocolError FRAME_TOO_LARGE when a single entry cannot fit in any frame
 */
export function encodeDeltaFrames(
  feedId: number,
  fromRevision: number,
  toRevision: number,
  upserts: readonly Entry[],
  deletes: readonly string[],
  maxBodyBytes = Number.MAX_SAFE_INTEGER,
  alloc: FrameAllocator = defaultAlloc,
): Buffer[] {
  checkMax(maxBodyBytes, deltaBodyBytes(0, 0, 0, 0));
  const upKeyBytes = new Int32Array(upserts.length);
  const delKeyBytes = new Int32Array(deletes.length);
  const ranges: DeltaRange[] = [];
  let cur: DeltaRange = { u0: 0, u1: 0, d0: 0, d1: 0, bodyBytes: deltaBodyBytes(0, 0, 0, 0) };
  let upBytes = 0;
  let delBytes = 0;
  for (let i = 0; i < upserts.length; i++) {
    const [key, value] = upserts[i] as Entry;
    const kb = Buffer.byteLength(key, 'utf8');
    upKeyBytes[i] = kb;
    const eb = entryBytes(kb, value.length);
    let size = deltaBodyBytes(cur.u1 - cur.u0 + 1, upBytes + eb, 0, 0);
    if (size > maxBodyBytes) {
      if (cur.u1 === cur.u0) tooLarge(key, size, maxBodyBytes);
      ranges.push(cur);
      cur = { u0: i, u1: i, d0: 0, d1: 0, bodyBytes: 0 };
      upBytes = 0;
      size = deltaBodyBytes(1, eb, 0, 0);
      if (size > maxBodyBytes) tooLarge(key, size, maxBodyBytes);
    }
    cur.u1 = i + 1;
    upBytes += eb;
    cur.bodyBytes = size;
  }
  for (let i = 0; i < deletes.length; i++) {
    const key = deletes[i] as string;
    const kb = Buffer.byteLength(key, 'utf8');
    delKeyBytes[i] = kb;
    const eb = strHeaderBytes(kb) + kb;
    const nUp = cur.u1 - cur.u0;
    let size = deltaBodyBytes(nUp, upBytes, cur.d1 - cur.d0 + 1, delBytes + eb);
    if (size > maxBodyBytes) {
      if (nUp === 0 && cur.d1 === cur.d0) tooLarge(key, size, maxBodyBytes);
      ranges.push(cur);
      cur = { u0: upserts.length, u1: upserts.length, d0: i, d1: i, bodyBytes: 0 };
      upBytes = 0;
      delBytes = 0;
      size = deltaBodyBytes(0, 0, 1, eb);
      if (size > maxBodyBytes) tooLarge(key, size, maxBodyBytes);
    }
    if (cur.d1 === cur.d0) cur.d0 = i;
    cur.d1 = i + 1;
    delBytes += eb;
    cur.bodyBytes = size;
  }
  ranges.push(cur);

  const frames: Buffer[] = [];
  for (let r = 0; r < ranges.length; r++) {
    const { u0, u1, d0, d1, bodyBytes } = ranges[r] as DeltaRange;
    const frame = alloc(HEADER_BYTES + bodyBytes);
    const more = r < ranges.length - 1;
    writeHeader(frame, 0, { type: MessageType.DELTA, flags: more ? Flags.MORE : 0, feedId, fromRevision, toRevision, bodyLength: bodyBytes });
    let pos = writeMapHeader(frame, HEADER_BYTES, 2);
    pos = writeStr(frame, pos, 'upserts', 7);
    pos = writeArrayHeader(frame, pos, u1 - u0);
    for (let i = u0; i < u1; i++) {
      const [key, value] = upserts[i] as Entry;
      pos = writeEntry(frame, pos, key, upKeyBytes[i] as number, value);
    }
    pos = writeStr(frame, pos, 'deletes', 7);
    pos = writeArrayHeader(frame, pos, d1 - d0);
    for (let i = d0; i < d1; i++) pos = writeStr(frame, pos, deletes[i] as string, delKeyBytes[i] as number);
    if (pos !== frame.length) throw new ProtocolError('CATTAIL_PROTO_BAD_BODY', `internal: delta frame sized ${frame.length} but wrote ${pos}`);
    frames.push(frame);
  }
  return frames;
}

function writeChunkFrame(feedId: number, revision: number, entries: readonly Entry[], keyBytes: readonly number[], bodyBytes: number, alloc: FrameAllocator = defaultAlloc): Buffer {
  const frame = alloc(HEADER_BYTES + bodyBytes);
  writeHeader(frame, 0, { type: MessageType.SNAPSHOT_CHUNK, flags: Flags.MORE, feedId, fromRevision: 0, toRevision: revision, bodyLength: bodyBytes });
  let pos = writeMapHeader(frame, HEADER_BYTES, 1);
  pos = writeStr(frame, pos, 'entries', 7);
  pos = writeArrayHeader(frame, pos, entries.length);
  for (let i = 0; i < entries.length; i++) {
    const [key, value] = entries[i] as Entry;
    pos = writeEntry(frame, pos, key, keyBytes[i] as number, value);
  }
  if (pos !== frame.length) throw new ProtocolError('CATTAIL_PROTO_BAD_BODY', `internal: chunk frame sized ${frame.length} but wrote ${pos}`);
  return frame;
}

/**
 * SNAPSHOT_CHUNK frames (§4.4, all with MORE) for a stream of entries in ascending key order,
 * each body ≤ `maxBodyBytes`. Lazy: holds at most one frame's entries, so a 150,000-entry
 * snapshot can be produced (and sent, with backpressure) chunk by chunk. Yields nothing for an
 * empty snapshot (BEGIN + END alone are a valid unit).
 * @throws ProtocolError FRAME_TOO_LARGE when a single entry cannot fit in any frame
 */
export function* encodeSnapshotChunkFrames(feedId: number, revision: number, entries: Iterable<Entry>, maxBodyBytes: number, alloc: FrameAllocator = defaultAlloc): Generator<Buffer, void, undefined> {
  checkMax(maxBodyBytes, chunkBodyBytes(1, 0));
  let pending: Entry[] = [];
  let keyBytes: number[] = [];
  let bytes = 0;
  for (const entry of entries) {
    const kb = Buffer.byteLength(entry[0], 'utf8');
    const eb = entryBytes(kb, entry[1].length);
    if (chunkBodyBytes(pending.length + 1, bytes + eb) > maxBodyBytes) {
      if (pending.length === 0) tooLarge(entry[0], chunkBodyBytes(1, eb), maxBodyBytes);
      yield writeChunkFrame(feedId, revision, pending, keyBytes, chunkBodyBytes(pending.length, bytes), alloc);
      pending = [];
      keyBytes = [];
      bytes = 0;
      if (chunkBodyBytes(1, eb) > maxBodyBytes) tooLarge(entry[0], chunkBodyBytes(1, eb), maxBodyBytes);
    }
    pending.push(entry);
    keyBytes.push(kb);
    bytes += eb;
  }
  if (pending.length > 0) yield writeChunkFrame(feedId, revision, pending, keyBytes, chunkBodyBytes(pending.length, bytes), alloc);
}

/** One SNAPSHOT_CHUNK frame holding exactly these entries (no size limit). */
export function encodeSnapshotChunkFrame(feedId: number, revision: number, entries: readonly Entry[], alloc: FrameAllocator = defaultAlloc): Buffer {
  let bytes = 0;
  const keyBytes = entries.map(([key, value]) => {
    const kb = Buffer.byteLength(key, 'utf8');
    bytes += entryBytes(kb, value.length);
    return kb;
  });
  return writeChunkFrame(feedId, revision, entries, keyBytes, chunkBodyBytes(entries.length, bytes), alloc);
}

/** One DELTA frame with exactly these contents (no size limit); `more` sets the MORE flag. */
export function encodeDeltaFrame(feedId: number, fromRevision: number, toRevision: number, more: boolean, upserts: readonly Entry[], deletes: readonly string[]): Buffer {
  const frame = encodeDeltaFrames(feedId, fromRevision, toRevision, upserts, deletes)[0] as Buffer;
  if (more) frame[2] = Flags.MORE;
  return frame;
}

/** Sum of key UTF-8 bytes and value bytes: SNAPSHOT_BEGIN's `rawBytes` (§4.3). */
export function rawBytesOf(entries: Iterable<Entry>): number {
  let n = 0;
  for (const [key, value] of entries) n += Buffer.byteLength(key, 'utf8') + value.length;
  return n;
}
