import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type {
  ProtocolError} from '../../proto/index.js';
import {
  buildFrame,
  decodeFrame,
  encodeFrame,
  Flags,
  headerFieldsOf,
  isProtocolError,
  MessageType,
  NO_FEED,
  readHeader,
  splitFrame,
  type HeaderFields,
  type ProtocolErrorCode,
} from '../../proto/index.js';
import { MsgWriter } from '../../proto/msgpack.js';
import { SAMPLE_MESSAGES } from './messages.js';
import { hostileTally } from '../support/reliability-record.js';

// Bad input is a coded ProtocolError with the right close code — never another exception, never a
// crash, never an allocation sized by the peer.
const limits = { maxBodyBytes: 1_048_576 };
const goldenDir = join(import.meta.dirname, 'golden');
const tally = hostileTally('decoder', false);
const goldenFrames = readdirSync(goldenDir).map((f) => Buffer.from((JSON.parse(readFileSync(join(goldenDir, f), 'utf8')) as { hex: string }).hex, 'hex'));

/** The error `fn` throws, which must be a ProtocolError; counted under `klass` for the figures. */
function failure(fn: () => unknown, klass: string): ProtocolError {
  try {
    fn();
  } catch (err) {
    expect(isProtocolError(err), `not a ProtocolError: ${String(err)}`).toBe(true);
    const e = err as ProtocolError;
    tally.add(klass, `${e.code} (${e.closeCode})`);
    return e;
  }
  throw new Error('expected a ProtocolError, got success');
}

function expectCode(fn: () => unknown, code: ProtocolErrorCode, closeCode: number, klass: string): void {
  const err = failure(fn, klass);
  expect({ code: err.code, closeCode: err.closeCode }).toEqual({ code, closeCode });
}

/** Decoding either succeeds or throws a ProtocolError. */
function decodesOrRejects(frame: Uint8Array, klass: string): void {
  try {
    decodeFrame(frame, limits);
    tally.add(klass, 'decoded (a valid frame)');
  } catch (err) {
    expect(isProtocolError(err), `not a ProtocolError: ${String(err)}`).toBe(true);
    const e = err as ProtocolError;
    tally.add(klass, `${e.code} (${e.closeCode})`);
  }
}

function body(write: (w: MsgWriter) => void): Buffer {
  const w = new MsgWriter();
  write(w);
  return Buffer.from(w.view());
}

const pingFields = headerFieldsOf({ type: 'ping', t: 1 });
const deltaFields: HeaderFields = { type: MessageType.DELTA, flags: 0, feedId: 1, fromRevision: 1, toRevision: 2 };
const deltaBody = (extra?: (w: MsgWriter) => void): Buffer => body((w) => {
  w.map(extra ? 3 : 2).str('upserts').array(0).str('deletes').array(0);
  if (extra) extra(w);
});

describe('proto hostile input', () => {
  it('rejects every truncation of every golden frame as TRUNCATED (4000)', () => {
    expect(goldenFrames.length).toBeGreaterThanOrEqual(12);
    for (const frame of goldenFrames) {
      for (let n = 0; n < frame.length; n++) expectCode(() => decodeFrame(frame.subarray(0, n), limits), 'CATTAIL_PROTO_TRUNCATED', 4000, 'truncated frame');
    }
  });

  it('rejects every truncated body with a consistent header as malformed (4000)', () => {
    for (const frame of goldenFrames) {
      const h = readHeader(frame);
      for (let n = 0; n < h.bodyLength; n++) {
        const cut = buildFrame(h, frame.subarray(28, 28 + n));
        const err = failure(() => decodeFrame(cut, limits), 'truncated body under a consistent header');
        expect(err.closeCode).toBe(4000);
      }
    }
  });

  it('never crashes on random bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (u) => decodesOrRejects(u, 'random bytes')), { numRuns: 2000 });
  });

  it('never crashes on a valid header of any type followed by random body bytes', () => {
    const headers = Object.values(SAMPLE_MESSAGES).map(headerFieldsOf);
    fc.assert(fc.property(fc.constantFrom(...headers), fc.uint8Array({ maxLength: 300 }), (h, b) => decodesOrRejects(buildFrame(h, b), 'valid header, random body')), { numRuns: 3000 });
  });

  it('never crashes on golden frames with bytes changed', () => {
    fc.assert(fc.property(fc.constantFrom(...goldenFrames), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), (frame, edits) => {
      const f = Buffer.from(frame);
      for (const [at, v] of edits) f[at % f.length] = v;
      decodesOrRejects(f, 'valid frame with bytes changed');
    }), { numRuns: 3000 });
  });

  it('rejects an oversized length from the header alone, before looking at (or allocating for) the body', () => {
    const header = Buffer.from(encodeFrame(SAMPLE_MESSAGES.ping!).subarray(0, 28));
    header.writeUInt32BE(0xffffffff, 24);
    expectCode(() => splitFrame(header, limits), 'CATTAIL_PROTO_FRAME_TOO_LARGE', 4003, 'oversized frame');
    expectCode(() => decodeFrame(buildFrame(pingFields, Buffer.alloc(101)), { maxBodyBytes: 100 }), 'CATTAIL_PROTO_FRAME_TOO_LARGE', 4003, 'oversized frame');
  });

  it('rejects a float where an integer is expected (4000), and ignores one under an unknown key', () => {
    // {t: 5.0} as float64, and as float32: integers are msgpack integers (PROTOCOL.md §3).
    for (const hex of ['81a174cb4014000000000000', '81a174ca40a00000']) {
      expectCode(() => decodeFrame(buildFrame(pingFields, Buffer.from(hex, 'hex')), limits), 'CATTAIL_PROTO_BAD_BODY', 4000, 'float where an integer is expected');
    }
    // {t: 5, x: 5.0}: a key this version does not know may hold anything (forward compatibility).
    expect(decodeFrame(buildFrame(pingFields, Buffer.from('82a17405a178cb4014000000000000', 'hex')), limits)).toMatchObject({ type: 'ping', t: 5 });
  });

  it('rejects msgpack lengths larger than the bytes that remain without allocating', () => {
    for (const prefix of ['dd', 'df', 'db', 'c6']) {
      const b = Buffer.concat([Buffer.from('81a775707365727473', 'hex'), Buffer.from(`${prefix}ffffffff`, 'hex')]);
      expectCode(() => decodeFrame(buildFrame(deltaFields, b), limits), 'CATTAIL_PROTO_TRUNCATED', 4000, 'msgpack length beyond the body (allocation bomb)');
    }
  });

  it('rejects header faults with the close codes of PROTOCOL.md', () => {
    const good = encodeFrame(SAMPLE_MESSAGES.delta!);
    const patched = (at: number, v: number): Buffer => { const f = Buffer.from(good); f[at] = v; return f; };
    expectCode(() => decodeFrame(patched(0, 2), limits), 'CATTAIL_PROTO_BAD_HEADER', 4000, 'header field out of range');
    expectCode(() => decodeFrame(patched(3, 1), limits), 'CATTAIL_PROTO_BAD_HEADER', 4000, 'header field out of range');
    expectCode(() => decodeFrame(patched(7, 1), limits), 'CATTAIL_PROTO_BAD_HEADER', 4000, 'header field out of range');
    expectCode(() => decodeFrame(patched(9, 0x20), limits), 'CATTAIL_PROTO_BAD_HEADER', 4000, 'header field out of range'); // fromRevision = 2^53 + …
    expectCode(() => decodeFrame(patched(1, 0x0f), limits), 'CATTAIL_PROTO_UNKNOWN_TYPE', 4002, 'header field out of range');
    expectCode(() => decodeFrame(patched(1, 0x00), limits), 'CATTAIL_PROTO_UNKNOWN_TYPE', 4002, 'header field out of range');
    expectCode(() => decodeFrame(patched(2, 0x04), limits), 'CATTAIL_PROTO_BAD_FLAGS', 4002, 'header field out of range');
    expectCode(() => decodeFrame(patched(2, 0x80), limits), 'CATTAIL_PROTO_BAD_FLAGS', 4002, 'header field out of range');
    expectCode(() => decodeFrame(Buffer.concat([good, Buffer.from([0])]), limits), 'CATTAIL_PROTO_BAD_HEADER', 4000, 'header field out of range');
    expectCode(() => decodeFrame(buildFrame({ ...deltaFields, feedId: NO_FEED }, deltaBody()), limits), 'CATTAIL_PROTO_BAD_HEADER', 4000, 'header field out of range');
    const status = encodeFrame(SAMPLE_MESSAGES.status!);
    status.writeUInt32BE(1, 12);
    expectCode(() => decodeFrame(status, limits), 'CATTAIL_PROTO_BAD_HEADER', 4000, 'header field out of range');
  });

  it('enforces the MORE rule of section 2.3 and refuses COMPRESSED where nothing inflates', () => {
    const more = (m: keyof typeof SAMPLE_MESSAGES, flags: number): Buffer => { const f = encodeFrame(SAMPLE_MESSAGES[m]!); f[2] = flags; return f; };
    expectCode(() => decodeFrame(more('ping', Flags.MORE), limits), 'CATTAIL_PROTO_BAD_FLAGS', 4002, 'MORE or COMPRESSED flag misuse');
    expectCode(() => decodeFrame(more('snapshotEnd', Flags.MORE), limits), 'CATTAIL_PROTO_BAD_FLAGS', 4002, 'MORE or COMPRESSED flag misuse');
    expectCode(() => decodeFrame(more('snapshotBegin', 0), limits), 'CATTAIL_PROTO_BAD_FLAGS', 4002, 'MORE or COMPRESSED flag misuse');
    expectCode(() => decodeFrame(more('snapshotChunk', 0), limits), 'CATTAIL_PROTO_BAD_FLAGS', 4002, 'MORE or COMPRESSED flag misuse');
    expectCode(() => decodeFrame(more('delta', Flags.COMPRESSED), limits), 'CATTAIL_PROTO_BAD_FLAGS', 4002, 'MORE or COMPRESSED flag misuse');
    // splitFrame leaves COMPRESSED to the caller (it inflates, then calls decodeBody).
    expect(splitFrame(more('delta', Flags.COMPRESSED | Flags.MORE), limits).header.flags).toBe(3);
  });

  it('rejects bodies that are not plain msgpack of the right shape (4000)', () => {
    const bad = (b: Buffer, fields: HeaderFields = deltaFields, klass = 'body of the wrong shape or type'): void => expectCode(() => decodeFrame(buildFrame(fields, b), limits), 'CATTAIL_PROTO_BAD_BODY', 4000, klass);
    bad(body((w) => w.array(0))); // top level not a map
    bad(Buffer.from('d6ff00000000', 'hex')); // extension type (timestamp)
    bad(Buffer.from('c1', 'hex')); // reserved byte
    bad(Buffer.concat([deltaBody().subarray(0, 0), Buffer.from('8101c0', 'hex')])); // non-string key
    bad(body((w) => w.map(2).str('upserts').array(0).str('upserts').array(0))); // duplicate key
    bad(body((w) => w.map(1).str('upserts').array(0))); // missing deletes
    bad(body((w) => w.map(2).str('upserts').array(1).array(2).str('k').str('not bin').str('deletes').array(0))); // value not bin
    bad(body((w) => w.map(2).str('upserts').array(1).array(3).str('k').bin(Buffer.alloc(1)).nil().str('deletes').array(0))); // entry of 3
    bad(Buffer.concat([Buffer.from('82a775707365727473', 'hex'), Buffer.from('90a764656c6574657391a2c328', 'hex')])); // invalid UTF-8
    bad(Buffer.concat([deltaBody(), Buffer.from([0xc0])])); // trailing bytes
    bad(Buffer.from(`${'91'.repeat(40)}c0`, 'hex'), deltaFields, 'deep nesting'); // nesting too deep
    bad(Buffer.from('81a174cf0020000000000000', 'hex'), pingFields); // t above 2^53 − 1
    bad(body((w) => w.map(1).str('t').str('soon')), pingFields);
  });

  it('checks field constraints: digest length, token size, HELLO feeds', () => {
    const end = SAMPLE_MESSAGES.snapshotEnd!;
    if (end.type !== 'snapshotEnd') throw new Error('fixture');
    const expectBad = (m: Parameters<typeof encodeFrame>[0]): void => expectCode(() => decodeFrame(encodeFrame(m), limits), 'CATTAIL_PROTO_BAD_BODY', 4000, 'field constraint broken');
    expectBad({ ...end, digest: Buffer.alloc(7) });
    expectBad({ ...end, token: Buffer.alloc(257) });
    expectBad({ ...end, status: 'bogus' as 'in-sync' });
    // An in-sync STATUS without digest is well-formed (§4.7, scope.watermarks): whether it is
    // allowed depends on what the client advertised, which the client checks (failover.test.ts).
    const undigested = decodeFrame(encodeFrame({ type: 'status', feedId: 0, revision: 1, status: 'in-sync', stale: false, watermarks: {}, token: Buffer.alloc(1) }), limits);
    expect(undigested).toMatchObject({ type: 'status', status: 'in-sync' });
    expect(undigested).not.toHaveProperty('digest');
    const hello = SAMPLE_MESSAGES.hello!;
    if (hello.type !== 'hello') throw new Error('fixture');
    expectBad({ ...hello, feeds: [] });
    expectBad({ ...hello, feeds: [{ name: 'a' }, { name: 'a' }] });
    expectBad({ ...hello, feeds: Array.from({ length: 17 }, (_, i) => ({ name: `f${i}` })) });
    // Watermarks (§8): at most 64 resources, ids and values of at most 256 bytes and 3,072 bytes
    // together, in every message that carries them.
    const many = (n: number): Record<string, string> => Object.fromEntries(Array.from({ length: n }, (_, i) => [`r${i}.x`, String(i + 1)]));
    expect((decodeFrame(encodeFrame({ ...end, watermarks: many(64) }), limits) as { watermarks: object }).watermarks).toEqual(many(64));
    expectBad({ ...end, watermarks: many(65) });
    expectBad({ ...end, watermarks: { ['x'.repeat(257)]: '1' } });
    expectBad({ ...end, watermarks: { pods: '9'.repeat(257) } });
    expectBad({ ...end, watermarks: { ['é'.repeat(129)]: '1' } }); // 258 bytes in 129 characters
    const wide = (n: number): Record<string, string> => Object.fromEntries(Array.from({ length: n }, (_, i) => [`${String(i).padStart(2, '0')}${'r'.repeat(198)}`, '1'.repeat(56)]));
    expect(Object.keys((decodeFrame(encodeFrame({ ...end, watermarks: wide(12) }), limits) as { watermarks: object }).watermarks)).toHaveLength(12); // 3,072 bytes
    expectBad({ ...end, watermarks: { ...wide(12), z: '1' } }); // 3,074 bytes
    expectBad({ type: 'status', feedId: 0, revision: 1, status: 'resyncing', stale: false, watermarks: many(65), token: Buffer.alloc(1) });
    expectBad({ ...hello, feeds: [{ name: 'felix', token: Buffer.alloc(4), watermarks: many(65) }] });
    // A WELCOME feed's `resources` (§8 "A feed's resources"): bounded as a watermarks map's ids.
    const welcome = SAMPLE_MESSAGES.welcomeResources!;
    if (welcome.type !== 'welcome') throw new Error('fixture');
    const withResources = (resources: string[]): typeof welcome => ({ ...welcome, feeds: [{ name: 'bgp', id: 1, mode: 'snapshot', reason: 'no-token', resources }] });
    expect(decodeFrame(encodeFrame(withResources(Object.keys(many(64)))), limits)).toEqual(withResources(Object.keys(many(64))));
    expectBad(withResources(Object.keys(many(65))));
    expectBad(withResources(['x'.repeat(257)]));
    expectBad(withResources(['']));
    // `cluster` in HELLO and WELCOME (§8 "Another cluster"): 1 to 128 bytes.
    for (const m of [hello, welcome] as const) {
      expect(decodeFrame(encodeFrame({ ...m, cluster: 'c'.repeat(128) }), limits)).toEqual({ ...m, cluster: 'c'.repeat(128) });
      expectBad({ ...m, cluster: '' });
      expectBad({ ...m, cluster: 'é'.repeat(65) }); // 130 bytes
    }
  });

  it('checks the range-repair messages (PROTOCOL.md §7.2): sums of 2,048 bytes, a 32-byte bucket set, no backwards repair, a feed id', () => {
    const req = SAMPLE_MESSAGES.repairRequest!;
    const rep = SAMPLE_MESSAGES.repair!;
    if (req.type !== 'repairRequest' || rep.type !== 'repair') throw new Error('fixture');
    const expectBad = (m: Parameters<typeof encodeFrame>[0]): void => expectCode(() => decodeFrame(encodeFrame(m), limits), 'CATTAIL_PROTO_BAD_BODY', 4000, 'repair field constraint broken');
    expectBad({ ...req, sums: Buffer.alloc(2047) });
    expectBad({ ...req, sums: Buffer.alloc(2049) });
    expectBad({ ...rep, buckets: Buffer.alloc(31) });
    expectBad({ ...rep, buckets: Buffer.alloc(33) });
    expectBad({ ...rep, fromRevision: 10, toRevision: 9 });
    const reqFields = headerFieldsOf(req);
    expectCode(() => decodeFrame(buildFrame(reqFields, body((w) => w.map(1).str('sums').str('x'.repeat(2048)))), limits), 'CATTAIL_PROTO_BAD_BODY', 4000, 'repair field constraint broken');
    expectCode(() => decodeFrame(buildFrame(reqFields, body((w) => w.map(0))), limits), 'CATTAIL_PROTO_BAD_BODY', 4000, 'repair field constraint broken');
    expectCode(() => decodeFrame(buildFrame({ ...reqFields, feedId: NO_FEED }, encodeFrame(req).subarray(28)), limits), 'CATTAIL_PROTO_BAD_HEADER', 4000, 'feed message without a feed id');
    expectCode(() => decodeFrame(buildFrame({ ...headerFieldsOf(rep), flags: Flags.MORE }, encodeFrame(rep).subarray(28)), limits), 'CATTAIL_PROTO_BAD_FLAGS', 4002, 'MORE where not allowed');
    expect(decodeFrame(encodeFrame(rep), limits)).toEqual(rep);
  });

  it('answers another protocol version in HELLO/WELCOME with UNSUPPORTED_VERSION (4001)', () => {
    expectCode(() => decodeFrame(encodeFrame({ ...SAMPLE_MESSAGES.hello!, protocol: 2 } as never), limits), 'CATTAIL_PROTO_UNSUPPORTED_VERSION', 4001, 'other protocol version');
    expectCode(() => decodeFrame(encodeFrame({ ...SAMPLE_MESSAGES.welcome!, protocol: 0 } as never), limits), 'CATTAIL_PROTO_UNSUPPORTED_VERSION', 4001, 'other protocol version');
  });

  it('ignores unknown body keys (forward compatibility) and does not depend on key order', () => {
    const m = decodeFrame(buildFrame(deltaFields, deltaBody((w) => w.str('future').map(1).str('x').array(2).int(1).bin(Buffer.alloc(2)))), limits);
    expect(m).toEqual({ type: 'delta', feedId: 1, fromRevision: 1, toRevision: 2, more: false, upserts: [], deletes: [] });
    const reordered = body((w) => w.map(2).str('deletes').array(1).str('/a').str('upserts').array(0));
    expect(decodeFrame(buildFrame(deltaFields, reordered), limits)).toMatchObject({ deletes: ['/a'], upserts: [] });
  });

  it('keeps watermark keys such as __proto__ as plain data', () => {
    const b = body((w) => w.map(4).str('status').str('waiting').str('stale').bool(false).str('token').bin(Buffer.alloc(1))
      .str('watermarks').map(1).str('__proto__').str('5'));
    const m = decodeFrame(buildFrame({ type: MessageType.STATUS, flags: 0, feedId: 1, fromRevision: 3, toRevision: 3 }, b), limits);
    expect(m.type === 'status' && Object.getOwnPropertyNames(m.watermarks)).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(m.type === 'status' ? m.watermarks : null)).toBe(Object.prototype);
  });
});
