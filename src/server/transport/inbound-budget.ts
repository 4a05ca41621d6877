/**
 * What all agents' sockets hold of inbound frames not yet complete, and one budget for it across
 * the process (`maxInboundHeldBytes`).
 *
 * Why: the WebSocket layer buffers a frame until its last byte arrives, up to its hard cap
 * (4 × `maxInboundBytes`, 256 KiB by default) per socket. An agent that sends a frame's first
 * bytes and then trickles or stops holds that much for as long as it stays connected, and with
 * `maxConnections` (10,000) such sockets that is 2.5 GiB: above the 2 GiB the Deployment gives a
 * replica, so a few broken or hostile agents could have it killed, and every agent with it. A
 * per-socket cap cannot be lowered far enough: a legitimate HELLO may take most of 64 KiB
 * (PROTOCOL.md §8). So the total is bounded, and when it passes the budget the sockets holding the
 * longest are closed (ERROR `CATTAIL_SERVER_OVER_BUDGET`, 4008) until it is back below 90 % of it.
 * Oldest first, not largest: a well-behaved agent writes each frame whole, but its bytes still
 * arrive over several reads (a TLS record is at most 16 KiB, TCP splits), so a large HELLO holds
 * tens of KiB for a moment; by size it would be the one chosen, while sockets sitting on smaller
 * unfinished frames (the attack) stayed. By age, it goes only after every socket that has held
 * an unfinished message longer. Age is counted in reads across all sockets, not time: pure, and
 * a frame that sits while others arrive grows old however fast the server runs.
 *
 * How: `InboundFrameMeter` follows a client's byte stream frame by frame (headers only; payloads
 * are skipped by count) beside the WebSocket library, which offers no count of what it holds.
 * It counts what the library must be holding: every read that ended inside an unfinished frame or
 * message, whole, from the last point where the stream was between messages, plus
 * HELD_PIECE_OVERHEAD_BYTES for each. Whole reads, not the message's bytes in them: ws keeps the
 * unfinished frame and finished fragments as views into the reads, and a view keeps its read's
 * memory alive (Node sizes a read's memory to the read, up to 64 KiB). Counting only the
 * message's bytes, a read of 64 KiB of ignored pongs ending in one byte of a frame counted that
 * byte and held 64 KiB (a review). The WebSocket layer also caps the pieces
 * (INBOUND_MAX_FRAGMENTS, maxReadsPerFrame).
 *
 * Rejected: a deadline per unfinished frame (bounds time, not bytes: a fast sender fills the
 * memory within any deadline); reading the library's private receiver fields (no API, and they
 * change between releases); a lower hard cap (the protocol's coded 4003 needs the room above
 * `maxInboundBytes`, and 10,000 × even 64 KiB is 640 MiB).
 *
 * Pure: no I/O, no clock. The transport feeds it what the socket read and tells it of closes.
 */

/** RFC 6455 §5.2 opcodes a client may send; any other one is a protocol error. */
const CONTINUATION = 0x0;
const TEXT = 0x1;
const BINARY = 0x2;
const CLOSE = 0x8;
const PING = 0x9;
const PONG = 0xa;

/**
 * What each read kept for an unfinished message costs besides its bytes: the Buffer objects the
 * WebSocket layer keeps views of it in, and its backing-store record (an estimate rounded up, as
 * for the uWS pacer's queued messages, not measured).
 */
export const HELD_PIECE_OVERHEAD_BYTES = 256;

/**
 * Most fragments of one inbound message the `ws` transport accepts (ws `maxFragments`; above it
 * ws closes 1008). Cattail's client never fragments, and client messages are at most 64 KiB.
 */
export const INBOUND_MAX_FRAGMENTS = 64;

/**
 * Most reads one unfinished inbound frame may take before it is whole (ws `maxBufferedChunks`;
 * above it ws closes 1008): the hard cap (4 × maxInboundBytes) in reads of 256 bytes, at least
 * 1,024. A legitimate 64 KiB message takes ~46 reads at a 1,448-byte MSS, ~5 over TLS.
 */
export function maxReadsPerFrame(hardCapBytes: number): number {
  return Math.max(1_024, Math.ceil(hardCapBytes / 256));
}

/**
 * Follows one client-to-server WebSocket byte stream (masked frames) and says how many bytes of it
 * are held for frames or messages not yet complete.
 *
 * On a stream the WebSocket library refuses (reserved bits, an unmasked or unknown frame, a
 * control frame that is fragmented or longer than 125 bytes, a continuation without a message or a
 * new message inside one, a payload above `maxPayloadBytes`), the library stops reading and closes:
 * the meter stops too (`stopped`), keeping the figure it had, which is what the library keeps
 * until the socket closes. After the client's close frame the library reads nothing more either.
 */
export class InboundFrameMeter {
  /** Bytes of the frame under way (header and payload so far); 0 between frames. */
  private frameBytes = 0;
  /** Payload bytes of finished fragments of a message under way (the payload cap applies to them). */
  private fragmentBytes = 0;
  /** Bytes of the reads kept since the stream was last between messages (whole reads). */
  private keptBytes = 0;
  /** Those reads. */
  private keptReads = 0;
  /** Header bytes read of the frame under way. */
  private headerRead = 0;
  /** Header bytes it has: 2, then 2 + extended length + mask key once the second byte is in. */
  private headerNeeded = 2;
  /** The payload length read so far (7-bit, then the extended length byte by byte). */
  private length = 0;
  private lengthEnd = 2;
  private payloadLeft = 0;
  private inPayload = false;
  private fin = false;
  private control = false;
  private fragmented = false;
  private isClose = false;
  stopped = false;
  /** The budget's read count when the message (or control frame) under way began: its age. */
  since = 0;

  // Fields, not a header Buffer: a Buffer costs far more than its 14 bytes.
  constructor(
    /** The WebSocket layer's largest message (ws `maxPayload`): a longer declared one is refused. */
    private readonly maxPayloadBytes: number,
  ) {}

  /** Bytes held for frames and messages not yet complete: the reads kept, with each one's overhead. */
  get held(): number {
    return this.keptBytes + HELD_PIECE_OVERHEAD_BYTES * this.keptReads;
  }

  /** Between messages, holding nothing: nothing of the stream so far needs remembering. */
  get idle(): boolean {
    return this.frameBytes === 0 && !this.fragmented && !this.stopped;
  }

  /** Back to the start of a stream (the budget's scratch meter, reused for every socket). */
  reset(): void {
    this.frameBytes = 0;
    this.fragmentBytes = 0;
    this.keptBytes = 0;
    this.keptReads = 0;
    this.since = 0;
    this.headerRead = 0;
    this.headerNeeded = 2;
    this.inPayload = false;
    this.fragmented = false;
    this.stopped = false;
  }

  /** A meter of its own for a socket, in this one's state. */
  copy(): InboundFrameMeter {
    return Object.assign(new InboundFrameMeter(this.maxPayloadBytes), this);
  }

  /** The bytes the socket just read, in order; `read` is the budget's count of reads (ages). */
  feed(chunk: Buffer, read = 0): void {
    if (this.stopped) return;
    let off = 0;
    while (off < chunk.length && !this.stopped) {
      if (this.inPayload) {
        const take = Math.min(this.payloadLeft, chunk.length - off);
        this.payloadLeft -= take;
        this.frameBytes += take;
        off += take;
        if (this.payloadLeft === 0) this.endFrame();
        continue;
      }
      const byte = chunk[off++] as number;
      this.frameBytes++;
      const at = this.headerRead++;
      if (at === 0) this.readFirst(byte, read);
      else if (at === 1) this.readSecond(byte);
      else if (at < this.lengthEnd) this.length = this.length * 256 + byte;
      if (!this.stopped && this.headerRead === this.headerNeeded && at > 0) this.startPayload();
    }
    // Ending inside a frame or message, the library keeps a view of this read (its whole memory)
    // until the message is whole; after an error, until the socket closes.
    if (this.frameBytes > 0 || this.fragmented || this.stopped) {
      this.keptBytes += chunk.length;
      this.keptReads++;
    }
  }

  private readFirst(b0: number, read: number): void {
    // First: a frame refused below still needs an age of its own, not the last stream's.
    if (!this.fragmented) this.since = read;
    const opcode = b0 & 0x0f;
    this.fin = (b0 & 0x80) !== 0;
    this.control = opcode >= CLOSE;
    this.isClose = opcode === CLOSE;
    const known = opcode === CONTINUATION || opcode === TEXT || opcode === BINARY || opcode === CLOSE || opcode === PING || opcode === PONG;
    if ((b0 & 0x70) !== 0 || !known) return this.stop();
    if (this.control && !this.fin) return this.stop();
    if (opcode === CONTINUATION ? !this.fragmented : !this.control && this.fragmented) return this.stop();
  }

  private readSecond(b1: number): void {
    const len7 = b1 & 0x7f;
    if ((b1 & 0x80) === 0 || (this.control && len7 > 125)) return this.stop();
    const extended = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
    this.length = extended === 0 ? len7 : 0;
    this.lengthEnd = 2 + extended;
    this.headerNeeded = this.lengthEnd + 4;
  }

  private startPayload(): void {
    // An 8-byte length above 2^53 is not exact here, and refused anyway: far above any cap.
    if (!this.control && this.fragmentBytes + this.length > this.maxPayloadBytes) return this.stop();
    this.payloadLeft = this.length;
    this.inPayload = true;
    if (this.length === 0) this.endFrame();
  }

  private endFrame(): void {
    const closeFrame = this.isClose;
    if (!this.control) {
      if (this.fin) {
        this.fragmentBytes = 0;
        this.fragmented = false;
      } else {
        this.fragmentBytes += this.length;
        this.fragmented = true;
      }
    }
    // Between messages: the library let go of every read it kept (the message went out whole).
    if (!this.fragmented) {
      this.keptBytes = 0;
      this.keptReads = 0;
    }
    this.frameBytes = 0;
    this.headerRead = 0;
    this.headerNeeded = 2;
    this.inPayload = false;
    if (closeFrame) this.stop();
  }

  private stop(): void {
    this.stopped = true;
  }
}

/** One socket as the budget sees it. */
export interface InboundHolder {
  /**
   * Its stream's meter while it holds part of a frame or message; undefined between messages
   * (the budget's own). Nearly every read of an agent's stream ends on a frame boundary, so
   * nothing is kept per socket for it: measured with 5,000 idle agents, a meter per socket cost
   * 0.6 KB of heap per connection (idle memory is a benchmark target, docs/transport.md).
   */
  meter: InboundFrameMeter | undefined;
  /**
   * Chosen to go: the transport stops reading it (so it holds no more) and closes it with
   * CATTAIL_SERVER_OVER_BUDGET. Called once; it must not throw.
   */
  overBudget(heldBytes: number, totalBytes: number): void;
  /** Cut at once (chosen sockets still open when the total passes INBOUND_CUT_FACTOR × the budget): the AgentSocket's own terminate. Must not throw. */
  terminate(): void;
}

/** After passing the budget, holders are closed until the total is at most this share of it. */
export const INBOUND_BUDGET_REFILL = 0.9;

/**
 * Sockets chosen to go hold their bytes until they close (the sweep cuts them after its close
 * grace, 2 s, so that the agent can read its ERROR). Meanwhile a sender refilling the budget as
 * fast as it is freed adds to them; past this multiple of the budget, all of them are cut at once.
 */
export const INBOUND_CUT_FACTOR = 1.5;

export class InboundBudget {
  /** Bytes held by all sockets' unfinished frames, those already chosen to go included. */
  heldBytes = 0;
  /** Of heldBytes, what sockets chosen to go still hold until they close. */
  private condemnedBytes = 0;
  /** Sockets chosen to go: closed for going over the budget. */
  overBudgetCloses = 0;
  /** Reads so far: the clock of the holders' ages. */
  private reads = 0;
  private readonly holders = new Set<InboundHolder>();
  /** Chosen to go and not yet closed; `true` once cut. */
  private readonly condemned = new Map<InboundHolder, boolean>();
  private readonly last = new Map<InboundHolder, number>();
  /** Reads that start between messages are measured here; a socket gets its own meter only if one ends inside a frame. */
  private readonly scratch: InboundFrameMeter;

  constructor(
    /** Most bytes all sockets' unfinished inbound frames may hold together (maxInboundHeldBytes). */
    readonly maxHeldBytes: number,
    /** The WebSocket layer's largest message (4 × maxInboundBytes): a longer declared one is refused there. */
    maxPayloadBytes: number,
    /** Called once per socket chosen to go (metrics). */
    private readonly onOverBudget: () => void = () => undefined,
  ) {
    this.scratch = new InboundFrameMeter(maxPayloadBytes);
  }

  /** Sockets holding bytes now. */
  get holding(): number {
    return this.holders.size;
  }

  /** `h` read `chunk`: counts it and, when the total is over the budget, closes the oldest holders. */
  read(h: InboundHolder, chunk: Buffer): void {
    if (this.condemned.has(h)) return;
    const read = ++this.reads;
    let meter = h.meter;
    if (meter === undefined) {
      meter = this.scratch;
      meter.reset();
      meter.feed(chunk, read);
      // Whole messages only: nothing held now, and nothing was counted for it before.
      if (meter.idle) return;
      h.meter = meter = meter.copy();
    } else {
      meter.feed(chunk, read);
      if (meter.idle) h.meter = undefined;
    }
    const held = meter.held;
    this.heldBytes += held - (this.last.get(h) ?? 0);
    if (held > 0) {
      this.last.set(h, held);
      this.holders.add(h);
    } else {
      this.last.delete(h);
      this.holders.delete(h);
    }
    if (this.heldBytes - this.condemnedBytes > this.maxHeldBytes) this.shed();
  }

  /** `h`'s socket closed: what it held is freed. */
  closed(h: InboundHolder): void {
    const held = this.last.get(h) ?? 0;
    this.heldBytes -= held;
    if (this.condemned.delete(h)) this.condemnedBytes -= held;
    this.last.delete(h);
    this.holders.delete(h);
    h.meter = undefined;
  }

  /**
   * Closes the holders whose unfinished message began longest ago (the larger first among equals)
   * until the others hold at most INBOUND_BUDGET_REFILL of the budget. One sort per pass and the
   * margin make a pass rare: a flood of small holders costs one sort per tenth of the budget
   * refilled, not one scan per read.
   */
  private shed(): void {
    const floor = this.maxHeldBytes * INBOUND_BUDGET_REFILL;
    const live = [...this.holders].filter((h) => !this.condemned.has(h));
    const since = (h: InboundHolder): number => h.meter?.since ?? 0;
    live.sort((a, b) => since(a) - since(b) || (this.last.get(b) ?? 0) - (this.last.get(a) ?? 0));
    for (const h of live) {
      if (this.heldBytes - this.condemnedBytes <= floor) break;
      const held = this.last.get(h) ?? 0;
      this.condemned.set(h, false);
      this.condemnedBytes += held;
      this.overBudgetCloses++;
      this.onOverBudget();
      h.overBudget(held, this.heldBytes);
    }
    if (this.heldBytes > this.maxHeldBytes * INBOUND_CUT_FACTOR) {
      for (const [c, cut] of this.condemned) {
        if (cut) continue;
        this.condemned.set(c, true);
        c.terminate();
      }
    }
  }
}
