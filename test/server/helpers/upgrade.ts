/**
 * A bare WebSocket upgrade request, to read what a refusal says (status, Retry-After,
 * X-Cattail-Endpoints, body) without a client library interpreting it first.
 */
import { randomBytes } from 'node:crypto';
import { type IncomingHttpHeaders, request } from 'node:http';

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
