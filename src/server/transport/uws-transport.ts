/**
 * The uWebSockets.js transport (`--transport uws`): the same seam as ws-transport.ts over uWS's
 * native event loop integration. On the reference machine uWS wrote the same frames to 1,000-5,000
 * sockets at 0.89-0.92x the CPU of a plain Node `net` server, which `ws` cannot go below.
 *
 * uWS frames messages itself, so a pre-framed buffer is cut back into its frames' payloads
 * (forEachFrame) and each goes out with `send`; several frames (a DELTA and its STATUS) go inside
 * one `cork`, one syscall. The quirks it is built around (measured, see DESIGN.md "Transports"):
 *  - uWS copies whatever the kernel does not take into a per-socket buffer. So what it has not
 *    taken waits in our own queue as references (uws-outbound.ts), and uWS gets at most one 64 KiB
 *    piece at a time, only while it holds nothing: longer messages go as WebSocket fragments.
 *    What uWS holds is the agent's own memory and counts in its maxClientBytes budget
 *    (AgentSocket.copiedBytes); the fan-out's high-water mark bounds queue and copy together.
 *  - Sending from inside its `drain` callback left sockets stalled until uWS's ~4 s timer sweep;
 *    drains are handed to the fan-out on the next turn (setImmediate), never re-entrantly.
 *  - `publish` defers writes to the end of the loop iteration and skips slow subscribers above
 *    maxBackpressure (it drops messages); per-socket `send` writes at once and is never dropped
 *    below maxBackpressure, which is set above anything the fan-out lets a socket hold.
 *  - No listen backlog option: uSockets passes a fixed 512 to listen(2), so `listenBacklog` does
 *    not apply; no HTTP header timeout option: uWS closes an HTTP request idle for ~10 s.
 *  - uSockets binds with SO_REUSEPORT unless told LIBUS_LISTEN_EXCLUSIVE_PORT (a second server on
 *    the same port would silently share it), and binds port 0 without SO_REUSEADDR (a restart on
 *    that port then fails while old connections sit in TIME_WAIT). So: exclusive, and port 0 is
 *    resolved to a free port first.
 * Plaintext only: uWS's SSLApp verifies a client certificate's chain when given a CA file, but
 * admits clients without one and exposes no peer certificate to JavaScript, so the subject CN /
 * URI SAN allow-list of mTLS cannot be enforced on it (see docs/transport.md); startServer refuses
 * the TLS options with this transport (CATTAIL_SERVER_TLS_UNSUPPORTED).
 */
import { createServer } from 'node:net';
import { SUBPROTOCOL } from './framing.js';
import {
  ANY_HOST, type AcceptHooks, type AgentSink, type AgentSocket, type AgentSocketEvents, type AgentTransport, type BoundAddress, HARD_CAP_FACTOR,
  type ListenAddress, type PeerInfo, type TransportLimits, deliverAccept, deliverClose, deliverDrain, forEachFrame, peerAddress, releaseHeaders, reportFailure,
} from './seam.js';
import { type UwsHttpRequest, type UwsHttpResponse, type UwsModule, type UwsWebSocket, loadUws } from './uws-loader.js';
import { SEND_DROPPED, UWS_PIECE_BYTES, UwsOutbound, sendMessage } from './uws-outbound.js';
import { type InboundTarget, InboundPacer } from './inbound-pacer.js';
import { PingBound } from './ping-bound.js';


interface UserData {
  peer: PeerInfo;
  socket: UwsAgentSocket | undefined;
}

/** How long a closing socket may take to send its last bytes after the transport closes. */
const CLOSING_GRACE_MS = 2_000;

/**
 * The payloads of the last pre-framed buffer cut into its frames, kept for the next write: the
 * flush writes one shared buffer to thousands of sockets in a row, so it is cut once per flush,
 * not once per socket. Holds one buffer at most.
 */
const lastCut = { buf: undefined as Buffer | undefined, payloads: [] as Buffer[] };

function payloadsOf(buf: Buffer): readonly Buffer[] {
  if (lastCut.buf !== buf) {
    const payloads: Buffer[] = [];
    forEachFrame(buf, (p) => payloads.push(p));
    lastCut.buf = buf;
    lastCut.payloads = payloads;
  }
  return lastCut.payloads;
}

/** What a socket's sendCorked sends (set right before each cork, which runs it at once). */
let corkedPayloads: readonly Buffer[] = [];

class UwsAgentSocket implements AgentSocket, InboundTarget {
  readonly transport = 'uws';
  /** Messages waiting for a paced turn (inbound-pacer.ts owns them). */
  readonly inbound: { data: Buffer; isBinary: boolean }[] = [];
  inboundBytes = 0;
  readonly quietBytes = 1;
  private events: AgentSocketEvents | undefined;
  private closed = false;
  private drainScheduled = false;
  /** What uWS has not taken yet, as references (uws-outbound.ts): large messages, and all behind a backlog. */
  private readonly out: UwsOutbound;
  /**
   * uWS held bytes after our last look (a drain will come): writes then queue behind them in
   * `out`, so uWS never appends (copies) a whole message to a socket that is not keeping up.
   * It can be stale the other way: bytes uWS adds on its own (an automatic pong the kernel did
   * not take) are seen at the next settle(). Then one short write goes straight to uWS, which
   * appends it in order: one copy of at most a piece, and no read of uWS's buffer per write.
   */
  private backlogged = false;
  /** A close asked for while bytes were still queued: sent once they are handed to uWS. */
  private closeAfter: { code: number; reason: string | undefined } | undefined;
  /** WebSocket pings answered while this peer reads nothing (ping-bound.ts). */
  private readonly pings = new PingBound();

  constructor(
    private readonly ws: UwsWebSocket,
    /** Its headers are released after accept (seam.ts PeerInfo). */
    public peer: PeerInfo,
    private readonly untrack: (s: UwsAgentSocket) => void,
    private readonly pacer: InboundPacer,
  ) {
    this.out = new UwsOutbound(ws, { onDropped: () => this.terminate() });
  }

  setEvents(events: AgentSocketEvents): void {
    this.events = events;
  }

  get writable(): boolean {
    return !this.closed;
  }

  get bufferedAmount(): number {
    return this.closed ? 0 : this.ws.getBufferedAmount() + this.out.queuedBytes;
  }

  /** What uWS holds is its own copy; the queue holds references to shared Buffers. */
  get copiedBytes(): number {
    return this.closed ? 0 : this.ws.getBufferedAmount();
  }

  get sink(): AgentSink {
    return this;
  }

  write(frames: Buffer, onWritten?: () => void): boolean {
    if (this.closed) onWritten?.();
    // The flush's common case: nothing held, a short buffer (a DELTA and its STATUS), sent at once.
    else if (!this.backlogged && this.out.empty && frames.length <= UWS_PIECE_BYTES) {
      // No closure per write: the cork callback is made once per socket and told what to send
      // in a module variable (the flush calls this for thousands of sockets per change).
      corkedPayloads = payloadsOf(frames);
      this.ws.cork(this.sendCorked);
      // uWS has either handed the bytes to the kernel or copied them: it holds no reference.
      onWritten?.();
    } else this.out.push(frames, onWritten);
    return this.settle();
  }

  /** Through the queue, which already sends short messages together in one cork (not a hot path). */
  writeCorked(frames: readonly Buffer[], onWritten: readonly ((() => void) | undefined)[]): boolean {
    for (let i = 0; i < frames.length; i++) this.out.push(frames[i] as Buffer, onWritten[i]);
    return this.settle();
  }

  /** Notes whether uWS now holds bytes; true when nothing is held anywhere (the write's return). */
  private settle(): boolean {
    if (this.closed) return true;
    this.backlogged = this.ws.getBufferedAmount() > 0;
    if (this.closeAfter !== undefined && this.out.empty) {
      const { code, reason } = this.closeAfter;
      this.closeAfter = undefined;
      this.ws.end(code, reason);
      return true;
    }
    return !this.backlogged && this.out.empty;
  }

  private readonly sendCorked = (): void => {
    // Read once: a send that ends this socket runs close handlers that may write elsewhere.
    const payloads = corkedPayloads;
    for (let i = 0; i < payloads.length; i++) this.sendPayload(payloads[i] as Buffer);
  };

  /** One whole message, now. */
  private sendPayload(payload: Buffer): void {
    if (this.closed) return;
    // A dropped message would leave a gap in the agent's stream: end the connection instead
    // (the agent reconnects and resumes). maxBackpressure is sized so this does not happen.
    if (sendMessage(this.ws, 'whole', payload) === SEND_DROPPED) this.terminate();
  }

  /** Set once close() started the closing handshake (the close frame goes behind what was written). */
  ending = false;

  close(code: number, reason?: string): void {
    if (this.closed || this.ending) return;
    this.ending = true;
    // As over ws, the close frame follows every byte written before it.
    if (this.out.empty) this.ws.end(code, reason);
    else this.closeAfter = { code, reason };
  }

  terminate(): void {
    if (this.closed) return;
    this.ws.close();
  }

  // ---- called by the transport from uWS's handlers ----

  onMessage(data: ArrayBuffer, isBinary: boolean): void {
    // uWS neuters the ArrayBuffer when the handler returns; the Connection may keep slices of it,
    // and the pacer may hold it for a later turn.
    this.pacer.message(this, Buffer.from(new Uint8Array(data)), isBinary);
  }

  deliver(data: Buffer, isBinary: boolean): void {
    this.events?.message(data, isBinary);
  }

  /**
   * A delivery threw (inbound-pacer.ts): reported as over ws (seam.ts reportFailure: the agent is
   * closed with CATTAIL_INTERNAL); the messages it sent after it are dropped with the connection.
   */
  failed(err: unknown): void {
    reportFailure(this.events, err, () => this.terminate());
  }

  /** A WebSocket ping came in, which uWS answers by itself (ping-bound.ts: why it is bounded). */
  onPing(bufferedBytes: number): void {
    if (this.pings.ping(bufferedBytes)) this.terminate();
  }

  onDrain(): void {
    this.pings.drained();
    if (this.drainScheduled) return;
    this.drainScheduled = true;
    setImmediate(() => {
      this.drainScheduled = false;
      if (this.closed) return;
      this.out.pump();
      this.settle();
      if (!this.closed) deliverDrain(this.events, () => this.terminate());
    });
  }

  onClose(code: number): void {
    if (this.closed) return;
    this.closed = true;
    this.out.drop();
    this.untrack(this);
    // Messages still waiting for their turn come first (an ACK counts for the convergence
    // barrier); anything they write is dropped, the socket being closed.
    this.pacer.closing(this);
    deliverClose(this.events, code === 0 ? 1005 : code);
  }
}

/**
 * A port the kernel picks as free on `host` (closed again before uWS binds it), and the address
 * Node bound for it: for ANY_HOST that is `::` where the kernel has IPv6 and `0.0.0.0` where it has
 * none, the same choice uWS makes when given no host (it does not say which it made).
 */
function probePort(host: string): Promise<{ port: number; address: string }> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host === ANY_HOST ? undefined : host, () => {
      const a = srv.address();
      srv.close(() => (a !== null && typeof a === 'object' ? resolve({ port: a.port, address: a.address }) : reject(new Error('no port'))));
    });
  });
}

/**
 * Why uWS could not listen: uWS reports only failure, so Node tries the same address and its
 * error code (EADDRINUSE, EACCES, EADDRNOTAVAIL) goes into the message and `code`. A supervisor
 * (the fleet harness, an operator's script) tells "in use, try again" from "not permitted" by it,
 * as it does over `ws`; with only "in use, or not permitted" it could not.
 */
function whyNoListen(host: string, port: number): Promise<Error> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', (err: NodeJS.ErrnoException) => {
      resolve(Object.assign(new Error(`uWS could not listen on ${host}:${port}: ${err.code ?? 'unknown'} (${err.message})`), { code: err.code }));
    });
    srv.listen({ port, exclusive: true, ...(host === ANY_HOST ? {} : { host }) }, () => {
      srv.close(() => resolve(new Error(`uWS could not listen on ${host}:${port}, though Node could bind it just after (a uWS limit, or the address was freed meanwhile)`)));
    });
  });
}

export interface UwsTransportOptions {
  readonly hooks: AcceptHooks;
  readonly limits: TransportLimits;
  /**
   * uWS's maxBackpressure: above this a send is dropped, so it must exceed anything the fan-out
   * lets one socket hold (high-water mark + a frame + the agent's own budget).
   */
  readonly maxBufferedBytes: number;
}

export class UwsTransport implements AgentTransport {
  readonly kind = 'uws';

  get pacedWaiting(): number {
    return this.pacer.socketsWaiting;
  }

  /** Which uWS build runs (package and binary). */
  readonly source: string;
  private readonly uws: UwsModule;
  private readonly sockets = new Set<UwsAgentSocket>();
  private listenSocket: unknown;
  /** Inbound messages in bounded time per turn (a storm's HELLOs arrive in one poll phase). */
  private readonly pacer: InboundPacer;

  /** Throws CATTAIL_SERVER_TRANSPORT_UNAVAILABLE when no uWS build loads. */
  constructor(private readonly o: UwsTransportOptions) {
    const loaded = loadUws();
    this.uws = loaded.module;
    this.source = loaded.source;
    this.pacer = new InboundPacer({ maxQueuedBytes: o.limits.maxInboundBytes });
  }

  private onUpgrade(res: UwsHttpResponse, req: UwsHttpRequest, context: unknown): void {
    const refusal = this.o.hooks.admit();
    if (refusal !== undefined) {
      this.o.hooks.refused(refusal.reason);
      // The same answer as the ws transport's: status, Retry-After, the peers to try, reason and detail.
      res.cork(() => {
        res.writeStatus('503 Service Unavailable').writeHeader('Retry-After', String(refusal.retryAfterSeconds));
        if (refusal.endpoints.length > 0) res.writeHeader('X-Cattail-Endpoints', refusal.endpoints.join(','));
        res.writeHeader('Content-Type', 'text/plain').end(`${refusal.reason}: ${refusal.detail}\n`, true);
      });
      return;
    }
    // Repeated header lines joined as Node joins them (", "): RFC 6455 §11.3.4 lets a client offer
    // its subprotocols over several Sec-WebSocket-Protocol lines, and keeping the last one alone
    // refused with 4001 a client `ws` accepted.
    const headers: Record<string, string> = {};
    req.forEach((k, v) => (headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`));
    const offered = (headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim()).filter((p) => p !== '');
    // As in ws-transport: an agent offering only other subprotocols gets its first one echoed, so
    // the upgrade completes and it sees the coded 4001 instead of a bare failed handshake.
    const protocol = offered.includes(SUBPROTOCOL) ? SUBPROTOCOL : (offered[0] ?? '');
    const peer: PeerInfo = { remoteAddress: peerAddress(Buffer.from(res.getRemoteAddressAsText()).toString()), remotePort: 0, headers, protocol, tls: undefined };
    const userData: UserData = { peer, socket: undefined };
    res.upgrade(userData as never, headers['sec-websocket-key'] ?? '', protocol, '', context);
  }

  async listen(at: ListenAddress): Promise<BoundAddress> {
    const probe = at.port === 0 || at.host === ANY_HOST ? await probePort(at.host) : undefined;
    const port = at.port === 0 ? (probe as { port: number }).port : at.port;
    const app = this.uws.App();
    app.ws('/*', {
      maxPayloadLength: this.o.limits.maxInboundBytes * HARD_CAP_FACTOR,
      // Liveness is the protocol's own PING/PONG (sweep.ts), deadlines are the sweep's.
      idleTimeout: 0,
      sendPingsAutomatically: false,
      maxBackpressure: this.o.maxBufferedBytes,
      closeOnBackpressureLimit: false,
      compression: 0,
      upgrade: (res, req, context) => this.onUpgrade(res, req, context),
      open: (ws) => {
        const ud = ws.getUserData() as unknown as UserData;
        const s = new UwsAgentSocket(ws, ud.peer, (x) => this.sockets.delete(x), this.pacer);
        ud.socket = s;
        this.sockets.add(s);
        deliverAccept(this.o.hooks.accept, s, () => s.terminate());
        // uWS keeps the user data for the socket's life: neither it nor the socket keeps the headers.
        s.peer = releaseHeaders(s.peer);
        ud.peer = s.peer;
      },
      message: (ws, message, isBinary) => (ws.getUserData() as unknown as UserData).socket?.onMessage(message, isBinary),
      drain: (ws) => (ws.getUserData() as unknown as UserData).socket?.onDrain(),
      ping: (ws) => (ws.getUserData() as unknown as UserData).socket?.onPing(ws.getBufferedAmount()),
      close: (ws, code) => (ws.getUserData() as unknown as UserData).socket?.onClose(code),
    });
    app.any('/*', (res) => {
      res.writeStatus('426 Upgrade Required').writeHeader('Upgrade', 'websocket').writeHeader('Content-Type', 'text/plain').end(`this port serves WebSocket subprotocol ${SUBPROTOCOL}\n`);
    });
    return new Promise((resolve, reject) => {
      app.listen(at.host, port, this.uws.LIBUS_LISTEN_EXCLUSIVE_PORT, (ls) => {
        if (ls === false || ls === undefined || ls === null) {
          whyNoListen(at.host, port).then(reject, reject);
          return;
        }
        this.listenSocket = ls;
        // uWS says not which address it bound: for ANY_HOST, the one Node bound in the probe.
        const address = at.host !== ANY_HOST ? at.host : (probe as { address: string }).address;
        resolve({ address, port: this.uws.us_socket_local_port(ls), family: address.includes(':') ? 'IPv6' : 'IPv4' });
      });
    });
  }

  close(): Promise<void> {
    if (this.listenSocket !== undefined) this.uws.us_listen_socket_close(this.listenSocket);
    this.listenSocket = undefined;
    // A socket already closing (GOODBYE and a coded close written at shutdown) keeps its bytes:
    // terminating it at once dropped them, and its agent saw 1006 instead of 4010 and no
    // reconnect delay. It gets CLOSING_GRACE_MS to finish; the rest are cut now.
    for (const s of [...this.sockets]) {
      if (!s.ending) s.terminate();
      else setTimeout(() => s.terminate(), CLOSING_GRACE_MS).unref();
    }
    return Promise.resolve();
  }
}
