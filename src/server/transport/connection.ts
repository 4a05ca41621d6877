/**
 * One agent connection: its socket, its per-feed cursors, and the protocol rules for what the agent
 * may send. It owns no timers: handshake, pong and fall-behind deadlines are plain numbers checked
 * by the fan-out's one shared sweep (thousands of sockets, one interval; ws/undici pattern).
 *
 *   handshake ──HELLO ok──► streaming ──(coded close | peer close)──► closed
 *       └──── no HELLO by handshakeDeadlineMs ──► 4004
 *
 * Frames arrive here already WebSocket-framed (framing.ts) and go to the socket through the
 * transport seam (seam.ts), which never frames them again.
 *
 * One buffer is one plain write: corking a single buffer routes it through Node's
 * queued-write path (writev) for nothing, ~1 µs per socket at 5,000 sockets. Code that may write
 * several buffers to one socket opens a batch (beginBatch/endBatch): its buffers wait in one
 * scratch list shared by all connections and leave as one plain write when there is only one, or
 * as one corked write (one syscall) when there are several.
 */
import { CattailError } from '../../errors.js';
import type { AgentSink, AgentSocket } from './seam.js';
import type { FeedRuntime } from '../fanout/feeds.js';
import type { SnapshotBuild } from '../fanout/snapshot-cache.js';
import { CLOSE_CODES, type ClosingErrorCode, type GoodbyeMessage, type HelloMessage, closeCodeOf, isClosingErrorCode } from '../../../proto/index.js';
import { type Compression, decodeInbound, encodeMessage } from './framing.js';
import type { OwnFrames } from './own-frames.js';

export interface FeedCursor {
  readonly feed: FeedRuntime;
  readonly conn: Connection;
  /** Index in `feed.live` (the feed's dense list of live cursors), -1 when not in it. */
  liveIndex: number;
  /** The revision the agent will be at once everything written so far arrives. */
  revision: number;
  phase: 'snapshot' | 'live';
  /**
   * `startedMs`: monotonic ms the send began (snapshot send duration). `progressMs`: the last time
   * the stream moved (a frame written, or none available yet because the build is still running),
   * which is what the fall-behind rule judges while the snapshot streams.
   */
  snapshot: { build: SnapshotBuild; next: number; unsubscribe: () => void; startedMs: number; progressMs: number } | undefined;
  statusKey: string | undefined;
  /** Monotonic ms since when the agent lacks a flushed revision (undefined: caught up). */
  behindSinceMs: number | undefined;
  /** The fall-behind rule does not apply before this (post-snapshot grace). */
  graceUntilMs: number;
  graceCounted: boolean;
  /** The highest revision the agent ACKed (0 also before any ACK: see `acked`). */
  ackedRevision: number;
  /** An ACK came (revision 0 included: an empty feed in sync stays at revision 0). */
  acked?: boolean;
  /**
   * The upstream watermarks known applied at the last ACK (fanout/applied-watermarks.ts): a lower
   * bound kept for when the history no longer maps `ackedRevision`; undefined before any ACK.
   */
  appliedFloor: Readonly<Record<string, string>> | undefined;
  /** Monotonic ms of the last range repair answered for this feed (PROTOCOL.md §7.2; repair.ts rate rule). */
  lastRepairMs?: number;
  /** The revision of the last snapshot sent whole on this connection: a repair request below it predates it (repair.ts). */
  snapshotRevision?: number;
}

/**
 * What a connection is doing, for /debug/clients and `cattail_connections_by_mode`: `snapshot`
 * while any feed streams a snapshot, `catching-up` while any feed lacks a flushed revision (skipped
 * by a flush, or resumed behind), else `streaming`.
 */
export type ConnectionMode = 'handshake' | 'snapshot' | 'catching-up' | 'streaming' | 'closing';
export const CONNECTION_MODES: readonly ConnectionMode[] = ['handshake', 'snapshot', 'catching-up', 'streaming', 'closing'];

/** The mode of one feed of a connection (see {@link ConnectionMode}). */
export function cursorMode(c: FeedCursor): 'snapshot' | 'catching-up' | 'streaming' {
  if (c.phase === 'snapshot') return 'snapshot';
  return c.behindSinceMs !== undefined || c.revision < c.feed.flushedRevision ? 'catching-up' : 'streaming';
}

/** What the connection asks of the server: the handshake and bookkeeping it cannot do alone. */
export interface ConnectionHost {
  onHello(conn: Connection, hello: HelloMessage): void;
  onAck(conn: Connection, cursor: FeedCursor, revision: number): void;
  /** A REPAIR_REQUEST (PROTOCOL.md §7.2) checked against what this connection was sent. */
  onRepairRequest(conn: Connection, cursor: FeedCursor, revision: number, sums: Buffer): void;
  onPong(conn: Connection, t: number): void;
  onClosed(conn: Connection, code: number): void;
  onDrain(conn: Connection): void;
  /**
   * STATUS frames the agent is owed at the revisions it holds (a scoped feed holds back STATUSes
   * that only move the revision), written before a GOODBYE: the agent leaves with the token and
   * watermarks of what it applied.
   */
  owedStatus(conn: Connection): Buffer[];
}

export interface ConnectionLimits {
  readonly maxInboundBytes: number;
  readonly maxClientBytes: number;
  readonly compressMinBytes: number;
  /** Frames built for one agent alone held unsent, process-wide (own-frames.ts); one object shared by every connection. */
  readonly ownFrames?: OwnFrames;
}

let nextConnId = 1;

/**
 * The open batch: at most one connection at a time (flush, service and handshake each finish one
 * connection before the next), so one scratch list serves every socket instead of an array each.
 */
const batch = {
  owner: undefined as Connection | undefined,
  bufs: [] as Buffer[],
  done: [] as ((() => void) | undefined)[],
  bytes: 0,
};

export class Connection {
  // The fields a flush reads or writes for every socket come first, in this order: V8 lays an
  // object's fields out in the order they are defined, so they share one or two cache lines
  // instead of four (a flush to thousands of sockets after as many write syscalls finds little
  // of this in cache; the syscall's own data evicted it).
  state: 'handshake' | 'streaming' | 'closing' | 'closed' = 'handshake';
  /** True while the last write returned true and no drain came since: the socket then holds fewer than socket.quietBytes. */
  private quiet = true;
  /** socket.quietBytes, read once (a stream's high-water mark never changes). */
  private readonly quietBytes: number;
  /**
   * socket.sink, read once (it is one object for the socket's life): the flush hands it every
   * shared buffer, and reading it here spares a load of the transport's socket object per agent.
   */
  private readonly sink: AgentSink;
  /** Set when a flush skipped it or a snapshot stalled on its buffer; cleared by a catch-up. */
  needsService = false;
  /**
   * Bytes handed to the socket for this agent, shared frames included. One addition per write
   * call (not per frame's write callback), so the hot path pays nothing it did not already.
   */
  bytesWritten = 0;
  compression: Compression = 'none';
  maxBodyBytes = 0;
  readonly id = nextConnId++;
  /** The HELLO arrived and waits to be answered (state is still 'handshake' until WELCOME). */
  helloReceived = false;
  /** Both sides advertised `repair.buckets` (PROTOCOL.md §7.2): REPAIR_REQUEST is allowed. */
  repairCapable = false;
  readonly cursors: FeedCursor[] = [];
  node = '';
  clientId = '';
  handshakeDeadlineMs: number;
  lastPongMs = 0;
  /**
   * The last time a snapshot stream to this agent moved (monotonic ms; 0: never). A PING written
   * behind megabytes of snapshot reaches the agent only after them, so while the stream moves the
   * agent is reading and the PONG deadline runs from here (sweep.ts).
   */
  lastStreamProgressMs = 0;
  nextPingMs = 0;
  closeDeadlineMs = 0;
  /** Bytes written for this agent alone and not yet flushed by the kernel (its budget). */
  ownOutstandingBytes = 0;
  /** Own frames written and not yet released from limits.ownFrames (a few at a time: written, then sent). */
  private ownHeld: Buffer[] | undefined;
  closeCode: number | undefined;
  /** Wall-clock ms (injected clock) when the fan-out took this connection; shown by /debug/clients. */
  connectedAtMs = 0;
  /**
   * The verified client certificate's identity (CN or URI SAN) on a TLS agent port; undefined on
   * a cleartext port. Set at the upgrade by the TLS path; /debug/clients shows it.
   */
  tlsIdentity: string | undefined = undefined;
  /** The verified client certificate's CN and URI SANs (per-node scoping proves the node with them); undefined without a client certificate. */
  tlsPeer: { readonly cn: string | undefined; readonly uriSans: readonly string[] } | undefined = undefined;
  /** The node whose scoped view this connection's scoped feeds carry (set at HELLO; '' when it has none). */
  scopeNode = '';
  /**
   * The agent advertised scope.watermarks: on its scoped feeds every DELTA unit ends with a STATUS
   * (one without digest when the digest-bearing one is held back), PROTOCOL.md §4.7.
   */
  scopeWatermarks = false;

  constructor(
    readonly socket: AgentSocket,
    private readonly host: ConnectionHost,
    private readonly limits: ConnectionLimits,
    nowMs: number,
    handshakeTimeoutMs: number,
  ) {
    this.handshakeDeadlineMs = nowMs + handshakeTimeoutMs;
    this.quietBytes = socket.quietBytes;
    this.sink = socket.sink;
    socket.setEvents({
      message: (data, isBinary) => this.onMessage(data, isBinary),
      close: (code) => this.onSocketClose(code),
      closing: () => this.onTransportClosing(),
      failed: (err) => this.failWith(err),
      overBudget: (heldBytes, totalBytes) => {
        this.fail('CATTAIL_SERVER_OVER_BUDGET', `an unfinished inbound message holding ${heldBytes} bytes, among those begun first while agents' unfinished frames held ${totalBytes} bytes, above maxInboundHeldBytes`, 'over-budget');
      },
      drain: () => {
        this.quiet = this.socket.bufferedAmount < this.quietBytes;
        if (this.state === 'streaming') this.host.onDrain(this);
      },
    });
  }

  /** Bytes handed to this socket and not yet taken by the kernel, including an open batch's. */
  get writableBytes(): number {
    return batch.owner === this ? this.socket.bufferedAmount + batch.bytes : this.socket.bufferedAmount;
  }

  /**
   * Whether the socket holds more than `hwm` unsent bytes. The flush asks this of every socket, so
   * a socket known quiet (see `quiet`) answers without reading its stream's state.
   */
  aboveHighWater(hwm: number): boolean {
    if (this.quiet && batch.owner !== this && hwm >= this.quietBytes) return false;
    return this.writableBytes > hwm;
  }

  /** `address:port` of the peer (`[v6]:port` for IPv6); undefined once the socket is gone. */
  get remoteAddress(): string | undefined {
    const { remoteAddress: a, remotePort: p } = this.socket.peer;
    if (a === '' || !this.socket.writable) return undefined;
    // uWebSockets.js does not expose the peer's port: then the address alone.
    if (p === undefined || p === 0) return a;
    return a.includes(':') ? `[${a}]:${p}` : `${a}:${p}`;
  }

  get mode(): ConnectionMode {
    if (this.state === 'handshake') return 'handshake';
    if (this.state !== 'streaming') return 'closing';
    let catchingUp = false;
    for (const c of this.cursors) {
      const m = cursorMode(c);
      if (m === 'snapshot') return 'snapshot';
      catchingUp ||= m === 'catching-up';
    }
    return catchingUp ? 'catching-up' : 'streaming';
  }

  get open(): boolean {
    return this.state === 'handshake' || this.state === 'streaming';
  }

  /**
   * The flush's first pass (flush.ts flushOneFeed): where to write `bytes` of shared frames in its
   * second pass, counted as written now; undefined while this connection's batch is open (then
   * writeShared). A false return from the sink's write is reported with notQuiet().
   */
  sinkFor(bytes: number): AgentSink | undefined {
    if (batch.owner === this) return undefined;
    this.bytesWritten += bytes;
    return this.sink;
  }

  /** A write to this socket's sink returned false: it now holds quietBytes or more (a drain follows). */
  notQuiet(): void {
    this.quiet = false;
  }

  /** Writes a frame shared with other sockets (not counted against the agent's budget). */
  writeShared(frame: Buffer): void {
    this.bytesWritten += frame.length;
    if (batch.owner === this) this.hold(frame, undefined);
    else if (!this.socket.write(frame)) this.quiet = false;
  }

  /**
   * Writes frames built for this agent alone. Returns false (and closes with 4008) when they would
   * take the agent over its byte budget: per-agent bytes are what a stuck agent can pin.
   */
  writeOwn(frames: readonly Buffer[]): boolean {
    let total = 0;
    for (const f of frames) total += f.length;
    // A transport that copies unsent bytes per socket (uWS) holds them for this agent alone too.
    const held = this.ownOutstandingBytes + this.socket.copiedBytes + total;
    if (held > this.limits.maxClientBytes) {
      this.fail('CATTAIL_SERVER_OVER_BUDGET', `frames for this agent alone would hold ${held} bytes, above maxClientBytes ${this.limits.maxClientBytes}`, 'over-budget');
      return false;
    }
    this.bytesWritten += total;
    for (const f of frames) {
      this.ownOutstandingBytes += f.length;
      this.trackOwn(f);
      const done = (): void => {
        this.ownOutstandingBytes -= f.length;
        this.releaseOwn(f);
      };
      if (batch.owner === this) this.hold(f, done);
      else if (!this.socket.write(f, done)) this.quiet = false;
    }
    return true;
  }

  /** Starts collecting this connection's writes; endBatch() sends them. Ends another connection's open batch first. */
  beginBatch(): void {
    if (batch.owner !== undefined && batch.owner !== this) batch.owner.endBatch();
    batch.owner = this;
  }

  /** Sends the batch: one plain write for one buffer, one corked write for several. True when it wrote anything. */
  endBatch(): boolean {
    if (batch.owner !== this) return false;
    batch.owner = undefined;
    const n = batch.bufs.length;
    try {
      if (n > 0 && !(n === 1 ? this.socket.write(batch.bufs[0] as Buffer, batch.done[0]) : this.socket.writeCorked(batch.bufs, batch.done))) this.quiet = false;
    } finally {
      // Emptied even when the write threw: left filled, the next connection's batch sent them.
      batch.bufs.length = 0;
      batch.done.length = 0;
      batch.bytes = 0;
    }
    return n > 0;
  }

  private hold(frame: Buffer, done: (() => void) | undefined): void {
    batch.bufs.push(frame);
    batch.done.push(done);
    batch.bytes += frame.length;
  }

  findCursor(feedId: number): FeedCursor | undefined {
    return this.cursors.find((c) => c.feed.id === feedId);
  }

  private onMessage(buf: Buffer, isBinary: boolean): void {
    if (!this.open) return;
    try {
      if (!isBinary) throw new CattailError('CATTAIL_SERVER_UNEXPECTED_MESSAGE', 'text messages are not part of cattail.v1');
      const m = decodeInbound(buf, this.limits.maxInboundBytes);
      if (this.state === 'handshake') {
        if (this.helloReceived) {
          // The HELLO waits for its turn (the host answers HELLOs in bounded turns); the agent
          // may only give up meanwhile (PROTOCOL.md §4.1).
          if (m.type === 'goodbye' || m.type === 'error') {
            this.closeQuietly(CLOSE_CODES.NORMAL.code);
            return;
          }
          throw new CattailError('CATTAIL_SERVER_UNEXPECTED_MESSAGE', m.type === 'hello' ? 'a second HELLO' : `${m.type} before WELCOME`);
        }
        if (m.type !== 'hello') throw new CattailError('CATTAIL_SERVER_UNEXPECTED_MESSAGE', `the first message must be HELLO, got ${m.type}`);
        this.helloReceived = true;
        this.host.onHello(this, m);
        return;
      }
      switch (m.type) {
        case 'pong':
          this.host.onPong(this, m.t);
          return;
        case 'ack': {
          const cursor = this.findCursor(m.feedId);
          if (cursor === undefined) throw new CattailError('CATTAIL_SERVER_UNEXPECTED_MESSAGE', `ACK for feed id ${m.feedId}, not a feed of this connection`);
          if (m.revision > cursor.revision) throw new CattailError('CATTAIL_SERVER_UNEXPECTED_MESSAGE', `ACK of revision ${m.revision}, never sent (sent up to ${cursor.revision})`);
          this.host.onAck(this, cursor, m.revision);
          return;
        }
        case 'repairRequest': {
          if (!this.repairCapable) throw new CattailError('CATTAIL_SERVER_UNEXPECTED_MESSAGE', 'REPAIR_REQUEST from a client that did not advertise repair.buckets');
          const cursor = this.findCursor(m.feedId);
          if (cursor === undefined) throw new CattailError('CATTAIL_SERVER_UNEXPECTED_MESSAGE', `REPAIR_REQUEST for feed id ${m.feedId}, not a feed of this connection`);
          if (m.revision > cursor.revision) throw new CattailError('CATTAIL_SERVER_UNEXPECTED_MESSAGE', `REPAIR_REQUEST at revision ${m.revision}, never sent (sent up to ${cursor.revision})`);
          this.host.onRepairRequest(this, cursor, m.revision, m.sums);
          return;
        }
        case 'goodbye':
        case 'error':
          this.closeQuietly(CLOSE_CODES.NORMAL.code);
          return;
        default:
          throw new CattailError('CATTAIL_SERVER_UNEXPECTED_MESSAGE', 'a second HELLO');
      }
    } catch (err) {
      this.failWith(err);
    }
  }

  /** Closes with the error's code when it is one an agent may receive (§4.12), else CATTAIL_INTERNAL (4012). */
  failWith(err: unknown): void {
    if (CattailError.is(err) && isClosingErrorCode(err.code)) this.fail(err.code, err.message);
    else this.fail('CATTAIL_INTERNAL', (err as Error).message);
  }

  /**
   * Coded close (§1.3): ERROR (and GOODBYE for deliberate closes) first when the socket takes
   * writes, then the close frame. The fan-out stops writing at once; the sweep terminates the
   * socket if the agent never completes the closing handshake (a stalled agent never reads it).
   */
  fail(errorCode: ClosingErrorCode, message: string, goodbyeReason?: string, reconnectDelayMs?: number, endpoints?: readonly string[]): void {
    if (!this.open) return;
    const code = closeCodeOf(errorCode);
    this.state = 'closing';
    this.closeCode = code;
    const frames: Buffer[] = [];
    if (goodbyeReason !== undefined) {
      // A deliberate close (drain, shed) of an agent that moves on to another replica: without
      // its last STATUS a scoped agent offered older watermarks there (no rebase: a snapshot,
      // which could be older than what it had applied) and an older token here.
      if (this.cursors.length > 0) {
        try {
          frames.push(...this.host.owedStatus(this));
        } catch {
          // Best effort: the GOODBYE and the close go out regardless.
        }
      }
      const goodbye: GoodbyeMessage = { type: 'goodbye', reason: goodbyeReason, message };
      if (reconnectDelayMs !== undefined) goodbye.reconnectDelayMs = reconnectDelayMs;
      if (endpoints !== undefined && endpoints.length > 0) goodbye.endpoints = [...endpoints];
      frames.push(encodeMessage(goodbye));
    }
    frames.push(encodeMessage({ type: 'error', code: errorCode, message }));
    try {
      // Whatever the batch holds was meant to go before the ERROR and the close frame.
      this.endBatch();
      if (this.socket.writable) for (const f of frames) this.socket.write(f);
      // RFC 6455 caps the reason at 123 bytes; it carries the error code (§1.3).
      this.socket.close(code, errorCode.slice(0, 123));
    } catch {
      // A socket that throws on write (a transport bug, often the failure being handled): cut
      // it. fail() never throws, so its callers' own failure handling cannot fail in turn.
      try {
        this.socket.terminate();
      } catch {
        // Already gone.
      }
    }
    this.release();
  }

  private closeQuietly(code: number): void {
    if (!this.open) return;
    this.state = 'closing';
    this.closeCode = code;
    try {
      this.endBatch();
      this.socket.close(code);
    } catch {
      // As in fail(): cut a socket that throws, and leave the feeds regardless (skipped, the
      // cursors stayed in the live lists and took flush writes until the socket's close event).
      try {
        this.socket.terminate();
      } catch {
        // Already gone.
      }
    }
    this.release();
  }

  /** Leaves the feeds' live lists and the snapshot builds: a closing connection gets no more frames. */
  release(): void {
    for (const c of this.cursors) {
      c.feed.leaveLive(c);
      c.snapshot?.unsubscribe();
      c.snapshot = undefined;
    }
  }

  /**
   * Counts frames written for this agent alone outside writeOwn (the catch-up a GOODBYE carries,
   * written by fail() itself) in the process-wide count, until the socket closes: without it,
   * every agent of a shutdown's close-all loop passed the same unchanged count.
   */
  countOwn(frames: readonly Buffer[]): void {
    for (const f of frames) this.trackOwn(f);
  }

  /** `f` is in the process-wide count (limits.ownFrames) until releaseOwn or the socket's close. */
  private trackOwn(f: Buffer): void {
    const ledger = this.limits.ownFrames;
    if (ledger === undefined) return;
    ledger.add(f);
    (this.ownHeld ??= []).push(f);
  }

  /** `f`'s write on this socket is over (sent, or the socket gone): the process-wide count lets it go once. */
  private releaseOwn(f: Buffer): void {
    const held = this.ownHeld;
    if (held === undefined) return;
    const i = held.indexOf(f);
    if (i < 0) return;
    held[i] = held[held.length - 1] as Buffer;
    held.pop();
    this.limits.ownFrames?.release(f);
  }

  /**
   * The transport began the close (seam.ts `closing`): nothing more is written. Before, ws's own
   * close (after the agent's close frame, or a 1002/1008/1009 refusal) left the Connection
   * streaming until the socket closed, and flushes, catch-ups and PINGs went out after the close
   * frame for up to ws's close timeout.
   */
  private onTransportClosing(): void {
    if (!this.open) return;
    this.state = 'closing';
    this.release();
  }

  private onSocketClose(code: number): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (batch.owner === this) this.endBatch();
    // What the socket never sent: not every transport calls a destroyed socket's write callbacks.
    const held = this.ownHeld;
    if (held !== undefined) {
      this.ownHeld = undefined;
      for (const f of held) this.limits.ownFrames?.release(f);
    }
    this.release();
    this.host.onClosed(this, this.closeCode ?? code);
  }
}
