/**
 * The server's side of the wire, on top of the pure codec in proto/ (PROTOCOL.md is the contract).
 *
 * Every outbound frame leaves here as ONE Buffer holding the WebSocket frame header (unmasked,
 * binary, FIN; RFC 6455 §5.2) followed by the Cattail frame. The fan-out writes that same Buffer to
 * every caught-up socket with `socket.write`, so msgpack encoding, compression and framing happen
 * once per frame and never per client. (ws's `send()` frames per socket: ~25 % more CPU per
 * delivery when measured on our 2-core machines (docs/transport.md), and a closure per send.)
 */
import {
  DIRECTION_OF_KIND,
  HEADER_BYTES,
  type Entry,
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

export const COMPRESSIONS: readonly Compression[] = ['none', 'deflate', 'brotli'];

/** Close codes the server uses (PROTOCOL.md §1.3). */
export const CloseCode = {
  NORMAL: 1000, MALFORMED_FRAME: 4000, UNSUPPORTED_VERSION: 4001, UNEXPECTED_MESSAGE: 4002,
  FRAME_TOO_LARGE: 4003, HANDSHAKE_TIMEOUT: 4004, PONG_TIMEOUT: 4005, UNKNOWN_FEED: 4006,
  FELL_BEHIND: 4007, OVER_BUDGET: 4008, SHED: 4009, SHUTTING_DOWN: 4010, UNAUTHORIZED: 4011,
  INTERNAL_ERROR: 4012,
} as const;

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

/** A SNAPSHOT_CHUNK of exactly these entries, ready to write. */
export function encodeChunk(feedId: number, revision: number, entries: readonly Entry[], algo: Compression, compressMinBytes: number): Buffer {
  return wsFramed(maybeCompress(encodeSnapshotChunkFrame(feedId, revision, entries), algo, compressMinBytes));
}

/**
 * A DELTA unit as ready-to-write frames (several with MORE above maxBodyBytes, §2.3). An entry too
 * big for any frame cannot be split; it is sent whole and the agent refuses it (4003), which is
 * loud, rather than silently dropping the change.
 */
export function encodeDelta(
  feedId: number, from: number, to: number, upserts: readonly Entry[], deletes: readonly string[],
  algo: Compression, maxBodyBytes: number, compressMinBytes: number,
): Buffer[] {
  let frames: Buffer[];
  try {
    frames = encodeDeltaFrames(feedId, from, to, upserts, deletes, maxBodyBytes);
  } catch (err) {
    if (!isProtocolError(err) || err.code !== 'CATTAIL_PROTO_FRAME_TOO_LARGE') throw err;
    frames = encodeDeltaFrames(feedId, from, to, upserts, deletes);
  }
  return frames.map((f) => wsFramed(maybeCompress(f, algo, compressMinBytes)));
}

// ---- inbound ---------------------------------------------------------------------------------

/** A protocol violation by the peer: the close code to use and the code for the ERROR message. */
export class InboundError extends Error {
  constructor(
    readonly closeCode: number,
    readonly errorCode: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Decodes one agent frame. Agent frames are never compressed nor multi-frame; a message the
 * server sends (WELCOME, DELTA, ...) coming from an agent is "wrong direction" (4002).
 */
export function decodeInbound(buf: Buffer, maxInboundBytes: number): Message {
  if (buf.length > maxInboundBytes) throw new InboundError(CloseCode.FRAME_TOO_LARGE, 'CATTAIL_PROTO_FRAME_TOO_LARGE', `frame of ${buf.length} bytes above maxInboundBytes ${maxInboundBytes}`);
  let m: Message;
  try {
    m = decodeFrame(buf, { maxBodyBytes: Math.max(0, maxInboundBytes - HEADER_BYTES) });
  } catch (err) {
    if (isProtocolError(err)) throw new InboundError(err.closeCode, err.code, err.message);
    throw new InboundError(CloseCode.MALFORMED_FRAME, 'CATTAIL_PROTO_BAD_BODY', (err as Error).message);
  }
  if (DIRECTION_OF_KIND[m.type] === 's2c') throw new InboundError(CloseCode.UNEXPECTED_MESSAGE, 'CATTAIL_SERVER_UNEXPECTED_MESSAGE', `${m.type} is sent by servers, not agents`);
  return m;
}
