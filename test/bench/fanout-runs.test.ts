/**
 * How the fan-out benchmark orders its cold starts and divides each by the floors around it
 * (bench/fanout-runs.ts): the ratio the cold-start CPU target is judged on.
 */
import { describe, expect, it } from 'vitest';
import { coldOrder, coldRatios, type RunRec } from '../../bench/fanout-runs.js';

const cold = (run: number, target: string, slot: number | undefined, cpu: number): RunRec => ({
  run, n: 1000, target, scenario: 'cold', values: { coldServerCpuS: cpu, ...(slot === undefined ? {} : { coldSlot: slot }) },
});

describe('fan-out cold-start bracketing', () => {
  it('puts the floor before and after every other target and rotates the others by run', () => {
    expect(coldOrder(['net', 'wsplain', 'ws', 'uws'], 0)).toEqual(['net', 'wsplain', 'net', 'ws', 'net', 'uws', 'net']);
    expect(coldOrder(['net', 'wsplain', 'ws', 'uws'], 1)).toEqual(['net', 'ws', 'net', 'uws', 'net', 'wsplain', 'net']);
    expect(coldOrder(['net', 'wsplain', 'ws', 'uws'], 3)).toEqual(coldOrder(['net', 'wsplain', 'ws', 'uws'], 0));
    // Without the floor there is nothing to bracket with; the floor alone runs once.
    expect(coldOrder(['ws', 'uws'], 1)).toEqual(['ws', 'uws']);
    expect(coldOrder(['net'], 2)).toEqual(['net']);
  });

  it('divides each target by the mean of the two floors around it in its own run', () => {
    const runs = [
      cold(0, 'net', 0, 1.0), cold(0, 'ws', 1, 3.0), cold(0, 'net', 2, 2.0), cold(0, 'uws', 3, 1.5), cold(0, 'net', 4, 1.0),
      // Another run's floors must not count.
      cold(1, 'net', 0, 100), cold(1, 'ws', 1, 2.0), cold(1, 'net', 2, 4.0),
    ];
    expect(coldRatios(runs, 'ws', 'coldServerCpuS')).toEqual([3.0 / 1.5, 2.0 / 52]);
    expect(coldRatios(runs, 'uws', 'coldServerCpuS')).toEqual([1.5 / 1.5]);
  });

  it('falls back to the run\'s first floor for records written before the bracketing', () => {
    const runs = [cold(0, 'net', undefined, 2.0), cold(0, 'ws', undefined, 3.0), cold(0, 'net', undefined, 9.0)];
    expect(coldRatios(runs, 'ws', 'coldServerCpuS')).toEqual([1.5]);
  });

  it('divides by the one floor there is when the other around it failed', () => {
    const runs = [cold(0, 'ws', 1, 3.0), cold(0, 'net', 2, 2.0)];
    expect(coldRatios(runs, 'ws', 'coldServerCpuS')).toEqual([1.5]);
  });

  it('skips a target whose floors are missing (a failed cold start)', () => {
    expect(coldRatios([cold(0, 'ws', 1, 3.0)], 'ws', 'coldServerCpuS')).toEqual([]);
  });
});
