/**
 * A bare WebSocket upgrade request, to read what a refusal says (status, Retry-After,
 * X-Cattail-Endpoints, body) without a client library interpreting it first; and a raw upgraded
 * socket, to send what no client library would (half a frame).
 */
import { randomBytes } from 'node:crypto';
import { type IncomingHttpHeaders, request } from 'node:http';
import { type Socket, connect } from 'node:net';

export interface UpgradeAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

export function tryUpgrade(url: string): Promise<UpgradeAnswer> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({
      host: u.hostname,
      port: u.port,
      path: '/',
      headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': randomBytes(16).toString('base64'), 'sec-websocket-protocol': 'cattail.v1' },
    });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: '' });
    });
    req.on('error', reject);
    req.end();
  });
}

/** A raw cattail.v1 WebSocket connection: the test writes bytes as it likes and reads the server's frames. */
export interface RawAgent {
  readonly sock: Socket;
  /** The server's frames so far (servers never mask). */
  readonly frames: { opcode: number; payload: Buffer }[];
  /** The close frame's code once one arrived. */
  closeCode: number | undefined;
  /** The 101 answer's status line and headers. */
  head: string;
}

/**
 * Upgrades a plain TCP socket by hand and parses the server's frames as they come. `halfOpen`:
 * the socket does not end its side when the server ends its own (a peer that never answers a close).
 * `protocolLines`: the Sec-WebSocket-Protocol header, one line per element.
 */
export function rawUpgrade(url: string, halfOpen = false, protocolLines: readonly string[] = ['cattail.v1']): Promise<RawAgent> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const sock = connect({ port: Number(u.port), host: u.hostname, allowHalfOpen: halfOpen });
    const agent: RawAgent = { sock, frames: [], closeCode: undefined, head: '' };
    let buf = Buffer.alloc(0);
    let upgraded = false;
    sock.on('error', reject);
    sock.on('connect', () => {
      sock.write(`GET / HTTP/1.1\r\nHost: ${u.host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n${protocolLines.map((p) => `Sec-WebSocket-Protocol: ${p}\r\n`).join('')}\r\n`);
    });
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (!upgraded) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.subarray(0, end).toString('latin1');
        if (!head.startsWith('HTTP/1.1 101')) {
          reject(new Error(`upgrade refused: ${head.split('\r\n')[0]}`));
          return;
        }
        upgraded = true;
        agent.head = head;
        buf = buf.subarray(end + 4);
        resolve(agent);
      }
      for (;;) {
        if (buf.length < 2) return;
        const len7 = (buf[1] as number) & 0x7f;
        const ext = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
        if (buf.length < 2 + ext) return;
        const len = ext === 0 ? len7 : ext === 2 ? buf.readUInt16BE(2) : Number(buf.readBigUInt64BE(2));
        if (buf.length < 2 + ext + len) return;
        const frame = { opcode: (buf[0] as number) & 0x0f, payload: Buffer.from(buf.subarray(2 + ext, 2 + ext + len)) };
        agent.frames.push(frame);
        if (frame.opcode === 0x8 && len >= 2) agent.closeCode = frame.payload.readUInt16BE(0);
        buf = buf.subarray(2 + ext + len);
      }
    });
  });
}

/**
 * The first bytes of a masked binary frame announcing `payloadBytes`: its 14-byte header (8-byte
 * length, mask key) and `sentBytes` of payload.
 */
export function partialClientFrame(payloadBytes: number, sentBytes: number): Buffer {
  const head = Buffer.alloc(14);
  head[0] = 0x82;
  head[1] = 0x80 | 127;
  head.writeBigUInt64BE(BigInt(payloadBytes), 2);
  return Buffer.concat([head, Buffer.alloc(sentBytes)]);
}
