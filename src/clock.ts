/**
 * Injected time.
 *
 * Nothing in Cattail reads the clock or arms a timer directly: it is handed a {@link Clock}.
 * Production code gets {@link realClock}; tests get {@link FakeClock} and advance time by hand,
 * so "dropped after the grace period" takes microseconds and no test sleeps. The pure core
 * (src/snapshot, proto) goes further: it takes `now` as a plain argument and never sees a Clock.
 */

/** A cancellable timer. `unref()` lets the process exit while the timer is pending. */
export interface Timer {
  cancel(): void;
  unref(): Timer;
}

export interface Clock {
  /** Wall-clock time in milliseconds since the epoch (timestamps, ages shown to humans). */
  now(): number;
  /** Monotonic milliseconds from an arbitrary origin: use for every duration and deadline. */
  monotonic(): number;
  /** Calls `fn` once after `ms` milliseconds. */
  setTimeout(fn: () => void, ms: number): Timer;
  /** Calls `fn` every `ms` milliseconds until cancelled. */
  setInterval(fn: () => void, ms: number): Timer;
  /** Resolves after `ms` milliseconds; rejects with the signal's reason when aborted first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/**
 * `p`, or the error `onTimeout` makes once `ms` have passed on `setTimer`'s clock, whichever comes
 * first. `p` is not cancelled (it may go on in the background): for requests with no deadline of
 * their own, such as client-node's, which a black-holed API server holds until TCP gives up.
 */
export function deadline<T>(setTimer: (fn: () => void, ms: number) => { cancel(): void }, p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimer(() => reject(onTimeout()), ms);
    p.then(
      (v) => {
        timer.cancel();
        resolve(v);
      },
      (err: unknown) => {
        timer.cancel();
        reject(err);
      },
    );
  });
}

function sleepWith(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      timer.cancel();
      reject(signal?.reason);
    };
    const timer = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

class RealTimer implements Timer {
  constructor(
    private readonly handle: NodeJS.Timeout,
    private readonly interval: boolean,
  ) {}
  cancel(): void {
    if (this.interval) clearInterval(this.handle);
    else clearTimeout(this.handle);
  }
  unref(): Timer {
    this.handle.unref();
    return this;
  }
}

/**
 * The longest delay Node's timers take, in ms (2^31 - 1, about 24.8 days): a longer one fires after
 * 1 ms (with a TimeoutOverflowWarning), so an interval meant as "almost never" would run every
 * millisecond.
 */
export const MAX_TIMER_MS = 2_147_483_647;

/**
 * A delay Node's timers take as meant: above MAX_TIMER_MS, that bound (the caller that re-checks
 * its deadline, as the client's read timeout does, re-arms for the rest). Options are bounded
 * already; this is for durations a peer sends (a WELCOME's pingIntervalMs times a factor, a
 * GOODBYE's reconnectDelayMs), which a hostile server could make a 1 ms timer loop otherwise.
 */
function timerDelay(ms: number): number {
  return ms > MAX_TIMER_MS ? MAX_TIMER_MS : ms;
}

/** The process's real clock. */
export const realClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimeout: (fn, ms) => new RealTimer(setTimeout(fn, timerDelay(ms)), false),
  setInterval: (fn, ms) => new RealTimer(setInterval(fn, timerDelay(ms)), true),
  sleep(ms, signal) {
    return sleepWith(this, ms, signal);
  },
};

interface FakeTimerEntry {
  id: number;
  at: number;
  every: number | undefined;
  fn: () => void;
  cancelled: boolean;
}

/**
 * A clock that moves only when told to. Timers fire in deadline order (ties in creation order),
 * each seeing `now()` equal to its own deadline, so code under test observes exactly the times it
 * would in production.
 */
export class FakeClock implements Clock {
  private mono: number;
  private wallOffset: number;
  private nextId = 1;
  private timers: FakeTimerEntry[] = [];

  /** @param startWallMs the wall time `now()` reports at monotonic 0. Default: 2026-01-01T00:00:00Z. */
  constructor(startWallMs = Date.UTC(2026, 0, 1)) {
    this.mono = 0;
    this.wallOffset = startWallMs;
  }

  now(): number {
    return this.wallOffset + this.mono;
  }

  monotonic(): number {
    return this.mono;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    return this.add(fn, ms, undefined);
  }

  setInterval(fn: () => void, ms: number): Timer {
    return this.add(fn, ms, Math.max(1, ms));
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepWith(this, ms, signal);
  }

  /** Number of timers still armed. */
  pending(): number {
    return this.timers.filter((t) => !t.cancelled).length;
  }

  /** Milliseconds until the next timer fires, or undefined when none is armed. */
  nextDelay(): number | undefined {
    const next = this.peek();
    return next === undefined ? undefined : next.at - this.mono;
  }

  /**
   * Moves time forward by `ms`, firing every timer that falls due on the way, synchronously.
   * Use {@link advanceAsync} when the code under test awaits between timers.
   */
  advance(ms: number): void {
    const target = this.mono + ms;
    for (;;) {
      const next = this.peek();
      if (next === undefined || next.at > target) break;
      this.fire(next);
    }
    this.mono = target;
  }

  /**
   * Like {@link advance}, but lets promise callbacks run before and after each timer, so async
   * code that re-arms timers after an `await` is driven correctly.
   */
  async advanceAsync(ms: number): Promise<void> {
    const target = this.mono + ms;
    await flushMicrotasks();
    for (;;) {
      const next = this.peek();
      if (next === undefined || next.at > target) break;
      this.fire(next);
      await flushMicrotasks();
    }
    this.mono = target;
    await flushMicrotasks();
  }

  private add(fn: () => void, ms: number, every: number | undefined): Timer {
    const entry: FakeTimerEntry = { id: this.nextId++, at: this.mono + Math.max(0, ms), every, fn, cancelled: false };
    this.timers.push(entry);
    const timer: Timer = {
      cancel: () => {
        entry.cancelled = true;
        this.timers = this.timers.filter((t) => t !== entry);
      },
      unref: () => timer,
    };
    return timer;
  }

  private peek(): FakeTimerEntry | undefined {
    let best: FakeTimerEntry | undefined;
    for (const t of this.timers) {
      if (t.cancelled) continue;
      if (best === undefined || t.at < best.at || (t.at === best.at && t.id < best.id)) best = t;
    }
    return best;
  }

  private fire(entry: FakeTimerEntry): void {
    this.mono = Math.max(this.mono, entry.at);
    if (entry.every === undefined) {
      entry.cancelled = true;
      this.timers = this.timers.filter((t) => t !== entry);
    } else {
      entry.at += entry.every;
    }
    entry.fn();
  }
}

/** Lets every queued promise callback run (a few rounds, for chains of awaits). */
async function flushMicrotasks(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}
