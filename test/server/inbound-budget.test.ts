/**
 * The inbound frame meter against a model of what a WebSocket server must hold of a client's
 * stream, and the process-wide budget's choice of whom to close (transport/inbound-budget.ts).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { INBOUND_BUDGET_REFILL, InboundBudget, InboundFrameMeter, type InboundHolder } from '../../src/server/transport/inbound-budget.js';

interface Frame {
  readonly opcode: number;
  readonly fin: boolean;
  readonly payload: number;
}

/** A masked client frame of `f.payload` bytes (payload content does not matter to the meter). */
function clientFrame(f: Frame, mask = true): Buffer {
  const len = f.payload;
  const ext = len < 126 ? 0 : len < 65_536 ? 2 : 8;
  const head = Buffer.alloc(2 + ext + (mask ? 4 : 0));
  head[0] = (f.fin ? 0x80 : 0) | f.opcode;
  head[1] = (mask ? 0x80 : 0) | (ext === 0 ? len : ext === 2 ? 126 : 127);
  if (ext === 2) head.writeUInt16BE(len, 2);
  if (ext === 8) head.writeBigUInt64BE(BigInt(len), 2);
  if (mask) head.writeUInt32BE(0x01020304, 2 + ext);
  return Buffer.concat([head, Buffer.alloc(len, 7)]);
}

/**
 * Messages as frames: each a data frame, or fragments (first binary, then continuations, the
 * last with FIN), with control frames (ping, pong) between fragments as RFC 6455 allows.
 */
const frameStream = fc.array(
  fc.record({
    fragments: fc.array(fc.integer({ min: 0, max: 70_000 }), { minLength: 1, maxLength: 4 }),
    pingsBetween: fc.array(fc.integer({ min: 0, max: 125 }), { maxLength: 2 }),
  }),
  { minLength: 1, maxLength: 6 },
).map((messages) => {
  const frames: Frame[] = [];
  for (const m of messages) {
    m.fragments.forEach((payload, i) => {
      frames.push({ opcode: i === 0 ? 0x2 : 0x0, fin: i === m.fragments.length - 1, payload });
      if (i < m.fragments.length - 1) for (const p of m.pingsBetween) frames.push({ opcode: 0x9, fin: true, payload: p });
    });
  }
  return frames;
});

/** What must be held after the first `at` bytes: the unfinished frame's bytes and earlier fragments' payloads. */
function modelHeld(frames: readonly Frame[], bytes: readonly Buffer[], at: number): number {
  let off = 0;
  let fragments = 0;
  for (let i = 0; i < frames.length; i++) {
    const f = frames[i] as Frame;
    const size = (bytes[i] as Buffer).length;
    if (at < off + size) return fragments + (at - off);
    off += size;
    if (f.opcode < 0x8) fragments = f.fin ? 0 : fragments + f.payload;
  }
  return fragments;
}

describe('InboundFrameMeter', () => {
  it('holds what a server must buffer of any valid client stream, however the reads split it', () => {
    fc.assert(
      fc.property(frameStream, fc.array(fc.integer({ min: 1, max: 40_000 }), { minLength: 1, maxLength: 30 }), (frames, cuts) => {
        const bytes = frames.map((f) => clientFrame(f));
        const stream = Buffer.concat(bytes);
        const meter = new InboundFrameMeter(4 * 70_000);
        let at = 0;
        let c = 0;
        while (at < stream.length) {
          const n = Math.min(cuts[c++ % cuts.length] as number, stream.length - at);
          meter.feed(stream.subarray(at, at + n));
          at += n;
          expect(meter.held).toBe(modelHeld(frames, bytes, at));
        }
        expect(meter.broken).toBe(false);
        expect(meter.held).toBe(0);
      }),
      { numRuns: 200 },
    );
  });

  it('counts a frame byte by byte, header first', () => {
    const meter = new InboundFrameMeter(1_000_000);
    const frame = clientFrame({ opcode: 0x2, fin: true, payload: 70_000 });
    for (let i = 0; i < frame.length - 1; i++) {
      meter.feed(frame.subarray(i, i + 1));
      expect(meter.held).toBe(i + 1);
    }
    meter.feed(frame.subarray(frame.length - 1));
    expect(meter.held).toBe(0);
  });

  it.each([
    ['an unmasked frame', clientFrame({ opcode: 0x2, fin: true, payload: 10 }, false)],
    ['reserved bits', Buffer.from([0xc2, 0x80, 0, 0, 0, 0])],
    ['an unknown opcode', Buffer.from([0x83, 0x80, 0, 0, 0, 0])],
    ['a fragmented ping', clientFrame({ opcode: 0x9, fin: false, payload: 1 })],
    ['a continuation without a message', clientFrame({ opcode: 0x0, fin: true, payload: 1 })],
    ['a message inside a message', Buffer.concat([clientFrame({ opcode: 0x2, fin: false, payload: 1 }), clientFrame({ opcode: 0x2, fin: true, payload: 1 })])],
    ['a length above the hard cap', clientFrame({ opcode: 0x2, fin: true, payload: 1_001 }).subarray(0, 14)],
    ['fragments above the hard cap together', Buffer.concat([clientFrame({ opcode: 0x2, fin: false, payload: 600 }), clientFrame({ opcode: 0x0, fin: true, payload: 600 })])],
  ])('stops at %s, as the WebSocket layer does, keeping its figure', (_what, bytes) => {
    const meter = new InboundFrameMeter(1_000);
    meter.feed(bytes);
    expect(meter.broken).toBe(true);
    const held = meter.held;
    meter.feed(clientFrame({ opcode: 0x2, fin: true, payload: 100 }).subarray(0, 50));
    expect(meter.held).toBe(held);
  });

  it('stops at a control frame longer than 125 bytes', () => {
    const meter = new InboundFrameMeter(1_000);
    meter.feed(Buffer.from([0x89, 0x80 | 126, 0, 200]));
    expect(meter.broken).toBe(true);
  });
});

class Holder implements InboundHolder {
  readonly meter = new InboundFrameMeter(1_000_000);
  chosen: [number, number] | undefined;
  constructor(readonly name: string) {}
  overBudget(held: number, total: number): void {
    if (this.chosen !== undefined) throw new Error(`${this.name} chosen twice`);
    this.chosen = [held, total];
  }
}

/** The first `n` bytes of a frame announcing 500,000 bytes of payload (14 bytes of header). */
const partial = (n: number): Buffer => clientFrame({ opcode: 0x2, fin: true, payload: 500_000 }).subarray(0, n);

describe('InboundBudget', () => {
  it('closes the largest holders, not the one whose read passed the budget, until the rest hold at most 90 %', () => {
    let closes = 0;
    const budget = new InboundBudget(1_000, () => closes++);
    const h = ['a', 'b', 'c', 'd'].map((n) => new Holder(n));
    const [a, b, c, d] = h as [Holder, Holder, Holder, Holder];
    budget.read(a, partial(400));
    budget.read(b, partial(350));
    budget.read(c, partial(200));
    expect(budget.heldBytes).toBe(950);
    expect(budget.holding).toBe(3);
    budget.read(d, partial(100));
    // 1,050 > 1,000: a (400) goes, leaving 650 <= 900.
    expect(a.chosen).toEqual([400, 1_050]);
    expect([b.chosen, c.chosen, d.chosen]).toEqual([undefined, undefined, undefined]);
    expect(closes).toBe(1);
    expect(budget.overBudgetCloses).toBe(1);
    // Held until its socket closes, but no longer counted against the others.
    expect(budget.heldBytes).toBe(1_050);
    budget.read(a, partial(100));
    expect(budget.heldBytes).toBe(1_050);
    budget.closed(a);
    expect(budget.heldBytes).toBe(650);
    expect(budget.holding).toBe(3);
  });

  it('closes as many as it takes to get below 90 % in one pass', () => {
    const budget = new InboundBudget(1_000);
    const h = Array.from({ length: 20 }, (_, i) => new Holder(`h${i}`));
    // 19 × 47 + 100 = 993, then one more byte each for the first 19: 1,012.
    h.forEach((x, i) => budget.read(x, partial(i === 19 ? 100 : 47)));
    expect(h.some((x) => x.chosen !== undefined)).toBe(false);
    for (let i = 0; i < 12; i++) budget.read(h[i] as Holder, partial(48).subarray(47));
    // The eighth byte makes 1,001 > 1,000: the 100 goes (901 > 900), then one of 48 (853 <= 900);
    // the four bytes after it leave 857, under the budget: no one else goes.
    const chosen = h.filter((x) => x.chosen !== undefined).sort((x, y) => (y.chosen?.[0] ?? 0) - (x.chosen?.[0] ?? 0));
    expect(chosen.map((x) => x.chosen)).toEqual([[100, 1_001], [48, 1_001]]);
    expect(1_000 * INBOUND_BUDGET_REFILL).toBe(900);
  });

  it('holds nothing for frames a read completes, and frees what a holder finishes', () => {
    const budget = new InboundBudget(1_000);
    const x = new Holder('x');
    budget.read(x, clientFrame({ opcode: 0x2, fin: true, payload: 5_000 }));
    expect(budget.heldBytes).toBe(0);
    expect(budget.holding).toBe(0);
    const frame = clientFrame({ opcode: 0x2, fin: true, payload: 900 });
    budget.read(x, frame.subarray(0, 600));
    expect(budget.heldBytes).toBe(600);
    budget.read(x, frame.subarray(600));
    expect(budget.heldBytes).toBe(0);
    expect(budget.holding).toBe(0);
    budget.closed(x);
    expect(budget.heldBytes).toBe(0);
    expect(x.chosen).toBeUndefined();
  });
});
