import { describe, expect, it } from 'vitest';
import { Backoff } from '../src/backoff.js';
import { UPSTREAM_BACKOFF } from '../src/server/upstream/reflector.js';

describe('Backoff (one for client reconnects and upstream retries)', () => {
  it('backs off exponentially with jitter inside [d(1−j), d] and a cap', () => {
    const lo = new Backoff({ initialMs: 100, maxMs: 1_000, jitter: 0.5, random: () => 0 });
    const hi = new Backoff({ initialMs: 100, maxMs: 1_000, jitter: 0.5, random: () => 0.999999 });
    const los = Array.from({ length: 6 }, () => lo.next());
    const his = Array.from({ length: 6 }, () => hi.next());
    expect(los).toEqual([50, 100, 200, 400, 500, 500]);
    expect(his).toEqual([100, 200, 400, 800, 1_000, 1_000]);
    lo.reset();
    expect(lo.next()).toBe(50);
  });


  it('forgets old failures after resetAfterMs of health (the upstream reflector)', () => {
    const b = new Backoff({ initialMs: 100, maxMs: 10_000, jitter: 0, resetAfterMs: 1_000, random: () => 0 });
    expect([b.next(0), b.next(10), b.next(20)]).toEqual([100, 200, 400]);
    expect(b.next(1_019)).toBe(800); // 999 ms after the last failure: still counting
    expect(b.next(2_019)).toBe(100); // a full resetAfterMs later: starts over
    expect(b.failures).toBe(1);
  });

  it("keeps the upstream's retries in client-go's range, one per ~30 s at the cap, and jittered there", () => {
    const at = (r: number): number[] => {
      const b = new Backoff({ ...UPSTREAM_BACKOFF, random: () => r });
      return Array.from({ length: 8 }, (_, i) => b.next(i));
    };
    expect(at(0)[0]).toBe(800);
    expect(at(0.999999)[0]).toBe(1_600);
    expect(at(0).at(-1)).toBe(20_000);
    expect(at(0.999999).at(-1)).toBe(40_000);
  });
});
