import { ProtocolError } from './errors.js';
import {
  Flags,
  HEADER_BYTES,
  HEADER_VERSION,
  KIND_OF_TYPE,
  KNOWN_FLAGS,
  MAX_REVISION,
  MessageType,
  NO_FEED,
  type FrameHeader,
  type MessageTypeCode,
} from './types.js';

/** Header fields a sender chooses; `bodyLength` follows from the body. */
export type HeaderFields = Omit<FrameHeader, 'bodyLength'>;

const TWO_32 = 0x1_0000_0000;
const MAX_REVISION_HI = Math.floor(MAX_REVISION / TWO_32); // 0x1fffff

/** Types whose frames belong to a feed (§4); all others use NO_FEED. */
const FEED_SCOPED = new Set<number>([
  MessageType.SNAPSHOT_BEGIN, MessageType.SNAPSHOT_CHUNK, MessageType.SNAPSHOT_END,
  MessageType.DELTA, MessageType.STATUS, MessageType.ACK, MessageType.REPAIR_REQUEST, MessageType.REPAIR,
]);

/**
 * The MORE rule of §2.3: BEGIN and CHUNK always carry it, DELTA may, everything else (END included)
 * never does. Checked from the header alone so a router that skips bodies still sees broken units.
 */
function moreRule(type: number): 'always' | 'maybe' | 'never' {
  if (type === MessageType.SNAPSHOT_BEGIN || type === MessageType.SNAPSHOT_CHUNK) return 'always';
  if (type === MessageType.DELTA) return 'maybe';
  return 'never';
}

function readRevision(buf: Uint8Array, view: DataView, offset: number, name: string): number {
  const hi = view.getUint32(offset);
  if (hi > MAX_REVISION_HI) {
    throw new ProtocolError('CATTAIL_PROTO_BAD_HEADER', `${name} exceeds 2^53 - 1`, { details: { [name]: Buffer.from(buf.subarray(offset, offset + 8)).toString('hex') } });
  }
  return hi * TWO_32 + view.getUint32(offset + 4);
}

/**
 * Reads and validates the 28-byte header without looking at the body: version, reserved bytes,
 * revisions, type, flags (including the per-type MORE rule) and the feed id's scope. Does not
 * compare `bodyLength` with the buffer (see `splitFrame`), so it also works on a header prefix.
 * @throws ProtocolError TRUNCATED / BAD_HEADER (4000), UNKNOWN_TYPE / BAD_FLAGS (4002)
 */
export function readHeader(buf: Uint8Array): FrameHeader {
  if (buf.length < HEADER_BYTES) {
    throw new ProtocolError('CATTAIL_PROTO_TRUNCATED', `frame of ${buf.length} bytes is shorter than the ${HEADER_BYTES}-byte header`);
  }
  const view = new DataView(buf.buffer, buf.byteOffset, HEADER_BYTES);
  const version = view.getUint8(0);
  if (version !== HEADER_VERSION) {
    throw new ProtocolError('CATTAIL_PROTO_BAD_HEADER', `header version ${version} is not ${HEADER_VERSION}`, { details: { version } });
  }
  if (view.getUint8(3) !== 0 || view.getUint16(6) !== 0) {
    throw new ProtocolError('CATTAIL_PROTO_BAD_HEADER', 'reserved header bytes are not zero');
  }
  const fromRevision = readRevision(buf, view, 8, 'fromRevision');
  const toRevision = readRevision(buf, view, 16, 'toRevision');
  const type = view.getUint8(1);
  if (KIND_OF_TYPE[type] === undefined) {
    throw new ProtocolError('CATTAIL_PROTO_UNKNOWN_TYPE', `unknown message type 0x${type.toString(16).padStart(2, '0')}`, { details: { type } });
  }
  const flags = view.getUint8(2);
  if ((flags & ~KNOWN_FLAGS) !== 0) {
    throw new ProtocolError('CATTAIL_PROTO_BAD_FLAGS', `unknown flag bits 0x${flags.toString(16).padStart(2, '0')}`, { details: { type, flags } });
  }
  const rule = moreRule(type);
  const more = (flags & Flags.MORE) !== 0;
  if ((rule === 'always' && !more) || (rule === 'never' && more)) {
    throw new ProtocolError('CATTAIL_PROTO_BAD_FLAGS', `MORE flag ${more ? 'set' : 'missing'} on ${KIND_OF_TYPE[type]}`, { details: { type, flags } });
  }
  const feedId = view.getUint16(4);
  if (FEED_SCOPED.has(type) && feedId === NO_FEED) {
    throw new ProtocolError('CATTAIL_PROTO_BAD_HEADER', `${KIND_OF_TYPE[type]} frame without a feed id`, { details: { type } });
  }
  if (type === MessageType.STATUS && fromRevision !== toRevision) {
    throw new ProtocolError('CATTAIL_PROTO_BAD_HEADER', 'STATUS frame with fromRevision != toRevision', { details: { fromRevision, toRevision } });
  }
  return { type: type as MessageTypeCode, flags, feedId, fromRevision, toRevision, bodyLength: view.getUint32(24) };
}

function checkField(ok: boolean, name: string, value: number): void {
  if (!ok) throw new ProtocolError('CATTAIL_PROTO_BAD_HEADER', `cannot write header: ${name} ${value} is out of range`, { details: { [name]: value } });
}

/**
 * Writes a header at `offset` of `target` (which must have 28 bytes there). Validates ranges so a
 * caller's bug surfaces at encode time, not as a peer's close 4000.
 */
export function writeHeader(target: Uint8Array, offset: number, h: FrameHeader): void {
  checkField(KIND_OF_TYPE[h.type] !== undefined, 'type', h.type);
  checkField(Number.isInteger(h.flags) && (h.flags & ~KNOWN_FLAGS) === 0 && h.flags >= 0, 'flags', h.flags);
  checkField(Number.isInteger(h.feedId) && h.feedId >= 0 && h.feedId <= NO_FEED, 'feedId', h.feedId);
  checkField(Number.isSafeInteger(h.fromRevision) && h.fromRevision >= 0, 'fromRevision', h.fromRevision);
  checkField(Number.isSafeInteger(h.toRevision) && h.toRevision >= 0, 'toRevision', h.toRevision);
  checkField(Number.isInteger(h.bodyLength) && h.bodyLength >= 0 && h.bodyLength < TWO_32, 'bodyLength', h.bodyLength);
  const view = new DataView(target.buffer, target.byteOffset + offset, HEADER_BYTES);
  view.setUint8(0, HEADER_VERSION);
  view.setUint8(1, h.type);
  view.setUint8(2, h.flags);
  view.setUint8(3, 0);
  view.setUint16(4, h.feedId);
  view.setUint16(6, 0);
  view.setUint32(8, Math.floor(h.fromRevision / TWO_32));
  view.setUint32(12, h.fromRevision >>> 0);
  view.setUint32(16, Math.floor(h.toRevision / TWO_32));
  view.setUint32(20, h.toRevision >>> 0);
  view.setUint32(24, h.bodyLength);
}

/**
 * One frame from header fields and an already-encoded body (e.g. a compressed body: set
 * `Flags.COMPRESSED` in `flags`). Copies the body once.
 */
export function buildFrame(fields: HeaderFields, body: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(HEADER_BYTES + body.length);
  writeHeader(frame, 0, { ...fields, bodyLength: body.length });
  frame.set(body, HEADER_BYTES);
  return frame;
}
