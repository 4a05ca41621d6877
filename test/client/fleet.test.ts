import { describe, expect, it } from 'vitest';
import { waitUntil } from '../support/wait.js';
import { realClock } from '../../src/clock.js';
import { Fleet } from '../../src/client/fleet/fleet.js';
import { seededRandom } from '../../src/random.js';
import { harness } from '../server/helpers/harness.js';

describe('client - a fleet of discard-mode agents in one process', () => {
  it('syncs 300 agents from headers alone, follows deltas, and resumes after a blip without a new snapshot', async () => {
    const h = await harness({ feeds: ['felix', 'bgp'], compressMinBytes: 64 });
    const values: Record<string, unknown> = {};
    for (let i = 0; i < 200; i++) values[`/pods/ns/p${i}`] = { i, pad: 'x'.repeat(100) };
    // Watermarks of many resources make END and STATUS bodies big enough to be compressed.
    const watermarks = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`resource-${i}.example.org`, String(1_000 + i)]));
    h.upstream.apply('felix', values, { status: 'in-sync', watermarks });
    h.upstream.apply('bgp', { '/nodes/n1': { n: 1 } }, { status: 'in-sync' });
    const fleet = new Fleet({ agents: 300, nodePrefix: 'sim-node-', feeds: ['felix', 'bgp'], endpoints: [h.server.url], caps: ['compress.deflate'], clock: realClock, random: seededRandom(7), connectRatePerSec: 3_000 });
    fleet.start();
    try {
      await waitUntil(() => fleet.snapshot().inSync === 300, 'all 300 in sync', { timeoutMs: 30_000 });
      expect(h.server.snapshotStats().built).toBeLessThanOrEqual(4); // one per feed (and revision), shared by all
      for (let r = 0; r < 5; r++) h.upstream.apply('felix', { [`/pods/ns/p${r}`]: { i: r, changed: true } });
      await waitUntil(() => fleet.agents.every((a) => a.revisions()['felix'] === h.storeRevision('felix') && a.inSync), 'deltas followed', { timeoutMs: 30_000 });
      const before = fleet.snapshot();
      expect(before.violations).toBe(0);
      expect(before.snapshots).toBe(600);
      expect(new Set(fleet.agents.map((a) => a.revisions()['felix'])).size).toBe(1);

      // A blip drops every connection; a change lands meanwhile; each agent resumes with its token.
      for (const a of fleet.agents) a.blip();
      h.upstream.apply('felix', { '/pods/ns/p199': null });
      await waitUntil(() => fleet.snapshot().resumes >= 600 && fleet.snapshot().inSync === 300, 'all resumed', { timeoutMs: 30_000 });
      const after = fleet.snapshot();
      expect(after.snapshots).toBe(600); // resumed by DELTA, no new snapshot
      expect(after.violations).toBe(0);
      expect(after.reconnects).toBeGreaterThanOrEqual(300);
      expect(fleet.agents.every((a) => a.revisions()['felix'] === h.storeRevision('felix'))).toBe(true);
    } finally {
      fleet.stop();
    }
  });
});

