/**
 * Frames ↔ messages (PROTOCOL.md §2–§4).
 *
 * Receiving is three steps so that compression can live outside this pure module:
 *
 * ```
 *  bytes ──splitFrame(limits)──► { header, body } ──(inflate if COMPRESSED, bounded)──► decodeBody ──► Message
 *         header checked, length checked                     src/wire/compression.ts
 *         before the body is looked at
 * ```
 *
 * `decodeFrame` is the shortcut for frames that are never compressed (everything a server
 * receives; everything on a connection that negotiated `none`). Every failure is a
 * {@link ProtocolError} whose `closeCode` is the close code to use; nothing else escapes.
 */
import { bodyOf, messageOf, type PlainValue } from './body.js';
import { CattailError } from '../src/errors.js';
import { encodeDeltaFrame, encodeSnapshotChunkFrame } from './entries.js';
import { ProtocolError } from './errors.js';
import { buildFrame, readHeader, type HeaderFields } from './header.js';
import { MsgReader, MsgWriter } from './msgpack.js';
import {
  Flags,
  HEADER_BYTES,
  KIND_OF_TYPE,
  NO_FEED,
  TYPE_OF_KIND,
  type DecodeLimits,
  type FrameHeader,
  type Message,
  type MessageKind,
} from './types.js';

/** The header a message is sent with (without `bodyLength`). */
export function headerFieldsOf(m: Message): HeaderFields {
  const type = TYPE_OF_KIND[m.type];
  switch (m.type) {
    case 'snapshotBegin':
    case 'snapshotChunk':
      return { type, flags: Flags.MORE, feedId: m.feedId, fromRevision: 0, toRevision: m.revision };
    case 'snapshotEnd':
    case 'ack':
    case 'repairRequest':
      return { type, flags: 0, feedId: m.feedId, fromRevision: 0, toRevision: m.revision };
    case 'status':
      return { type, flags: 0, feedId: m.feedId, fromRevision: m.revision, toRevision: m.revision };
    case 'repair':
      return { type, flags: 0, feedId: m.feedId, fromRevision: m.fromRevision, toRevision: m.toRevision };
    case 'delta':
      return { type, flags: m.more ? Flags.MORE : 0, feedId: m.feedId, fromRevision: m.fromRevision, toRevision: m.toRevision };
    default:
      return { type, flags: 0, feedId: NO_FEED, fromRevision: 0, toRevision: 0 };
  }
}

function writePlain(w: MsgWriter, v: PlainValue): void {
  if (v === null) w.nil();
  else if (typeof v === 'boolean') w.bool(v);
  else if (typeof v === 'number') w.int(v);
  else if (typeof v === 'string') w.str(v);
  else if (v instanceof Uint8Array) w.bin(v);
  else if (Array.isArray(v)) {
    w.array(v.length);
    for (const x of v as readonly PlainValue[]) writePlain(w, x);
  } else {
    const entries = Object.entries(v as { [key: string]: PlainValue | undefined }).filter(([, x]) => x !== undefined);
    w.map(entries.length);
    for (const [k, x] of entries) {
      w.str(k);
      writePlain(w, x as PlainValue);
    }
  }
}

/**
 * A complete, uncompressed frame for `m`. DELTA and SNAPSHOT_CHUNK take the encode-once path
 * (values copied, never re-encoded); for units that must respect a size limit use
 * `encodeDeltaFrames` / `encodeSnapshotChunkFrames`.
 */
export function encodeFrame(m: Message): Buffer {
  if (m.type === 'delta') return encodeDeltaFrame(m.feedId, m.fromRevision, m.toRevision, m.more, m.upserts, m.deletes);
  if (m.type === 'snapshotChunk') return encodeSnapshotChunkFrame(m.feedId, m.revision, m.entries);
  const w = new MsgWriter();
  writePlain(w, bodyOf(m));
  return buildFrame(headerFieldsOf(m), w.view());
}

/** The body alone (what `compressBody` takes); a view into a fresh frame. */
export function encodeBody(m: Message): Buffer {
  return encodeFrame(m).subarray(HEADER_BYTES);
}

/** A frame split into its validated header and its (possibly compressed) body. */
export interface SplitFrame {
  readonly header: FrameHeader;
  /** View into the input, `header.bodyLength` bytes. */
  readonly body: Buffer;
}

function asBuffer(buf: Uint8Array): Buffer {
  return Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
}

/**
 * Validates the header and the frame's length against it and against `limits`, without reading
 * the body. The size limit is checked from the header alone, before anything else is done with
 * the body.
 * @throws ProtocolError TRUNCATED / BAD_HEADER (4000), UNKNOWN_TYPE / BAD_FLAGS (4002), FRAME_TOO_LARGE (4003)
 */
export function splitFrame(frame: Uint8Array, limits: DecodeLimits): SplitFrame {
  const header = readHeader(frame);
  if (header.bodyLength > limits.maxBodyBytes) {
    throw new ProtocolError('CATTAIL_PROTO_FRAME_TOO_LARGE', `body of ${header.bodyLength} bytes exceeds the limit of ${limits.maxBodyBytes}`, { details: { bodyLength: header.bodyLength, maxBodyBytes: limits.maxBodyBytes } });
  }
  const total = HEADER_BYTES + header.bodyLength;
  if (frame.length < total) {
    throw new ProtocolError('CATTAIL_PROTO_TRUNCATED', `frame has ${frame.length} bytes; its header announces ${total}`, { details: { length: frame.length, expected: total } });
  }
  if (frame.length > total) {
    throw new ProtocolError('CATTAIL_PROTO_BAD_HEADER', `frame has ${frame.length - total} bytes after its body`, { details: { length: frame.length, expected: total } });
  }
  return { header, body: asBuffer(frame).subarray(HEADER_BYTES, total) };
}

/**
 * Decodes a plain (uncompressed or already inflated) body for `header`. Entry values and tokens
 * are views into `body`: no copy.
 * @throws ProtocolError TRUNCATED / BAD_BODY (4000), UNSUPPORTED_VERSION (4001)
 */
export function decodeBody(header: FrameHeader, body: Uint8Array): Message {
  const kind = KIND_OF_TYPE[header.type] as MessageKind | undefined;
  if (kind === undefined) throw new ProtocolError('CATTAIL_PROTO_UNKNOWN_TYPE', `unknown message type ${header.type}`);
  try {
    const reader = new MsgReader(asBuffer(body));
    const value = reader.read();
    if (reader.remaining !== 0) throw new ProtocolError('CATTAIL_PROTO_BAD_BODY', `${reader.remaining} bytes after the msgpack body of ${kind}`);
    if (!(value instanceof Map)) throw new ProtocolError('CATTAIL_PROTO_BAD_BODY', `${kind} body is not a msgpack map`);
    return messageOf(kind, header, value);
  } catch (err) {
    if (CattailError.is(err) && err.code.startsWith('CATTAIL_PROTO_')) throw err;
    // Defence in depth: whatever else a hostile body provokes is still a coded malformed frame.
    throw new ProtocolError('CATTAIL_PROTO_BAD_BODY', `${kind} body could not be decoded: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

/**
 * `splitFrame` + `decodeBody` for frames that must not be compressed.
 * @throws ProtocolError as both; BAD_FLAGS (4002) for a COMPRESSED frame
 */
export function decodeFrame(frame: Uint8Array, limits: DecodeLimits): Message {
  const { header, body } = splitFrame(frame, limits);
  if ((header.flags & Flags.COMPRESSED) !== 0) {
    throw new ProtocolError('CATTAIL_PROTO_BAD_FLAGS', 'COMPRESSED frame where no compression applies', { details: { type: header.type } });
  }
  return decodeBody(header, body);
}
