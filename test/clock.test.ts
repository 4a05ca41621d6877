import { describe, expect, it } from 'vitest';
import { FakeClock, realClock } from '../src/clock.js';

describe('clock - FakeClock', () => {
  it('fires timers in deadline order with now() at each deadline', () => {
    const clock = new FakeClock(1_000);
    const seen: Array<[string, number]> = [];
    clock.setTimeout(() => seen.push(['b', clock.monotonic()]), 20);
    clock.setTimeout(() => seen.push(['a', clock.monotonic()]), 10);
    clock.setTimeout(() => seen.push(['c', clock.monotonic()]), 20);
    clock.advance(15);
    expect(seen).toEqual([['a', 10]]);
    clock.advance(100);
    expect(seen).toEqual([['a', 10], ['b', 20], ['c', 20]]);
    expect(clock.monotonic()).toBe(115);
    expect(clock.now()).toBe(1_115);
  });

  it('cancels timers and repeats intervals', () => {
    const clock = new FakeClock();
    let ticks = 0;
    const t = clock.setInterval(() => ticks++, 10);
    const never = clock.setTimeout(() => {
      throw new Error('cancelled timer fired');
    }, 5);
    never.cancel();
    clock.advance(35);
    expect(ticks).toBe(3);
    t.cancel();
    clock.advance(100);
    expect(ticks).toBe(3);
    expect(clock.pending()).toBe(0);
  });

  it('resolves sleep when advanced and rejects it when aborted', async () => {
    const clock = new FakeClock();
    let done = false;
    const p = clock.sleep(50).then(() => (done = true));
    await clock.advanceAsync(49);
    expect(done).toBe(false);
    await clock.advanceAsync(1);
    await p;
    expect(done).toBe(true);

    const ac = new AbortController();
    const q = clock.sleep(50, ac.signal);
    ac.abort(new Error('stop'));
    await expect(q).rejects.toThrow('stop');
    expect(clock.pending()).toBe(0);
  });

  it('drives async loops that re-arm timers after an await', async () => {
    const clock = new FakeClock();
    const wakes: number[] = [];
    const loop = (async () => {
      for (let i = 0; i < 3; i++) {
        await clock.sleep(100);
        wakes.push(clock.monotonic());
      }
    })();
    await clock.advanceAsync(1_000);
    await loop;
    expect(wakes).toEqual([100, 200, 300]);
  });
});

describe('realClock - delays above what Node timers take', () => {
  it('a delay above 2^31 - 1 ms waits (at that bound), instead of firing after 1 ms with a warning', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error): void => {
      warnings.push(w.name);
    };
    process.on('warning', onWarning);
    let fired = 0;
    // What a hostile WELCOME's pingIntervalMs times the read-timeout factor can come to.
    const t = realClock.setTimeout(() => fired++, 3_000_000_000);
    try {
      await new Promise((r) => setTimeout(r, 50));
    } finally {
      t.cancel();
      process.off('warning', onWarning);
    }
    expect(fired).toBe(0);
    expect(warnings).not.toContain('TimeoutOverflowWarning');
  });
});
