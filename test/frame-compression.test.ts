import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildFrame, decodeBody, encodeFrame, Flags, HEADER_BYTES, isProtocolError, MessageType, splitFrame, type ProtocolError } from '../proto/index.js';
import { compressBody, compressFrame, decodeWireFrame, inflateBody, type CompressionAlgorithm } from '../src/frame-compression.js';
import { SAMPLE_MESSAGES } from './proto/messages.js';
import { hostileTally } from './support/reliability-record.js';

const tally = hostileTally('decoder', false);

const ALGS: CompressionAlgorithm[] = ['deflate', 'brotli'];

function failure(fn: () => unknown): ProtocolError {
  try {
    fn();
  } catch (err) {
    expect(isProtocolError(err)).toBe(true);
    return err as ProtocolError;
  }
  throw new Error('expected a ProtocolError');
}

describe('frame compression', () => {
  for (const alg of ALGS) {
    describe(alg, () => {
      it('round-trips any body', () => {
        fc.assert(fc.property(fc.uint8Array({ maxLength: 4096 }), (u) => {
          expect(Buffer.compare(inflateBody(alg, compressBody(alg, u), 4096), Buffer.from(u))).toBe(0);
        }), { numRuns: 100 });
      });

      it('carries a COMPRESSED frame: split, inflate, decode', () => {
        const m = SAMPLE_MESSAGES.snapshotChunk!;
        const plain = encodeFrame(m);
        const frame = buildFrame({ type: MessageType.SNAPSHOT_CHUNK, flags: Flags.MORE | Flags.COMPRESSED, feedId: 1, fromRevision: 0, toRevision: 4242 }, compressBody(alg, plain.subarray(HEADER_BYTES)));
        const { header, body } = splitFrame(frame, { maxBodyBytes: 1_048_576 });
        expect(decodeBody(header, inflateBody(alg, body, 1_048_576))).toEqual(m);
      });

      it('refuses a decompression bomb with FRAME_TOO_LARGE (4003), allocating at most the limit', () => {
        const bomb = compressBody(alg, Buffer.alloc(8 * 1_048_576));
        expect(bomb.length).toBeLessThan(64 * 1024);
        const err = failure(() => inflateBody(alg, bomb, 1_048_576));
        expect({ code: err.code, closeCode: err.closeCode }).toEqual({ code: 'CATTAIL_PROTO_FRAME_TOO_LARGE', closeCode: 4003 });
        tally.add(`decompression bomb (${alg}, 8 MiB from under 64 KiB)`, `${err.code} (${err.closeCode}), at most the limit allocated`);
        expect(inflateBody(alg, compressBody(alg, Buffer.alloc(1000)), 1000).length).toBe(1000);
      });

      it('refuses corrupt and truncated streams with a coded error (4000)', () => {
        const good = compressBody(alg, Buffer.from('x'.repeat(5000)));
        for (const bad of [good.subarray(0, good.length >> 1), Buffer.from('not compressed at all, clearly'), Buffer.alloc(0)]) {
          const err = failure(() => inflateBody(alg, bad, 1_048_576));
          expect(err.closeCode).toBe(4000);
          tally.add(`corrupt or truncated ${alg} stream`, `${err.code} (${err.closeCode})`);
        }
      });

      it('never throws anything but a ProtocolError on random input', () => {
        fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (u) => {
          try {
            inflateBody(alg, u, 10_000);
          } catch (err) {
            expect(isProtocolError(err)).toBe(true);
          }
        }), { numRuns: 300 });
      });
    });
  }
});

describe('compressed frames', () => {
  const limits = { maxBodyBytes: 1_048_576 };
  const big = { type: 'snapshotChunk' as const, feedId: 2, revision: 9, entries: Array.from({ length: 50 }, (_, i) => [`/pods/ns/p-${i}`, Buffer.alloc(100, i % 3)] as const) };

  for (const alg of ALGS) {
    it(`${alg}: compressFrame keeps the header, and decodeWireFrame restores the message`, () => {
      const plain = encodeFrame(big);
      const packed = compressFrame(alg, plain);
      expect(packed.length).toBeLessThan(plain.length);
      expect(packed[2]).toBe(Flags.MORE | Flags.COMPRESSED);
      expect(packed.subarray(3, 24)).toEqual(plain.subarray(3, 24));
      expect(decodeWireFrame(packed, alg, limits)).toEqual(big);
      expect(decodeWireFrame(plain, alg, limits)).toEqual(big);
    });
  }

  it('leaves small bodies uncompressed', () => {
    const ping = encodeFrame({ type: 'ping', t: 1 });
    expect(compressFrame('brotli', ping)).toBe(ping);
  });

  it('refuses a COMPRESSED frame on a connection without compression (4002)', () => {
    const err = failure(() => decodeWireFrame(compressFrame('deflate', encodeFrame(big)), 'none', limits));
    expect({ code: err.code, closeCode: err.closeCode }).toEqual({ code: 'CATTAIL_PROTO_BAD_FLAGS', closeCode: 4002 });
  });

  it('refuses a compressed body that inflates beyond maxBodyBytes (4003)', () => {
    const frame = compressFrame('brotli', encodeFrame(big));
    const err = failure(() => decodeWireFrame(frame, 'brotli', { maxBodyBytes: 1000 }));
    expect(err.closeCode).toBe(4003);
  });
});
