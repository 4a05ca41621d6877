import { describe, expect, it } from 'vitest';
import { Packr, Unpackr } from 'msgpackr';
import { HEADER_BYTES, buildFrame, readHeader } from '../../proto/index.js';
import { decodeFrame, encodeDeltaFrames, encodeFrame, encodeSnapshotChunkFrames, ProtocolError, type DeltaMessage, type SnapshotChunkMessage } from '../../proto/index.js';
import { SAMPLE_MESSAGES } from './messages.js';

const limits = { maxBodyBytes: 1_048_576 };

describe('proto codec - round trip', () => {
  for (const [name, m] of Object.entries(SAMPLE_MESSAGES)) {
    it(`decodes what it encodes: ${name}`, () => {
      expect(decodeFrame(encodeFrame(m), limits)).toEqual(m);
    });
  }

  it('rejects a truncated frame with a coded error', () => {
    const f = encodeFrame(SAMPLE_MESSAGES.delta!);
    const err = (() => { try { decodeFrame(f.subarray(0, f.length - 1), limits); } catch (e) { return e; } })();
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as ProtocolError).code).toBe('CATTAIL_PROTO_TRUNCATED');
    expect((err as ProtocolError).closeCode).toBe(4000);
  });
});

describe('proto codec - frame allocation', () => {
  it('writes frames into caller-provided memory of exactly the requested size', () => {
    const slab = Buffer.alloc(64 * 1024);
    let used = 0;
    const sizes: number[] = [];
    const alloc = (n: number): Buffer => { sizes.push(n); used += n; return slab.subarray(used - n, used); };
    const entries = Array.from({ length: 40 }, (_, i) => [`/pods/ns/p-${i}`, Buffer.alloc(90, i)] as const);
    const delta = encodeDeltaFrames(1, 1, 2, entries, ['/pods/ns/gone'], 1000, alloc);
    const chunks = [...encodeSnapshotChunkFrames(1, 2, entries, 1000, alloc)];
    expect(sizes).toEqual([...delta, ...chunks].map((f) => f.length));
    for (const f of [...delta, ...chunks]) expect(f.buffer).toBe(slab.buffer);
    expect(delta.flatMap((f) => (decodeFrame(f, limits) as DeltaMessage).upserts)).toEqual(entries);
    expect(chunks.flatMap((f) => (decodeFrame(f, limits) as SnapshotChunkMessage).entries)).toEqual(entries);
  });
});

describe('proto codec - input types', () => {
  it('decodes a plain Uint8Array (not a Buffer) and still returns Buffer values', () => {
    const frame = encodeFrame(SAMPLE_MESSAGES.snapshotChunk!);
    const copy = new Uint8Array(frame.length + 3).subarray(3);
    copy.set(frame);
    const m = decodeFrame(copy, limits) as SnapshotChunkMessage;
    expect(m).toEqual(SAMPLE_MESSAGES.snapshotChunk);
    expect(Buffer.isBuffer(m.entries[0]?.[1])).toBe(true);
  });
});

describe('proto codec - nil for an optional key (PROTOCOL.md §3)', () => {
  /** The HELLO sample's body re-packed with some keys set to nil, framed with its header. */
  function helloWith(patch: (body: Record<string, unknown>) => void): Buffer {
    const frame = encodeFrame(SAMPLE_MESSAGES.hello!);
    const body = new Unpackr({ useRecords: false, mapsAsObjects: true }).unpack(frame.subarray(HEADER_BYTES)) as Record<string, unknown>;
    patch(body);
    const packed = new Packr({ useRecords: false, variableMapSize: true }).pack(body);
    return buildFrame(readHeader(frame), packed);
  }

  it('is the key left out: an encoder that writes every field (Go without omitempty, Python None) is understood', () => {
    const m = decodeFrame(helloWith((b) => {
      b['software'] = null;
      (b['feeds'] as Record<string, unknown>[])[0]!['token'] = null;
      (b['feeds'] as Record<string, unknown>[])[0]!['watermarks'] = null;
    }), limits);
    expect(m).toMatchObject({ type: 'hello', node: (SAMPLE_MESSAGES.hello as { node: string }).node });
    expect((m as { feeds: { token?: unknown; watermarks?: unknown }[] }).feeds[0]?.token).toBeUndefined();
    expect((m as { feeds: { token?: unknown; watermarks?: unknown }[] }).feeds[0]?.watermarks).toBeUndefined();
  });

  it('is mistyped for a required key (4000)', () => {
    expect(() => decodeFrame(helloWith((b) => (b['node'] = null)), limits)).toThrow(expect.objectContaining({ code: 'CATTAIL_PROTO_BAD_BODY' }));
  });
});
