/**
 * A discard-mode agent: a full protocol peer that keeps no state. It does the handshake, answers
 * PINGs, ACKs, resumes with the token of its last STATUS after a reconnect, follows GOODBYE and
 * 503 hints — and for SNAPSHOT and DELTA frames reads the 28-byte header only: the revision it
 * reached is in the header, the body (often compressed) is never decoded or inflated.
 *
 * Why: one benchmark worker process must play thousands of agents (Typha's own tests cannot:
 * each client costs a full syncer). Decoding only HELLO's answer, STATUS and PING keeps an agent
 * at a few µs per frame and a few KB of memory, so the load generator is not what is measured.
 * It checks what a header can prove: DELTA `from` equals the revision it holds, and revisions
 * never go backwards; a violation is counted, not hidden.
 *
 * Whatever a server does, an agent's failure is a counted reconnect with backoff, never an
 * exception: one thrown from a timer would end the process and every agent in it.
 */
import { parseRetryAfter } from '../../retry-after.js';
import WebSocket from 'ws';
import { CLOSE_CODES, DEFAULT_MAX_FRAME_BYTES, Flags, HEADER_BYTES, KIND_OF_TYPE, MessageType, PROTOCOL_VERSION, SUBPROTOCOL, closeCodeOf, decodeBody, encodeFrame, isProtocolError, readHeader, type Compression, type Message } from '../../../proto/index.js';
import { decodeWireFrame } from '../../frame-compression.js';
import type { Clock, Timer } from '../../clock.js';
import { Backoff } from '../../backoff.js';
import type { ErrorCode } from '../../errors.js';
import { connectOptions } from '../connect-options.js';
import { replaceHints } from '../endpoints.js';

export interface DiscardAgentOptions {
  readonly node: string;
  readonly feeds: readonly string[];
  /** Servers to rotate through (GOODBYE / 503 hints are tried first). */
  readonly endpoints: readonly string[];
  readonly caps: readonly string[];
  readonly clock: Clock;
  readonly random: () => number;
  /** ACK at most this often per feed, in ms. @default 1000 */
  readonly ackIntervalMs?: number;
  /**
   * Called when a STATUS or SNAPSHOT_END moves an upstream watermark: the benchmark's latency
   * probe (write time at the simulator → receipt here, per resourceVersion).
   */
  readonly onWatermark?: (resource: string, rv: string, previous: string | undefined) => void;
  /**
   * A read impairment, from this agent's first in-sync on (its snapshot is read at full speed, so
   * a benchmark measures a slow reader in steady state, not a slow cold start):
   * `slow` reads at most `readBytesPerSec` bytes per second (the socket is paused between
   * reads, so the kernel's buffers fill and the server sees a slow TCP peer); `stall` stops reading
   * for `stallMs` (no PONG, no ACK: a frozen process), then reads what is left and carries on.
   */
  readonly impairment?: Impairment;
  /** From starting a connection to its WELCOME, in ms; then the agent moves on. @default the client's handshakeTimeoutMs (10 s) */
  readonly handshakeTimeoutMs?: number;
  /** Read timeout as a multiple of the WELCOME's pingIntervalMs (then close 4013). @default the client's readTimeoutFactor (3) */
  readonly readTimeoutFactor?: number;
}

export type Impairment = { readonly kind: 'slow'; readonly readBytesPerSec: number } | { readonly kind: 'stall'; readonly stallMs: number };

export type DiscardMode = 'connecting' | 'snapshot' | 'streaming' | 'waiting' | 'stopped';

/** Counters of one agent; the fleet sums them. */
export interface DiscardStats {
  frames: number;
  bytes: number;
  snapshots: number;
  /** WELCOMEs that continued the agent's state: mode `resume` (same replica) or `rebase` (another one, §7.1). */
  resumes: number;
  deltas: number;
  reconnects: number;
  refusals: number;
  violations: number;
  /** Times the read impairment started (at most once per agent). */
  impaired: number;
}

interface FeedCursor {
  name: string;
  id: number;
  revision: number;
  inSync: boolean;
  token: Buffer | undefined;
  lastAckMs: number;
  ackedRevision: number;
  watermarks: Record<string, string>;
  /** The watermarks and revision of the last STATUS or SNAPSHOT_END: what a rebase may present (§7.1). */
  statusWatermarks: Record<string, string>;
  statusRevision: number;
}

const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 30_000;

/** What this agent ended or could not open a connection for (the server's closes are in closeCodes). */
export type DiscardFailure = Extract<ErrorCode, 'CATTAIL_CLIENT_CONNECT_FAILED' | 'CATTAIL_CLIENT_HANDSHAKE_TIMEOUT' | 'CATTAIL_CLIENT_READ_TIMEOUT'>;

export class DiscardAgent {
  readonly stats: DiscardStats = { frames: 0, bytes: 0, snapshots: 0, resumes: 0, deltas: 0, reconnects: 0, refusals: 0, violations: 0, impaired: 0 };
  /** Close codes of this agent's connections (1006: dropped without a close frame). */
  readonly closeCodes = new Map<number, number>();
  /** Connections this agent could not open or gave up on, by cause; each cost one reconnect. */
  readonly failures = new Map<DiscardFailure, number>();
  mode: DiscardMode = 'connecting';
  private ws: WebSocket | undefined;
  private readonly byName = new Map<string, FeedCursor>();
  private byId = new Map<number, FeedCursor>();
  private readonly backoff: Backoff;
  private timer: Timer | undefined;
  private endpointIndex: number;
  private hinted: string[] = [];
  /** The last GOODBYE's reconnectDelayMs on this connection: no reconnect before it (PROTOCOL.md §1.4). */
  private goodbyeDelayMs: number | undefined;
  private stopped = false;
  private connectedAtMs = 0;
  /** The compression the server chose in WELCOME (END and STATUS bodies may use it). */
  private compression: Compression = 'none';
  /** Feeds whose snapshot is still arriving on this connection. */
  private snapshotsPending = 0;
  /** The impairment is active (from the first in-sync on; a stall ends after stallMs). */
  private impairedNow = false;
  /** Reading time owed by a slow reader, in ms, not yet paid by a pause. */
  private readDebtMs = 0;
  private readTimer: Timer | undefined;
  /** The current connection's handshake timeout, then its read timeout: one timer per agent. */
  private watchdog: Timer | undefined;
  private lastFrameMs = 0;
  private readTimeoutMs = 0;
  /** Largest body accepted: ours (the HELLO announces none: the protocol's default) until WELCOME, then the smaller of it and the server's (§2.2). */
  private maxBodyBytes = DEFAULT_MAX_FRAME_BYTES;

  constructor(private readonly o: DiscardAgentOptions) {
    for (const name of o.feeds) this.byName.set(name, { name, id: -1, revision: 0, inSync: false, token: undefined, lastAckMs: 0, ackedRevision: 0, watermarks: {}, statusWatermarks: {}, statusRevision: -1 });
    this.backoff = new Backoff({ initialMs: RECONNECT_MIN_MS, maxMs: RECONNECT_MAX_MS, jitter: 0.5, random: o.random });
    this.endpointIndex = Math.floor(o.random() * Math.max(1, o.endpoints.length));
  }

  /** True when every feed reached in-sync at the revision its last STATUS named. */
  get inSync(): boolean {
    if (this.mode !== 'streaming') return false;
    for (const f of this.byName.values()) if (!f.inSync) return false;
    return true;
  }

  /** The newest resourceVersion of `resource` this agent holds (numeric; 0 when none yet). */
  watermark(resource: string): number {
    let best = 0;
    for (const f of this.byName.values()) {
      const rv = Number(f.watermarks[resource] ?? 0);
      if (rv > best) best = rv;
    }
    return best;
  }

  /** The revision reached per feed name (for the verifying agents to compare with). */
  revisions(): Record<string, number> {
    return Object.fromEntries([...this.byName.values()].map((f) => [f.name, f.revision]));
  }

  start(): void {
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.mode = 'stopped';
    this.timer?.cancel();
    this.readTimer?.cancel();
    this.watchdog?.cancel();
    this.ws?.terminate();
  }

  /**
   * Drops the connection without a close handshake, as a network blip would; the agent reconnects
   * through its normal path and resumes with its token (the bench's "blip" scenario).
   */
  blip(): void {
    this.ws?.terminate();
  }

  private nextUrl(): string {
    const hint = this.hinted.shift();
    if (hint !== undefined) return hint;
    const url = this.o.endpoints[this.endpointIndex % this.o.endpoints.length] as string;
    return url;
  }

  private connect(): void {
    if (this.stopped) return;
    this.mode = 'connecting';
    this.goodbyeDelayMs = undefined;
    this.maxBodyBytes = DEFAULT_MAX_FRAME_BYTES;
    let ws: WebSocket;
    try {
      // maxPayload: ws's own bound on one message (its default is 100 MiB), here the largest frame
      // the agent takes (header and a body of at most DEFAULT_MAX_FRAME_BYTES) with room to spare.
      ws = new WebSocket(this.nextUrl(), SUBPROTOCOL, { perMessageDeflate: false, maxPayload: 2 * DEFAULT_MAX_FRAME_BYTES });
    } catch {
      // ws refuses some URLs synchronously (a fragment, a host it cannot parse), also hints the
      // filter let through (it checks the scheme only); thrown from this timer, that ended the
      // process and every agent in it.
      this.count('CATTAIL_CLIENT_CONNECT_FAILED');
      this.reconnectAfter(this.backoff.next(), false);
      return;
    }
    this.ws = ws;
    ws.binaryType = 'nodebuffer';
    // ws has no handshake timeout of its own: a server that accepts TCP and answers nothing held
    // the agent for good.
    this.watchdog?.cancel();
    this.watchdog = this.o.clock.setTimeout(() => this.abandon(ws, 'CATTAIL_CLIENT_HANDSHAKE_TIMEOUT'), this.o.handshakeTimeoutMs ?? connectOptions.handshakeTimeoutMs.default);
    let opened = false;
    ws.on('unexpected-response', (_req, res) => {
      this.stats.refusals++;
      const hint = res.headers['x-cattail-endpoints'];
      if (typeof hint === 'string') this.hinted = replaceHints(this.hinted, hint.split(',').map((s) => s.trim()));
      // The shared parser (capped, HTTP-date too): Number() took any value, and a hostile one
      // parked the agent for up to ~25 days.
      const retryAfterMs = parseRetryAfter(res.headers['retry-after'], this.o.clock.now());
      // terminate() still emits 'close' (1006) for this socket; it is not the agent's connection
      // any more, or that handler would count the refusal again as a failed connection and replace
      // the Retry-After wait with a backoff on the next server (PROTOCOL.md §1.1: a client MUST
      // wait at least Retry-After before retrying a server that refused it).
      this.ws = undefined;
      ws.terminate();
      this.reconnectAfter(retryAfterMs !== undefined ? Math.max(retryAfterMs, RECONNECT_MIN_MS) : this.backoff.next(), true);
    });
    ws.on('error', () => {
      // Refused, reset or unresolvable before the upgrade; the 'close' that follows moves on.
      if (!opened && this.ws === ws) this.count('CATTAIL_CLIENT_CONNECT_FAILED');
    });
    ws.on('open', () => {
      opened = true;
      this.connectedAtMs = this.o.clock.monotonic();
      // With resume.watermarks, a feed whose state is still the one of its last STATUS presents
      // that STATUS's watermarks, so another replica can rebase it (§7.1): the bench's replica
      // loss then costs what full agents pay. The agent trusts the server's state as its own.
      const rebase = this.o.caps.includes('resume.watermarks');
      const feeds = [...this.byName.values()].map((f) => {
        if (f.token === undefined) return { name: f.name };
        const present = rebase && f.revision === f.statusRevision && Object.keys(f.statusWatermarks).length > 0;
        return present ? { name: f.name, token: f.token, watermarks: f.statusWatermarks } : { name: f.name, token: f.token };
      });
      ws.send(encodeFrame({ type: 'hello', protocol: PROTOCOL_VERSION, node: this.o.node, clientId: `${this.o.node}-discard`, feeds, caps: [...this.o.caps] }));
    });
    ws.on('message', (data: Buffer) => this.onFrame(ws, data));
    ws.on('close', (code: number) => {
      if (this.ws !== ws || this.stopped) return;
      this.closeCodes.set(code, (this.closeCodes.get(code) ?? 0) + 1);
      // A connection that worked and dropped (a blip) retries the same server first: its resume
      // token is only good there. One that never got to WELCOME moves on to the next server, and
      // so does one that was sent away (GOODBYE), after the delay it was given at the least.
      const goodbye = this.goodbyeDelayMs;
      this.goodbyeDelayMs = undefined;
      if (goodbye !== undefined) this.reconnectAfter(Math.max(goodbye, this.backoff.next()), false);
      else this.reconnectAfter(this.backoff.next(), this.mode === 'streaming' || this.mode === 'snapshot');
    });
  }

  /** `stay`: retry the same server (it refused with Retry-After, or the connection had worked). */
  private reconnectAfter(ms: number, stay: boolean): void {
    if (this.stopped) return;
    this.mode = 'waiting';
    this.stats.reconnects++;
    if (!stay) this.endpointIndex++;
    this.watchdog?.cancel();
    this.watchdog = undefined;
    this.timer?.cancel();
    this.timer = this.o.clock.setTimeout(() => this.connect(), ms);
  }

  /**
   * Ends `ws` from this side and moves on after a backoff, without waiting for the server's close:
   * a server that stopped answering would not answer that either (ws holds a closing socket 30 s).
   * An open socket is sent the close code first (4013), for a server that is only slow.
   */
  private abandon(ws: WebSocket, cause: 'CATTAIL_CLIENT_HANDSHAKE_TIMEOUT' | 'CATTAIL_CLIENT_READ_TIMEOUT'): void {
    if (this.ws !== ws) return;
    this.count(cause);
    this.ws = undefined;
    if (ws.readyState === WebSocket.OPEN) {
      const code = closeCodeOf(cause);
      this.closeCodes.set(code, (this.closeCodes.get(code) ?? 0) + 1);
      ws.close(code);
    }
    ws.terminate();
    this.reconnectAfter(this.backoff.next(), false);
  }

  // One timer per connection that re-arms for the remaining time, as the client's (connection.ts):
  // thousands of agents must not clear and set a timer per frame.
  private armReadTimer(ws: WebSocket, ms: number): void {
    this.watchdog = this.o.clock.setTimeout(() => {
      if (this.ws !== ws) return;
      const now = this.o.clock.monotonic();
      // A read impairment's pause is this agent's silence, not the server's.
      if (this.readTimer !== undefined) this.lastFrameMs = now;
      const idle = now - this.lastFrameMs;
      if (idle >= this.readTimeoutMs) this.abandon(ws, 'CATTAIL_CLIENT_READ_TIMEOUT');
      else this.armReadTimer(ws, this.readTimeoutMs - idle);
    }, ms);
  }

  private count(cause: DiscardFailure): void {
    this.failures.set(cause, (this.failures.get(cause) ?? 0) + 1);
  }

  private onFrame(ws: WebSocket, data: Buffer): void {
    this.stats.frames++;
    this.stats.bytes += data.length;
    this.lastFrameMs = this.o.clock.monotonic();
    if (this.impairedNow && this.o.impairment?.kind === 'slow') this.throttle(ws, data.length, this.o.impairment.readBytesPerSec);
    let header;
    try {
      header = readHeader(data);
    } catch (err) {
      this.stats.violations++;
      ws.close(closeFor(err));
      return;
    }
    // Bodies are not read here (only counted), but a frame above the connection's limit is
    // refused all the same (PROTOCOL.md §2.2).
    if (header.bodyLength > this.maxBodyBytes) {
      this.stats.violations++;
      ws.close(CLOSE_CODES.FRAME_TOO_LARGE.code);
      return;
    }
    switch (header.type) {
      case MessageType.SNAPSHOT_BEGIN:
      case MessageType.SNAPSHOT_CHUNK:
        return;
      case MessageType.SNAPSHOT_END: {
        const f = this.byId.get(header.feedId);
        if (f === undefined) return;
        f.revision = header.toRevision;
        this.stats.snapshots++;
        if (--this.snapshotsPending === 0) this.mode = 'streaming';
        // END is small and carries the status and resume token of the snapshot's revision.
        this.onSmallMessage(ws, header, data);
        return;
      }
      case MessageType.DELTA: {
        const f = this.byId.get(header.feedId);
        if (f === undefined) return;
        // A multi-frame unit repeats from/to on every frame; only the revision it reaches matters.
        if (header.fromRevision !== f.revision && header.toRevision !== f.revision) this.stats.violations++;
        if (header.toRevision < f.revision) this.stats.violations++;
        if (header.toRevision !== f.revision) this.stats.deltas++;
        f.revision = header.toRevision;
        // ACK whole units only: the revision is applied when the unit's last frame arrives.
        if ((header.flags & Flags.MORE) === 0) this.maybeAck(ws, f);
        return;
      }
      default:
        this.onSmallMessage(ws, header, data);
    }
  }

  /** WELCOME, STATUS, PING, GOODBYE, ERROR: small bodies, decoded. */
  private onSmallMessage(ws: WebSocket, header: ReturnType<typeof readHeader>, data: Buffer): void {
    let m: Message;
    try {
      // END and large STATUS bodies may be compressed with the connection's algorithm; one that
      // inflates past the limit is refused (4003), as §2.2 requires of every client.
      m = (header.flags & Flags.COMPRESSED) !== 0
        ? decodeWireFrame(data, this.compression, { maxBodyBytes: this.maxBodyBytes })
        : decodeBody(header, data.subarray(HEADER_BYTES, HEADER_BYTES + header.bodyLength));
    } catch (err) {
      this.stats.violations++;
      ws.close(closeFor(err));
      return;
    }
    switch (m.type) {
      case 'welcome':
        this.compression = m.compression;
        this.byId = new Map();
        this.snapshotsPending = m.feeds.filter((wf) => wf.mode === 'snapshot').length;
        this.mode = this.snapshotsPending > 0 ? 'snapshot' : 'streaming';
        for (const wf of m.feeds) {
          const f = this.byName.get(wf.name);
          if (f === undefined) continue;
          f.id = wf.id;
          f.inSync = false;
          this.byId.set(wf.id, f);
          if (wf.mode === 'resume') this.stats.resumes++;
          else if (wf.mode === 'rebase' && wf.revision !== undefined) {
            this.stats.resumes++;
            f.revision = wf.revision;
          } else f.revision = 0;
        }
        this.backoff.reset();
        this.maxBodyBytes = Math.min(DEFAULT_MAX_FRAME_BYTES, m.maxFrameBytes);
        this.watchdog?.cancel();
        this.readTimeoutMs = Math.max(1, m.pingIntervalMs) * (this.o.readTimeoutFactor ?? connectOptions.readTimeoutFactor.default);
        this.lastFrameMs = this.o.clock.monotonic();
        this.armReadTimer(ws, this.readTimeoutMs);
        return;
      case 'snapshotEnd':
      case 'status': {
        const f = this.byId.get(m.feedId);
        if (f === undefined) return;
        if (this.o.onWatermark !== undefined) {
          for (const [resource, rv] of Object.entries(m.watermarks)) {
            const previous = f.watermarks[resource];
            if (previous !== rv) {
              f.watermarks[resource] = rv;
              this.o.onWatermark(resource, rv, previous);
            }
          }
        }
        f.token = Buffer.from(m.token);
        f.statusWatermarks = { ...m.watermarks };
        f.statusRevision = m.revision;
        f.inSync = m.status === 'in-sync' && m.revision === f.revision;
        // Hints are for one reconnect (endpoints.ts): the peers named now may be gone by the next.
        if (this.hinted.length > 0 && this.inSync) this.hinted = [];
        this.maybeAck(ws, f);
        if (this.o.impairment !== undefined && this.stats.impaired === 0 && this.inSync) this.impair(ws, this.o.impairment);
        return;
      }
      case 'ping':
        ws.send(encodeFrame({ type: 'pong', t: m.t }));
        return;
      case 'goodbye':
        if (m.endpoints !== undefined) this.hinted = replaceHints(this.hinted, m.endpoints);
        this.goodbyeDelayMs = m.reconnectDelayMs;
        return;
      default:
        if (KIND_OF_TYPE[header.type] === undefined) this.stats.violations++;
    }
  }

  /** Starts the impairment (once per agent, at its first in-sync). */
  private impair(ws: WebSocket, imp: Impairment): void {
    this.stats.impaired++;
    this.impairedNow = true;
    if (imp.kind === 'slow') return;
    // ws.pause() stops reading the socket: frames stay in the kernel, which stops the sender.
    ws.pause();
    this.readTimer = this.o.clock.setTimeout(() => {
      this.impairedNow = false;
      this.readTimer = undefined;
      // The connection may be gone (the server closed it; the kernel still holds its end).
      if (this.ws === ws) ws.resume();
    }, imp.stallMs);
  }

  /**
   * A slow reader: each frame costs `bytes / readBytesPerSec` of reading time, paid by pausing the
   * socket. Frames already parsed from the chunk that triggered a pause still arrive; their cost
   * is added to the debt and paid by the next pause, so the long-run rate is the configured one.
   */
  private throttle(ws: WebSocket, bytes: number, readBytesPerSec: number): void {
    this.readDebtMs += (bytes * 1000) / readBytesPerSec;
    if (this.readTimer !== undefined || this.readDebtMs < 1) return;
    const pay = (): void => {
      const ms = this.readDebtMs;
      this.readDebtMs = 0;
      ws.pause();
      this.readTimer = this.o.clock.setTimeout(() => {
        this.readTimer = undefined;
        if (this.ws !== ws) return;
        if (this.readDebtMs >= 1) pay();
        else ws.resume();
      }, ms);
    };
    pay();
  }

  private maybeAck(ws: WebSocket, f: FeedCursor): void {
    const now = this.o.clock.monotonic();
    if (f.revision === f.ackedRevision || now - f.lastAckMs < (this.o.ackIntervalMs ?? 1_000)) return;
    f.lastAckMs = now;
    f.ackedRevision = f.revision;
    ws.send(encodeFrame({ type: 'ack', feedId: f.id, revision: f.revision }));
  }

  /** Milliseconds since the current connection opened (0 when not connected). */
  connectedForMs(): number {
    return this.mode === 'streaming' ? this.o.clock.monotonic() - this.connectedAtMs : 0;
  }
}

/** The close code for a frame the codec refused: its own (4000 malformed, 4001, 4002, 4003), else 4000. */
function closeFor(err: unknown): number {
  return isProtocolError(err) ? err.closeCode : CLOSE_CODES.MALFORMED_FRAME.code;
}
