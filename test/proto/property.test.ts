import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeFrame,
  encodeDeltaFrames,
  encodeFrame,
  encodeSnapshotChunkFrames,
  entryBytes,
  Flags,
  HEADER_BYTES,
  splitFrame,
  decodeBody,
  type DeltaMessage,
  type Entry,
  type SnapshotChunkMessage,
} from '../../proto/index.js';
import { bytes, entries, message, str } from './arbitraries.js';

const limits = { maxBodyBytes: 64 * 1_048_576 };
const RUNS = 300;

describe('proto properties', () => {
  it('decode(encode(m)) = m for arbitrary valid messages', () => {
    fc.assert(fc.property(message, (m) => {
      expect(decodeFrame(encodeFrame(m), limits)).toEqual(m);
    }), { numRuns: 1000 });
  });

  it('splits a delta into MORE frames within maxBodyBytes that reassemble to the same unit', () => {
    const deletes = fc.array(str, { maxLength: 60 });
    fc.assert(fc.property(entries, deletes, fc.integer({ min: 0, max: 2000 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER - 1 }), (upserts, dels, slack, from) => {
      // The limit must hold the largest single entry; beyond that, any slack is valid.
      const biggest = Math.max(0, ...upserts.map(([k, v]) => entryBytes(Buffer.byteLength(k), v.length)), ...dels.map((k) => Buffer.byteLength(k) + 5));
      const max = 17 + 10 + biggest + slack;
      const frames = encodeDeltaFrames(3, from, from + 1, upserts, dels, max);
      expect(frames.length).toBeGreaterThanOrEqual(1);
      const got = { upserts: [] as Entry[], deletes: [] as string[] };
      frames.forEach((frame, i) => {
        const { header, body } = splitFrame(frame, { maxBodyBytes: max });
        expect(body.length).toBeLessThanOrEqual(max);
        const m = decodeBody(header, body) as DeltaMessage;
        expect(m).toMatchObject({ type: 'delta', feedId: 3, fromRevision: from, toRevision: from + 1, more: i < frames.length - 1 });
        got.upserts.push(...m.upserts);
        got.deletes.push(...m.deletes);
      });
      expect(got).toEqual({ upserts, deletes: dels });
    }), { numRuns: RUNS });
  });

  it('streams snapshot chunks within maxBodyBytes, all with MORE, that reassemble to the same entries', () => {
    fc.assert(fc.property(entries, fc.integer({ min: 0, max: 2000 }), fc.maxSafeNat(), (all, slack, rev) => {
      const biggest = Math.max(0, ...all.map(([k, v]) => entryBytes(Buffer.byteLength(k), v.length)));
      const max = 9 + 5 + biggest + slack;
      const got: Entry[] = [];
      for (const frame of encodeSnapshotChunkFrames(4, rev, all, max)) {
        expect(frame.length - HEADER_BYTES).toBeLessThanOrEqual(max);
        expect(frame[2]).toBe(Flags.MORE);
        const m = decodeFrame(frame, { maxBodyBytes: max }) as SnapshotChunkMessage;
        expect(m).toMatchObject({ type: 'snapshotChunk', feedId: 4, revision: rev });
        expect(m.entries.length).toBeGreaterThan(0);
        got.push(...m.entries);
      }
      expect(got).toEqual(all);
    }), { numRuns: RUNS });
  });

  it('the split builder and the single-frame encoder agree when everything fits', () => {
    fc.assert(fc.property(entries, fc.array(str, { maxLength: 10 }), (upserts, dels) => {
      const [only, ...rest] = encodeDeltaFrames(1, 5, 9, upserts, dels);
      expect(rest).toEqual([]);
      expect(only).toEqual(encodeFrame({ type: 'delta', feedId: 1, fromRevision: 5, toRevision: 9, more: false, upserts, deletes: dels }));
    }), { numRuns: RUNS });
  });

  it('decoded values are views of the frame, byte-identical to the stored value', () => {
    fc.assert(fc.property(fc.tuple(str, bytes(100)), ([key, value]) => {
      const frame = encodeFrame({ type: 'snapshotChunk', feedId: 0, revision: 1, entries: [[key, value]] });
      const [[, got]] = (decodeFrame(frame, limits) as SnapshotChunkMessage).entries as [Entry];
      expect(got.buffer).toBe(frame.buffer);
      expect(Buffer.compare(got, value)).toBe(0);
    }), { numRuns: 100 });
  });
});
