import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/clock.js';
import { harness } from './helpers/harness.js';

async function probe(url: string): Promise<{ status: number; body: string }> {
  const r = await fetch(url);
  return { status: r.status, body: await r.text() };
}

describe('server - introspection', () => {
  it("answers Typha's /liveness and /readiness exactly as /livez and /readyz", async () => {
    // A FakeClock keeps the sweep age in the liveness body identical between the two requests.
    const h = await harness({ feeds: ['felix'], upstreamDescription: 'scripted', clock: new FakeClock() });
    const both = async (a: string, b: string): Promise<{ status: number; body: string }> => {
      const [x, y] = await Promise.all([probe(`${h.server.httpUrl}${a}`), probe(`${h.server.httpUrl}${b}`)]);
      expect(y).toEqual(x);
      return x;
    };
    expect((await both('/readyz', '/readiness')).status).toBe(503);
    h.upstream.apply('felix', { '/pods/ns/p': { i: 1 } }, { status: 'in-sync' });
    const ready = await both('/readyz', '/readiness');
    expect(ready.status).toBe(200);
    expect(ready.body).toContain('feed felix: in-sync');
    expect((await both('/livez', '/liveness')).status).toBe(200);
  });
});
