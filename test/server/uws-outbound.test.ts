/**
 * The uWS outbound queue (uws-outbound.ts) against a model of uWS and the kernel: the kernel takes
 * what fits its free room, uWS copies the rest of a send into its per-socket buffer, a cork
 * collects short sends into one write, and a long send must avoid uWS's lossy shortcut. Checked for any mix of message sizes and drain schedules:
 * messages arrive whole and in order (fragments reassembled), fragments of two messages never
 * interleave, nothing is handed to uWS while it holds bytes, what uWS copies stays within one
 * piece, and every write's callback runs once, after its bytes were handed over.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { wsFramed } from '../../src/server/transport/framing.js';
import { UwsOutbound, type UwsSendSide } from '../../src/server/transport/uws-outbound.js';

// Scaled down (uWS's are 64 KiB and 16 KiB) so that the property runs cover many pieces quickly.
const PIECE = 1024;
const CORK = 256;
const FAST = 512;
const SCALE = { pieceBytes: PIECE, corkBytes: CORK, fastPathBytes: FAST };

/** uWS + kernel, as far as the queue can tell them apart. */
class ModelUws implements UwsSendSide {
  /** Bytes the kernel takes now (its socket buffer's free room). */
  room: number;
  /** Bytes uWS copied and holds. */
  held = 0;
  maxHeld = 0;
  /** Messages as the agent reassembles them, and the one in progress. */
  readonly messages: Buffer[] = [];
  private partial: Buffer[] | undefined;
  private corked: number | undefined;
  readonly violations: string[] = [];

  constructor(room: number) {
    this.room = room;
  }

  getBufferedAmount(): number {
    return this.held;
  }

  cork(cb: () => void): unknown {
    this.corked = 0;
    cb();
    const n = this.corked;
    this.corked = undefined;
    this.write(n);
    return this;
  }

  send(message: Uint8Array, _isBinary: boolean, compress: boolean): number {
    this.frame(true, true, message, compress);
    return this.held > 0 ? 0 : 1;
  }

  sendFirstFragment(message: Uint8Array, _isBinary: boolean, compress: boolean): boolean {
    this.frame(true, false, message, compress);
    return true;
  }

  sendFragment(message: Uint8Array, compress: boolean): boolean {
    this.frame(false, false, message, compress);
    return true;
  }

  sendLastFragment(message: Uint8Array, compress: boolean): boolean {
    this.frame(false, true, message, compress);
    return true;
  }

  /** The kernel sends `n` bytes to the agent; uWS moves what it holds into the room. */
  drain(n: number): void {
    this.room += n;
    const moved = Math.min(this.room, this.held);
    this.held -= moved;
    this.room -= moved;
  }

  private frame(first: boolean, fin: boolean, payload: Uint8Array, compress: boolean): void {
    if (this.held > 0) this.violations.push('sent while uWS held bytes');
    // uWS.js 20.30's long-send shortcut loses the payload when the kernel takes only the header.
    if (payload.length >= FAST && !compress) this.violations.push('a long send without the hint that avoids the shortcut');
    if (first !== (this.partial === undefined)) this.violations.push(first ? 'a message started inside another' : 'a continuation without a message');
    const parts = [...(this.partial ?? []), Buffer.from(payload)];
    this.partial = fin ? undefined : parts;
    if (fin) this.messages.push(Buffer.concat(parts));
    const bytes = payload.length + (payload.length < 126 ? 2 : payload.length < 65_536 ? 4 : 10);
    if (this.corked !== undefined && this.corked + bytes <= CORK) this.corked += bytes;
    else this.write(bytes);
  }

  private write(bytes: number): void {
    const taken = this.held > 0 ? 0 : Math.min(this.room, bytes);
    this.room -= taken;
    this.held += bytes - taken;
    this.maxHeld = Math.max(this.maxHeld, this.held);
  }
}

/** A payload that tells messages apart (its first bytes are its tag). */
const payloadOf = (tag: number, bytes: number): Buffer => {
  const b = Buffer.alloc(bytes, tag & 0xff);
  if (bytes >= 4) b.writeUInt32BE(tag, 0);
  return b;
};

describe('UwsOutbound', () => {
  it('sends a long message as pieces only while uWS holds nothing, and the agent reassembles it', () => {
    const ws = new ModelUws(3 * PIECE);
    const out = new UwsOutbound(ws, SCALE);
    const big = payloadOf(1, 10 * PIECE + 123);
    let done = 0;
    out.push(wsFramed(big), () => done++);
    // The kernel took three pieces and part of the fourth; uWS copied the rest of that one only.
    expect(ws.held).toBeGreaterThan(0);
    expect(ws.held).toBeLessThanOrEqual(PIECE + 10);
    expect(done).toBe(0);
    expect(out.queuedBytes).toBeGreaterThan(5 * PIECE);
    for (let i = 0; i < 100 && !out.empty; i++) {
      ws.drain(PIECE);
      out.pump();
    }
    expect(done).toBe(1);
    expect(out.queuedBytes).toBe(0);
    expect(ws.messages).toEqual([big]);
    expect(ws.maxHeld).toBeLessThanOrEqual(PIECE + 10);
    expect(ws.violations).toEqual([]);
  });

  it('runs the callbacks of dropped writes once, and those of writes after the drop at once', () => {
    const ws = new ModelUws(0);
    const out = new UwsOutbound(ws, SCALE);
    const calls: string[] = [];
    // The kernel takes nothing: uWS copies the first message (its callback runs), the second waits.
    out.push(wsFramed(payloadOf(1, 100)), () => calls.push('a'));
    out.push(wsFramed(payloadOf(2, 3 * PIECE)), () => calls.push('b'));
    expect(calls).toEqual(['a']);
    expect(out.queuedBytes).toBe(3 * PIECE + 4);
    out.drop();
    out.drop();
    expect(calls).toEqual(['a', 'b']);
    out.push(wsFramed(payloadOf(3, 10)), () => calls.push('c'));
    expect(calls).toEqual(['a', 'b', 'c']);
    ws.drain(10 * PIECE);
    out.pump();
    expect(ws.messages).toEqual([payloadOf(1, 100)]);
  });

  it('keeps its list bounded for an agent that never quite catches up (the queue never empties)', () => {
    const ws = new ModelUws(0);
    const out = new UwsOutbound(ws, SCALE);
    let done = 0;
    for (let i = 0; i < 20_000; i++) {
      out.push(wsFramed(payloadOf(i, 40)), () => done++);
      // The kernel takes a little less than was written: a backlog that never empties.
      if (i % 2 === 1) {
        ws.drain(80);
        out.pump();
      }
      expect(out.slots).toBeLessThanOrEqual(2 * 1024 + (i + 1 - done) + 1);
    }
    expect(out.empty).toBe(false);
    expect(done).toBeGreaterThan(15_000);
  });

  it('ends the socket when uWS reports a message dropped', () => {
    const ws = new ModelUws(10 * PIECE);
    ws.send = (): number => 2;
    let dropped = 0;
    const out = new UwsOutbound(ws, { ...SCALE, onDropped: () => dropped++ });
    out.push(wsFramed(payloadOf(1, 10)), undefined);
    expect(dropped).toBe(1);
  });

  it('for any message sizes and drain schedule: whole, in order, never interleaved, one piece copied at most', () => {
    const message = fc.integer({ min: 0, max: 5 * PIECE });
    const write = fc.array(message, { minLength: 1, maxLength: 3 });
    const step = fc.record({ writes: fc.array(write, { maxLength: 3 }), drain: fc.integer({ min: 0, max: 4 * PIECE }) });
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 4 * PIECE }), fc.array(step, { minLength: 1, maxLength: 25 }), (room, steps) => {
        const ws = new ModelUws(room);
        const out = new UwsOutbound(ws, SCALE);
        const sent: Buffer[] = [];
        const calls: number[] = [];
        let tag = 0;
        for (const s of steps) {
          for (const sizes of s.writes) {
            const payloads = sizes.map((n) => payloadOf(++tag, n));
            const id = tag;
            const upTo = sent.length + payloads.length;
            out.push(Buffer.concat(payloads.map(wsFramed)), () => {
              // A callback runs only once every message of its write is handed over whole.
              expect(ws.messages.length).toBeGreaterThanOrEqual(upTo);
              calls.push(id);
            });
            sent.push(...payloads);
          }
          ws.drain(s.drain);
          out.pump();
        }
        for (let i = 0; i < 10_000 && !(out.empty && ws.held === 0); i++) {
          ws.drain(PIECE);
          out.pump();
        }
        expect(ws.violations).toEqual([]);
        // Compared as strings: deep equality of thousands of Buffers byte by byte is slow.
        expect(ws.messages.map((m) => m.toString('base64'))).toEqual(sent.map((m) => m.toString('base64')));
        expect(out.queuedBytes).toBe(0);
        // Each write's callback ran once, in order.
        expect(calls).toEqual([...calls].sort((a, b) => a - b));
        expect(new Set(calls).size).toBe(calls.length);
        expect(calls.length).toBe(steps.reduce((n, s) => n + s.writes.length, 0));
        // uWS copied at most one piece (or one cork's worth) and its header.
        expect(ws.maxHeld).toBeLessThanOrEqual(Math.max(PIECE, CORK) + 10);
      }),
      { numRuns: 300 },
    );
  });
});
