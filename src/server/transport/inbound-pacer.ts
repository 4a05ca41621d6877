/**
 * Inbound messages of the uWS transport, handed to the fan-out in bounded time per event-loop turn.
 *
 * Why: uWS calls its `message` handler for every ready socket in one poll phase. After a reconnect
 * storm (uWS completes its upgrades in its own callback, docs/transport.md) nearly every agent's
 * HELLO arrives in the same phase: in the fan-out benchmark's cold start 673-738 HELLOs were
 * decoded back to back there (10-26 ms), in the same loop turn as a service turn and a snapshot
 * build slice, and that turn held the loop 40-47 ms. Over `ws` the upgrades are paced
 * (paced.ts), so the HELLOs arrive spread out already.
 *
 * How: a message is delivered at once while this turn has spent less than `turnMs` delivering;
 * past that it waits in its socket's own queue, and the sockets with waiting messages are served
 * in later turns (PacedTurns, `turnMs` each). Order per socket is kept: once a socket has a
 * message waiting, its later messages wait behind it, and its close is delivered only after them.
 *
 * Bounded: a socket's queue is at most `maxQueuedBytes` (its connection's maxInboundBytes); a
 * message that would pass it delivers the socket's whole queue at once instead (a flood costs the
 * flooder's own turn, as it would without pacing, never memory). Nothing waits across a close.
 *
 * A delivery that throws (the socket's handler failed; the Connection catches its own errors, so
 * this is a bug) is reported to that socket's `failed`, on every path: at once, in a paced turn,
 * at the bound or at a close. Its remaining messages are dropped with it, since the stream after a
 * lost message is not the agent's; `failed` closes the agent with CATTAIL_INTERNAL (4012), so the
 * agent reconnects and resumes and the fault shows in the closes by code. Never thrown into uWS's
 * handler (whose exception would reach the process) nor swallowed.
 */
import { PacedTurns } from './paced.js';

/** Time one turn may spend delivering inbound messages (ms), in the poll phase and in each paced turn. */
export const INBOUND_TURN_MS = 5;

/**
 * What a waiting message is counted as besides its payload: its record, the Buffer object and its
 * queue slot, rounded up (an estimate, not measured). Without it empty messages counted nothing,
 * and a socket's queue had no bound within one poll phase (a bounds audit).
 */
export const QUEUED_MESSAGE_OVERHEAD_BYTES = 128;

/** One socket's side: where its messages go, and its queue (owned by the pacer). */
export interface InboundTarget {
  deliver(data: Buffer, isBinary: boolean): void;
  /** Messages waiting, oldest first (the pacer's; starts empty). */
  readonly inbound: { data: Buffer; isBinary: boolean }[];
  inboundBytes: number;
  /** A delivery to this socket threw: its later messages are dropped; the socket must end. */
  failed(err: unknown): void;
}

export class InboundPacer {
  /** Time spent delivering in the current turn; reset by the next turn's setImmediate. */
  private spentMs = 0;
  private resetScheduled = false;
  private readonly waiting: PacedTurns<InboundTarget>;

  constructor(
    private readonly o: {
      readonly turnMs?: number;
      /** Most bytes one socket may have waiting (its maxInboundBytes). */
      readonly maxQueuedBytes: number;
      /** Monotonic ms (performance.now by default); tests pass their own. */
      readonly now?: () => number;
    },
  ) {
    // flush() reports its own throws, and a target's `failed` does not throw (the uWS socket's
    // ends itself when reporting fails: seam.ts reportFailure); so nothing reaches this handler.
    this.waiting = new PacedTurns<InboundTarget>(this.turnMs, (t) => this.flush(t), () => undefined, this.now);
  }

  private get turnMs(): number {
    return this.o.turnMs ?? INBOUND_TURN_MS;
  }

  // Not `(this.o.now ?? performance.now)()`: performance.now throws when called without its object.
  private readonly now = (): number => (this.o.now !== undefined ? this.o.now() : performance.now());

  /**
   * Sockets with messages waiting. Counted apart from the paced queue's length: a socket whose
   * queue went at once (the bound, a close) stays in that queue until its turn, where it finds
   * nothing, and may be queued again meanwhile.
   */
  get socketsWaiting(): number {
    return this.socketsWithMessages;
  }

  private socketsWithMessages = 0;

  /** A message from `t` (already copied out of uWS's memory). */
  message(t: InboundTarget, data: Buffer, isBinary: boolean): void {
    if (t.inbound.length === 0 && this.spentMs < this.turnMs) {
      const start = this.now();
      try {
        t.deliver(data, isBinary);
      } catch (err) {
        t.failed(err);
      } finally {
        this.spend(this.now() - start);
      }
      return;
    }
    const cost = data.length + QUEUED_MESSAGE_OVERHEAD_BYTES;
    if (t.inboundBytes + cost > this.o.maxQueuedBytes) {
      // Bounded: what waits goes now, then this message, in order.
      if (t.inbound.length === 0) this.socketsWithMessages++; // flush() counts it out again
      t.inbound.push({ data, isBinary });
      this.flush(t);
      return;
    }
    if (t.inbound.length === 0) {
      this.waiting.push(t);
      this.socketsWithMessages++;
    }
    t.inbound.push({ data, isBinary });
    t.inboundBytes += cost;
  }

  /** Before `t`'s close is delivered: its waiting messages go first. */
  closing(t: InboundTarget): void {
    this.flush(t);
  }

  /** Delivers everything `t` has waiting, in order (a paced turn, a close, or the bound). */
  private flush(t: InboundTarget): void {
    // Taken out first: a delivery may close the socket, which flushes again (nothing left then).
    const items = t.inbound.splice(0);
    t.inboundBytes = 0;
    if (items.length > 0) this.socketsWithMessages--;
    try {
      for (const m of items) t.deliver(m.data, m.isBinary);
    } catch (err) {
      t.failed(err);
    }
  }

  private spend(ms: number): void {
    this.spentMs += ms;
    if (this.resetScheduled) return;
    this.resetScheduled = true;
    setImmediate(() => {
      this.resetScheduled = false;
      this.spentMs = 0;
    });
  }
}
