/**
 * The `ws` transport (the default): a node:http server whose upgrades go to a `ws` server in
 * `noServer` mode.
 *
 * `noServer` lets us refuse before the WebSocket handshake (503 + Retry-After from the governor)
 * and keep the raw upgraded socket, which gets the pre-framed bytes as they are: no copy, no
 * per-socket framing. Compression is off (perMessageDeflate: false): frames are compressed once by
 * Cattail, never per socket. Writing next to ws is safe because ws writes only whole frames (its
 * Sender never queues with permessage-deflate off), so ours and its control frames never
 * interleave mid-frame.
 *
 * TLS: pass an `https.Server` (or any node:http-compatible server built on node:tls) as `server`;
 * the peer's certificate identity is read from the upgraded TLSSocket (tlsIdentityOf).
 */
import { type IncomingMessage, type Server, createServer } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { type ServerOptions, WebSocketServer, type WebSocket } from 'ws';
import { REFUSED_CLOSE_GRACE_MS } from './accept.js';
import { SUBPROTOCOL } from './framing.js';
import { INBOUND_MAX_FRAGMENTS, InboundBudget, maxReadsPerFrame, type InboundFrameMeter, type InboundHolder } from './inbound-budget.js';
import { PacedTurns, UPGRADE_TURN_MS } from './paced.js';
import { peerTlsOf } from './tls/identity.js';
import {
  ANY_HOST, type AcceptHooks, peerAddress, type AgentSink, type AgentSocket, type AgentSocketEvents, type AgentTransport, type BoundAddress, HARD_CAP_FACTOR,
  type ListenAddress, type PeerInfo, type TlsIdentity, type TransportLimits, deliverClose, deliverClosing, deliverDrain, deliverMessage, deliverOverBudget, releaseHeaders,
} from './seam.js';

/** The identity in a TLS socket's peer certificate; undefined for plaintext or no certificate. */
export function tlsIdentityOf(socket: Socket): TlsIdentity | undefined {
  const tls = socket as Partial<TLSSocket>;
  if (tls.encrypted !== true || typeof tls.getPeerCertificate !== 'function') return undefined;
  return peerTlsOf(tls as TLSSocket);
}

function headersOf(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

/** One upgraded `ws` socket behind the seam. */
class WsAgentSocket implements AgentSocket, InboundHolder {
  // The socket first: every flush reads it (field order is memory layout; see Connection).
  private readonly socket: Socket;
  readonly transport = 'ws';
  readonly copiedBytes = 0;
  private events: AgentSocketEvents | undefined;
  meter: InboundFrameMeter | undefined = undefined;
  /** False once ws gave up reading this socket (a protocol error): it buffers nothing more. */
  private metered = true;

  constructor(
    private readonly ws: WebSocket,
    socket: Socket,
    /** Its headers are released after accept (seam.ts PeerInfo). */
    public peer: PeerInfo,
    budget: InboundBudget,
  ) {
    this.socket = socket;
    // After ws's own 'data' listener (added at the upgrade): a frame the read completes has been
    // delivered and left ws's buffers by the time it is counted out here.
    socket.on('data', (chunk: Buffer) => {
      if (this.metered) budget.read(this, chunk);
    });
    ws.on('message', (data, isBinary) => {
      const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      deliverMessage(this.events, buf, isBinary, () => this.ws.terminate());
    });
    ws.on('close', (code) => {
      // ws's close comes after the socket's (once its receiver ended): what it held is gone.
      budget.closed(this);
      deliverClose(this.events, code);
    });
    // ws reports protocol errors (bad masking, oversize above its hard cap) here and closes by
    // itself. It reads nothing more after one: what it held stays counted until the close.
    ws.on('error', () => {
      this.metered = false;
    });
    socket.on('drain', () => deliverDrain(this.events, () => this.ws.terminate()));
    // ws starts a close by itself (answering the agent's close frame, refusing a bad frame with
    // 1002/1008/1009) through this method and says nothing until the socket is gone ('close'):
    // wrapped, the Connection hears of it at once and writes nothing after ws's close frame.
    // ws calls it on the instance, so the own property is what it reaches; our own closes
    // (WsAgentSocket.close) come here too, and find the Connection closing already.
    const close = ws.close.bind(ws);
    ws.close = (code?: number, data?: string | Buffer): void => {
      deliverClosing(this.events, () => this.ws.terminate());
      close(code, data);
    };
  }

  setEvents(events: AgentSocketEvents): void {
    this.events = events;
  }

  get writable(): boolean {
    return !this.socket.destroyed;
  }

  /** The upgraded net.Socket: its write(buffer) is write(frames) here (no framing, no copy). */
  get sink(): AgentSink {
    return this.socket;
  }

  get bufferedAmount(): number {
    return this.socket.writableLength;
  }

  get quietBytes(): number {
    return this.socket.writableHighWaterMark;
  }

  write(frames: Buffer, onWritten?: () => void): boolean {
    return this.socket.write(frames, onWritten);
  }

  writeCorked(frames: readonly Buffer[], onWritten: readonly ((() => void) | undefined)[]): boolean {
    let quiet = true;
    this.socket.cork();
    for (let i = 0; i < frames.length; i++) quiet = this.socket.write(frames[i] as Buffer, onWritten[i]) && quiet;
    this.socket.uncork();
    return quiet;
  }

  close(code: number, reason?: string): void {
    try {
      this.ws.close(code, reason);
    } catch {
      this.ws.terminate();
    }
  }

  terminate(): void {
    this.ws.terminate();
  }

  /**
   * Chosen by the inbound budget: stop reading (what the kernel gets meanwhile stays in the
   * kernel), then the Connection's coded close (ERROR + 4008); the sweep cuts it after its close
   * grace, since a paused socket cannot read the agent's close frame.
   */
  overBudget(heldBytes: number, totalBytes: number): void {
    this.ws.pause();
    deliverOverBudget(this.events, heldBytes, totalBytes, () => this.ws.terminate());
  }
}

/** See `closeTimeout` below: the refused sockets' close grace (2 s), as the sweep's. */
export const WS_CLOSE_TIMEOUT_MS = REFUSED_CLOSE_GRACE_MS;

export interface WsTransportOptions {
  readonly hooks: AcceptHooks;
  readonly limits: TransportLimits;
  /** The HTTP(S) server to attach to; default a plain node:http server. */
  readonly server?: Server;
  /** Bounds what all sockets hold of unfinished inbound frames; default: a budget without a limit (counted, never enforced). */
  readonly inboundBudget?: InboundBudget;
}


interface PendingUpgrade {
  readonly req: IncomingMessage;
  readonly socket: Socket;
  readonly head: Buffer;
}

export class WsTransport implements AgentTransport {
  readonly kind = 'ws';

  get pacedWaiting(): number {
    return this.upgrades.size;
  }

  readonly http: Server;
  private readonly wss: WebSocketServer;
  /** Every socket the HTTP server handed over with 'upgrade' and that is still open (see queueUpgrade). */
  private readonly upgraded = new Set<Socket>();
  private readonly upgrades = new PacedTurns<PendingUpgrade>(
    UPGRADE_TURN_MS,
    (u) => {
      if (!u.socket.destroyed) this.onUpgrade(u.req, u.socket, u.head);
    },
    (u) => u.socket.destroy(),
  );

  private readonly inboundBudget: InboundBudget;

  constructor(private readonly o: WsTransportOptions) {
    this.inboundBudget = o.inboundBudget ?? new InboundBudget(Number.MAX_SAFE_INTEGER, o.limits.maxInboundBytes * HARD_CAP_FACTOR);
    // ws 8.23 takes `closeTimeout`; @types/ws does not list it yet (hence the wider type).
    const options: ServerOptions & { closeTimeout: number } = {
      noServer: true,
      perMessageDeflate: false,
      maxPayload: o.limits.maxInboundBytes * HARD_CAP_FACTOR,
      // Pieces of one unfinished message ws keeps (1008 above them): each costs a Buffer besides
      // its bytes, so 16,384 one-byte fragments held ~1.7 MB against 16 KiB of data (a review).
      maxFragments: INBOUND_MAX_FRAGMENTS,
      maxBufferedChunks: maxReadsPerFrame(o.limits.maxInboundBytes * HARD_CAP_FACTOR),
      // How long ws waits for the agent's close frame after sending its own before cutting the
      // socket (ws's default 30 s). After ws's own refusals (1002, 1008, 1009, which the
      // Connection does not hear of until the close) a peer that never answered held its
      // connection slot that long, per bad frame.
      closeTimeout: WS_CLOSE_TIMEOUT_MS,
      // A text message, UTF-8 or not, is the protocol's to refuse (4002 with an ERROR, PROTOCOL.md
      // §1); ws's own check closed an invalid one with a bare 1007 first.
      skipUTF8Validation: true,
      clientTracking: false,
      // An agent offering only other subprotocols gets its first one echoed: a compliant client
      // fails an upgrade that selects none of its offers (1006, uncoded), and the point is to
      // give it the coded 4001 that says "wrong version", after which the server closes at once.
      handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : ([...protocols][0] ?? false)),
    };
    this.wss = new WebSocketServer(options);
    // A client that never finishes its upgrade request (slow-loris) is cut off after the
    // handshake timeout; Node checks that deadline on its own interval, a quarter of it here.
    this.http = o.server ?? createServer({ connectionsCheckingInterval: Math.max(100, Math.floor(o.limits.handshakeTimeoutMs / 4)) });
    this.http.on('request', (_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' });
      res.end(`this port serves WebSocket subprotocol ${SUBPROTOCOL}\n`);
    });
    this.http.headersTimeout = o.limits.handshakeTimeoutMs;
    this.http.requestTimeout = o.limits.handshakeTimeoutMs;
    // A connection that sends nothing at all never starts a request, so the header deadline does
    // not apply: the idle timeout closes it (upgraded sockets clear it, see onUpgrade).
    this.http.timeout = o.limits.handshakeTimeoutMs;
    // Room above maxConnections for upgrades being refused (answered and closed, not held) and
    // for closing sockets; beyond it the kernel's connection is dropped at once.
    if (o.limits.maxConnections !== undefined) this.http.maxConnections = o.limits.maxConnections + Math.max(64, Math.ceil(o.limits.maxConnections * 0.1));
    this.http.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => this.queueUpgrade(req, socket, head));
  }

  /**
   * Upgrades are answered in bounded turns (UPGRADE_TURN_MS each, PacedTurns), not in the HTTP
   * parser's callback: a reconnect storm completes hundreds of upgrade requests in one poll phase.
   * Node leaves an upgraded socket paused until someone reads it, so nothing is lost while it
   * waits; a socket that went away meanwhile is skipped.
   */
  private queueUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    socket.on('error', () => undefined);
    // Node's HTTP server stops watching a socket once it emitted 'upgrade' (no timeout applies,
    // and http.closeAllConnections() skips it): from here every one is ours to destroy (close()).
    this.upgraded.add(socket);
    socket.once('close', () => this.upgraded.delete(socket));
    this.upgrades.push({ req, socket, head });
  }

  private onUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const refusal = this.o.hooks.admit();
    if (refusal !== undefined) {
      this.o.hooks.refused(refusal.reason);
      const hint = refusal.endpoints.length > 0 ? `X-Cattail-Endpoints: ${refusal.endpoints.join(',')}\r\n` : '';
      const body = `${refusal.reason}: ${refusal.detail}\n`;
      // Destroyed once the answer is written, as ws does with its own refusals: end() alone left
      // the socket open until the peer closed its side, so a half-open or hostile client kept it
      // for good, counted against the connection cap that refusing is meant to protect.
      socket.once('finish', () => socket.destroy());
      socket.end(`HTTP/1.1 503 Service Unavailable\r\nRetry-After: ${refusal.retryAfterSeconds}\r\n${hint}Connection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      socket.setNoDelay(true);
      // Upgraded: liveness is the protocol's PING/PONG from here on, not the HTTP idle timeout.
      socket.setTimeout(0);
      const peer: PeerInfo = {
        remoteAddress: peerAddress(socket.remoteAddress ?? ''), remotePort: socket.remotePort ?? 0, headers: headersOf(req), protocol: ws.protocol, tls: tlsIdentityOf(socket),
      };
      const s = new WsAgentSocket(ws, socket, peer, this.inboundBudget);
      this.o.hooks.accept(s);
      s.peer = releaseHeaders(s.peer);
    });
  }

  async listen(at: ListenAddress): Promise<BoundAddress> {
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen({ port: at.port, ...(at.host === ANY_HOST ? {} : { host: at.host }), backlog: at.backlog }, () => {
        this.http.off('error', reject);
        resolve();
      });
    });
    const a = this.http.address();
    if (a === null || typeof a === 'string') throw new Error(`unexpected listen address ${String(a)}`);
    return { address: a.address, port: a.port, family: a.family === 'IPv6' ? 'IPv6' : 'IPv4' };
  }

  async close(): Promise<void> {
    for (const u of this.upgrades.drain()) u.socket.destroy();
    this.wss.close();
    // Upgraded sockets still open (an agent's close handshake that gets no answer, a refusal the
    // peer never read): http.close() waits for every one, and shutdown with it.
    for (const socket of this.upgraded) socket.destroy();
    this.http.closeAllConnections();
    if (this.http.listening) await new Promise((r) => this.http.close(r));
  }
}
