/**
 * The fleet's read impairments (the benchmark's slow-agents scenario): a stalled agent stops
 * reading at its first in-sync and a slow one reads at a bounded rate, while the others follow
 * every change; when the stall ends (on the injected clock) both catch up on the same connection.
 */
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/clock.js';
import { Fleet } from '../../src/client/fleet/fleet.js';
import { seededRandom } from '../../src/random.js';
import { harness } from '../server/helpers/harness.js';
import { waitUntil } from '../support/wait.js';

describe('client - a fleet with slow and stalled agents', () => {
  it('stalls one agent, slows another, keeps the rest current, and lets both catch up afterwards', async () => {
    const h = await harness({ feeds: ['felix'] });
    const values: Record<string, unknown> = {};
    for (let i = 0; i < 50; i++) values[`/pods/ns/p${i}`] = { i };
    h.upstream.apply('felix', values, { status: 'in-sync' });
    const clock = new FakeClock();
    const fleet = new Fleet({
      agents: 10, nodePrefix: 'n-', feeds: ['felix'], endpoints: [h.server.url], caps: [], clock, random: seededRandom(3),
      // The clock is virtual and runs minutes ahead of the server's real-time PINGs: a read
      // timeout on it would close every agent, which is not what this test is about.
      readTimeoutFactor: 1_000,
      impairments: { stalledAgentsPercent: 10, stallMs: 60_000, slowAgentsPercent: 10, slowReadBytesPerSec: 2_000 },
    });
    expect(fleet.groups.slice(0, 3)).toEqual(['stalled', 'slow', 'normal']);
    fleet.start();
    try {
      await waitUntil(() => fleet.snapshot().inSync === 10, 'all 10 in sync');
      const [stalled, slow] = fleet.agents as [(typeof fleet.agents)[0], (typeof fleet.agents)[0]];
      const normal = fleet.agents.slice(2);
      const start = h.storeRevision('felix');
      // Five changes of ~4 KB each: 10 s of reading for the slow agent at 2,000 B/s.
      for (let r = 0; r < 5; r++) {
        h.upstream.apply('felix', { [`/pods/ns/p${r}`]: { i: r, pad: 'x'.repeat(4_000) } });
        const want = h.storeRevision('felix');
        await waitUntil(() => normal.every((a) => a.revisions()['felix'] === want), `normal agents at revision ${want}`);
      }
      const last = h.storeRevision('felix');
      expect(stalled.revisions()['felix']).toBe(start); // it read nothing while stalled
      expect(slow.revisions()['felix']).toBeLessThan(last); // still paying for what it read
      const during = fleet.snapshot().groups;
      expect(during?.stalled.impaired).toBe(1);
      expect(during?.slow.impaired).toBe(1);
      expect(during?.normal.impaired).toBe(0);
      expect(during?.normal.inSync).toBe(8);

      // Virtual time ends the stall and pays the slow reader's debt; both catch up.
      await waitUntil(() => {
        clock.advance(1_000);
        return stalled.revisions()['felix'] === last && slow.revisions()['felix'] === last;
      }, 'the stalled and the slow agent caught up', { timeoutMs: 20_000 });
      expect(clock.monotonic()).toBeGreaterThanOrEqual(60_000); // not before the stall ended
      const after = fleet.snapshot();
      expect(after.violations).toBe(0);
      expect(after.reconnects).toBe(0); // same connections: the server skipped them, did not close them
      expect(after.groups?.stalled.closeCodes).toEqual({});
    } finally {
      fleet.stop();
    }
  });
});
