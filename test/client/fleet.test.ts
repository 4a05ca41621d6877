import { describe, expect, it } from 'vitest';
import { encodeFrame } from '../../proto/index.js';
import { waitUntil } from '../support/wait.js';
import { realClock } from '../../src/clock.js';
import { Fleet } from '../../src/client/fleet/fleet.js';
import { seededRandom } from '../../src/random.js';
import { harness } from '../server/helpers/harness.js';
import { scriptedReplica } from '../support/replica.js';
import { tracked } from './helpers/tracked.js';
import type { FakeServer } from './helpers/fake-server.js';

const fakes = tracked();

/** A fake replica holding one pod. */
async function fakeReplica(serverId: string): Promise<FakeServer> {
  const s = await fakes.server({ serverId });
  s.load('felix', [['/pods/demo/a', { ip: '10.0.0.1' }]], { pods: '10' });
  return s;
}

/** One discard agent of the felix feed on `endpoints`, started. */
function oneAgent(nodePrefix: string, endpoints: string[]): Fleet {
  const fleet = new Fleet({ agents: 1, nodePrefix, feeds: ['felix'], endpoints, caps: [], clock: realClock, random: seededRandom(1), connectRatePerSec: 0 });
  fleet.start();
  return fleet;
}

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

  it('moves to another replica with a rebase (its last STATUS watermarks), not a snapshot, when it advertises resume.watermarks', async () => {
    const cleanups: (() => Promise<void> | void)[] = [];
    const a = await scriptedReplica('fleet-a', cleanups);
    const b = await scriptedReplica('fleet-b', cleanups);
    // The same upstream events on both replicas, in other batches: other revision numbers.
    const events = Array.from({ length: 120 }, (_, i) => ({ key: `/pods/ns/p${i % 60}`, value: { i }, rv: 2_000 + i }));
    for (const [r, size] of [[a, 120], [b, 7]] as const) {
      for (let i = 0; i < events.length; i += size) {
        const part = events.slice(i, i + size);
        r.upstream.apply('felix', Object.fromEntries(part.map((e) => [e.key, e.value])), { status: 'in-sync', watermarks: { pods: String(part.at(-1)!.rv) } });
      }
    }
    const fleet = new Fleet({ agents: 40, nodePrefix: 'moved-', feeds: ['felix'], endpoints: [a.server.url, b.server.url], caps: ['resume.watermarks'], clock: realClock, random: seededRandom(3), connectRatePerSec: 3_000 });
    fleet.start();
    try {
      await waitUntil(() => fleet.snapshot().inSync === 40, 'all 40 in sync', { timeoutMs: 30_000 });
      // The fleet spreads its agents over both endpoints; A's are the ones that move.
      const moved = a.server.connectionCount();
      expect(moved).toBeGreaterThan(0);
      const before = fleet.snapshot();
      expect(before.snapshots).toBe(40);
      // B moves on while A goes away: the agents must get B's changes since their watermarks.
      b.upstream.apply('felix', { '/pods/ns/p1': { moved: true } }, { watermarks: { pods: '2200' } });
      await a.server.close();
      const storeRevision = (): number => b.server.stores.get('felix')!.current().revision;
      await waitUntil(() => b.server.connectionCount() === 40 && fleet.snapshot().inSync === 40 && fleet.agents.every((x) => x.revisions()['felix'] === storeRevision()), 'all 40 on B, at its revision', { timeoutMs: 30_000 });
      const after = fleet.snapshot();
      expect(after.snapshots).toBe(40); // no new snapshot: every agent was rebased
      expect(after.resumes - before.resumes).toBe(moved);
      expect(after.violations).toBe(0);
      const modes = await b.server.metrics.registry.getSingleMetricAsString('cattail_handshake_feeds_total');
      expect(modes).toContain(`cattail_handshake_feeds_total{feed="felix",mode="rebase",reason=""} ${moved}`);
    } finally {
      fleet.stop();
      while (cleanups.length > 0) await cleanups.pop()?.();
    }
  });

  it('waits out a refusal\'s Retry-After and retries that server, counting the refusal once', async () => {
    const a = await fakeReplica('refusing');
    const b = await fakeReplica('other');
    // Both refuse once: whichever the agent starts on, it must come back there after Retry-After.
    for (const x of [a, b]) x.refuse = { count: 1, retryAfterS: 1, endpoints: [] };
    const t0 = Date.now();
    const fleet = oneAgent('refused-', [a.url, b.url]);
    try {
      await waitUntil(() => fleet.snapshot().inSync === 1, 'in sync', { timeoutMs: 10_000 });
      // Back on the server that refused, after its Retry-After; the other one never asked.
      expect([a.rec.upgrades, b.rec.upgrades].sort()).toEqual([0, 2]);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(1_000);
      const agent = fleet.agents[0]!;
      expect(agent.stats.refusals).toBe(1);
      expect(agent.stats.reconnects).toBe(1);
      expect([...agent.closeCodes.keys()]).toEqual([]);
    } finally {
      fleet.stop();
    }
  });

  it('does not reconnect before a GOODBYE\'s reconnectDelayMs', async () => {
    const a = await fakeReplica('leaving');
    const fleet = oneAgent('goodbye-', [a.url]);
    try {
      await waitUntil(() => fleet.snapshot().inSync === 1, 'in sync', { timeoutMs: 10_000 });
      const t0 = Date.now();
      a.goodbyeAll({ reconnectDelayMs: 1_500, reason: 'shutdown' }, 4010);
      await waitUntil(() => a.rec.upgrades === 2, 'back after the delay', { timeoutMs: 10_000 });
      expect(Date.now() - t0).toBeGreaterThanOrEqual(1_500);
      expect(fleet.agents[0]!.closeCodes.get(4010)).toBe(1);
    } finally {
      fleet.stop();
    }
  });

  it('closes a frame it refuses with the code the protocol gives it (4002 for an unknown type, 4003 above the frame limit)', async () => {
    const a = await fakeReplica('garbled');
    const fleet = oneAgent('garbled-', [a.url]);
    try {
      await waitUntil(() => fleet.snapshot().inSync === 1, 'in sync', { timeoutMs: 10_000 });
      const unknownType = encodeFrame({ type: 'ping', t: 1 });
      unknownType[1] = 0x7e;
      a.sendRawToAll(unknownType);
      await waitUntil(() => a.rec.clientCloses.length === 1, 'closed by the agent', { timeoutMs: 10_000 });
      expect(a.rec.clientCloses[0]!.code).toBe(4002);
      await waitUntil(() => fleet.snapshot().inSync === 1 && a.clients.size === 1, 'back in sync', { timeoutMs: 10_000 });
      // A header announcing a body above the default maxFrameBytes (1 MiB).
      const big = encodeFrame({ type: 'ping', t: 1 });
      big.writeUInt32BE(2 * 1_048_576, 24);
      a.sendRawToAll(big);
      await waitUntil(() => a.rec.clientCloses.length === 2, 'closed again', { timeoutMs: 10_000 });
      expect(a.rec.clientCloses[1]!.code).toBe(4003);
    } finally {
      fleet.stop();
    }
  });
});
