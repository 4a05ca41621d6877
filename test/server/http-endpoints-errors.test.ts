/**
 * The HTTP port answers a bug in one of its pages with 500 CATTAIL_INTERNAL instead of letting
 * the throw escape the request listener (an uncaught exception ends the replica's process).
 */
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { Health } from '../../src/server/ops/health.js';
import { createHttpEndpoints } from '../../src/server/ops/http-endpoints.js';

describe('HTTP endpoints - a page that throws', () => {
  it('answers 500 CATTAIL_INTERNAL and keeps serving', async () => {
    const health = { live: () => ({ ok: true, lines: [] }), ready: () => ({ ok: true, lines: [] }) } as unknown as Health;
    const load = () => ({ serverId: 's', connections: 0, targetConnections: null, ready: true });
    const debug = {
      clients: (): never => {
        throw new TypeError('a bug in the page');
      },
    };
    const server = createHttpEndpoints(new Registry(), health, load, debug);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const r = await fetch(`${base}/debug/clients`);
      expect(r.status).toBe(500);
      expect(await r.json()).toEqual({ error: { code: 'CATTAIL_INTERNAL', message: 'a bug in the page' } });
      expect((await fetch(`${base}/livez`)).status).toBe(200);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
