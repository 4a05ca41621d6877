/**
 * Test harness for the client: a status/change recorder that checks every observed edge against the
 * documented state machine, a disconnect guard (undici's lesson: auto-reconnect hides bugs, so a
 * test fails on any reconnect it did not declare), and `on()`, the events test/support/wait.ts's
 * `waitUntil` re-checks on (it never sleeps a fixed time).
 */
import { FakeClock } from '../../../src/clock.js';
import { connect, type ChangeBatch, type Client, type ConnectOptions } from '../../../src/client/index.js';
import { ALLOWED, type StatusEvent } from '../../../src/client/internal.js';
import type { FakeServer } from './fake-server.js';
import type { WaitOptions } from '../../support/wait.js';

export class Recorder {
  readonly events: StatusEvent[] = [];
  readonly changes: ChangeBatch[] = [];
  readonly badEdges: string[] = [];

  constructor(readonly client: Client) {
    client.on('status', (e) => {
      this.events.push(e);
      if (!ALLOWED[e.from].includes(e.state)) this.badEdges.push(`${e.from} → ${e.state}`);
    });
    client.on('change', (c) => this.changes.push(c));
  }

  states(): string[] {
    return this.events.map((e) => e.state);
  }

  last(state: string): StatusEvent | undefined {
    return [...this.events].reverse().find((e) => e.state === state);
  }
}

/**
 * Fails the test on any `reconnecting`/`behind` edge whose reason code was not declared with
 * `allow()` (and checks the transitions while at it).
 */
export class DisconnectGuard {
  private readonly allowed = new Set<string>();
  readonly unexpected: StatusEvent[] = [];

  constructor(readonly rec: Recorder) {
    rec.client.on('status', (e) => {
      if ((e.state === 'reconnecting' || e.state === 'behind') && !this.allowed.has(e.reason?.code ?? '?')) this.unexpected.push(e);
    });
  }

  allow(...codes: string[]): this {
    for (const c of codes) this.allowed.add(c);
    return this;
  }

  problems(): string[] {
    return [
      ...this.unexpected.map((e) => `unexpected ${e.state}: ${e.reason?.code ?? '?'} ${e.reason?.message ?? ''}`),
      ...this.rec.badEdges.map((b) => `edge not in the state machine: ${b}`),
    ];
  }
}

/**
 * Wait options for {@link waitUntil} that re-check on every client status/change event and every
 * change a fake server records (and every 5 ms); real time, 10 s: a hang guard, not a timing
 * assertion. The wait never moves the client's FakeClock (the test does, with {@link skipWait}).
 */
export function on(...sources: (Client | FakeServer)[]): WaitOptions {
  return {
    wake: (check) => {
      const offs = sources.flatMap((s) => ('onChange' in s ? [s.onChange(check)] : [s.on('status', check), s.on('change', check)]));
      return () => offs.forEach((off) => off());
    },
  };
}

export interface Setup {
  client: Client;
  clock: FakeClock;
  rec: Recorder;
  guard: DisconnectGuard;
}

/** A client on a FakeClock with deterministic jitter, recorded and guarded. */
export function start(opts: Partial<ConnectOptions> & Pick<ConnectOptions, 'endpoints'>): Setup {
  const clock = new FakeClock();
  const client = connect({ feeds: ['felix'], node: 'test-node', clock, random: () => 0.5, ...opts });
  const rec = new Recorder(client);
  const guard = new DisconnectGuard(rec);
  return { client, clock, rec, guard };
}

/** Advances the fake clock past the client's pending reconnect wait (the next armed timer). */
export async function skipWait(clock: FakeClock): Promise<void> {
  const d = clock.nextDelay();
  if (d !== undefined) await clock.advanceAsync(d);
}
