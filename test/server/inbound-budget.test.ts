/**
 * The inbound frame meter against a model of what a WebSocket server must hold of a client's
 * stream, and the process-wide budget's choice of whom to close (transport/inbound-budget.ts).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HELD_PIECE_OVERHEAD_BYTES, INBOUND_BUDGET_REFILL, INBOUND_CUT_FACTOR, InboundBudget, InboundFrameMeter, type InboundHolder } from '../../src/server/transport/inbound-budget.js';

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
 * last with FIN), with control frames between fragments as RFC 6455 allows, and between messages.
 */
const frameStream = fc.array(
  fc.record({
    fragments: fc.array(fc.integer({ min: 0, max: 70_000 }), { minLength: 1, maxLength: 4 }),
    pingsBetween: fc.array(fc.integer({ min: 0, max: 125 }), { maxLength: 2 }),
    pongBefore: fc.option(fc.integer({ min: 0, max: 125 }), { nil: undefined }),
  }),
  { minLength: 1, maxLength: 6 },
).map((messages) => {
  const frames: Frame[] = [];
  for (const m of messages) {
    if (m.pongBefore !== undefined) frames.push({ opcode: 0xa, fin: true, payload: m.pongBefore });
    m.fragments.forEach((payload, i) => {
      frames.push({ opcode: i === 0 ? 0x2 : 0x0, fin: i === m.fragments.length - 1, payload });
      if (i < m.fragments.length - 1) for (const p of m.pingsBetween) frames.push({ opcode: 0x9, fin: true, payload: p });
    });
  }
  return frames;
});

/**
 * The model: what a server must hold after each read. Every read since the stream was last between
 * messages that ended inside a frame or message, whole (the WebSocket layer keeps views into it),
 * each with its overhead.
 */
class Model {
  /** Offsets where the stream is between messages: 0, and every frame end with no message open. */
  private readonly between: number[] = [0];
  private kept: number[] = [];
  private start = 0;
  private next = 1;

  constructor(frames: readonly Frame[], bytes: readonly Buffer[]) {
    let off = 0;
    let open = false;
    frames.forEach((f, i) => {
      off += (bytes[i] as Buffer).length;
      if (f.opcode < 0x8) open = !f.fin;
      if (!open) this.between.push(off);
    });
  }

  /** The read that ends at `end`; returns what is held after it. */
  read(end: number): number {
    let atBoundary = false;
    while (this.next < this.between.length && (this.between[this.next] as number) <= end) {
      this.kept = [];
      atBoundary = this.between[this.next] === end;
      this.next++;
    }
    if (!atBoundary) this.kept.push(end - this.start);
    this.start = end;
    return this.kept.reduce((a, b) => a + b, 0) + HELD_PIECE_OVERHEAD_BYTES * this.kept.length;
  }
}

describe('InboundFrameMeter', () => {
  it('holds what a server must buffer of any valid client stream, however the reads split it', () => {
    fc.assert(
      fc.property(frameStream, fc.array(fc.integer({ min: 1, max: 40_000 }), { minLength: 1, maxLength: 30 }), (frames, cuts) => {
        const bytes = frames.map((f) => clientFrame(f));
        const stream = Buffer.concat(bytes);
        // Alone, then through a budget, which keeps a meter for a socket only while it holds something.
        const meter = new InboundFrameMeter(4 * 70_000);
        const budget = new InboundBudget(Number.MAX_SAFE_INTEGER, 4 * 70_000);
        const holder = new Holder('p');
        const model = new Model(frames, bytes);
        let at = 0;
        let c = 0;
        while (at < stream.length) {
          // At most 300 reads: past them the rest comes in one (1-byte reads of 1.7 MB took minutes).
          const n = c >= 300 ? stream.length - at : Math.min(cuts[c % cuts.length] as number, stream.length - at);
          c++;
          meter.feed(stream.subarray(at, at + n));
          budget.read(holder, stream.subarray(at, at + n));
          at += n;
          const want = model.read(at);
          expect(meter.held).toBe(want);
          expect(budget.heldBytes).toBe(want);
        }
        expect(meter.stopped).toBe(false);
        expect(meter.held).toBe(0);
        expect(holder.meter).toBeUndefined();
      }),
      { numRuns: 100 },
    );
    // Frames up to 70,000 bytes (8-byte lengths) make a run of 100 take ~1 s alone; seconds on a busy CI core.
  }, 60_000);

  it('counts a frame byte by byte, header first', () => {
    const meter = new InboundFrameMeter(1_000_000);
    const frame = clientFrame({ opcode: 0x2, fin: true, payload: 70_000 });
    for (let i = 0; i < frame.length - 1; i++) {
      meter.feed(frame.subarray(i, i + 1));
      expect(meter.held).toBe((i + 1) * (1 + HELD_PIECE_OVERHEAD_BYTES));
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
    expect(meter.stopped).toBe(true);
    const held = meter.held;
    meter.feed(clientFrame({ opcode: 0x2, fin: true, payload: 100 }).subarray(0, 50));
    expect(meter.held).toBe(held);
  });

  it('stops at a control frame longer than 125 bytes', () => {
    const meter = new InboundFrameMeter(1_000);
    meter.feed(Buffer.from([0x89, 0x80 | 126, 0, 200]));
    expect(meter.stopped).toBe(true);
  });

  it('stops after the client\'s close frame (the WebSocket layer reads nothing more)', () => {
    const meter = new InboundFrameMeter(1_000);
    meter.feed(clientFrame({ opcode: 0x8, fin: true, payload: 2 }));
    expect(meter.stopped).toBe(true);
    // The read it came in counts until the socket closes; nothing after it.
    expect(meter.held).toBe(8 + HELD_PIECE_OVERHEAD_BYTES);
    meter.feed(clientFrame({ opcode: 0x2, fin: true, payload: 500 }).subarray(0, 100));
    expect(meter.held).toBe(8 + HELD_PIECE_OVERHEAD_BYTES);
  });

  it('counts a read kept for one byte of a frame whole: finished frames before it in the read do not make it smaller', () => {
    const meter = new InboundFrameMeter(1_000_000);
    // 64 KiB of pongs (ignored by the server) and the first byte of a frame, in one read.
    const pongs = Array.from({ length: 500 }, () => clientFrame({ opcode: 0xa, fin: true, payload: 125 }));
    const read = Buffer.concat([...pongs, Buffer.from([0x82])]);
    meter.feed(read);
    expect(meter.held).toBe(read.length + HELD_PIECE_OVERHEAD_BYTES);
    expect(read.length).toBeGreaterThan(65_000);
  });

  it('counts each read and each fragment an unfinished message is kept in', () => {
    const meter = new InboundFrameMeter(10_000);
    for (let i = 1; i <= 10; i++) {
      meter.feed(clientFrame({ opcode: i === 1 ? 0x2 : 0x0, fin: false, payload: 1 }));
      // Each read: a whole 7-byte frame (6 of header), kept as a view for the open message.
      expect(meter.held).toBe(i * (7 + HELD_PIECE_OVERHEAD_BYTES));
    }
    meter.feed(clientFrame({ opcode: 0x0, fin: true, payload: 0 }));
    expect(meter.held).toBe(0);
  });
});

class Holder implements InboundHolder {
  meter: InboundFrameMeter | undefined = undefined;
  chosen: [number, number] | undefined;
  cuts = 0;
  constructor(readonly name: string) {}
  overBudget(held: number, total: number): void {
    if (this.chosen !== undefined) throw new Error(`${this.name} chosen twice`);
    this.chosen = [held, total];
  }
  terminate(): void {
    this.cuts++;
  }
}

/** Bytes a holder holds after `partial(n)` in one read. */
const heldAfter = (n: number): number => n + HELD_PIECE_OVERHEAD_BYTES;

/** The first `n` bytes of a frame announcing 500,000 bytes of payload (14 bytes of header). */
const partial = (n: number): Buffer => clientFrame({ opcode: 0x2, fin: true, payload: 500_000 }).subarray(0, n);

describe('InboundBudget', () => {
  // Budgets below are in units of heldAfter(): a partial frame of n bytes in one read holds n + 256.
  it('closes the holders whose unfinished message began first, not the largest nor the one whose read passed the budget, until the rest hold at most 90 %', () => {
    let closes = 0;
    const budget = new InboundBudget(10_000, 1_000_000, () => closes++);
    const [a, b, c, big, d] = ['a', 'b', 'c', 'big', 'd'].map((n) => new Holder(n)) as [Holder, Holder, Holder, Holder, Holder];
    budget.read(a, partial(1_744)); // 2,000 each
    budget.read(b, partial(1_744));
    budget.read(c, partial(1_744));
    // A large frame arriving now (an agent's HELLO split over reads) is the youngest.
    budget.read(big, partial(3_744)); // 4,000
    expect(budget.heldBytes).toBe(10_000);
    expect(budget.holding).toBe(4);
    budget.read(d, partial(244)); // 500: 10,500 > 10,000
    // a goes (8,500 <= 9,000); big, the largest, stays.
    expect(a.chosen).toEqual([2_000, 10_500]);
    expect([b, c, big, d].map((h) => h.chosen)).toEqual([undefined, undefined, undefined, undefined]);
    expect(closes).toBe(1);
    expect(budget.overBudgetCloses).toBe(1);
    // Held until its socket closes, but no longer counted against the others, and not read.
    expect(budget.heldBytes).toBe(10_500);
    budget.read(a, partial(100));
    expect(budget.heldBytes).toBe(10_500);
    budget.closed(a);
    expect(budget.heldBytes).toBe(8_500);
    expect(budget.holding).toBe(4);
  });

  it('keeps a message\'s age across reads, and takes the larger first among holders of the same age', () => {
    const budget = new InboundBudget(3_000, 1_000_000);
    const [old, young1, young2] = ['old', 'young1', 'young2'].map((n) => new Holder(n)) as [Holder, Holder, Holder];
    const frame = clientFrame({ opcode: 0x2, fin: true, payload: 5_000 });
    budget.read(old, frame.subarray(0, 100));
    budget.read(young1, partial(500));
    // More of old's frame arrives: still the message that began first.
    budget.read(old, frame.subarray(100, 200));
    budget.read(young2, partial(1_500));
    // 200 + 2 × 256 + 756 + 1,756 = 3,224 > 3,000: old goes first (2,512 <= 2,700).
    expect(old.chosen?.[0]).toBe(200 + 2 * HELD_PIECE_OVERHEAD_BYTES);
    expect([young1.chosen, young2.chosen]).toEqual([undefined, undefined]);
  });

  it('closes as many as it takes to get below 90 % in one pass', () => {
    const budget = new InboundBudget(10_000, 1_000_000);
    const h = Array.from({ length: 10 }, (_, i) => new Holder(`h${i}`));
    for (const x of h) budget.read(x, partial(744)); // 1,000 each: 10,000
    expect(h.some((x) => x.chosen !== undefined)).toBe(false);
    const late = new Holder('late');
    budget.read(late, partial(1_744)); // 12,000: the three oldest go (9,000)
    expect(h.map((x) => x.chosen !== undefined)).toEqual([true, true, true, false, false, false, false, false, false, false]);
    expect(late.chosen).toBeUndefined();
    expect(10_000 * INBOUND_BUDGET_REFILL).toBe(9_000);
  });

  it('cuts the sockets chosen to go at once when, with what they still hold, the total passes 1.5 × the budget', () => {
    const budget = new InboundBudget(10_000, 1_000_000);
    const first = Array.from({ length: 10 }, (_, i) => new Holder(`f${i}`));
    for (const x of first) budget.read(x, partial(744));
    const push = new Holder('push');
    budget.read(push, partial(1_744)); // three chosen, not cut: 12,000 <= 15,000
    expect(first.filter((x) => x.chosen !== undefined)).toHaveLength(3);
    expect(first.reduce((n, x) => n + x.cuts, 0)).toBe(0);
    // A refill as fast as it was freed, and more: the chosen ones are still open.
    const refill = Array.from({ length: 4 }, (_, i) => new Holder(`r${i}`));
    for (const x of refill) budget.read(x, partial(744)); // 16,000 held, 13,000 of it live
    expect(INBOUND_CUT_FACTOR * 10_000).toBe(15_000);
    expect(budget.heldBytes).toBe(16_000);
    const chosen = [...first, push, ...refill].filter((x) => x.chosen !== undefined);
    expect(chosen.map((x) => x.cuts).every((n) => n === 1)).toBe(true);
    expect(chosen.length).toBeGreaterThan(3);
  });

  it('holds nothing for frames a read completes, and frees what a holder finishes', () => {
    const budget = new InboundBudget(1_000, 1_000_000);
    const x = new Holder('x');
    budget.read(x, clientFrame({ opcode: 0x2, fin: true, payload: 5_000 }));
    expect(budget.heldBytes).toBe(0);
    expect(budget.holding).toBe(0);
    // No meter of its own between messages (idle memory per connection).
    expect(x.meter).toBeUndefined();
    const frame = clientFrame({ opcode: 0x2, fin: true, payload: 900 });
    budget.read(x, frame.subarray(0, 600));
    expect(budget.heldBytes).toBe(heldAfter(600));
    expect(x.meter).toBeDefined();
    budget.read(x, frame.subarray(600));
    expect(budget.heldBytes).toBe(0);
    expect(budget.holding).toBe(0);
    expect(x.meter).toBeUndefined();
    // A first fragment of no bytes holds nothing yet, but the meter stays: the message is open.
    budget.read(x, clientFrame({ opcode: 0x2, fin: false, payload: 0 }));
    expect(x.meter).toBeDefined();
    const second = clientFrame({ opcode: 0x0, fin: false, payload: 300 });
    budget.read(x, second);
    // Both reads are kept for the open message: 6 bytes, then 308 (a 2-byte extended length).
    expect(second.length).toBe(308);
    expect(budget.heldBytes).toBe(heldAfter(6) + heldAfter(308));
    budget.read(x, clientFrame({ opcode: 0x0, fin: true, payload: 10 }));
    expect(budget.heldBytes).toBe(0);
    expect(x.meter).toBeUndefined();
    budget.closed(x);
    expect(budget.heldBytes).toBe(0);
    expect(x.chosen).toBeUndefined();
  });
});
