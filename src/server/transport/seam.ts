/**
 * The transport seam: everything the fan-out needs from an agent socket, and nothing more. The
 * fan-out (src/server/fanout) and Connection never touch `ws`, `net`, `http` or uWebSockets.js;
 * a transport (ws-transport.ts, uws-transport.ts) turns its library's sockets into these.
 *
 *   transport ──upgrade──► AcceptHooks.admit() ── refusal ──► 503 + Retry-After (no WebSocket)
 *                               └── admitted ──► WebSocket handshake ──► AcceptHooks.accept(AgentSocket)
 *
 * What crosses the seam is pre-framed bytes: a Buffer holding one or more whole WebSocket frames,
 * framed once (framing.ts wsFramed) and shared by every socket. A transport that can write bytes
 * as they are (ws: the upgraded net.Socket) does so without a copy; one that frames itself (uWS)
 * sends each frame's payload as its own message (see forEachFrame).
 *
 * The peer's identity is captured once at the upgrade (headers, remote address, TLS client
 * certificate) so that authorisation (the mTLS allow-list, tls/identity.ts verifyPeer) is a function
 * of an AgentSocket and never of a transport's internals.
 */
import type { Refusal } from './governor.js';

/** The client certificate's identity of a TLS connection (what an mTLS allow-list matches). */
export interface TlsIdentity {
  /** The peer certificate's subject common name, when it has one. */
  readonly subjectCN: string | undefined;
  /** The peer certificate's URI subject alternative names (SPIFFE IDs and the like). */
  readonly uriSANs: readonly string[];
  /** True when the certificate chains to the server's client CA (node:tls `authorized`). */
  readonly authorized: boolean;
  /** Why it does not, as OpenSSL names it (`CERT_HAS_EXPIRED`, ...); undefined when authorized. */
  readonly authorizationError: string | undefined;
  /** The certificate's SHA-256 fingerprint (colon-separated hex), for logs. */
  readonly fingerprint256: string;
}

/**
 * A peer address as people read it: IPv6 in its canonical short form (uWS writes every group out,
 * `0000:…:0001`), and an IPv4 peer of a dual-stack socket (ANY_HOST), which the kernel reports as
 * IPv4-mapped (`::ffff:a.b.c.d`), as `a.b.c.d`, as an IPv4 socket shows it.
 */
export function peerAddress(address: string): string {
  if (!address.includes(':')) return address;
  let canonical: string;
  try {
    canonical = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  } catch {
    return address;
  }
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
  if (mapped === null) return canonical;
  const hi = Number.parseInt(mapped[1] as string, 16);
  const lo = Number.parseInt(mapped[2] as string, 16);
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

/** Who is on the other end, as seen at the upgrade. */
export interface PeerInfo {
  /** The peer's address (IPv4 peers of a dual-stack socket as plain IPv4, see peerAddress). */
  readonly remoteAddress: string;
  readonly remotePort: number;
  /**
   * The upgrade request's headers, names lower-cased: while the accept hooks run only. Once
   * `hooks.accept` returns, the transport replaces them with `NO_HEADERS` (`releaseHeaders`):
   * nothing reads them later, and kept for an idle connection's life they held about 0.3 KB of
   * heap per agent (heap after GC with 5,000 idle agents, before and after).
   */
  readonly headers: Readonly<Record<string, string>>;
  /** The subprotocol the handshake selected ('' when none). */
  readonly protocol: string;
  /** undefined on a plaintext connection, or on TLS without a client certificate. */
  readonly tls: TlsIdentity | undefined;
}

export const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});

/** The peer as kept after accept: the same identity, without the upgrade's headers. */
export function releaseHeaders(peer: PeerInfo): PeerInfo {
  return peer.headers === NO_HEADERS ? peer : { ...peer, headers: NO_HEADERS };
}

/** What AgentSocket.sink is: write(frames) of AgentSocket, without a callback. */
export interface AgentSink {
  write(frames: Buffer): boolean;
}

/** What an AgentSocket reports back; set once by the Connection that owns it. */
export interface AgentSocketEvents {
  /** One complete inbound WebSocket message (already unmasked and reassembled). */
  message(data: Buffer, isBinary: boolean): void;
  /** bufferedAmount went down after a write could not be taken whole. */
  drain(): void;
  /** The socket is gone; `code` is the close code received, or 1006 when none was. */
  close(code: number): void;
  /**
   * `message` threw (a bug: the Connection catches its own errors). The handler closes the agent
   * with CATTAIL_INTERNAL (4012), so the fault is seen in the closes by code and by the agent,
   * never thrown into the transport's I/O callback (where it would end the process).
   */
  failed(err: unknown): void;
  /**
   * The inbound budget (inbound-budget.ts) chose this socket, holding `heldBytes` of unfinished
   * frames while all sockets held `totalBytes`: close it with CATTAIL_SERVER_OVER_BUDGET (4008).
   * The transport has stopped reading it. Optional: without it the socket is terminated.
   */
  overBudget?(heldBytes: number, totalBytes: number): void;
  /**
   * The transport began the closing handshake itself (the peer's close frame, or its own refusal
   * of a bad frame): its close frame is queued, and nothing may follow it (RFC 6455 §5.5.1). The
   * `close` event comes later, when the socket is gone. Optional: a transport that closes at once
   * (uWS runs its close handler synchronously) never needs it.
   */
  closing?(): void;
}

/**
 * Delivers a message, and a throw from it to `failed`; if that throws too, the socket is ended
 * without ceremony. Shared by the transports so neither lets a handler's exception reach its I/O.
 */
export function deliverMessage(events: AgentSocketEvents | undefined, data: Buffer, isBinary: boolean, terminate: () => void): void {
  try {
    events?.message(data, isBinary);
  } catch (err) {
    reportFailure(events, err, terminate);
  }
}

/** Delivers `closing`, a throw from it going to `failed` as for a message. */
export function deliverClosing(events: AgentSocketEvents | undefined, terminate: () => void): void {
  try {
    events?.closing?.();
  } catch (err) {
    reportFailure(events, err, terminate);
  }
}

/** Delivers `drain`, a throw from it going to `failed` as for a message. */
export function deliverDrain(events: AgentSocketEvents | undefined, terminate: () => void): void {
  try {
    events?.drain();
  } catch (err) {
    reportFailure(events, err, terminate);
  }
}

/** Delivers `overBudget`; a socket nobody owns yet, or whose handler throws, is terminated. */
export function deliverOverBudget(events: AgentSocketEvents | undefined, heldBytes: number, totalBytes: number, terminate: () => void): void {
  if (events?.overBudget === undefined) {
    terminate();
    return;
  }
  try {
    events.overBudget(heldBytes, totalBytes);
  } catch (err) {
    reportFailure(events, err, terminate);
  }
}

/**
 * Delivers `close`. The socket is gone, so a throw (a bug in the fan-out's bookkeeping of a
 * closed connection) can only be reported: as a process warning, never into the transport's I/O
 * callback, where it would end the process and every other agent's connection with it.
 */
export function deliverClose(events: AgentSocketEvents | undefined, code: number): void {
  try {
    events?.close(code);
  } catch (err) {
    warnInternal('an agent socket\'s close handler threw', err, 'the connection is gone, the server goes on');
  }
}

/**
 * Hands an accepted socket to the server; a throw ends that socket alone. The `ws` transport's
 * accepts also run inside its paced turns, which catch; uWS calls `open` from native code.
 */
export function deliverAccept(accept: (s: AgentSocket) => void, s: AgentSocket, terminate: () => void): void {
  try {
    accept(s);
  } catch (err) {
    warnInternal('accepting an agent socket threw', err, 'that socket is ended, the server goes on');
    terminate();
  }
}

/** A process warning coded CATTAIL_INTERNAL; a string one, since Node drops `code` and `detail` from an Error warning. */
function warnInternal(what: string, err: unknown, detail: string): void {
  process.emitWarning(`${what}: ${err instanceof Error ? err.message : String(err)}`, { code: 'CATTAIL_INTERNAL', detail });
}

/** Reports a failed delivery to `events.failed`, ending the socket if that fails as well. */
export function reportFailure(events: AgentSocketEvents | undefined, err: unknown, terminate: () => void): void {
  try {
    if (events === undefined) terminate();
    else events.failed(err);
  } catch {
    terminate();
  }
}

/** One accepted agent socket. */
export interface AgentSocket {
  readonly peer: PeerInfo;
  /** Which transport made it ('ws' or 'uws'), for logs and tests. */
  readonly transport: TransportKind;
  /** False once the socket cannot take more bytes (closed or destroyed). */
  readonly writable: boolean;
  /**
   * Bytes handed to write() and not yet taken by the kernel. The fan-out compares it with
   * socketHighWaterBytes to skip stalled agents.
   */
  readonly bufferedAmount: number;
  /**
   * Of bufferedAmount, the bytes the transport holds as this socket's own copy (uWS copies unsent
   * bytes into a per-socket buffer; ws keeps references to the shared Buffers, so 0). They count
   * against the agent's maxClientBytes budget: they are memory one stuck agent pins.
   */
  readonly copiedBytes: number;
  /**
   * A write that returns true leaves bufferedAmount below this, until the next write (ws: the
   * socket's own 16 KiB writableHighWaterMark; uWS: 1, nothing buffered). It lets the fan-out skip
   * reading bufferedAmount for sockets whose last write returned true and that saw no drain since:
   * on 5,000 sockets that read was ~5 % of a burst's CPU (pointer chasing into each stream).
   */
  readonly quietBytes: number;
  setEvents(events: AgentSocketEvents): void;
  /**
   * Writes one pre-framed buffer (one or more whole WebSocket frames). `onWritten` runs once the
   * transport no longer holds a reference to the buffer (written to the kernel, or copied).
   * Returns false when the transport now holds quietBytes or more (a drain follows).
   */
  write(frames: Buffer, onWritten?: () => void): boolean;
  /**
   * The same as write(frames) without a callback, on the object that does it with the fewest hops
   * (ws: the upgraded stream itself; uWS: this socket). The flush writes one shared Buffer to
   * thousands of these in a tight loop, where every object between it and the kernel is a cache
   * miss after the previous socket's syscall. One object for the socket's life (read once).
   */
  readonly sink: AgentSink;
  /** Writes several pre-framed buffers as one batch: one syscall where the transport can. Returns as write(). */
  writeCorked(frames: readonly Buffer[], onWritten: readonly ((() => void) | undefined)[]): boolean;
  /** Starts the closing handshake with a close frame (code, reason ≤ 123 bytes). */
  close(code: number, reason?: string): void;
  /** Destroys the socket at once (no closing handshake). */
  terminate(): void;
}

export type TransportKind = 'ws' | 'uws';

/** What a transport asks of the server at each upgrade. */
export interface AcceptHooks {
  /** Admission: undefined admits, a refusal becomes 503 + Retry-After before any WebSocket handshake. */
  admit(): Refusal | undefined;
  /** An upgrade this transport refused itself (admission, or the wrong subprotocol), for the metrics. */
  refused(reason: Refusal['reason'] | 'subprotocol'): void;
  /** A completed WebSocket handshake that offered the cattail subprotocol. */
  accept(socket: AgentSocket): void;
}

/**
 * ListenAddress.host for "every address" (the empty host of `--listen :5473`): a dual-stack socket
 * (IPv6 and IPv4) where the node has IPv6, IPv4 alone where it has none. Node's listen() and
 * uWS's both do that when given no host.
 */
export const ANY_HOST = '';

export interface ListenAddress {
  /** An address to bind, or ANY_HOST. */
  readonly host: string;
  readonly port: number;
  /** listen(2) backlog (the kernel caps it at net.core.somaxconn). */
  readonly backlog: number;
}

export interface BoundAddress {
  readonly address: string;
  readonly port: number;
  readonly family: 'IPv4' | 'IPv6';
}

/** The agent port. */
export interface AgentTransport {
  readonly kind: TransportKind;
  /**
   * Work waiting for a paced turn (paced.ts): upgrade requests not yet answered (ws), or sockets
   * with inbound messages waiting (uWS). Bounded by the connections admitted; exported as a gauge.
   */
  readonly pacedWaiting: number;
  listen(at: ListenAddress): Promise<BoundAddress>;
  /** Stops accepting and destroys every socket still open (after the fan-out's own goodbyes). */
  close(): Promise<void>;
}

/** Limits every transport applies before a message reaches the Connection. */
export interface TransportLimits {
  /** Frames above this reach the Connection's own check (4003); see HARD_CAP_FACTOR. */
  readonly maxInboundBytes: number;
  /** Upgrade requests must complete their HTTP headers within this (slow-loris handshakes). */
  readonly handshakeTimeoutMs: number;
  /** Agents admitted; TCP connections are capped a little above it where the transport can. */
  readonly maxConnections?: number;
}

/**
 * Transports refuse inbound frames above maxInboundBytes × this themselves, before buffering them;
 * frames between maxInboundBytes and that reach the Connection and get the protocol's coded 4003,
 * while a huge declared length still cannot make the server buffer it.
 */
export const HARD_CAP_FACTOR = 4;

/**
 * Calls `fn` with the payload of each WebSocket frame in a pre-framed buffer (server frames: never
 * masked), as views without copying. A transport that frames messages itself (uWS) uses this to
 * send a buffer that holds several frames (a DELTA and its STATUS) as several messages.
 * `frameBytes` is the whole frame's length, header included.
 */
export function forEachFrame(buf: Buffer, fn: (payload: Buffer, frameBytes: number) => void): void {
  let off = 0;
  while (off < buf.length) {
    const l7 = (buf[off + 1] as number) & 0x7f;
    let len: number;
    let hl: number;
    if (l7 < 126) {
      len = l7;
      hl = 2;
    } else if (l7 === 126) {
      len = buf.readUInt16BE(off + 2);
      hl = 4;
    } else {
      len = buf.readUInt32BE(off + 2) * 2 ** 32 + buf.readUInt32BE(off + 6);
      hl = 10;
    }
    fn(buf.subarray(off + hl, off + hl + len), hl + len);
    off += hl + len;
  }
}
