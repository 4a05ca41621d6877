/**
 * An upgrade the server refuses (503: over its target, draining, at its cap) gets its answer and
 * then its socket closed by the server, whatever the client does with its side; and shutdown is
 * never held by an upgraded socket still open. A refused socket used to stay open until the
 * client closed it: half-open or hostile clients kept them for good, counted against the
 * connection cap refusing protects, and http.close() (shutdown) waited for them forever.
 */
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { SUBPROTOCOL } from '../../src/server/transport/framing.js';
import { harness, type Harness } from './helpers/harness.js';
import { waitUntil } from '../support/wait.js';

let h: Harness | undefined;
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await h?.server.close();
  h = undefined;
});

/** A client that sends an upgrade request, reads what comes, and never closes its own side. */
function halfOpenUpgrade(url: string): { socket: Socket; text: () => string; closedByServer: () => boolean } {
  const u = new URL(url);
  const socket = connect({ host: u.hostname, port: Number(u.port), allowHalfOpen: true });
  sockets.push(socket);
  let text = '';
  let ended = false;
  socket.on('data', (d) => (text += d.toString('latin1')));
  socket.on('end', () => (ended = true));
  socket.on('close', () => (ended = true));
  socket.on('error', () => undefined);
  socket.write(
    `GET / HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n` +
    `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: ${SUBPROTOCOL}\r\n\r\n`,
  );
  return { socket, text: () => text, closedByServer: () => ended };
}

describe('server - refused upgrades', () => {
  it('closes a refused socket once its 503 is out, though the client never closes its side; shutdown is not held', async () => {
    h = await harness({ feeds: ['felix'] });
    h.upstream.apply('felix', { '/a': { a: 1 } }, { status: 'in-sync' });
    // At its target with one agent: the next upgrades are refused (over-target).
    const agent = h.agent({ feeds: [{ name: 'felix' }] });
    await agent.untilRevision('felix', 1);
    h.server.setTargetConnections(1);
    const clients = Array.from({ length: 5 }, () => halfOpenUpgrade(h!.server.url));
    await waitUntil(() => clients.every((c) => c.text().startsWith('HTTP/1.1 503')), 'five 503 answers');
    await waitUntil(() => clients.every((c) => c.closedByServer()), 'the server closed every refused socket', { timeoutMs: 5_000 });
    expect(clients.every((c) => /Retry-After: \d+/.test(c.text()))).toBe(true);
    // Shutdown completes at once (it waited for every such socket before).
    const t0 = Date.now();
    await h.server.close();
    h = undefined;
    expect(Date.now() - t0).toBeLessThan(5_000);
  });
});
