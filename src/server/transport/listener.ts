/**
 * The agent port: a node:http server whose upgrades go to a `ws` server in `noServer` mode.
 *
 * `noServer` lets us refuse before the WebSocket handshake (503 + Retry-After from the governor)
 * and keep the raw upgraded socket, which the fan-out writes pre-framed bytes to. Compression is
 * off (perMessageDeflate: false): frames are compressed once by Cattail, never per socket (§1).
 *
 * An agent that does not offer `cattail.v1` still completes the upgrade and is then closed with
 * 4001, so it sees a coded close rather than a bare HTTP error (§1.1).
 */
import { type IncomingMessage, type Server, createServer } from 'node:http';
import type { Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Governor } from './governor.js';
import type { ServerMetrics } from '../ops/metrics.js';
import { CloseCode, SUBPROTOCOL, encodeMessage } from './framing.js';

export interface ListenerOptions {
  readonly governor: Governor;
  readonly metrics: ServerMetrics;
  readonly maxInboundBytes: number;
  /** Time an unupgraded connection may take to send its whole upgrade request, in ms. */
  readonly handshakeTimeoutMs: number;
  /** Agent connections admitted (maxConnections); TCP connections are capped a little above it. */
  readonly maxConnections: number;
  readonly openConnections: () => number;
  /** Called with each accepted WebSocket and its upgraded socket. */
  readonly onConnection: (ws: WebSocket, socket: Socket) => void;
}

/**
 * ws rejects frames above `maxPayload` itself with close 1009 before buffering them. We set it a
 * little above maxInboundBytes so that ordinary oversize frames reach our own check and get the
 * protocol's 4003, while a huge length still cannot make us buffer it.
 */
const WS_HARD_CAP_FACTOR = 4;

/** TCP connections allowed above maxConnections, as a share of it (at least 64). */
const TCP_HEADROOM = 0.1;

export class Listener {
  readonly http: Server;
  private readonly wss: WebSocketServer;

  constructor(private readonly o: ListenerOptions) {
    this.wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      maxPayload: o.maxInboundBytes * WS_HARD_CAP_FACTOR,
      clientTracking: false,
      // An agent offering only other subprotocols gets its first one echoed: a compliant client
      // fails an upgrade that selects none of its offers (1006, uncoded), and the point is to
      // give it the coded 4001 that says "wrong version", after which we close at once.
      handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : ([...protocols][0] ?? false)),
    });
    // Before the upgrade a connection is only a TCP socket and an HTTP parser, invisible to the
    // fan-out's handshake deadline: a connection that sends nothing, or its headers one byte at a
    // time (slow loris), would hold a file descriptor for as long as it likes. The idle timeout
    // and the header deadline bound that to handshakeTimeoutMs; the TCP cap bounds how many.
    this.http = createServer({ headersTimeout: o.handshakeTimeoutMs, requestTimeout: o.handshakeTimeoutMs, connectionsCheckingInterval: Math.min(1_000, o.handshakeTimeoutMs) }, (_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' });
      res.end(`this port serves WebSocket subprotocol ${SUBPROTOCOL}\n`);
    });
    this.http.timeout = o.handshakeTimeoutMs;
    // Room above maxConnections for upgrades being refused with 503 (they are answered and
    // closed, not held) and for closing sockets; beyond it the kernel connection is dropped at once.
    this.http.maxConnections = o.maxConnections + Math.max(64, Math.ceil(o.maxConnections * TCP_HEADROOM));
    this.http.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => this.onUpgrade(req, socket, head));
  }

  private onUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    socket.on('error', () => undefined);
    const refusal = this.o.governor.admit(this.o.openConnections());
    if (refusal !== undefined) {
      this.o.metrics.connectionsRefused.inc({ reason: refusal.reason });
      // Endpoints are ws:// URLs without commas or whitespace (options.ts checks), safe in a header.
      const hint = refusal.endpoints.length > 0 ? `X-Cattail-Endpoints: ${refusal.endpoints.join(',')}\r\n` : '';
      const body = `${refusal.reason}: ${refusal.detail}\n`;
      socket.end(`HTTP/1.1 503 Service Unavailable\r\nRetry-After: ${refusal.retryAfterSeconds}\r\n${hint}Connection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      if (ws.protocol !== SUBPROTOCOL) {
        this.o.metrics.connectionsRefused.inc({ reason: 'subprotocol' });
        const message = `this server speaks WebSocket subprotocol ${SUBPROTOCOL} only`;
        socket.write(encodeMessage({ type: 'error', code: 'CATTAIL_SERVER_BAD_SUBPROTOCOL', message }));
        ws.close(CloseCode.UNSUPPORTED_VERSION, `unsupported subprotocol; use ${SUBPROTOCOL}`);
        return;
      }
      socket.setNoDelay(true);
      // Upgraded: liveness is the protocol's PING/PONG from here on, not the HTTP idle timeout.
      socket.setTimeout(0);
      this.o.onConnection(ws, socket);
    });
  }

  close(): void {
    this.wss.close();
  }
}
