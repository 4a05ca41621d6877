import { Packr } from 'msgpackr';
import { decode } from '@msgpack/msgpack';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareResourceVersions, isResourceVersion } from '../../proto/index.js';
import { decodeValue, encodeValue, exactBuffer, isExactBuffer } from '../../src/snapshot/index.js';

describe('values', () => {
  it('encodes plain MessagePack that another decoder reads, in an exact-size Buffer', () => {
    const projection = { name: 'web-0', ips: ['10.0.0.1'], labels: { app: 'web' }, n: 3, gone: undefined };
    const bytes = encodeValue(projection);
    expect(isExactBuffer(bytes)).toBe(true);
    expect(bytes.buffer.byteLength).toBe(bytes.length);
    expect(decode(bytes)).toEqual({ name: 'web-0', ips: ['10.0.0.1'], labels: { app: 'web' }, n: 3, gone: null });
    expect(decodeValue(bytes)).toEqual(decode(bytes));
  });

  it('does not return slices of msgpackr\'s shared buffer', () => {
    const packr = new Packr({ useRecords: false });
    const slice = packr.pack({ a: 1 });
    expect(isExactBuffer(slice)).toBe(false); // the hazard this module exists for
    const copy = exactBuffer(slice);
    expect(isExactBuffer(copy)).toBe(true);
    expect(copy.equals(slice)).toBe(true);
  });
});

describe('resourceVersions', () => {
  it('compare as integers', () => {
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: 10n ** 30n }), fc.bigInt({ min: 0n, max: 10n ** 30n }), fc.nat(3), (a, b, zeros) => {
      const sa = '0'.repeat(zeros) + a.toString();
      expect(compareResourceVersions(sa, b.toString())).toBe(a < b ? -1 : a > b ? 1 : 0);
    }));
  });

  it('are decimal strings', () => {
    expect(isResourceVersion('12345')).toBe(true);
    for (const bad of ['', '12a', '-1', ' 1', 1, null, '1'.repeat(65)]) expect(isResourceVersion(bad)).toBe(false);
  });
});
