/**
 * Per-file tracking of the fake servers and clients a test starts, torn down after each test, so
 * no server or reconnecting client outlives the test that made it.
 */
import { afterEach } from 'vitest';
import type { Client } from '../../../src/client/index.js';
import { FakeServer, type FakeServerOptions } from './fake-server.js';
import { start, type Setup } from './harness.js';

/**
 * `memory`: the clients reach the fake servers over in-memory pairs (the client's `dial` seam,
 * matched by endpoint URL) instead of loopback TCP; the same tests then run with no socket at all.
 */
export function tracked(o: { memory?: boolean } = {}): { server(opts?: FakeServerOptions): Promise<FakeServer>; setup(opts: Parameters<typeof start>[0]): Setup } {
  const servers: FakeServer[] = [];
  const clients: Client[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.destroy();
    for (const s of servers.splice(0)) await s.stop();
  });
  return {
    async server(opts: FakeServerOptions = {}): Promise<FakeServer> {
      const s = await FakeServer.start(opts);
      servers.push(s);
      return s;
    },
    setup(opts: Parameters<typeof start>[0]): Setup {
      const dial = (endpoint: string): ReturnType<FakeServer['dial']> => {
        const srv = servers.find((x) => x.url === endpoint);
        if (srv === undefined) throw new Error(`no fake server at ${endpoint}`);
        return srv.dial();
      };
      const s = start(o.memory === true ? { dial, ...opts } : opts);
      clients.push(s.client);
      return s;
    },
  };
}
