/**
 * The one way a test waits: {@link waitUntil} re-checks a condition until it holds and fails loudly
 * (naming what it waited for) when it does not within a bounded time. No test sleeps a fixed time.
 *
 * Time is the project's injected {@link Clock} (src/clock.ts):
 * - with a {@link FakeClock} passed as `clock`, the wait drives it: real I/O runs between checks
 *   (a `setImmediate` turn each) and virtual time moves `stepMs` every fourth turn, so backoff
 *   sleeps, watchdogs and Retry-After elapse; the bound is virtual time (`timeoutMs`);
 * - otherwise time is real (or the given real clock's): the condition is re-checked every `pollMs`
 *   and whenever `wake` reports a change; the bound is real time. A test that holds a FakeClock it
 *   advances by hand (the client tests) waits this way too: the wait never moves that clock.
 */
import { FakeClock, realClock, type Clock } from '../../src/clock.js';

export interface WaitOptions {
  /** A FakeClock to drive while waiting; any other clock (or none) means real time. */
  clock?: Clock;
  /** Bound: virtual ms the FakeClock may move (default 600,000), or real ms (default 10,000). */
  timeoutMs?: number;
  /** FakeClock only: virtual ms per step (default 50). */
  stepMs?: number;
  /** Real time only: re-check at least this often (default 5 ms). */
  pollMs?: number;
  /** Subscribes `check` to whatever can make the condition true; returns the unsubscribe. */
  wake?: (check: () => void) => () => void;
  /** More state for the failure message (what was seen instead). */
  detail?: () => string;
}

type Condition = () => boolean | Promise<boolean>;

/** Waits until `cond()` holds (it may be async). `what` names it in the failure; by default its source. */
export async function waitUntil(cond: Condition, what?: string | WaitOptions, options: WaitOptions = {}): Promise<void> {
  const opts = typeof what === 'object' ? what : options;
  const label = typeof what === 'string' ? what : cond.toString();
  const fake = opts.clock instanceof FakeClock ? opts.clock : undefined;
  const fail = (bound: string): Error => new Error(`waitUntil: timed out after ${bound} waiting for ${label}${opts.detail ? `; ${opts.detail()}` : ''}`);
  if (fake !== undefined) {
    const stepMs = opts.stepMs ?? 50;
    const timeoutMs = opts.timeoutMs ?? 600_000;
    const start = fake.monotonic();
    for (let turn = 0; ; turn++) {
      if (await cond()) return;
      if (fake.monotonic() - start > timeoutMs) throw fail(`${timeoutMs} virtual ms (${turn} turns)`);
      await new Promise<void>((r) => setImmediate(r));
      if (turn % 4 === 3) await fake.advanceAsync(stepMs);
    }
  }
  const clock = opts.clock ?? realClock;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const deadline = clock.monotonic() + timeoutMs;
  let wakeUp: (() => void) | undefined;
  const off = opts.wake?.(() => wakeUp?.());
  try {
    while (!(await cond())) {
      const left = deadline - clock.monotonic();
      if (left <= 0) throw fail(`${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = clock.setTimeout(() => resolve(), Math.min(left, opts.pollMs ?? 5));
        wakeUp = () => {
          timer.cancel();
          resolve();
        };
      });
      wakeUp = undefined;
    }
  } finally {
    off?.();
  }
}

/** Lets `ms` of virtual time pass on a FakeClock, with real I/O in between (for "nothing more happens" checks). */
export async function idle(clock: FakeClock, ms: number, stepMs = 100): Promise<void> {
  const end = clock.monotonic() + ms;
  await waitUntil(() => clock.monotonic() >= end, `${ms} virtual ms to pass`, { clock, stepMs, timeoutMs: ms + stepMs });
}
