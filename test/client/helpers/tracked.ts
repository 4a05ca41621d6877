/**
 * Per-file tracking of the fake servers and clients a test starts, torn down after each test, so
 * no server or reconnecting client outlives the test that made it.
 */
import { afterEach } from 'vitest';
import type { Client } from '../../../src/client/index.js';
import { FakeServer, type FakeServerOptions } from './fake-server.js';
import { start, type Setup } from './harness.js';

export function tracked(): { server(opts?: FakeServerOptions): Promise<FakeServer>; setup(opts: Parameters<typeof start>[0]): Setup } {
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
      const s = start(opts);
      clients.push(s.client);
      return s;
    },
  };
}
