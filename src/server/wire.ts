/**
 * The server's side of the wire: encoding the frames it sends (once, shared by every socket) and
 * decoding the tiny frames agents send. PROTOCOL.md is the contract.
 *
 * Every outbound frame leaves here as ONE Buffer holding the WebSocket frame header (unmasked,
 * binary, FIN) followed by the Cattail frame (28-byte header + body). The fan-out writes that same
 * Buffer to every caught-up socket with `socket.write`, so framing, msgpack encoding and
 * compression happen once per frame and never per client. (ws's `send()` would re-frame per
 * socket, ~25 % more CPU per delivery in ../shared/reference/fanout-limits.md.)
 */
import { brotliCompressSync, constants as zlibConstants, deflateRawSync } from 'node:zlib';
import { Packr, Unpackr } from 'msgpackr';
import type { StoreEntry } from './store-port.js';

export const SUBPROTOCOL = 'cattail.v1';
export const PROTOCOL_VERSION = 1;
export const HEADER_BYTES = 28;
export const NO_FEED = 0xffff;
export const MAX_HELLO_FEEDS = 16;
export const MAX_TOKEN_BYTES = 256;

export const MessageType = {
  HELLO: 0x01, WELCOME: 0x02, SNAPSHOT_BEGIN: 0x03, SNAPSHOT_CHUNK: 0x04, SNAPSHOT_END: 0x05,
  DELTA: 0x06, STATUS: 0x07, PING: 0x08, PONG: 0x09, ACK: 0x0a, GOODBYE: 0x0b, ERROR: 0x0c,
} as const;

export const Flags = { COMPRESSED: 0x01, MORE: 0x02 } as const;

export const CloseCode = {
  NORMAL: 1000, MALFORMED_FRAME: 4000, UNSUPPORTED_VERSION: 4001, UNEXPECTED_MESSAGE: 4002,
  FRAME_TOO_LARGE: 4003, HANDSHAKE_TIMEOUT: 4004, PONG_TIMEOUT: 4005, UNKNOWN_FEED: 4006,
  FELL_BEHIND: 4007, OVER_BUDGET: 4008, SHED: 4009, SHUTTING_DOWN: 4010, INTERNAL_ERROR: 4012,
} as const;

export type Compression = 'none' | 'deflate' | 'brotli';
export const COMPRESSIONS: readonly Compression[] = ['none', 'deflate', 'brotli'];

// Plain MessagePack: no records/structures, so any msgpack library reads the bodies (§3).
const packr = new Packr({ useRecords: false, variableMapSize: true });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

/** Per-entry msgpack overhead bound used to cut frames below maxFrameBytes: array, str and bin headers. */
const ENTRY_OVERHEAD_BYTES = 16;
/** Slack for the body's map and array headers. */
const BODY_OVERHEAD_BYTES = 64;

export function entryBytes(e: StoreEntry): number {
  return Buffer.byteLength(e[0]) + e[1].length + ENTRY_OVERHEAD_BYTES;
}

/** WebSocket header of an unmasked, final, binary server frame carrying `length` bytes (RFC 6455 §5.2). */
function wsHeader(length: number): Buffer {
  if (length < 126) {
    const h = Buffer.allocUnsafe(2);
    h[0] = 0x82;
    h[1] = length;
    return h;
  }
  if (length < 65_536) {
    const h = Buffer.allocUnsafe(4);
    h[0] = 0x82;
    h[1] = 126;
    h.writeUInt16BE(length, 2);
    return h;
  }
  const h = Buffer.allocUnsafe(10);
  h[0] = 0x82;
  h[1] = 127;
  h.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
  h.writeUInt32BE(length >>> 0, 6);
  return h;
}

export interface FrameFields {
  readonly type: number;
  readonly flags?: number;
  readonly feedId?: number;
  readonly from?: number;
  readonly to?: number;
}

/** One ready-to-write frame: WebSocket header + Cattail header + body, in one Buffer. */
export function buildWireFrame(f: FrameFields, body: Buffer): Buffer {
  const frameLen = HEADER_BYTES + body.length;
  const ws = wsHeader(frameLen);
  const out = Buffer.allocUnsafe(ws.length + frameLen);
  ws.copy(out, 0);
  const o = ws.length;
  out[o] = 1;
  out[o + 1] = f.type;
  out[o + 2] = f.flags ?? 0;
  out[o + 3] = 0;
  out.writeUInt16BE(f.feedId ?? NO_FEED, o + 4);
  out.writeUInt16BE(0, o + 6);
  out.writeBigUInt64BE(BigInt(f.from ?? 0), o + 8);
  out.writeBigUInt64BE(BigInt(f.to ?? 0), o + 16);
  out.writeUInt32BE(body.length, o + 24);
  body.copy(out, o + HEADER_BYTES);
  return out;
}

/**
 * Compresses a body once for one algorithm (§5). Brotli at a low quality: the default (11) costs
 * ~100× more CPU for a few percent; a delta must leave within the flush window.
 */
export function compressBody(body: Buffer, algo: Compression): Buffer {
  if (algo === 'deflate') return deflateRawSync(body, { level: 6 });
  if (algo === 'brotli') return brotliCompressSync(body, { params: { [zlibConstants.BROTLI_PARAM_QUALITY]: 4, [zlibConstants.BROTLI_PARAM_SIZE_HINT]: body.length } });
  return body;
}

/** Encodes a body and frames it, compressing when the algorithm is set and the body is big enough. */
export function encodeWire(f: FrameFields, body: Record<string, unknown>, algo: Compression, compressMinBytes: number): Buffer {
  const raw = packr.pack(body);
  if (algo !== 'none' && raw.length >= compressMinBytes) {
    const c = compressBody(raw, algo);
    if (c.length < raw.length) return buildWireFrame({ ...f, flags: (f.flags ?? 0) | Flags.COMPRESSED }, c);
  }
  return buildWireFrame(f, raw);
}

/** Splits entries into runs whose encoded body stays within `maxBodyBytes` (an oversized entry goes alone). */
export function* splitEntries<T extends StoreEntry>(entries: readonly T[], maxBodyBytes: number): Generator<T[]> {
  let run: T[] = [];
  let size = BODY_OVERHEAD_BYTES;
  for (const e of entries) {
    const b = entryBytes(e);
    if (run.length > 0 && size + b > maxBodyBytes) {
      yield run;
      run = [];
      size = BODY_OVERHEAD_BYTES;
    }
    run.push(e);
    size += b;
  }
  if (run.length > 0) yield run;
}

/**
 * DELTA unit from..to as frames (several with MORE when it exceeds maxBodyBytes, §2.3). Deletes
 * ride in the last frame so a unit never needs more than one extra frame for them.
 */
export function encodeDelta(
  feedId: number,
  from: number,
  to: number,
  upserts: readonly StoreEntry[],
  deletes: readonly string[],
  algo: Compression,
  maxBodyBytes: number,
  compressMinBytes: number,
): Buffer[] {
  const runs = [...splitEntries(upserts, maxBodyBytes)];
  const deleteRuns: string[][] = [];
  let cur: string[] = [];
  let size = BODY_OVERHEAD_BYTES;
  for (const k of deletes) {
    const b = Buffer.byteLength(k) + 5;
    if (cur.length > 0 && size + b > maxBodyBytes) {
      deleteRuns.push(cur);
      cur = [];
      size = BODY_OVERHEAD_BYTES;
    }
    cur.push(k);
    size += b;
  }
  if (cur.length > 0 || deleteRuns.length === 0) deleteRuns.push(cur);
  const bodies: { upserts: readonly StoreEntry[]; deletes: string[] }[] = runs.map((r) => ({ upserts: r, deletes: [] }));
  // The last upsert run shares its frame with the first delete run when there is room.
  for (const d of deleteRuns) bodies.push({ upserts: [], deletes: d });
  if (bodies.length >= 2 && runs.length > 0) {
    const lastUp = bodies[runs.length - 1];
    const firstDel = bodies[runs.length];
    if (lastUp && firstDel) {
      const upSize = lastUp.upserts.reduce((n, e) => n + entryBytes(e), BODY_OVERHEAD_BYTES);
      const delSize = firstDel.deletes.reduce((n, k) => n + Buffer.byteLength(k) + 5, 0);
      if (upSize + delSize <= maxBodyBytes) {
        lastUp.deletes = firstDel.deletes;
        bodies.splice(runs.length, 1);
      }
    }
  }
  return bodies.map((b, i) =>
    encodeWire({ type: MessageType.DELTA, flags: i < bodies.length - 1 ? Flags.MORE : 0, feedId, from, to }, { upserts: b.upserts, deletes: b.deletes }, algo, compressMinBytes),
  );
}

// ---- inbound ---------------------------------------------------------------------------------

/** A protocol violation by the peer: the close code to use and an error code for the ERROR message. */
export class InboundError extends Error {
  constructor(
    readonly closeCode: number,
    readonly errorCode: string,
    message: string,
  ) {
    super(message);
  }
}

export interface InboundFrame {
  readonly type: number;
  readonly flags: number;
  readonly feedId: number;
  readonly from: number;
  readonly to: number;
  readonly body: Record<string, unknown>;
}

const CLIENT_TYPES = new Set<number>([MessageType.HELLO, MessageType.PONG, MessageType.ACK, MessageType.GOODBYE, MessageType.ERROR]);
const KNOWN_TYPES = new Set<number>(Object.values(MessageType));

function readRevision(buf: Buffer, at: number): number {
  const v = buf.readBigUInt64BE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new InboundError(CloseCode.MALFORMED_FRAME, 'CATTAIL_PROTO_BAD_HEADER', 'revision above 2^53 - 1');
  return Number(v);
}

/** Decodes one client frame; throws {@link InboundError} with the close code the protocol names. */
export function decodeInbound(buf: Buffer, maxInboundBytes: number): InboundFrame {
  if (buf.length > maxInboundBytes) throw new InboundError(CloseCode.FRAME_TOO_LARGE, 'CATTAIL_PROTO_FRAME_TOO_LARGE', `frame of ${buf.length} bytes above maxInboundBytes ${maxInboundBytes}`);
  if (buf.length < HEADER_BYTES) throw new InboundError(CloseCode.MALFORMED_FRAME, 'CATTAIL_PROTO_TRUNCATED', `frame of ${buf.length} bytes is shorter than the header`);
  if (buf[0] !== 1 || buf[3] !== 0 || buf.readUInt16BE(6) !== 0) throw new InboundError(CloseCode.MALFORMED_FRAME, 'CATTAIL_PROTO_BAD_HEADER', 'bad header version or reserved bytes');
  const type = buf[1] as number;
  const flags = buf[2] as number;
  const bodyLength = buf.readUInt32BE(24);
  if (HEADER_BYTES + bodyLength !== buf.length) throw new InboundError(CloseCode.MALFORMED_FRAME, 'CATTAIL_PROTO_TRUNCATED', 'frame length does not match its bodyLength');
  const from = readRevision(buf, 8);
  const to = readRevision(buf, 16);
  if (!KNOWN_TYPES.has(type)) throw new InboundError(CloseCode.UNEXPECTED_MESSAGE, 'CATTAIL_PROTO_UNKNOWN_TYPE', `unknown message type 0x${type.toString(16)}`);
  if (!CLIENT_TYPES.has(type)) throw new InboundError(CloseCode.UNEXPECTED_MESSAGE, 'CATTAIL_SERVER_UNEXPECTED_MESSAGE', `message type 0x${type.toString(16)} is not sent by clients`);
  // Client frames are never compressed and never multi-frame (§2.3, §5).
  if (flags !== 0) throw new InboundError(CloseCode.UNEXPECTED_MESSAGE, 'CATTAIL_PROTO_BAD_FLAGS', `flags 0x${flags.toString(16)} on a client frame`);
  let body: unknown;
  try {
    body = unpackr.unpack(buf.subarray(HEADER_BYTES));
  } catch (err) {
    throw new InboundError(CloseCode.MALFORMED_FRAME, 'CATTAIL_PROTO_BAD_BODY', `body is not valid msgpack: ${(err as Error).message}`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body) || Buffer.isBuffer(body)) {
    throw new InboundError(CloseCode.MALFORMED_FRAME, 'CATTAIL_PROTO_BAD_BODY', 'body is not a map');
  }
  return { type, flags, feedId: buf.readUInt16BE(4), from, to, body: body as Record<string, unknown> };
}

/** msgpack encoding of a plain value (resume tokens); plain msgpack, no records. */
export function packValue(v: unknown): Buffer {
  return packr.pack(v);
}

export function unpackValue(b: Buffer): unknown {
  return unpackr.unpack(b);
}
