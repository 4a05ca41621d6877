/**
 * The plain-WebSocket floor of the fan-out benchmark's cold start: a `ws` server that answers the
 * upgrade, waits for the client's first message (the HELLO, unread) and sends pre-built messages
 * with `ws.send` under a high-water mark, nothing of Cattail in between (no HELLO decoding, no
 * store, no snapshot build, no pacing of upgrades or of service turns). Beside the `net` floor (floor.ts) it splits what a cold start costs into the
 * WebSocket protocol's share (upgrades, framing) and Cattail's own, which the `net` floor alone
 * cannot: that one never upgrades a connection.
 */
import { createServer } from 'node:http';
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
