/**
 * The server's side of the wire, on top of the pure codec in proto/ (PROTOCOL.md is the contract).
 *
 * Every outbound frame leaves here as ONE Buffer holding the WebSocket frame header (unmasked,
 * binary, FIN; RFC 6455 §5.2) followed by the Cattail frame. The fan-out writes that same Buffer to
 * every caught-up socket with `socket.write`, so msgpack encoding, compression and framing happen
 * once per frame and never per client. (ws's `send()` frames per socket: ~25 % more CPU per
 * delivery when measured on our 2-core machines (docs/transport.md), and a closure per send.)
 */
import { CattailError } from '../../errors.js';
import {
  DIRECTION_OF_KIND,
  HEADER_BYTES,
  type Entry,
  type FrameAllocator,
  type Message,
  decodeFrame,
  encodeDeltaFrames,
  encodeFrame,
  encodeSnapshotChunkFrame,
  entryBytes as protoEntryBytes,
  isProtocolError,
} from '../../../proto/index.js';
import { compressFrame } from '../../frame-compression.js';

export { HEADER_BYTES, MAX_HELLO_FEEDS, MAX_TOKEN_BYTES, NO_FEED, PROTOCOL_VERSION, SUBPROTOCOL } from '../../../proto/index.js';
export type { Compression } from '../../../proto/index.js';
import type { Compression } from '../../../proto/index.js';
import { Flags } from '../../../proto/types.js';

const FLAG_MORE = Flags.MORE;

export const COMPRESSIONS: readonly Compression[] = ['none', 'deflate', 'brotli'];

/** Encoded size of an entry in a chunk or delta body. */
export function entryBytes(e: Entry): number {
  return protoEntryBytes(Buffer.byteLength(e[0], 'utf8'), e[1].length);
}

/** Prefixes a Cattail frame with its WebSocket header, in one new Buffer (one copy per frame, not per socket). */
export function wsFramed(frame: Buffer): Buffer {
  const n = frame.length;
  const hl = n < 126 ? 2 : n < 65_536 ? 4 : 10;
  const out = Buffer.allocUnsafe(hl + n);
  out[0] = 0x82;
  if (hl === 2) out[1] = n;
  else if (hl === 4) {
    out[1] = 126;
    out.writeUInt16BE(n, 2);
  } else {
    out[1] = 127;
    out.writeUInt32BE(Math.floor(n / 2 ** 32), 2);
    out.writeUInt32BE(n >>> 0, 6);
  }
  frame.copy(out, hl);
  return out;
}

/** The frame with its body compressed (once) when that gains anything, else the frame itself. */
function maybeCompress(frame: Buffer, algo: Compression, compressMinBytes: number): Buffer {
  if (algo === 'none' || !Number.isFinite(compressMinBytes)) return frame;
  return compressFrame(algo, frame, compressMinBytes);
}

/** A message as a ready-to-write WebSocket frame. */
export function encodeMessage(m: Message, algo: Compression = 'none', compressMinBytes = Infinity): Buffer {
  return wsFramed(maybeCompress(encodeFrame(m), algo, compressMinBytes));
}

/**
 * A SNAPSHOT_CHUNK of exactly these entries, ready to write. `scratch`: where the uncompressed
 * frame is encoded. It never escapes: the result is always a new Buffer (the compressed frame
 * framed, or wsFramed's copy), so a caller may pass memory it reuses for every chunk (see
 * ScratchAllocator).
 */
export function encodeChunk(feedId: number, revision: number, entries: readonly Entry[], algo: Compression, compressMinBytes: number, scratch?: FrameAllocator): Buffer {
  return wsFramed(maybeCompress(encodeSnapshotChunkFrame(feedId, revision, entries, scratch), algo, compressMinBytes));
}

/**
 * One reusable piece of memory for frames that are copied before anyone else sees them.
 *
 * Why: a fresh 1 MiB `Buffer.allocUnsafe` is first-touched page by page, and on our VMs those
 * faults cost far more than the encoding (bench/results/codec.md: ~12x). A snapshot build encodes
 * every chunk uncompressed before compressing (or copying) it, so that intermediate is the one
 * allocation worth reusing. It grows to the largest frame asked for (at most maxFrameBytes plus
 * the header) and is held for the process's life; callers use it synchronously, one frame at a time.
 */
export class ScratchAllocator {
  private buf: Buffer | undefined;
  readonly alloc: FrameAllocator = (bytes) => {
    if (this.buf === undefined || this.buf.length < bytes) this.buf = Buffer.allocUnsafe(bytes);
    return this.buf.subarray(0, bytes);
  };
}

/**
 * A DELTA unit as ready-to-write frames (several with MORE above maxBodyBytes, §2.3). An entry too
 * big for one body cannot be split: throws CATTAIL_SERVER_ENTRY_TOO_LARGE, and the caller closes
 * the agents of that frame size with it (PROTOCOL.md §2.2). Rejected: sending the entry whole
 * anyway (the agent refuses it with 4003, reconnects, resumes and meets it again: a loop) and
 * dropping it (the agent's state would be silently wrong).
 */
export function encodeDelta(
  feedId: number, from: number, to: number, upserts: readonly Entry[], deletes: readonly string[],
  algo: Compression, maxBodyBytes: number, compressMinBytes: number,
  /** The unit goes on after these frames (a scoped unit's shared part, PROTOCOL.md §7.3): MORE on the last frame too. */
  moreOnLast = false,
): Buffer[] {
  let frames: Buffer[];
  try {
    frames = encodeDeltaFrames(feedId, from, to, upserts, deletes, maxBodyBytes);
  } catch (err) {
    if (!isProtocolError(err) || err.code !== 'CATTAIL_PROTO_FRAME_TOO_LARGE') throw err;
    throw entryTooLarge(err.details?.['key'], err.details?.['bytes'], maxBodyBytes, err);
  }
  // The flags byte is header offset 2 (§2.1), set before compression (which only adds COMPRESSED).
  if (moreOnLast) {
    const last = frames[frames.length - 1] as Buffer;
    last[2] = (last[2] as number) | FLAG_MORE;
  }
  return frames.map((f) => wsFramed(maybeCompress(f, algo, compressMinBytes)));
}

/** The smallest power of two at or above `n`. */
function nextPowerOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** The error that closes an agent whose frame size cannot carry one entry (close 4003). */
export function entryTooLarge(key: unknown, bytes: unknown, maxBodyBytes: number, cause?: unknown): CattailError {
  return new CattailError(
    'CATTAIL_SERVER_ENTRY_TOO_LARGE',
    `entry ${JSON.stringify(key)} needs ${String(bytes)} body bytes, above this connection's maxFrameBytes ${maxBodyBytes}; raise the agent's maxFrameBytes${typeof bytes === 'number' ? ` to at least ${nextPowerOfTwo(bytes)} (the server rounds an agent's value down to a power of two)` : ''}`,
    { cause, details: { key, bytes, maxBodyBytes } },
  );
}

/** True for {@link entryTooLarge}'s error. */
export function isEntryTooLarge(err: unknown): err is CattailError {
  return CattailError.is(err) && err.code === 'CATTAIL_SERVER_ENTRY_TOO_LARGE';
}

// ---- inbound ---------------------------------------------------------------------------------

/**
 * Decodes one agent frame. Agent frames are never compressed nor multi-frame; a message the
 * server sends (WELCOME, DELTA, ...) coming from an agent is "wrong direction" (4002). Throws a
 * CattailError whose code is a ClosingErrorCode: the connection closes with that code's close.
 */
export function decodeInbound(buf: Buffer, maxInboundBytes: number): Message {
  if (buf.length > maxInboundBytes) throw new CattailError('CATTAIL_PROTO_FRAME_TOO_LARGE', `frame of ${buf.length} bytes above maxInboundBytes ${maxInboundBytes}`);
  let m: Message;
  try {
    m = decodeFrame(buf, { maxBodyBytes: Math.max(0, maxInboundBytes - HEADER_BYTES) });
  } catch (err) {
    if (isProtocolError(err)) throw err;
    throw new CattailError('CATTAIL_PROTO_BAD_BODY', (err as Error).message);
  }
  if (DIRECTION_OF_KIND[m.type] === 's2c') throw new CattailError('CATTAIL_SERVER_UNEXPECTED_MESSAGE', `${m.type} is sent by servers, not agents`);
  return m;
}
