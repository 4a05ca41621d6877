import { describe, expect, it } from 'vitest';
import { parseJson } from '../../src/server/upstream/json.js';

describe('parseJson', () => {
  it('keeps integers above 2^53 exact, as decimal strings', () => {
    const v = parseJson('{"a":1776160000000000501,"b":[-9007199254740993],"c":12,"d":1.5e300}') as Record<string, unknown>;
    expect(v['a']).toBe('1776160000000000501');
    expect(v['b']).toEqual(['-9007199254740993']);
    expect(v['c']).toBe(12);
    expect(v['d']).toBe(1.5e300);
  });
  it('leaves digits inside strings (escaped quotes included) alone', () => {
    const text = '{"s":"x\\":1776160000000000501,","n":"1776160000000000501","m":9007199254740993}';
    const v = parseJson(text) as Record<string, unknown>;
    expect(v['s']).toBe('x":1776160000000000501,');
    expect(v['n']).toBe('1776160000000000501');
    expect(v['m']).toBe('9007199254740993');
  });
  it('parses ordinary JSON unchanged', () => {
    expect(parseJson('{"a":[1,2,{"b":"c"}]}')).toEqual({ a: [1, 2, { b: 'c' }] });
  });
});
