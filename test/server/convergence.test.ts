import { describe, expect, it } from 'vitest';
import { harness } from './helpers/harness.js';
import { seededRandom } from '../../src/random.js';

describe('server - convergence', () => {
  it('agents paused and resumed at random, joining late or resuming, all end equal to the store', async () => {
    const rand = seededRandom(42);
    const h = await harness({ feeds: ['felix', 'bgp'], socketHighWaterBytes: 16 * 1024, flushWindowMs: 2, compressMinBytes: 256 });
    const pad = 'y'.repeat(2_000);
    const batch = (feed: string, n: number): void => {
      const changes: Record<string, unknown> = {};
      for (let i = 0; i < n; i++) {
        const k = `/pods/ns/k${Math.floor(rand() * 300)}`;
        changes[k] = rand() < 0.2 ? null : { v: rand(), pad };
      }
      h.upstream.apply(feed, changes, { watermarks: { pods: String(Math.floor(rand() * 1e6)) } });
    };
    batch('felix', 50);
    batch('bgp', 20);
    h.upstream.apply('felix', {}, { status: 'in-sync' });
    h.upstream.apply('bgp', {}, { status: 'in-sync' });
    const caps = [[], ['compress.deflate'], ['compress.brotli']];
    const agents = [0, 1, 2].map((i) => h.agent({ feeds: [{ name: 'felix' }, { name: 'bgp' }], caps: caps[i] as string[] }));
    let resumed: ReturnType<typeof h.agent> | undefined;
    for (let step = 0; step < 80; step++) {
      batch(rand() < 0.7 ? 'felix' : 'bgp', 1 + Math.floor(rand() * 20));
      const a = agents[Math.floor(rand() * agents.length)];
      if (a !== undefined && a.welcome !== undefined) {
        if (rand() < 0.5) a.socket.pause();
        else a.socket.resume();
      }
      if (step === 40) {
        // One agent leaves and comes back with its tokens and state.
        const leaving = agents[0];
        if (leaving !== undefined) {
          leaving.socket.resume();
          await leaving.untilRevision('felix', 1);
          await leaving.untilRevision('bgp', 1);
          leaving.close();
          await leaving.closed;
          const f = leaving.feed('felix');
          const b = leaving.feed('bgp');
          resumed = h.agent({ feeds: [{ name: 'felix', token: f.token, entries: f.entries, revision: f.revision }, { name: 'bgp', token: b.token, entries: b.entries, revision: b.revision }] });
        }
      }
      if (step % 10 === 0) await new Promise((r) => setImmediate(r));
    }
    const late = h.agent({ feeds: [{ name: 'bgp' }, { name: 'felix' }] });
    const all = [...agents.slice(1), late, ...(resumed ? [resumed] : [])];
    for (const a of all) a.socket?.resume();
    for (const a of all) {
      await a.untilRevision('felix', h.storeRevision('felix'));
      await a.untilRevision('bgp', h.storeRevision('bgp'));
      expect(a.violations).toEqual([]);
      expect(a.digest('felix').equals(h.storeDigest('felix'))).toBe(true);
      expect(a.digest('bgp').equals(h.storeDigest('bgp'))).toBe(true);
    }
    expect(resumed?.welcome?.feeds.map((f) => f.mode)).toEqual(['resume', 'resume']);
  });
});
