import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/clock.js';
import { idle, waitUntil } from './wait.js';

describe('waitUntil - the one test wait', () => {
  it('drives a FakeClock: timers fire in virtual time until the condition holds', async () => {
    const clock = new FakeClock();
    let fired = false;
    clock.setTimeout(() => (fired = true), 30_000);
    await waitUntil(() => fired, 'the 30 s timer', { clock });
    expect(clock.monotonic()).toBeGreaterThanOrEqual(30_000);
    expect(clock.monotonic()).toBeLessThan(30_100);
  });

  it('fails loudly with what it waited for, after a bounded virtual time', async () => {
    const clock = new FakeClock();
    await expect(waitUntil(() => false, 'a pod that never comes', { clock, timeoutMs: 5_000, detail: () => 'saw 0 pods' })).rejects.toThrow(
      /timed out after 5000 virtual ms .*waiting for a pod that never comes; saw 0 pods/,
    );
    expect(clock.monotonic()).toBeLessThanOrEqual(5_100);
  });

  it('names the condition by its source when not told what it is', async () => {
    await expect(waitUntil(() => 1 > 2, { timeoutMs: 20 })).rejects.toThrow(/timed out after 20 ms waiting for \(\) => 1 > 2/);
  });

  it('without a FakeClock waits in real time and re-checks as soon as `wake` reports a change', async () => {
    let ready = false;
    let wake: (() => void) | undefined;
    const done = waitUntil(() => ready, 'the event', { pollMs: 60_000, wake: (check) => ((wake = check), () => (wake = undefined)) });
    await new Promise((r) => setTimeout(r, 5));
    ready = true;
    wake?.();
    await done;
    expect(wake).toBeUndefined(); // unsubscribed
  });

  it('takes async conditions (a metric read)', async () => {
    let n = 0;
    await waitUntil(async () => ++n >= 3, 'three reads', { clock: new FakeClock() });
    expect(n).toBe(3);
  });

  it('idle lets exactly the asked virtual time pass (to the step)', async () => {
    const clock = new FakeClock();
    await idle(clock, 1_000, 100);
    expect(clock.monotonic()).toBe(1_000);
  });
});
