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
 * most are closed (ERROR `CATTAIL_SERVER_OVER_BUDGET`, 4008) until it is back below 90 % of it.
 * Well-behaved agents send small frames that complete within one read: they hold nothing between
 * reads and are never chosen while anyone holds more.
 *
 * How: `InboundFrameMeter` follows a client's byte stream frame by frame (headers only; payloads
 * are skipped by count) beside the WebSocket library, which offers no count of what it holds.
 * It counts what the library must be holding: the unfinished frame's bytes so far and the
 * payloads of earlier fragments of an unfinished message. Not the allocator's blocks around
 * them (a slice of a 64 KiB read keeps the whole read alive), so the memory behind the figure can
 * be larger; the figure is what a broken agent controls.
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
 * Follows one client-to-server WebSocket byte stream (masked frames) and says how many bytes of it
 * are held for frames or messages not yet complete.
 *
 * On a stream the WebSocket library refuses (reserved bits, an unmasked or unknown frame, a
 * control frame that is fragmented or longer than 125 bytes, a continuation without a message or a
 * new message inside one, a payload above `maxPayloadBytes`), the library stops reading and closes:
 * the meter stops too, keeping the figure it had (`broken`), which is what the library keeps until
 * the socket closes.
 */
export class InboundFrameMeter {
  /** Bytes of the frame under way (header and payload so far); 0 between frames. */
  private frameBytes = 0;
  /** Payload bytes of finished fragments of a message under way. */
  private fragmentBytes = 0;
  /** Header bytes read of the frame under way. */
  private headerRead = 0;
  /** Header bytes it has: 2, then 2 + extended length + mask key once the second byte is in. */
  private headerNeeded = 2;
  /** The payload length read so far (7-bit, then the extended length byte by byte). */
  private length = 0;
  private lengthEnd = 2;
  private payloadLeft = 0;
  private payloadLength = 0;
  private inPayload = false;
  private fin = false;
  private control = false;
  private fragmented = false;
  broken = false;

  // Fields, not a header Buffer: one of these lives beside every agent socket, and a Buffer costs
  // far more than its 14 bytes (idle memory per connection is a benchmark target, docs/transport.md).
  constructor(
    /** The WebSocket layer's largest message (ws `maxPayload`): a longer declared one is refused. */
    private readonly maxPayloadBytes: number,
  ) {}

  /** Bytes held for frames and messages not yet complete. */
  get held(): number {
    return this.frameBytes + this.fragmentBytes;
  }

  /** The bytes the socket just read, in order. */
  feed(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length && !this.broken) {
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
      if (at === 0) this.readFirst(byte);
      else if (at === 1) this.readSecond(byte);
      else if (at < this.lengthEnd) this.length = this.length * 256 + byte;
      if (!this.broken && this.headerRead === this.headerNeeded && at > 0) this.startPayload();
    }
  }

  private readFirst(b0: number): void {
    const opcode = b0 & 0x0f;
    this.fin = (b0 & 0x80) !== 0;
    this.control = opcode >= CLOSE;
    const known = opcode === CONTINUATION || opcode === TEXT || opcode === BINARY || opcode === CLOSE || opcode === PING || opcode === PONG;
    if ((b0 & 0x70) !== 0 || !known) return this.break();
    if (this.control && !this.fin) return this.break();
    if (opcode === CONTINUATION ? !this.fragmented : !this.control && this.fragmented) return this.break();
  }

  private readSecond(b1: number): void {
    const len7 = b1 & 0x7f;
    if ((b1 & 0x80) === 0 || (this.control && len7 > 125)) return this.break();
    const extended = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
    this.length = extended === 0 ? len7 : 0;
    this.lengthEnd = 2 + extended;
    this.headerNeeded = this.lengthEnd + 4;
  }

  private startPayload(): void {
    // An 8-byte length above 2^53 is not exact here, and refused anyway: far above any cap.
    if (!this.control && this.fragmentBytes + this.length > this.maxPayloadBytes) return this.break();
    this.payloadLength = this.length;
    this.payloadLeft = this.length;
    this.inPayload = true;
    if (this.length === 0) this.endFrame();
  }

  private endFrame(): void {
    if (!this.control) {
      if (this.fin) {
        this.fragmentBytes = 0;
        this.fragmented = false;
      } else {
        this.fragmentBytes += this.payloadLength;
        this.fragmented = true;
      }
    }
    this.frameBytes = 0;
    this.headerRead = 0;
    this.headerNeeded = 2;
    this.inPayload = false;
  }

  private break(): void {
    this.broken = true;
  }
}

/** One socket as the budget sees it. */
export interface InboundHolder {
  readonly meter: InboundFrameMeter;
  /**
   * Chosen to go: the transport stops reading it (so it holds no more) and closes it with
   * CATTAIL_SERVER_OVER_BUDGET. Called once; it must not throw.
   */
  overBudget(heldBytes: number, totalBytes: number): void;
}

/** After passing the budget, holders are closed until the total is at most this share of it. */
export const INBOUND_BUDGET_REFILL = 0.9;

export class InboundBudget {
  /** Bytes held by all sockets' unfinished frames, those already chosen to go included. */
  heldBytes = 0;
  /** Of heldBytes, what sockets chosen to go still hold until they close. */
  private condemnedBytes = 0;
  /** Sockets chosen to go: closed for going over the budget. */
  overBudgetCloses = 0;
  private readonly holders = new Set<InboundHolder>();
  private readonly condemned = new Set<InboundHolder>();
  private readonly last = new Map<InboundHolder, number>();

  constructor(
    /** Most bytes all sockets' unfinished inbound frames may hold together (maxInboundHeldBytes). */
    readonly maxHeldBytes: number,
    /** Called once per socket chosen to go (metrics). */
    private readonly onOverBudget: () => void = () => undefined,
  ) {}

  /** Sockets holding bytes now. */
  get holding(): number {
    return this.holders.size;
  }

  /** `h` read `chunk`: counts it and, when the total is over the budget, closes the largest holders. */
  read(h: InboundHolder, chunk: Buffer): void {
    if (this.condemned.has(h)) return;
    h.meter.feed(chunk);
    const held = h.meter.held;
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
  }

  /**
   * Closes the largest holders until the others hold at most INBOUND_BUDGET_REFILL of the budget.
   * One sort per pass and the margin make a pass rare: a flood of small holders costs one sort per
   * tenth of the budget refilled, not one scan per read.
   */
  private shed(): void {
    const floor = this.maxHeldBytes * INBOUND_BUDGET_REFILL;
    const live = [...this.holders].filter((h) => !this.condemned.has(h));
    live.sort((a, b) => (this.last.get(b) ?? 0) - (this.last.get(a) ?? 0));
    for (const h of live) {
      if (this.heldBytes - this.condemnedBytes <= floor) break;
      const held = this.last.get(h) ?? 0;
      this.condemned.add(h);
      this.condemnedBytes += held;
      this.overBudgetCloses++;
      this.onOverBudget();
      h.overBudget(held, this.heldBytes);
    }
  }
}
