/**
 * Drain at shutdown and refusal while not ready, against the real server on loopback. The server's
 * clock is a FakeClock (pacing is read from fake time, never measured), its random source is
 * seeded, and every wait is on a real event (a close, a metric) rather than on elapsed time.
 */
import { describe, expect, it } from 'vitest';
import { waitUntil } from '../support/wait.js';
import { FakeClock } from '../../src/clock.js';
import { seededRandom } from '../../src/random.js';
import { on, skipWait, start } from '../client/helpers/harness.js';
import type { TestAgent } from './helpers/agent.js';
import { type Harness, harness } from './helpers/harness.js';
import { tryUpgrade } from './helpers/upgrade.js';

const PEERS = ['ws://peer-a.test:5473/', 'ws://peer-b.test:5473/', 'ws://peer-c.test:5473/'];
/** Liveness deadlines out of the way: fake time advances by minutes while agents idle. */
const QUIET = { pingIntervalMs: 3_600_000, pongTimeoutMs: 3_600_000, handshakeTimeoutMs: 3_600_000, maxFallBehindMs: 3_600_000, flushWindowMs: 0 };

async function fleet(h: Harness, n: number): Promise<TestAgent[]> {
  h.upstream.apply('felix', { '/pods/ns/a': { a: 1 } }, { status: 'in-sync' });
  const agents = Array.from({ length: n }, () => h.agent({ feeds: [{ name: 'felix' }] }));
  await Promise.all(agents.map((a) => a.untilRevision('felix', 1)));
  return agents;
}

/**
 * Advances fake time in `stepMs` steps until `count` agents were shed for `reason` (or `untilMs`),
 * returning the fake time of each close. After each step it waits for the shed agents' sockets to
 * close for real, so no close is ever cut short by the fake clock racing ahead of the network.
 */
async function stepUntilShed(h: Harness, clock: FakeClock, agents: TestAgent[], reason: string, count: number, untilMs: number, stepMs = 10): Promise<number[]> {
  const at: number[] = [];
  const base = await h.metric('cattail_connections_shed_total', { reason });
  while (at.length < count && clock.monotonic() < untilMs) {
    clock.advance(stepMs);
    const n = (await h.metric('cattail_connections_shed_total', { reason })) - base;
    while (at.length < n) at.push(clock.monotonic());
    const want = Math.min(at.length, agents.length);
    await waitUntil(() => agents.filter((a) => a.closeCode !== undefined).length >= want, 'shed agents closed');
  }
  return at;
}

function goodbyeOf(a: TestAgent): { reason: string; reconnectDelayMs?: number; endpoints?: string[] } {
  expect(a.goodbyeMessages).toHaveLength(1);
  return a.goodbyeMessages[0]!;
}

describe('server - drain at shutdown', () => {
  it('refuses new agents with 503, Retry-After and the peers, then closes agents one at a time over shutdownTimeoutMs', async () => {
    const clock = new FakeClock();
    const h = await harness({ clock, random: seededRandom(11), ...QUIET, peerEndpoints: PEERS, shutdownTimeoutMs: 6_000 });
    const agents = await fleet(h, 10);
    const done = h.server.drain();

    const refused = await tryUpgrade(h.server.url);
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBe('5');
    expect(String(refused.headers['x-cattail-endpoints']).split(',').sort()).toEqual([...PEERS].sort());
    expect(refused.body).toContain('draining');
    expect(await h.metric('cattail_connections_refused_total', { reason: 'draining' })).toBe(1);
    const ready = await fetch(`${h.server.httpUrl}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.text()).toContain('refusing agents: draining for shutdown');

    const at = await stepUntilShed(h, clock, agents, 'drain', 10, 6_000);
    // One close per step at most, never all at once, none at time 0.
    expect(at).toHaveLength(10);
    expect(new Set(at).size).toBe(10);
    expect(at[0]).toBeGreaterThan(0);
    // Paced over the time before the cut-off (6 s less the 2 s closing wait): 90 % of 4 s for 10
    // agents is 360 ms apart, jittered; the last goes before the cut-off, so none is left for it.
    const gaps = at.slice(1).map((t, i) => t - at[i]!);
    for (const g of gaps) {
      expect(g).toBeGreaterThanOrEqual(250);
      expect(g).toBeLessThanOrEqual(500);
    }
    expect(new Set(gaps).size).toBeGreaterThan(1);
    expect(at[9]).toBeLessThan(4_000);
    expect(await h.metric('cattail_connections_shed_total', { reason: 'drain-timeout' })).toBe(0);

    await done;
    for (const a of agents) {
      expect(a.closeCode).toBe(4010);
      const g = goodbyeOf(a);
      expect(g.reason).toBe('shutdown');
      expect([...(g.endpoints ?? [])].sort()).toEqual([...PEERS].sort());
      // Within one gap: smooths the arrivals at the peers without holding the agent away for long.
      expect(g.reconnectDelayMs).toBeGreaterThanOrEqual(0);
      expect(g.reconnectDelayMs).toBeLessThan(500);
    }
    // Each agent got its own order of the peers, so they do not all try the same one first.
    expect(new Set(agents.map((a) => goodbyeOf(a).endpoints?.[0])).size).toBeGreaterThan(1);
    expect(new Set(agents.map((a) => goodbyeOf(a).reconnectDelayMs)).size).toBeGreaterThan(1);
    expect(h.upstream.stopped).toBe(true);
  });

  it('refuseNew(): refuses new agents and sheds no more, the open ones stay (cattail serve, during the final checkpoint)', async () => {
    const clock = new FakeClock();
    const h = await harness({ clock, random: seededRandom(12), ...QUIET, peerEndpoints: PEERS, shutdownTimeoutMs: 6_000 });
    const agents = await fleet(h, 4);
    h.server.setTargetConnections(1); // over the target: shedding would start
    h.server.refuseNew();
    const refused = await tryUpgrade(h.server.url);
    expect(refused.status).toBe(503);
    expect(refused.body).toContain('draining');
    clock.advance(60_000);
    await new Promise((r) => setTimeout(r, 50));
    expect(agents.every((a) => a.closeCode === undefined)).toBe(true);
    expect(h.server.connectionCount()).toBe(4);
    expect(await h.metric('cattail_connections_shed_total')).toBe(0);
  });

  it('closes the rest at once when cut short (a second signal), their reconnect delays spread', async () => {
    const clock = new FakeClock();
    const h = await harness({ clock, random: seededRandom(5), ...QUIET, peerEndpoints: PEERS });
    const agents = await fleet(h, 10);
    const done = h.server.drain();
    // Default shutdownTimeoutMs (300 s) and 10 agents: the gap is capped at 1 s (±10 %).
    const at = await stepUntilShed(h, clock, agents, 'drain', 2, 10_000, 50);
    expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(900);
    await h.server.close();
    await done;
    // The server is done when its sockets closed; its agents read the last frames after (uWS reports
    // a socket closed as soon as it queued the close frame).
    await waitUntil(() => agents.every((a) => a.closeCode !== undefined), 'agents closed');
    expect(await h.metric('cattail_connections_shed_total', { reason: 'drain-forced' })).toBe(8);
    expect(agents.every((a) => a.closeCode === 4010)).toBe(true);
    const delays = agents.map((a) => goodbyeOf(a).reconnectDelayMs ?? -1);
    // 8 agents at once: delays spread over 8 × 20 ms, not all the same.
    for (const d of delays) expect(d).toBeGreaterThanOrEqual(0);
    expect(new Set(delays).size).toBeGreaterThan(4);
  });

  it('with no time to pace (shutdownTimeoutMs under the closing wait) closes everyone at once, spread', async () => {
    const clock = new FakeClock();
    const h = await harness({ clock, random: seededRandom(3), ...QUIET, shutdownTimeoutMs: 0 });
    const agents = await fleet(h, 20);
    const done = h.server.drain();
    clock.advance(0);
    expect(await h.metric('cattail_connections_shed_total', { reason: 'drain-timeout' })).toBe(20);
    await done;
    await waitUntil(() => agents.every((a) => a.closeCode !== undefined), 'agents closed');
    const delays = agents.map((a) => goodbyeOf(a).reconnectDelayMs!);
    for (const d of delays) expect(d).toBeLessThan(20 * 20);
    expect(new Set(delays).size).toBeGreaterThan(10);
    // No peers known: no endpoints key at all.
    expect(agents.every((a) => goodbyeOf(a).endpoints === undefined && a.closeCode === 4010)).toBe(true);
  });

  it('closes agents in their handshake first and agents mid-snapshot last', async () => {
    const clock = new FakeClock();
    const h = await harness({ clock, random: seededRandom(4), ...QUIET, socketHighWaterBytes: 1_024 });
    // A snapshot far bigger than what the kernel buffers of a paused socket hold.
    const big: Record<string, unknown> = {};
    for (let i = 0; i < 400; i++) big[`/pods/big/p${i}`] = { i, pad: 'x'.repeat(32 * 1024) };
    h.upstream.apply('felix', big, { status: 'in-sync' });
    const snapshotting = h.agent({ feeds: [{ name: 'felix' }] });
    snapshotting.ws.once('open', () => snapshotting.socket.pause());
    const streaming = h.agent({ feeds: [{ name: 'felix' }] });
    await streaming.untilRevision('felix', 1);
    const silent = h.agent({ feeds: [{ name: 'felix' }], silent: true });
    await waitUntil(() => h.server.connectionCount() === 3 && silent.ws.readyState === silent.ws.OPEN && snapshotting.ws.readyState === snapshotting.ws.OPEN, 'three connected');
    const done = h.server.drain();
    await stepUntilShed(h, clock, [], 'drain', 1, 10_000, 50);
    await waitUntil(() => silent.closeCode !== undefined, 'the handshake closed first');
    expect(streaming.closeCode).toBeUndefined();
    await stepUntilShed(h, clock, [], 'drain', 1, 10_000, 50);
    await waitUntil(() => streaming.closeCode !== undefined, 'the streaming agent closed second');
    expect(await h.metric('cattail_connections_shed_total', { reason: 'drain' })).toBe(2);
    expect(silent.goodbyes).toEqual(['shutdown']);
    snapshotting.socket.resume();
    await stepUntilShed(h, clock, [], 'drain', 1, 10_000, 50);
    await done;
    expect(await h.metric('cattail_connections_shed_total', { reason: 'drain' })).toBe(3);
  });

  it('a drained agent using the client library moves to the peer the GOODBYE names, and a new one follows the 503 hint', async () => {
    const b = await harness({ serverId: 'replica-b' });
    b.upstream.apply('felix', { '/pods/ns/a': { a: 1 } }, { status: 'in-sync' });
    const clock = new FakeClock();
    const a = await harness({ serverId: 'replica-a', clock, random: seededRandom(2), ...QUIET, peerEndpoints: [b.server.url] });
    a.upstream.apply('felix', { '/pods/ns/a': { a: 1 } }, { status: 'in-sync' });
    // The client knows only replica A; B is learnt from the server's hints.
    const first = start({ endpoints: [a.server.url] });
    first.guard.allow('CATTAIL_CLIENT_SERVER_CLOSED', 'CATTAIL_CLIENT_REFUSED');
    await first.client.whenInSync();
    const done = a.server.drain();

    const late = start({ endpoints: [a.server.url] });
    late.guard.allow('CATTAIL_CLIENT_REFUSED');
    await waitUntil(() => late.client.stats.refusals === 1, 'refused by the draining replica', on(late.client));
    await skipWait(late.clock);
    await waitUntil(() => late.client.inSync && late.client.stats.connects === 1, 'in sync on the hinted peer', on(late.client));

    await stepUntilShed(a, clock, [], 'drain', 1, 10_000, 50);
    await waitUntil(() => first.client.stats.goodbyes === 1 && first.client.state === 'reconnecting', 'goodbye', on(first.client));
    await skipWait(first.clock);
    await waitUntil(() => first.client.inSync && first.client.stats.connects === 2, 'in sync on the hinted peer', on(first.client));
    await done;
    expect(b.server.connectionCount()).toBe(2);
    await Promise.all([first.client.close(), late.client.close()]);
  });
});

describe('server - refusing agents until the initial sync', () => {
  it('answers 503 with the peers and says why in /readyz, then admits once every feed is in sync', async () => {
    const h = await harness({ feeds: ['felix', 'bgp'], peerEndpoints: PEERS });
    const r = await tryUpgrade(h.server.url);
    expect(r.status).toBe(503);
    expect(r.body).toContain('not-ready: feed felix waiting for initial sync; feed bgp waiting for initial sync');
    expect(String(r.headers['x-cattail-endpoints']).split(',')).toHaveLength(3);
    let ready = await fetch(`${h.server.httpUrl}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.text()).toContain('refusing agents: feed felix waiting for initial sync');

    h.upstream.apply('felix', { '/pods/ns/a': { a: 1 } }, { status: 'in-sync' });
    h.upstream.apply('bgp', {}, { status: 'resyncing' });
    expect((await tryUpgrade(h.server.url)).body).toContain('feed bgp resyncing (initial lists in progress)');
    expect(await h.metric('cattail_connections_refused_total', { reason: 'not-ready' })).toBe(2);

    h.upstream.apply('bgp', {}, { status: 'in-sync' });
    expect((await tryUpgrade(h.server.url)).status).toBe(101);
    ready = await fetch(`${h.server.httpUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.text()).toMatch(/admitting agents \(\d+ open\)/);
  });
});
