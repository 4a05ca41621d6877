/**
 * The uWS transport's outbound queue: what a socket was given and uWS has not yet taken, kept as
 * references to the shared Buffers (as a net.Socket keeps them), handed to uWS only while uWS
 * holds nothing of its own, at most `pieceBytes` per send.
 *
 * Why: uWS copies whatever the kernel does not take of a send into a per-socket buffer. Handed a
 * whole 512 KiB snapshot chunk while the kernel's socket buffer was full, it copied nearly all of
 * it, once per agent: in the fan-out benchmark's cold start (1,000 agents, a 50,000-entry feed)
 * that copying made `send` 75 % of the server's CPU profile, twice the `net` floor's CPU, and
 * 1 GB of RSS where `ws` needed 0.4 GB. Here uWS holds at most one piece per socket: what it
 * copies is bounded, short-lived and reused, not a megabyte per agent.
 *
 * A message longer than a piece goes out as WebSocket fragments (RFC 6455 §5.4): the first piece
 * in a binary frame without FIN, the rest in continuation frames. Every WebSocket library
 * reassembles them into the one message the agent reads (PROTOCOL.md §1).
 *
 * Invariants: messages leave in the order written; no message starts while another is partly
 * sent (fragments of two messages never interleave); nothing is handed to uWS while it holds
 * bytes (its drain is the signal to go on, and `pump` runs again then).
 *
 * Rejected: splitting snapshot chunks smaller for uWS alone (each chunk is compressed on its own:
 * smaller chunks cost 6-12 % more bytes per agent, measured) and uWS's `publish` (it defers writes
 * to the end of the loop turn and drops messages for subscribers above maxBackpressure).
 */
import { forEachFrame } from './seam.js';

/** The most bytes handed to uWS in one send; longer messages go as fragments of this size. */
export const UWS_PIECE_BYTES = 64 * 1024;

/**
 * uWS's cork buffer (uSockets LoopData::CORK_BUFFER_SIZE). Short messages are sent together in one
 * cork (one syscall) up to this many bytes; a longer one goes alone.
 */
export const UWS_CORK_BYTES = 16 * 1024;

/**
 * Messages this long or longer never take uWS's "long send" shortcut (see sendMessage).
 *
 * The shortcut writes a message of 16 KiB or more straight from our Buffer when nothing is
 * buffered. In uWS.js 20.30, the build that loads on Node 20 here, it loses the message's payload
 * when the kernel takes no more than the frame's header (fixed upstream in uWebSockets pull
 * request #1662, September 2023): the agent then reads the next frames as that payload. Measured
 * in the fan-out cold start: 2 to 4 of 8 runs lost one 70 KB snapshot chunk for one agent.
 */
export const UWS_FAST_PATH_BYTES = 16 * 1024;

/**
 * Sends one message (or fragment) through uWS, never by the shortcut above: a send with the
 * compress hint skips it, and with permessage-deflate never negotiated (the transport sets
 * compression 0) uWS turns the hint off again and sends the bytes as they are, formatted into
 * its own buffer first. That copy is at most one piece (64 KiB); it is what the shortcut saved.
 */
export function sendMessage(ws: UwsSendSide, kind: 'whole' | 'first' | 'middle' | 'last', payload: Uint8Array, fastPathBytes = UWS_FAST_PATH_BYTES): number {
  const hint = payload.length >= fastPathBytes;
  switch (kind) {
    case 'whole':
      return ws.send(payload, true, hint);
    case 'first':
      ws.sendFirstFragment(payload, true, hint);
      return 1;
    case 'middle':
      ws.sendFragment(payload, hint);
      return 1;
    default:
      ws.sendLastFragment(payload, hint);
      return 1;
  }
}

/** uWS send() result for a message dropped above maxBackpressure (uWS.js docs). */
export const SEND_DROPPED = 2;

/** Sent slots at which the queue's list is compacted (when they are at least half of it). */
const COMPACT_SLOTS = 1024;

/**
 * The part of a uWS WebSocket the queue uses (tests give it a model of uWS and the kernel).
 * Every send goes inside `cork`: a send outside one may leave the socket corked by uWS itself
 * (its auto-cork is not undone after a send that had to buffer), and its later bytes then wait in
 * the loop's cork buffer until uWS's next event.
 */
export interface UwsSendSide {
  send(message: Uint8Array, isBinary: boolean, compress: boolean): number;
  sendFirstFragment(message: Uint8Array, isBinary: boolean, compress: boolean): unknown;
  sendFragment(message: Uint8Array, compress: boolean): unknown;
  sendLastFragment(message: Uint8Array, compress: boolean): unknown;
  getBufferedAmount(): number;
  cork(cb: () => void): unknown;
}

export interface UwsOutboundOptions {
  /** Most bytes per send; default UWS_PIECE_BYTES (tests scale it down). */
  readonly pieceBytes?: number;
  /** Bytes of short messages sent in one cork; default UWS_CORK_BYTES. */
  readonly corkBytes?: number;
  /** Sends this long or longer carry the hint that avoids uWS's shortcut; default UWS_FAST_PATH_BYTES. */
  readonly fastPathBytes?: number;
  /**
   * uWS dropped a message (above its maxBackpressure): the stream has a gap, so the socket must
   * end. Not expected (sends go only into an empty uWS buffer, and maxBackpressure is far above a
   * piece), but never silent.
   */
  readonly onDropped?: () => void;
}

interface Pending {
  readonly payload: Buffer;
  /** Its frame's header bytes: counted in queuedBytes until the message starts. */
  readonly headerBytes: number;
  /** The write's callback, on the last message of that write. */
  done: (() => void) | undefined;
}

export class UwsOutbound {
  private pending: (Pending | undefined)[] = [];
  private head = 0;
  /** Bytes of the head message already handed to uWS (> 0: it is partly sent, as fragments). */
  private offset = 0;
  /** Bytes written and not yet handed to uWS, frame headers included. */
  queuedBytes = 0;
  /** The socket closed (drop()): nothing more is sent, no callback runs twice. */
  private dropped = false;

  private readonly pieceBytes: number;
  private readonly corkBytes: number;
  private readonly fastPathBytes: number;
  private readonly onDropped: () => void;

  constructor(
    private readonly ws: UwsSendSide,
    o: UwsOutboundOptions = {},
  ) {
    this.pieceBytes = o.pieceBytes ?? UWS_PIECE_BYTES;
    this.corkBytes = o.corkBytes ?? UWS_CORK_BYTES;
    this.fastPathBytes = o.fastPathBytes ?? UWS_FAST_PATH_BYTES;
    this.onDropped = o.onDropped ?? ((): void => undefined);
  }

  /** Slots of the internal list, sent ones not yet compacted included (bounded: see finish). */
  get slots(): number {
    return this.pending.length;
  }

  get empty(): boolean {
    return this.head === this.pending.length;
  }

  /** Queues a pre-framed buffer (one or more whole frames) and hands uWS what it can take now. */
  push(frames: Buffer, done: (() => void) | undefined): void {
    if (this.dropped) {
      done?.();
      return;
    }
    let last: Pending | undefined;
    forEachFrame(frames, (payload, frameBytes) => {
      last = { payload, headerBytes: frameBytes - payload.length, done: undefined };
      this.pending.push(last);
    });
    if (last === undefined) done?.();
    else last.done = done;
    this.queuedBytes += frames.length;
    this.pump();
  }

  /** Hands uWS queued bytes until the queue is empty or uWS holds some (its drain calls this again). */
  pump(): void {
    while (!this.dropped && this.head < this.pending.length && this.ws.getBufferedAmount() === 0) {
      const p = this.pending[this.head] as Pending;
      if (this.offset === 0 && p.headerBytes + p.payload.length <= this.corkBytes) this.sendShortRun();
      else this.sendPiece(p);
    }
    if (this.head === this.pending.length) this.reset();
  }

  /** Drops what is queued (the socket closed, maybe inside a send): each write's callback still runs once. */
  drop(): void {
    if (this.dropped) return;
    this.dropped = true;
    for (let i = this.head; i < this.pending.length; i++) this.pending[i]?.done?.();
    this.reset();
    this.queuedBytes = 0;
  }

  private reset(): void {
    if (this.pending.length > 0) this.pending = [];
    this.head = 0;
    this.offset = 0;
  }

  /** Whole short messages, as many as fit uWS's cork buffer, in one cork: one syscall. */
  private sendShortRun(): void {
    this.ws.cork(() => {
      let room = this.corkBytes;
      while (!this.dropped && this.head < this.pending.length) {
        const p = this.pending[this.head] as Pending;
        const bytes = p.headerBytes + p.payload.length;
        if (bytes > room) break;
        room -= bytes;
        if (sendMessage(this.ws, 'whole', p.payload, this.fastPathBytes) === SEND_DROPPED) this.onDropped();
        if (this.dropped) return;
        this.queuedBytes -= bytes;
        this.finish(p);
      }
    });
  }

  /** The head message, or its next piece when it is longer than one. */
  private sendPiece(p: Pending): void {
    const { payload } = p;
    const start = this.offset;
    const end = Math.min(payload.length, start + this.pieceBytes);
    const piece = payload.subarray(start, end);
    if (start === 0) this.queuedBytes -= p.headerBytes;
    const kind = start === 0 ? (end === payload.length ? 'whole' : 'first') : end < payload.length ? 'middle' : 'last';
    // In a cork of its own: uWS's auto-cork is left on after some sends (see UwsSendSide.cork).
    this.ws.cork(() => {
      if (sendMessage(this.ws, kind, piece, this.fastPathBytes) === SEND_DROPPED) this.onDropped();
    });
    if (this.dropped) return;
    this.queuedBytes -= piece.length;
    if (end < payload.length) this.offset = end;
    else {
      this.offset = 0;
      this.finish(p);
    }
  }

  private finish(p: Pending): void {
    if (this.dropped) return;
    // Not kept once handed: a stuck socket's queue must not pin Buffers it already sent.
    this.pending[this.head++] = undefined;
    // An agent that keeps a backlog never empties the queue (reset): drop the sent slots now and
    // then, or the list grows by one slot per message for as long as the lag lasts.
    if (this.head >= COMPACT_SLOTS && this.head * 2 >= this.pending.length) {
      this.pending = this.pending.slice(this.head);
      this.head = 0;
    }
    p.done?.();
  }
}
