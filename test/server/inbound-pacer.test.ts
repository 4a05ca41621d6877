/**
 * InboundPacer: the uWS transport's inbound messages in bounded time per turn. Delivered at once
 * while the turn has time, then queued per socket and served in later turns; order per socket is
 * kept across the queue, a close delivers what waits first, and a socket's queue is bounded.
 */
import { describe, expect, it } from 'vitest';
import { type InboundTarget, InboundPacer, QUEUED_MESSAGE_OVERHEAD_BYTES } from '../../src/server/transport/inbound-pacer.js';

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A socket whose every delivery "takes" `costMs` on the shared fake clock. */
function target(name: string, log: string[], clock: { t: number }, costMs = 2): InboundTarget {
  return {
    inbound: [],
    inboundBytes: 0,
    deliver: (data) => {
      const s = data.toString();
      clock.t += costMs;
      if (s.startsWith('throw')) throw new Error(`${name} failed on ${s}`);
      log.push(`${name}:${s}`);
    },
    failed: (err) => log.push(`${name} failed: ${(err as Error).message}`),
  };
}

const msg = (s: string): Buffer => Buffer.from(s);

describe('InboundPacer', () => {
  it('delivers at once until the turn has spent its time, then in later turns, each socket in order', async () => {
    const clock = { t: 0 };
    const log: string[] = [];
    const p = new InboundPacer({ turnMs: 5, maxQueuedBytes: 1_000, now: () => clock.t });
    const a = target('a', log, clock);
    const b = target('b', log, clock);
    // 2 ms each against a 5 ms turn: three go at once (0, 2, 4 ms spent before each), then queue.
    p.message(a, msg('1'), true);
    p.message(b, msg('1'), true);
    p.message(a, msg('2'), true);
    p.message(b, msg('2'), true);
    p.message(a, msg('3'), true);
    expect(log).toEqual(['a:1', 'b:1', 'a:2']);
    expect(b.inbound.length + a.inbound.length).toBe(2);
    expect(p.socketsWaiting).toBe(2);
    for (let i = 0; i < 5 && p.socketsWaiting > 0; i++) await turn();
    expect(log).toEqual(['a:1', 'b:1', 'a:2', 'b:2', 'a:3']);
    // The next turn has its own time again: delivered at once.
    await turn();
    p.message(b, msg('3'), true);
    expect(log.at(-1)).toBe('b:3');
  });

  it('keeps a socket\'s later messages behind its waiting ones even when the turn has time again', async () => {
    const clock = { t: 0 };
    const log: string[] = [];
    const p = new InboundPacer({ turnMs: 5, maxQueuedBytes: 1_000, now: () => clock.t });
    const a = target('a', log, clock, 6);
    const c = target('c', log, clock, 10);
    const b = target('b', log, clock, 0);
    p.message(a, msg('1'), true); // spends the whole turn
    p.message(c, msg('1'), true); // waits
    p.message(b, msg('1'), true); // waits behind c
    // Next turn: the budget is reset, then the paced turn serves c, whose 10 ms end it: b waits on.
    await turn();
    expect(log).toEqual(['a:1', 'c:1']);
    expect(b.inbound.length).toBe(1);
    // The turn has time again, but b:2 must not overtake b:1.
    p.message(b, msg('2'), true);
    expect(log).toEqual(['a:1', 'c:1']);
    for (let i = 0; i < 5 && p.socketsWaiting > 0; i++) await turn();
    expect(log).toEqual(['a:1', 'c:1', 'b:1', 'b:2']);
  });

  it('delivers what a socket has waiting before its close, and nothing is left to deliver after', async () => {
    const clock = { t: 0 };
    const log: string[] = [];
    const p = new InboundPacer({ turnMs: 1, maxQueuedBytes: 1_000, now: () => clock.t });
    const a = target('a', log, clock);
    p.message(a, msg('hello'), true);
    p.message(a, msg('ack'), true);
    p.message(a, msg('goodbye'), true);
    expect(log).toEqual(['a:hello']);
    p.closing(a);
    log.push('a:closed');
    expect(log).toEqual(['a:hello', 'a:ack', 'a:goodbye', 'a:closed']);
    await turn();
    await turn();
    expect(log).toEqual(['a:hello', 'a:ack', 'a:goodbye', 'a:closed']);
  });

  it('runs on the real clock when none is given', async () => {
    const log: string[] = [];
    const p = new InboundPacer({ maxQueuedBytes: 1_000 });
    const a = target('a', log, { t: 0 });
    for (let i = 0; i < 3; i++) p.message(a, msg(String(i)), true);
    for (let i = 0; i < 5 && p.socketsWaiting > 0; i++) await turn();
    expect(log).toEqual(['a:0', 'a:1', 'a:2']);
  });

  it('never holds more than maxQueuedBytes for a socket, each message counted with its overhead: past it, the queue and the message go at once, in order', () => {
    const clock = { t: 0 };
    const log: string[] = [];
    const O = QUEUED_MESSAGE_OVERHEAD_BYTES;
    const p = new InboundPacer({ turnMs: 1, maxQueuedBytes: 2 * O + 10, now: () => clock.t });
    const a = target('a', log, clock);
    p.message(a, msg('first'), true); // spends the turn
    p.message(a, msg('12345'), true); // waits: 5 bytes and the overhead
    p.message(a, msg('67890'), true); // waits: 10 bytes and twice the overhead
    expect(a.inboundBytes).toBe(2 * O + 10);
    p.message(a, msg('x'), true); // past the bound: everything now
    expect(log).toEqual(['a:first', 'a:12345', 'a:67890', 'a:x']);
    expect(a.inbound).toEqual([]);
    expect(a.inboundBytes).toBe(0);
    // Empty messages cost their overhead too: a flood of them is bounded as well.
    log.length = 0;
    clock.t += 10;
    p.message(a, msg('spend'), true);
    for (let i = 0; i < 5; i++) p.message(a, Buffer.alloc(0), true);
    expect(a.inbound.length).toBeLessThanOrEqual(2);
    expect(log.length).toBeGreaterThan(1);
    // The count of sockets waiting follows the queues, not the paced list (which keeps a socket
    // whose queue went at once until its turn).
    expect(p.socketsWaiting).toBe(a.inbound.length > 0 ? 1 : 0);
    p.closing(a);
    expect(p.socketsWaiting).toBe(0);
  });

  it('reports a delivery that throws to its socket, on every path, and goes on with the others', async () => {
    const clock = { t: 0 };
    const log: string[] = [];
    const p = new InboundPacer({ turnMs: 5, maxQueuedBytes: 3 * QUEUED_MESSAGE_OVERHEAD_BYTES + 20, now: () => clock.t });
    const a = target('a', log, clock);
    const b = target('b', log, clock);
    // At once: the throw is reported, not thrown into uWS's handler, and the turn's time counts.
    expect(() => p.message(a, msg('throw-1'), true)).not.toThrow();
    expect(log).toEqual(['a failed: a failed on throw-1']);
    p.message(b, msg('1'), true);
    p.message(b, msg('2'), true); // 6 ms spent: waits
    // In a paced turn: b's later message after the throw is dropped with it, never delivered.
    p.message(b, msg('throw-3'), true);
    p.message(b, msg('4'), true);
    p.message(a, msg('5'), true);
    for (let i = 0; i < 5 && p.socketsWaiting > 0; i++) await turn();
    expect(log).toEqual(['a failed: a failed on throw-1', 'b:1', 'b:2', 'b failed: b failed on throw-3', 'a:5']);
    expect(b.inbound).toEqual([]);
    // At the bound and at a close: reported the same way.
    await turn();
    log.length = 0;
    const c = target('c', log, clock, 6);
    p.message(c, msg('6'), true); // spends the turn
    p.message(c, msg('throw-7'), true); // waits
    p.message(c, msg('x'.repeat(3 * QUEUED_MESSAGE_OVERHEAD_BYTES)), true); // past the bound: the queue goes now
    expect(log).toEqual(['c:6', 'c failed: c failed on throw-7']);
    await turn();
    const d = target('d', log, clock, 6);
    p.message(d, msg('8'), true);
    p.message(d, msg('throw-9'), true); // waits (d:8 spent the turn)
    p.closing(d);
    expect(log.slice(2)).toEqual(['d:8', 'd failed: d failed on throw-9']);
  });
});
