/**
 * The split of the fan-out benchmark's event-loop stalls into the main thread's own run time and
 * its wait for a CPU (src/bench/loop-stalls.ts).
 */
import { describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { LoopStallMonitor, parseSchedstat, summarizeStalls, type ThreadSample } from '../../src/bench/loop-stalls.js';

describe('loop stall split', () => {
  it('splits each gap between ticks into run time and run-queue wait, and counts those over the bound', () => {
    const s: ThreadSample[] = [
      { wallMs: 0, runMs: 0, waitMs: 0 },
      { wallMs: 2, runMs: 0.1, waitMs: 0 },
      // 60 ms held by own work.
      { wallMs: 64, runMs: 60.1, waitMs: 1 },
      // 80 ms: 10 of own work, 68 waiting behind another thread.
      { wallMs: 146, runMs: 70.1, waitMs: 69 },
      { wallMs: 148, runMs: 70.2, waitMs: 69 },
    ];
    const r = summarizeStalls(s, 2, 50);
    expect(r.maxGapMs).toBe(80);
    expect(r.maxGapRunMs).toBeCloseTo(10, 9);
    expect(r.maxGapWaitMs).toBe(68);
    expect(r.maxRunMs).toBeCloseTo(60, 9);
    expect(r.maxWaitMs).toBe(68);
    expect(r.gapsOver).toBe(2);
    expect(r.runsOver).toBe(1);
  });

  it('reads a schedstat line in ms and refuses one that is not', () => {
    expect(parseSchedstat('1500000000 2500000 17\n')).toEqual({ runMs: 1500, waitMs: 2.5 });
    expect(parseSchedstat('')).toBeUndefined();
    expect(parseSchedstat('x y z')).toBeUndefined();
  });

  it.runIf(existsSync('/proc/self/schedstat'))('stops ticking at its sample cap and adds no false gap at stop()', async () => {
    const m = new LoopStallMonitor(2, 50, 3);
    m.start();
    // Far longer than three ticks: an extra sample at stop() would make a gap of about this much.
    await new Promise((r) => setTimeout(r, 400));
    const r = m.stop();
    expect(r).toBeDefined();
    expect(r?.maxGapMs).toBeLessThan(300);
    // Stopped once: a second stop() has nothing to say.
    expect(m.stop()).toBeUndefined();
  });

  it.runIf(existsSync('/proc/self/schedstat'))('sees a turn of own work as run time', async () => {
    const m = new LoopStallMonitor(2, 50);
    m.start();
    await new Promise((r) => setTimeout(r, 10));
    // 80 ms of this thread's CPU in one turn (by CPU time, so a busy machine makes it longer, not shorter).
    const t0 = process.cpuUsage();
    for (;;) {
      const u = process.cpuUsage(t0);
      if (u.user + u.system >= 80_000) break;
    }
    await new Promise((r) => setTimeout(r, 10));
    const r = m.stop();
    expect(r).toBeDefined();
    // process.cpuUsage counts every thread; the main thread's own share is most of it.
    expect(r?.maxRunMs).toBeGreaterThan(60);
    expect(r?.runsOver).toBeGreaterThanOrEqual(1);
    // The run time spans the whole time between the two ticks, the delay that time less the interval.
    expect((r?.maxGapMs ?? 0) + 2).toBeGreaterThanOrEqual(r?.maxGapRunMs ?? Infinity);
  });
});
