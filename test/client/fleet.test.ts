import { RETRY_AFTER_CAP_MS } from '../../src/retry-after.js';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeFrame } from '../../proto/index.js';
import { waitUntil } from '../support/wait.js';
import { FakeClock, realClock } from '../../src/clock.js';
import { Fleet } from '../../src/client/fleet/fleet.js';
import { DiscardAgent, type DiscardAgentOptions } from '../../src/client/fleet/discard-agent.js';
import { compressFrame } from '../../src/frame-compression.js';
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

const agents: DiscardAgent[] = [];
afterEach(() => {
  for (const a of agents.splice(0)) a.stop();
});

/**
 * One discard agent of the felix feed, started. random 0: it starts on the first endpoint and
 * every backoff is the shortest its jitter allows.
 */
function discardAgent(endpoints: string[], o: Partial<DiscardAgentOptions> = {}): DiscardAgent {
  const a = new DiscardAgent({ node: 'hostile-0', feeds: ['felix'], endpoints, caps: [], clock: realClock, random: () => 0, ...o });
  agents.push(a);
  a.start();
  return a;
}

/** A ws:// URL where nothing listens (the port was bound a moment ago, then released). */
async function deadUrl(): Promise<string> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return `ws://127.0.0.1:${port}`;
}

describe('client - a discard agent against hostile servers', () => {
  it('ignores a 503\'s endpoint hint without a scheme and retries its server (ws threw on it from a timer: the process died)', async () => {
    const a = await fakeReplica('refusing');
    a.refuse = { count: 1, retryAfterS: 0, endpoints: ['cattail-1:5473'] };
    const agent = discardAgent([a.url]);
    await waitUntil(() => agent.inSync, 'in sync on the server that refused', { timeoutMs: 10_000 });
    expect(a.rec.upgrades).toBe(2);
    expect(agent.stats.refusals).toBe(1);
    expect(agent.stats.reconnects).toBe(1);
    expect([...agent.failures]).toEqual([]);
  });

  it('follows a GOODBYE past its unusable endpoints (no scheme, or one ws cannot dial) to a valid one, counting the failure', async () => {
    const a = await fakeReplica('leaving');
    const b = await fakeReplica('peer');
    const agent = discardAgent([a.url]);
    await waitUntil(() => agent.inSync, 'in sync on A', { timeoutMs: 10_000 });
    // The second passes new URL(), so it is kept as a hint; ws refuses a fragment when dialling.
    a.goodbyeAll({ reconnectDelayMs: 0, endpoints: ['cattail-2:5473', 'ws://127.0.0.1:1/#peer', b.url] }, 4010);
    await waitUntil(() => agent.inSync && b.clients.size === 1, 'in sync on B', { timeoutMs: 10_000 });
    expect([...agent.failures]).toEqual([['CATTAIL_CLIENT_CONNECT_FAILED', 1]]);
    expect(agent.stats.reconnects).toBe(2);
    expect(agent.closeCodes.get(4010)).toBe(1);
  });

  it('tries at most 16 hints of a 503, however many it names', async () => {
    const a = await fakeReplica('refusing');
    const dead = await deadUrl();
    a.refuse = { count: 1, retryAfterS: 0, endpoints: Array.from({ length: 40 }, (_, i) => `${dead}/peer-${i}`) };
    // Virtual time for the backoffs after 16 failed connections (about 166 s); the handshake
    // bound is out of the way, as virtual time runs ahead of the real sockets here.
    const clock = new FakeClock();
    const agent = discardAgent([a.url], { clock, handshakeTimeoutMs: 3_600_000 });
    await waitUntil(() => agent.inSync, 'in sync on A after the hints', { clock, stepMs: 250, timeoutMs: 400_000 });
    expect(agent.failures.get('CATTAIL_CLIENT_CONNECT_FAILED')).toBe(16);
    expect(agent.stats.reconnects).toBe(1 + 16);
    expect(a.rec.upgrades).toBe(2);
  });

  it('waits a hostile Retry-After out only up to the shared cap (5 minutes), not for as long as it says', async () => {
    const a = await fakeReplica('refusing');
    a.refuse = { count: 1, retryAfterS: 99_999_999, endpoints: [] };
    const clock = new FakeClock();
    const agent = discardAgent([a.url], { clock, handshakeTimeoutMs: 3_600_000 });
    // Before, Number() took the value as it came: ~1,157 days before the next attempt.
    await waitUntil(() => agent.inSync, 'in sync after the capped wait', { clock, stepMs: 1_000, timeoutMs: RETRY_AFTER_CAP_MS + 60_000 });
    expect(agent.stats.refusals).toBe(1);
    expect(a.rec.upgrades).toBe(2);
  });

  it('a 503\'s hints replace those of the 503 before: a refusal storm does not pile up peers to chase', async () => {
    const a = await fakeReplica('a');
    const r = await fakeReplica('r');
    const dead = await deadUrl();
    // A names R first and dead peers after; R, refusing too, names A alone.
    a.refuse = { count: 1, retryAfterS: 0, endpoints: [r.url, ...Array.from({ length: 5 }, (_, i) => `${dead}/peer-${i}`)] };
    r.refuse = { count: 1, retryAfterS: 0, endpoints: [a.url] };
    const agent = discardAgent([a.url]);
    await waitUntil(() => agent.inSync, 'in sync', { timeoutMs: 10_000 });
    expect([a.rec.upgrades, r.rec.upgrades]).toEqual([2, 1]);
    expect(agent.stats.reconnects).toBe(2);
    expect([...agent.failures]).toEqual([]);
  });

  it('forgets the hints left once in sync: a later GOODBYE without any sends it back to its list', async () => {
    const a = await fakeReplica('a');
    const b = await fakeReplica('b');
    const dead = await deadUrl();
    a.refuse = { count: 1, retryAfterS: 0, endpoints: [b.url, `${dead}/gone-1`, `${dead}/gone-2`] };
    const agent = discardAgent([a.url]);
    await waitUntil(() => agent.inSync && b.clients.size === 1, 'in sync on the hinted B', { timeoutMs: 10_000 });
    b.goodbyeAll({ reconnectDelayMs: 0 }, 4010);
    await waitUntil(() => agent.inSync && a.clients.size === 1, 'in sync on A', { timeoutMs: 10_000 });
    expect(agent.stats.reconnects).toBe(2);
    expect([...agent.failures]).toEqual([]);
  });

  it('gives up on a server that accepts TCP but never answers the upgrade, and moves on', async () => {
    const held = new Set<Socket>();
    let released = 0;
    // It reads the request (so that it sees the agent hang up) and answers nothing.
    const silent = createServer((s) => {
      held.add(s);
      s.on('close', () => released++).resume();
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const b = await fakeReplica('answering');
      const agent = discardAgent([`ws://127.0.0.1:${(silent.address() as AddressInfo).port}`, b.url], { handshakeTimeoutMs: 200 });
      await waitUntil(() => agent.inSync && b.clients.size === 1, 'in sync on B', { timeoutMs: 5_000 });
      expect([...agent.failures]).toEqual([['CATTAIL_CLIENT_HANDSHAKE_TIMEOUT', 1]]);
      expect(agent.stats.reconnects).toBe(1);
      await waitUntil(() => released === 1, 'the silent server\'s socket released', { timeoutMs: 5_000 });
      expect(held.size).toBe(1);
    } finally {
      for (const s of held) s.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it('closes a black-holed connection after its read timeout (3 × pingIntervalMs) with 4013 and moves on', async () => {
    const a = await fakes.server({ serverId: 'black-hole', pingIntervalMs: 100 });
    a.load('felix', [['/pods/demo/a', { ip: '10.0.0.1' }]], { pods: '10' });
    const b = await fakeReplica('answering');
    const agent = discardAgent([a.url, b.url]);
    await waitUntil(() => agent.inSync && a.clients.size === 1, 'in sync on A', { timeoutMs: 5_000 });
    a.blackhole();
    await waitUntil(() => agent.inSync && b.clients.size === 1, 'in sync on B', { timeoutMs: 5_000 });
    expect([...agent.failures]).toEqual([['CATTAIL_CLIENT_READ_TIMEOUT', 1]]);
    expect(agent.closeCodes.get(4013)).toBe(1);
    expect(agent.stats.reconnects).toBe(1);
  });

  it('refuses (4003) a compressed body that inflates past its limit: its own 1 MiB, or a smaller one of the WELCOME', async () => {
    for (const [welcomeMaxFrameBytes, inflated] of [[1_048_576, 2 * 1_048_576], [65_536, 128 * 1024]] as const) {
      const a = await fakes.server({ serverId: `bomb-${welcomeMaxFrameBytes}`, compression: 'deflate', welcomeMaxFrameBytes });
      a.load('felix', [['/pods/demo/a', { ip: '10.0.0.1' }]], { pods: '10' });
      const agent = discardAgent([a.url], { caps: ['compress.deflate'] });
      await waitUntil(() => agent.inSync, 'in sync', { timeoutMs: 5_000 });
      const bomb = compressFrame('deflate', encodeFrame({ type: 'error', code: 'CATTAIL_SERVER_INTERNAL', message: 'x'.repeat(inflated) }));
      expect(bomb.length).toBeLessThan(welcomeMaxFrameBytes / 8);
      a.sendRawToAll(bomb);
      await waitUntil(() => a.rec.clientCloses.length === 1, `closed by the agent (WELCOME maxFrameBytes ${welcomeMaxFrameBytes})`, { timeoutMs: 5_000 });
      expect(a.rec.clientCloses[0]!.code).toBe(4003);
      expect(agent.stats.violations).toBe(1);
      await waitUntil(() => agent.inSync && a.clients.size === 1, 'back in sync', { timeoutMs: 5_000 });
    }
  });

  it('does not take its own read impairment (a stall longer than the read timeout) for a silent server', async () => {
    const h = await harness({ feeds: ['felix'], pingIntervalMs: 100 });
    h.upstream.apply('felix', { '/pods/ns/p0': { i: 0 } }, { status: 'in-sync' });
    const agent = discardAgent([h.server.url], { impairment: { kind: 'stall', stallMs: 1_000 } });
    await waitUntil(() => agent.stats.impaired === 1, 'stalled', { timeoutMs: 5_000 });
    h.upstream.apply('felix', { '/pods/ns/p1': { i: 1 } });
    const want = h.storeRevision('felix');
    await waitUntil(() => agent.revisions()['felix'] === want, 'the change read after the stall', { timeoutMs: 5_000 });
    expect([...agent.failures]).toEqual([]);
    expect(agent.stats.reconnects).toBe(0);
  });
});
