/**
 * The plain-WebSocket floor of the fan-out benchmark's cold start: a `ws` server that answers the
 * upgrade, waits for the client's first message (the HELLO, unread) and sends pre-built messages
 * with `ws.send` under a high-water mark, nothing of Cattail in between (no HELLO decoding, no
 * store, no snapshot build, no pacing of upgrades or of service turns). Beside the `net` floor (floor.ts) it splits what a cold start costs into the
 * WebSocket protocol's share (upgrades, framing) and Cattail's own, which the `net` floor alone
 * cannot: that one never upgrades a connection.
 */
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

export interface PlainWsServer {
  readonly port: number;
  /** Open WebSocket connections. */
  connections(): number;
  close(): Promise<void>;
}

/** A `ws` server on `host`, port 0; `onHello` runs once per connection, at its first message. */
export async function plainWsServer(onHello: (ws: WebSocket) => void, host = '127.0.0.1'): Promise<PlainWsServer> {
  const http = createServer();
  // As Cattail's own: no permessage-deflate (payloads arrive compressed already), no tracking beyond close.
  const wss = new WebSocketServer({ server: http, perMessageDeflate: false });
  wss.on('connection', (ws) => {
    ws.on('error', () => undefined);
    ws.once('message', () => onHello(ws));
  });
  await new Promise<void>((r) => http.listen({ port: 0, host, backlog: 4096 }, r));
  const port = (http.address() as { port: number }).port;
  return {
    port,
    connections: () => wss.clients.size,
    close: () => {
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      http.closeAllConnections();
      return new Promise((r) => http.close(() => r()));
    },
  };
}

/**
 * Sends `payloads` as binary messages, keeping at most about `highWaterBytes` handed to `ws` and
 * not yet written to the socket (its send callback), as the `net` floor and Cattail keep their
 * socket's buffer under the same high-water mark.
 */
export function sendPaced(ws: WebSocket, payloads: readonly Buffer[], highWaterBytes: number): void {
  let next = 0;
  let outstanding = 0;
  const pump = (): void => {
    while (next < payloads.length && outstanding <= highWaterBytes && ws.readyState === ws.OPEN) {
      const p = payloads[next++] as Buffer;
      outstanding += p.length;
      ws.send(p, { binary: true }, () => {
        outstanding -= p.length;
        pump();
      });
    }
  };
  pump();
}

/** RFC 6455's GUID for Sec-WebSocket-Accept. */
const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC11B65';

/**
 * The least a WebSocket server can do on Node's HTTP server (`wsraw`, the cold start's third
 * floor): answer the upgrade with its own 101 (one SHA-1 per connection), wait for the first bytes
 * after it (the HELLO, unread), then hand the raw socket to `onHello`, which writes pre-framed
 * WebSocket frames as the `net` floor does. No library, no frame parser, no per-message objects:
 * what an own WebSocket transport could get down to, beside `ws`'s cost (wsplain) and the `net`
 * floor's (no upgrade at all). Measurement only: it checks nothing a real server must (version,
 * key format, origin, masking) and never reads a frame.
 */
export async function rawWsServer(onHello: (s: Socket) => void, host = '127.0.0.1'): Promise<PlainWsServer> {
  const http = createServer();
  const sockets = new Set<Socket>();
  http.on('upgrade', (req, socket: Socket, head: Buffer) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    socket.setNoDelay(true);
    const key = req.headers['sec-websocket-key'];
    const accept = createHash('sha1').update(`${String(key)}${WS_GUID}`).digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    if (head.length > 0) onHello(socket);
    else socket.once('data', () => onHello(socket));
  });
  await new Promise<void>((r) => http.listen({ port: 0, host, backlog: 4096 }, r));
  const port = (http.address() as { port: number }).port;
  return {
    port,
    connections: () => sockets.size,
    close: () => {
      for (const s of sockets) s.destroy();
      http.closeAllConnections();
      return new Promise((r) => http.close(() => r()));
    },
  };
}
