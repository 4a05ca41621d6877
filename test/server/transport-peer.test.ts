/**
 * What a transport keeps of the upgrade (seam.ts PeerInfo): the accept hooks see the request's
 * headers, the socket keeps only the identity afterwards (an idle agent must not hold its
 * upgrade's header strings for the connection's life). And a message handler that throws is
 * reported to `failed`, never thrown into the transport's I/O (where it would end the process).
 * Over every transport that loads here.
 */
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { AcceptHooks, AgentSocket, AgentTransport } from '../../src/server/transport/seam.js';
import { NO_HEADERS } from '../../src/server/transport/seam.js';
import { SUBPROTOCOL } from '../../src/server/transport/framing.js';
import { WsTransport } from '../../src/server/transport/ws-transport.js';
import { UwsTransport } from '../../src/server/transport/uws-transport.js';
import { uwsAvailable } from '../../src/server/transport/uws-loader.js';

const limits = { maxInboundBytes: 65_536, handshakeTimeoutMs: 2_000 };
const make: Record<string, (hooks: AcceptHooks) => AgentTransport> = {
  ws: (hooks) => new WsTransport({ hooks, limits }),
  uws: (hooks) => new UwsTransport({ hooks, limits, maxBufferedBytes: 4 * 1024 * 1024 }),
};
// Reported as skipped where no uWS build loads (Node 22 and 24 here), not silently absent.
const SKIP_UWS = !uwsAvailable();

for (const kind of Object.keys(make)) describe.skipIf(kind === 'uws' && SKIP_UWS)(`transport ${kind} - the peer after accept`, () => {
  it('shows the upgrade headers to the accept hook, then keeps the address and subprotocol but not the headers', async () => {
    let duringAccept: Record<string, string> | undefined;
    let accepted: AgentSocket | undefined;
    const t = (make[kind] as (h: AcceptHooks) => AgentTransport)({
      admit: () => undefined,
      refused: () => undefined,
      accept: (s) => {
        duringAccept = { ...s.peer.headers };
        accepted = s;
      },
    });
    const at = await t.listen({ host: '127.0.0.1', port: 0, backlog: 64 });
    const client = new WebSocket(`ws://127.0.0.1:${at.port}/`, [SUBPROTOCOL], { headers: { 'x-agent-note': 'hello' } });
    try {
      await new Promise<void>((resolve, reject) => {
        client.once('open', () => resolve());
        client.once('error', reject);
      });
      for (let i = 0; i < 100 && accepted === undefined; i++) await new Promise((r) => setTimeout(r, 10));
      expect(duringAccept?.['x-agent-note']).toBe('hello');
      expect(duringAccept?.['sec-websocket-key']).toBeTypeOf('string');
      expect(accepted?.peer.headers).toBe(NO_HEADERS);
      expect(accepted?.peer.protocol).toBe(SUBPROTOCOL);
      expect(accepted?.peer.remoteAddress).toBe('127.0.0.1');
    } finally {
      client.terminate();
      await t.close();
    }
  });

  it('reports a message handler that throws to failed(), and ends the socket when failed() throws too', async () => {
    const failures: string[] = [];
    let sockets = 0;
    const t = (make[kind] as (h: AcceptHooks) => AgentTransport)({
      admit: () => undefined,
      refused: () => undefined,
      accept: (s) => {
        const n = ++sockets;
        s.setEvents({
          message: (data) => {
            throw new Error(`handler bug on ${data.toString()}`);
          },
          drain: () => undefined,
          close: () => undefined,
          failed: (err) => {
            failures.push((err as Error).message);
            if (n === 1) s.close(4012, 'CATTAIL_INTERNAL');
            else throw new Error('failed() failing as well');
          },
        });
      },
    });
    const at = await t.listen({ host: '127.0.0.1', port: 0, backlog: 64 });
    const open = async (): Promise<{ ws: WebSocket; closed: Promise<number> }> => {
      const ws = new WebSocket(`ws://127.0.0.1:${at.port}/`, [SUBPROTOCOL]);
      const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      return { ws, closed };
    };
    try {
      const a = await open();
      a.ws.send(Buffer.from('one'));
      expect(await a.closed).toBe(4012);
      const b = await open();
      b.ws.send(Buffer.from('two'));
      // Terminated: no close frame.
      expect(await b.closed).toBe(1006);
      expect(failures).toEqual(['handler bug on one', 'handler bug on two']);
    } finally {
      await t.close();
    }
  });
});
