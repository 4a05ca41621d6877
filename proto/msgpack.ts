/**
 * The small, strict MessagePack subset the protocol uses (§3), written by hand.
 *
 * Why not msgpackr here: (1) the hot path must copy stored values into `bin` without re-encoding
 * them and size each body exactly before writing it, which needs header-level control; (2) golden
 * bytes must not drift with a library's encoding choices (msgpackr picks records, bundled strings
 * or float32 depending on options and version); (3) the decoder must be hostile-input safe:
 * check every length against the bytes that remain *before* allocating, reject extension types,
 * non-string map keys, duplicate keys and invalid UTF-8 with a coded error, and bound nesting.
 * Values inside `bin` are never touched; clients decode them with msgpackr themselves.
 */
import { isUtf8 } from 'node:buffer';
import { ProtocolError } from './errors.js';

// ---- sizes -------------------------------------------------------------------------------

export function strHeaderBytes(byteLength: number): number {
  return byteLength < 32 ? 1 : byteLength < 0x100 ? 2 : byteLength < 0x10000 ? 3 : 5;
}
export function binHeaderBytes(byteLength: number): number {
  return byteLength < 0x100 ? 2 : byteLength < 0x10000 ? 3 : 5;
}
export function arrayHeaderBytes(count: number): number {
  return count < 16 ? 1 : count < 0x10000 ? 3 : 5;
}

// ---- low-level writers: (buf, pos, …) → new pos; the caller sized `buf` ------------------

function writeStrHeader(buf: Buffer, pos: number, byteLength: number): number {
  if (byteLength < 32) {
    buf[pos] = 0xa0 | byteLength;
    return pos + 1;
  }
  if (byteLength < 0x100) {
    buf[pos] = 0xd9;
    buf[pos + 1] = byteLength;
    return pos + 2;
  }
  if (byteLength < 0x10000) {
    buf[pos] = 0xda;
    buf.writeUInt16BE(byteLength, pos + 1);
    return pos + 3;
  }
  buf[pos] = 0xdb;
  buf.writeUInt32BE(byteLength, pos + 1);
  return pos + 5;
}

export function writeBinHeader(buf: Buffer, pos: number, byteLength: number): number {
  if (byteLength < 0x100) {
    buf[pos] = 0xc4;
    buf[pos + 1] = byteLength;
    return pos + 2;
  }
  if (byteLength < 0x10000) {
    buf[pos] = 0xc5;
    buf.writeUInt16BE(byteLength, pos + 1);
    return pos + 3;
  }
  buf[pos] = 0xc6;
  buf.writeUInt32BE(byteLength, pos + 1);
  return pos + 5;
}

function writeCountHeader(buf: Buffer, pos: number, count: number, fix: number, c16: number): number {
  if (count < 16) {
    buf[pos] = fix | count;
    return pos + 1;
  }
  if (count < 0x10000) {
    buf[pos] = c16;
    buf.writeUInt16BE(count, pos + 1);
    return pos + 3;
  }
  buf[pos] = c16 + 1;
  buf.writeUInt32BE(count, pos + 1);
  return pos + 5;
}

export function writeArrayHeader(buf: Buffer, pos: number, count: number): number {
  return writeCountHeader(buf, pos, count, 0x90, 0xdc);
}
export function writeMapHeader(buf: Buffer, pos: number, count: number): number {
  return writeCountHeader(buf, pos, count, 0x80, 0xde);
}

/** Writes a str whose UTF-8 length the caller already knows. */
export function writeStr(buf: Buffer, pos: number, s: string, byteLength: number): number {
  pos = writeStrHeader(buf, pos, byteLength);
  if (byteLength < 16 && byteLength === s.length) {
    // Short ASCII (the common key/field name): a loop beats the native call's overhead.
    for (let i = 0; i < byteLength; i++) buf[pos + i] = s.charCodeAt(i);
    return pos + byteLength;
  }
  return pos + buf.write(s, pos, byteLength, 'utf8');
}

// ---- growable writer for control messages ------------------------------------------------

/** Appends msgpack to a growing buffer. Integers use the smallest encoding (§3: ≤ 2^53 − 1). */
export class MsgWriter {
  private buf: Buffer;
  private pos = 0;

  constructor(initialBytes = 256) {
    this.buf = Buffer.allocUnsafe(initialBytes);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  nil(): this {
    this.ensure(1);
    this.buf[this.pos++] = 0xc0;
    return this;
  }

  bool(v: boolean): this {
    this.ensure(1);
    this.buf[this.pos++] = v ? 0xc3 : 0xc2;
    return this;
  }

  int(v: number): this {
    if (!Number.isSafeInteger(v)) throw new ProtocolError('CATTAIL_PROTO_BAD_BODY', `cannot encode ${v}: not an integer within ±(2^53 − 1)`);
    this.ensure(9);
    const b = this.buf;
    let p = this.pos;
    if (v >= 0) {
      if (v < 0x80) b[p++] = v;
      else if (v < 0x100) { b[p++] = 0xcc; b[p++] = v; }
      else if (v < 0x10000) { b[p++] = 0xcd; b.writeUInt16BE(v, p); p += 2; }
      else if (v < 0x1_0000_0000) { b[p++] = 0xce; b.writeUInt32BE(v, p); p += 4; }
      else { b[p++] = 0xcf; b.writeBigUInt64BE(BigInt(v), p); p += 8; }
    } else {
      if (v >= -32) b[p++] = 0xe0 | (v + 32);
      else if (v >= -0x80) { b[p++] = 0xd0; b.writeInt8(v, p); p += 1; }
      else if (v >= -0x8000) { b[p++] = 0xd1; b.writeInt16BE(v, p); p += 2; }
      else if (v >= -0x8000_0000) { b[p++] = 0xd2; b.writeInt32BE(v, p); p += 4; }
      else { b[p++] = 0xd3; b.writeBigInt64BE(BigInt(v), p); p += 8; }
    }
    this.pos = p;
    return this;
  }

  str(s: string): this {
    const n = Buffer.byteLength(s, 'utf8');
    this.ensure(5 + n);
    this.pos = writeStr(this.buf, this.pos, s, n);
    return this;
  }

  bin(v: Uint8Array): this {
    this.ensure(5 + v.length);
    this.pos = writeBinHeader(this.buf, this.pos, v.length);
    this.buf.set(v, this.pos);
    this.pos += v.length;
    return this;
  }

  array(count: number): this {
    this.ensure(5);
    this.pos = writeArrayHeader(this.buf, this.pos, count);
    return this;
  }

  map(count: number): this {
    this.ensure(5);
    this.pos = writeMapHeader(this.buf, this.pos, count);
    return this;
  }

  /** Raw bytes that are already msgpack (e.g. a pre-encoded entries array). */
  raw(bytes: Uint8Array): this {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
    return this;
  }

  get length(): number {
    return this.pos;
  }

  /** A view of the bytes written (valid until the next write). */
  view(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

// ---- strict reader -----------------------------------------------------------------------

/**
 * A msgpack float (float32 or float64). Kept apart from `number`, which only msgpack integers
 * decode to: PROTOCOL.md §3 says integers are msgpack integers, and a float 5.0 where an integer
 * is expected is a mistyped field (4000), not the integer 5. Rejecting floats outright would break
 * forward compatibility: a later version may add a float under a key this one ignores.
 */
export class MsgFloat {
  constructor(readonly value: number) {}
}

/** Decoded msgpack: maps become `Map<string, unknown>` (no prototype pitfalls), bin a Buffer view. */
export type MsgValue = null | boolean | number | MsgFloat | string | Buffer | MsgValue[] | Map<string, MsgValue>;

const MAX_DEPTH = 16;

function truncated(what: string): never {
  throw new ProtocolError('CATTAIL_PROTO_TRUNCATED', `msgpack body ends inside ${what}`);
}
function bad(message: string): never {
  throw new ProtocolError('CATTAIL_PROTO_BAD_BODY', message);
}

/** Reads one msgpack document from `buf` (a Buffer, so `bin` values are zero-copy Buffer views). */
export class MsgReader {
  pos = 0;
  constructor(readonly buf: Buffer) {}

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  private need(n: number, what: string): void {
    if (this.buf.length - this.pos < n) truncated(what);
  }

  private u8(): number {
    this.need(1, 'a type byte');
    return this.buf[this.pos++] as number;
  }
  private u16(): number {
    this.need(2, 'a length');
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  private u32(): number {
    this.need(4, 'a length');
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  read(depth = 0): MsgValue {
    const t = this.u8();
    if (t < 0x80) return t;
    if (t >= 0xe0) return t - 0x100;
    if (t < 0x90) return this.mapBody(t & 0x0f, depth);
    if (t < 0xa0) return this.arrayBody(t & 0x0f, depth);
    if (t < 0xc0) return this.strBody(t & 0x1f);
    switch (t) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return this.binBody(this.u8());
      case 0xc5: return this.binBody(this.u16());
      case 0xc6: return this.binBody(this.u32());
      case 0xca: { this.need(4, 'a float32'); const v = this.buf.readFloatBE(this.pos); this.pos += 4; return new MsgFloat(v); }
      case 0xcb: { this.need(8, 'a float64'); const v = this.buf.readDoubleBE(this.pos); this.pos += 8; return new MsgFloat(v); }
      case 0xcc: return this.u8();
      case 0xcd: return this.u16();
      case 0xce: return this.u32();
      case 0xcf: {
        this.need(8, 'a uint64');
        const hi = this.buf.readUInt32BE(this.pos);
        const lo = this.buf.readUInt32BE(this.pos + 4);
        this.pos += 8;
        if (hi > 0x1fffff) bad('integer above 2^53 − 1');
        return hi * 0x1_0000_0000 + lo;
      }
      case 0xd0: { this.need(1, 'an int8'); const v = this.buf.readInt8(this.pos); this.pos += 1; return v; }
      case 0xd1: { this.need(2, 'an int16'); const v = this.buf.readInt16BE(this.pos); this.pos += 2; return v; }
      case 0xd2: { this.need(4, 'an int32'); const v = this.buf.readInt32BE(this.pos); this.pos += 4; return v; }
      case 0xd3: {
        this.need(8, 'an int64');
        const v = this.buf.readBigInt64BE(this.pos);
        this.pos += 8;
        if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) bad('integer outside ±(2^53 − 1)');
        return Number(v);
      }
      case 0xd9: return this.strBody(this.u8());
      case 0xda: return this.strBody(this.u16());
      case 0xdb: return this.strBody(this.u32());
      case 0xdc: return this.arrayBody(this.u16(), depth);
      case 0xdd: return this.arrayBody(this.u32(), depth);
      case 0xde: return this.mapBody(this.u16(), depth);
      case 0xdf: return this.mapBody(this.u32(), depth);
      default:
        // 0xc1 (never used) and every extension type (0xc7–0xc9, 0xd4–0xd8): §3 forbids them.
        return bad(`msgpack type byte 0x${t.toString(16)} is not allowed (extension or reserved)`);
    }
  }

  /** A str; exported for the entries fast path. */
  strBody(n: number): string {
    this.need(n, 'a string');
    const buf = this.buf;
    const start = this.pos;
    this.pos += n;
    if (n < 32) {
      // ASCII fast path (keys, field names); anything else falls through to the validated decode.
      let s = '';
      let i = start;
      for (; i < start + n; i++) {
        const c = buf[i] as number;
        if (c >= 0x80) break;
        s += String.fromCharCode(c);
      }
      if (i === start + n) return s;
    }
    const bytes = buf.subarray(start, start + n);
    if (!isUtf8(bytes)) bad('string is not valid UTF-8');
    return bytes.toString('utf8');
  }

  binBody(n: number): Buffer {
    this.need(n, 'a bin');
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  private arrayBody(count: number, depth: number): MsgValue[] {
    if (depth >= MAX_DEPTH) bad(`msgpack nesting deeper than ${MAX_DEPTH}`);
    // Every element takes at least one byte: refuse impossible counts before allocating.
    if (count > this.remaining) truncated('an array');
    const out: MsgValue[] = new Array<MsgValue>(count);
    for (let i = 0; i < count; i++) out[i] = this.read(depth + 1);
    return out;
  }

  private mapBody(count: number, depth: number): Map<string, MsgValue> {
    if (depth >= MAX_DEPTH) bad(`msgpack nesting deeper than ${MAX_DEPTH}`);
    if (count * 2 > this.remaining) truncated('a map');
    const out = new Map<string, MsgValue>();
    for (let i = 0; i < count; i++) {
      const k = this.read(depth + 1);
      if (typeof k !== 'string') bad('map key is not a string');
      if (out.has(k)) bad(`duplicate map key ${JSON.stringify(k)}`);
      out.set(k, this.read(depth + 1));
    }
    return out;
  }
}
