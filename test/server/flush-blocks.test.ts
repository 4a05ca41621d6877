/**
 * The flush writes in blocks (flush.ts WRITE_BLOCK = 128): a change to more caught-up agents than
 * one block reaches every one of them, once, and they all end equal to the store.
 */
import { describe, expect, it } from 'vitest';
import { harness } from './helpers/harness.js';

describe('flush in write blocks', () => {
  it('delivers each change to 300 caught-up agents (more than two blocks), every one ending equal to the store', async () => {
    const h = await harness({ flushWindowMs: 0 });
    h.upstream.apply('felix', { '/pods/ns/a': { v: 0 } }, { status: 'in-sync' });
    const agents = Array.from({ length: 300 }, (_, i) => h.agent({ feeds: [{ name: 'felix' }], clientId: `a${i}` }));
    await Promise.all(agents.map((a) => a.untilRevision('felix', h.storeRevision('felix'))));
    const flushes0 = h.server.fanoutStats().flushes;
    const writes0 = h.server.fanoutStats().flushWrites;
    for (let v = 1; v <= 3; v++) {
      h.upstream.apply('felix', { '/pods/ns/a': { v }, [`/pods/ns/b${v}`]: { v } });
      const rev = h.storeRevision('felix');
      await Promise.all(agents.map((a) => a.untilRevision('felix', rev)));
    }
    for (const a of agents) {
      expect(a.violations).toEqual([]);
      expect(a.digest('felix').equals(h.storeDigest('felix'))).toBe(true);
    }
    // One write per agent per flush: nobody skipped, nobody written twice.
    const s = h.server.fanoutStats();
    expect(s.flushWrites - writes0).toBe((s.flushes - flushes0) * 300);
  });
});
