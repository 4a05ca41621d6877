/**
 * One agent connection: its socket, its per-feed cursors, and the protocol rules for what the agent
 * may send. It owns no timers: handshake, pong and fall-behind deadlines are plain numbers checked
 * by the fan-out's one shared sweep (thousands of sockets, one interval; ws/undici pattern).
 *
 *   handshake ──HELLO ok──► streaming ──(coded close | peer close)──► closed
 *       └──── no HELLO by handshakeDeadlineMs ──► 4004
 *
 * Writes bypass ws's Sender: frames arrive here already WebSocket-framed (wire.ts) and go straight
 * to the upgraded socket, corked so one flush is one syscall per socket. That is safe because ws
 * writes only whole frames (permessage-deflate is off, so its Sender never queues), so our frames
 * and its control frames never interleave mid-frame.
 */
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import type { FeedRuntime } from '../fanout/feeds.js';
import type { SnapshotBuild } from '../fanout/snapshot-cache.js';
import type { HelloMessage } from '../../../proto/index.js';
import { type Compression, CloseCode, InboundError, decodeInbound, encodeMessage } from './framing.js';

export interface FeedCursor {
  readonly feed: FeedRuntime;
  /** The revision the agent will be at once everything written so far arrives. */
  revision: number;
  phase: 'snapshot' | 'live';
  /** `startedMs`: monotonic ms the send began (snapshot send duration). */
  snapshot: { build: SnapshotBuild; next: number; unsubscribe: () => void; startedMs: number } | undefined;
  statusKey: string | undefined;
  /** Monotonic ms since when the agent lacks a flushed revision (undefined: caught up). */
  behindSinceMs: number | undefined;
  /** The fall-behind rule does not apply before this (post-snapshot grace). */
  graceUntilMs: number;
  graceCounted: boolean;
  ackedRevision: number;
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
  onPong(conn: Connection, t: number): void;
  onClosed(conn: Connection, code: number): void;
  onDrain(conn: Connection): void;
}

export interface ConnectionLimits {
  readonly maxInboundBytes: number;
  readonly maxClientBytes: number;
  readonly compressMinBytes: number;
}

let nextConnId = 1;

export class Connection {
  readonly id = nextConnId++;
  state: 'handshake' | 'streaming' | 'closing' | 'closed' = 'handshake';
  compression: Compression = 'none';
  maxBodyBytes = 0;
  readonly cursors: FeedCursor[] = [];
  node = '';
  clientId = '';
  handshakeDeadlineMs: number;
  lastPongMs = 0;
  nextPingMs = 0;
  closeDeadlineMs = 0;
  /** Bytes written for this agent alone and not yet flushed by the kernel (its budget). */
  ownOutstandingBytes = 0;
  /** Set when a flush skipped it or a snapshot stalled on its buffer; cleared by a catch-up. */
  needsService = false;
  closeCode: number | undefined;
  /** Wall-clock ms (injected clock) when the fan-out took this connection; shown by /debug/clients. */
  connectedAtMs = 0;
  /**
   * Bytes handed to the socket for this agent, shared frames included. One addition per write
   * call (not per frame's write callback), so the hot path pays nothing it did not already.
   */
  bytesWritten = 0;
  /**
   * The verified client certificate's identity (CN or URI SAN) on a TLS agent port; undefined on
   * a cleartext port. Set at the upgrade by the TLS path; /debug/clients shows it.
   */
  tlsIdentity: string | undefined = undefined;

  constructor(
    readonly ws: WebSocket,
    readonly socket: Socket,
    private readonly host: ConnectionHost,
    private readonly limits: ConnectionLimits,
    nowMs: number,
    handshakeTimeoutMs: number,
  ) {
    this.handshakeDeadlineMs = nowMs + handshakeTimeoutMs;
    ws.on('message', (data, isBinary) => this.onMessage(data as Buffer | Buffer[] | ArrayBuffer, isBinary));
    ws.on('close', (code) => this.onWsClose(code));
    // ws reports protocol errors (bad masking, oversize above its hard cap) here and closes by itself.
    ws.on('error', () => undefined);
    socket.on('drain', () => {
      if (this.state === 'streaming') this.host.onDrain(this);
    });
  }

  /** Bytes written to the socket that the kernel has not taken yet (the socket's userland buffer). */
  get writableBytes(): number {
    return this.socket.writableLength;
  }

  /** `address:port` of the peer (`[v6]:port` for IPv6); undefined once the socket is gone. */
  get remoteAddress(): string | undefined {
    const { remoteAddress: a, remotePort: p } = this.socket;
    if (a === undefined) return undefined;
    return a.includes(':') ? `[${a}]:${p ?? 0}` : `${a}:${p ?? 0}`;
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

  /** Writes frames shared with other sockets (not counted against the agent's budget). */
  writeShared(frames: readonly Buffer[]): number {
    let n = 0;
    for (const f of frames) {
      this.socket.write(f);
      n += f.length;
    }
    this.bytesWritten += n;
    return n;
  }

  /**
   * Writes frames built for this agent alone. Returns false (and closes with 4008) when they would
   * take the agent over its byte budget: per-agent bytes are what a stuck agent can pin.
   */
  writeOwn(frames: readonly Buffer[]): boolean {
    let total = 0;
    for (const f of frames) total += f.length;
    if (this.ownOutstandingBytes + total > this.limits.maxClientBytes) {
      this.fail(CloseCode.OVER_BUDGET, 'CATTAIL_SERVER_OVER_BUDGET', `frames for this agent alone would hold ${this.ownOutstandingBytes + total} bytes, above maxClientBytes ${this.limits.maxClientBytes}`, 'over-budget');
      return false;
    }
    this.bytesWritten += total;
    for (const f of frames) {
      this.ownOutstandingBytes += f.length;
      this.socket.write(f, () => {
        this.ownOutstandingBytes -= f.length;
      });
    }
    return true;
  }

  cork(): void {
    this.socket.cork();
  }

  uncork(): void {
    this.socket.uncork();
  }

  findCursor(feedId: number): FeedCursor | undefined {
    return this.cursors.find((c) => c.feed.id === feedId);
  }

  private onMessage(data: Buffer | Buffer[] | ArrayBuffer, isBinary: boolean): void {
    if (!this.open) return;
    try {
      if (!isBinary) throw new InboundError(CloseCode.UNEXPECTED_MESSAGE, 'CATTAIL_SERVER_UNEXPECTED_MESSAGE', 'text messages are not part of cattail.v1');
      const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      const m = decodeInbound(buf, this.limits.maxInboundBytes);
      if (this.state === 'handshake') {
        if (m.type !== 'hello') throw new InboundError(CloseCode.UNEXPECTED_MESSAGE, 'CATTAIL_SERVER_UNEXPECTED_MESSAGE', `the first message must be HELLO, got ${m.type}`);
        this.host.onHello(this, m);
        return;
      }
      switch (m.type) {
        case 'pong':
          this.host.onPong(this, m.t);
          return;
        case 'ack': {
          const cursor = this.findCursor(m.feedId);
          if (cursor === undefined) throw new InboundError(CloseCode.UNEXPECTED_MESSAGE, 'CATTAIL_SERVER_UNEXPECTED_MESSAGE', `ACK for feed id ${m.feedId}, not a feed of this connection`);
          if (m.revision > cursor.revision) throw new InboundError(CloseCode.UNEXPECTED_MESSAGE, 'CATTAIL_SERVER_UNEXPECTED_MESSAGE', `ACK of revision ${m.revision}, never sent (sent up to ${cursor.revision})`);
          this.host.onAck(this, cursor, m.revision);
          return;
        }
        case 'goodbye':
        case 'error':
          this.closeQuietly(CloseCode.NORMAL);
          return;
        default:
          throw new InboundError(CloseCode.UNEXPECTED_MESSAGE, 'CATTAIL_SERVER_UNEXPECTED_MESSAGE', 'a second HELLO');
      }
    } catch (err) {
      if (err instanceof InboundError) this.fail(err.closeCode, err.errorCode, err.message);
      else this.fail(CloseCode.INTERNAL_ERROR, 'CATTAIL_INTERNAL', (err as Error).message);
    }
  }

  /**
   * Coded close (§1.3): ERROR (and GOODBYE for deliberate closes) first when the socket takes
   * writes, then the close frame. The fan-out stops writing at once; the sweep terminates the
   * socket if the agent never completes the closing handshake (a stalled agent never reads it).
   */
  fail(code: number, errorCode: string, message: string, goodbyeReason?: string, reconnectDelayMs?: number): void {
    if (!this.open) return;
    this.state = 'closing';
    this.closeCode = code;
    const frames: Buffer[] = [];
    if (goodbyeReason !== undefined) {
      frames.push(encodeMessage(reconnectDelayMs === undefined ? { type: 'goodbye', reason: goodbyeReason, message } : { type: 'goodbye', reason: goodbyeReason, message, reconnectDelayMs }));
    }
    frames.push(encodeMessage({ type: 'error', code: errorCode, message }));
    try {
      if (!this.socket.destroyed) for (const f of frames) this.socket.write(f);
      // RFC 6455 caps the reason at 123 bytes; it carries the error code (§1.3).
      this.ws.close(code, errorCode.slice(0, 123));
    } catch {
      this.ws.terminate();
    }
    this.releaseSnapshots();
  }

  private closeQuietly(code: number): void {
    if (!this.open) return;
    this.state = 'closing';
    this.closeCode = code;
    this.ws.close(code);
    this.releaseSnapshots();
  }

  releaseSnapshots(): void {
    for (const c of this.cursors) {
      c.snapshot?.unsubscribe();
      c.snapshot = undefined;
    }
  }

  private onWsClose(code: number): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.releaseSnapshots();
    this.host.onClosed(this, this.closeCode ?? code);
  }
}
