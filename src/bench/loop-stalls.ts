/**
 * Where an event-loop stall's time went: the main thread on a CPU (this process's own work, user or
 * kernel) or waiting for one (Linux schedstat: run time and run-queue wait, ns, per thread).
 *
 * Why: the fan-out benchmark's cold-start target is a bound on event-loop delay, and the `net`
 * floor, which builds nothing and writes prepared frames, went over it in most runs (up to 418 ms)
 * while its worst turns of work are a few tens of ms. `monitorEventLoopDelay` sees how late a timer
 * fires, not why: a loop held by the process's own work and a main thread that waited behind
 * another runnable thread on its core (the benchmark pins the whole process, V8's GC and
 * compiler threads included, to one core; other jobs share the machine) look the same. A timer
 * ticking every `intervalMs` reads the main thread's schedstat at each tick, and the gap between
 * two ticks is split into the two. The rest of a gap, if any, is time the thread was neither
 * running nor runnable by the guest kernel's account: blocked in a synchronous call (a page
 * fault's I/O), or a virtual CPU the hypervisor had taken away.
 *
 * The tick reads one procfs file through a descriptor held open (pread at offset 0, ~2 µs), so the
 * monitor costs every target the same. Resolution: the kernel brings a running thread's run time
 * up to date at scheduler ticks and context switches, not when it is read, so each figure can be
 * off by up to a scheduler tick (a few ms; run + wait can come out a little above the gap).
 */
import { closeSync, openSync, readSync } from 'node:fs';

/** One reading: monotonic wall time and the main thread's run time and run-queue wait, all in ms. */
export interface ThreadSample {
  wallMs: number;
  runMs: number;
  waitMs: number;
}

/** What the worst gaps between ticks were made of (ms). */
export interface StallSummary {
  /** The longest gap between two ticks, less the interval. */
  maxGapMs: number;
  /** Between the two ticks of the longest gap (the gap and the interval): the main thread's run time, and its wait for a CPU. */
  maxGapRunMs: number;
  maxGapWaitMs: number;
  /** The most run time of the main thread in any one gap (its longest stretch of own work, to the tick's resolution). */
  maxRunMs: number;
  /** The most run-queue wait in any one gap. */
  maxWaitMs: number;
  /** Gaps over `thresholdMs` (less the interval). */
  gapsOver: number;
  /** Times the main thread's run time between two ticks was over `thresholdMs`. */
  runsOver: number;
}

/** Splits consecutive samples' gaps (pure: the benchmark's numbers come from here). */
export function summarizeStalls(samples: readonly ThreadSample[], intervalMs: number, thresholdMs: number): StallSummary {
  const out: StallSummary = { maxGapMs: 0, maxGapRunMs: 0, maxGapWaitMs: 0, maxRunMs: 0, maxWaitMs: 0, gapsOver: 0, runsOver: 0 };
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1] as ThreadSample;
    const b = samples[i] as ThreadSample;
    const gap = Math.max(0, b.wallMs - a.wallMs - intervalMs);
    const run = b.runMs - a.runMs;
    const wait = b.waitMs - a.waitMs;
    if (gap > out.maxGapMs) Object.assign(out, { maxGapMs: gap, maxGapRunMs: run, maxGapWaitMs: wait });
    out.maxRunMs = Math.max(out.maxRunMs, run);
    out.maxWaitMs = Math.max(out.maxWaitMs, wait);
    if (gap > thresholdMs) out.gapsOver++;
    if (run > thresholdMs) out.runsOver++;
  }
  return out;
}

/** Parses a schedstat line ("run_ns wait_ns timeslices") into ms. */
export function parseSchedstat(text: string): { runMs: number; waitMs: number } | undefined {
  const [run, wait] = text.trim().split(/\s+/).map(Number);
  if (run === undefined || wait === undefined || !Number.isFinite(run) || !Number.isFinite(wait)) return undefined;
  return { runMs: run / 1e6, waitMs: wait / 1e6 };
}

/**
 * Ticks every `intervalMs` from start() to stop(), sampling this process's main thread. Where
 * there is no schedstat (not Linux) it records nothing and stop() returns undefined. Samples are
 * bounded by `maxSamples` (at 2 ms, 60,000 is two minutes); past that the tick stops.
 */
export class LoopStallMonitor {
  private fd: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** The cap was reached: the ticks stopped, and stop() adds no sample (it would make one long false gap). */
  private capped = false;
  private readonly samples: ThreadSample[] = [];
  private readonly buf = Buffer.alloc(128);

  constructor(
    private readonly intervalMs = 2,
    private readonly thresholdMs = 50,
    private readonly maxSamples = 60_000,
  ) {}

  start(): void {
    try {
      this.fd = openSync(`/proc/self/task/${process.pid}/schedstat`, 'r');
    } catch {
      return;
    }
    this.sample();
    this.timer = setInterval(() => {
      if (this.samples.length >= this.maxSamples) {
        this.capped = true;
        clearInterval(this.timer);
        return;
      }
      this.sample();
    }, this.intervalMs);
  }

  /** Ends the ticks and closes the file; the summary, or undefined where nothing was sampled (or already stopped). */
  stop(): StallSummary | undefined {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    if (this.fd === undefined) return undefined;
    if (!this.capped) this.sample();
    closeSync(this.fd);
    this.fd = undefined;
    return summarizeStalls(this.samples, this.intervalMs, this.thresholdMs);
  }

  private sample(): void {
    if (this.fd === undefined) return;
    const n = readSync(this.fd, this.buf, 0, this.buf.length, 0);
    const s = parseSchedstat(this.buf.toString('latin1', 0, n));
    if (s !== undefined) this.samples.push({ wallMs: performance.now(), ...s });
  }
}
