/**
 * Admission at the target share and shedding above it, against the real server on loopback. The
 * server runs on a FakeClock with a seeded random source; waits are on real events only.
 */
import { describe, expect, it } from 'vitest';
import { waitUntil } from '../support/wait.js';
import { FakeClock } from '../../src/clock.js';
import { seededRandom } from '../../src/random.js';
import type { TestAgent } from './helpers/agent.js';
import { type Harness, harness } from './helpers/harness.js';
import { tryUpgrade } from './helpers/upgrade.js';
import { Shedder } from '../../src/server/fanout/shed.js';
import { FanOutStats } from '../../src/server/fanout/stats.js';
import { createMetrics } from '../../src/server/ops/metrics.js';
import { Governor } from '../../src/server/transport/governor.js';
import type { Connection } from '../../src/server/transport/connection.js';

const PEERS = ['ws://peer-a.test:5473/', 'ws://peer-b.test:5473/'];
const QUIET = { pingIntervalMs: 3_600_000, pongTimeoutMs: 3_600_000, handshakeTimeoutMs: 3_600_000, maxFallBehindMs: 3_600_000, flushWindowMs: 0 };
const BIG = 'x'.repeat(32 * 1024);

async function acksSeen(h: Harness): Promise<number> {
  const data = await h.server.metrics.clientLag.histogram.get();
  return data.values.find((v) => (v as { metricName?: string }).metricName === 'cattail_client_lag_seconds_count')?.value ?? 0;
}

/** Advances fake time by `ms` in sweep-sized steps, letting real I/O (closes) run between them. */
async function advance(clock: FakeClock, ms: number, stepMs = 100): Promise<void> {
  for (let t = 0; t < ms; t += stepMs) {
    clock.advance(stepMs);
    await new Promise((r) => setImmediate(r));
  }
}

describe('server - admission at the target share', () => {
  it('refuses with 503 and a redirect at the target instead of accepting and shedding; readiness is unaffected', async () => {
    const clock = new FakeClock();
    const h = await harness({ clock, ...QUIET, targetConnections: 2, peerEndpoints: PEERS });
    h.upstream.apply('felix', { '/pods/ns/a': { a: 1 } }, { status: 'in-sync' });
    const agents = [h.agent({ feeds: [{ name: 'felix' }] }), h.agent({ feeds: [{ name: 'felix' }] })];
    await Promise.all(agents.map((a) => a.untilRevision('felix', 1)));
    const r = await tryUpgrade(h.server.url);
    expect(r.status).toBe(503);
    expect(r.body).toContain('over-target: at the target share (2 open, target 2)');
    expect(String(r.headers['x-cattail-endpoints']).split(',').sort()).toEqual(PEERS);
    expect(await h.metric('cattail_connections_refused_total', { reason: 'over-target' })).toBe(1);
    const ready = await fetch(`${h.server.httpUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.text()).toContain('refusing agents: at the target share (2 open, target 2)');
    // At the target is not above it: nobody is shed, however long.
    await advance(clock, 10_000, 1_000);
    expect(await h.metric('cattail_connections_shed_total')).toBe(0);
    expect(agents.every((a) => a.closeCode === undefined)).toBe(true);
  });
});

describe('server - shedding above the target', () => {
  it('asks a shed agent to wait at most a second, however slow the shedding interval', async () => {
    const clock = new FakeClock();
    // random() near 1: the longest wait the spread allows.
    const h = await harness({ clock, random: () => 0.999, ...QUIET, peerEndpoints: PEERS, shedIntervalMs: 600_000 });
    h.upstream.apply('felix', { '/pods/a': { a: 1 } }, { status: 'in-sync' });
    const agents = [h.agent({ feeds: [{ name: 'felix' }] }), h.agent({ feeds: [{ name: 'felix' }] })];
    await Promise.all(agents.map((a) => a.untilRevision('felix', 1)));
    for (const a of agents) a.sendMessage({ type: 'ack', feedId: 0, revision: 1 });
    await waitUntil(async () => (await acksSeen(h)) === 2, 'acks processed');
    h.server.setTargetConnections(1);
    await advance(clock, 700_000, 10_000);
    const shed = agents.find((a) => a.closeCode !== undefined);
    expect(shed?.closeCode).toBe(4009);
    const g = shed!.goodbyeMessages[0]!;
    expect(g.reason).toBe('shed');
    expect(g.reconnectDelayMs).toBeLessThan(1_000);
    expect(g.reconnectDelayMs).toBeGreaterThan(900);
  });

  it('sheds one agent per interval: acknowledged ones first, never one in its handshake or snapshot', async () => {
    const clock = new FakeClock();
    const h = await harness({ clock, random: seededRandom(9), ...QUIET, peerEndpoints: PEERS, shedIntervalMs: 1_000, socketHighWaterBytes: 1_024 });
    // A snapshot far bigger than what the kernel buffers of a paused socket hold.
    const big: Record<string, unknown> = {};
    for (let i = 0; i < 400; i++) big[`/pods/big/p${i}`] = { i, pad: BIG };
    h.upstream.apply('felix', big, { status: 'in-sync' });

    const acked = [h.agent({ feeds: [{ name: 'felix' }] }), h.agent({ feeds: [{ name: 'felix' }] })];
    const fresh = h.agent({ feeds: [{ name: 'felix' }] });
    await Promise.all([...acked, fresh].map((a) => a.untilRevision('felix', 1)));
    for (const a of acked) a.sendMessage({ type: 'ack', feedId: 0, revision: 1 });
    await waitUntil(async () => (await acksSeen(h)) === 2, 'acks processed');
    const silent = h.agent({ feeds: [{ name: 'felix' }], silent: true });
    const snapshotting = h.agent({ feeds: [{ name: 'felix' }] });
    snapshotting.ws.once('open', () => snapshotting.socket.pause());
    await waitUntil(() => h.server.connectionCount() === 5 && h.server.fanoutStats().sharedBytes > 0, 'all five connected');
    await waitUntil(() => snapshotting.ws.readyState === snapshotting.ws.OPEN, 'snapshotting agent open');

    h.server.setTargetConnections(1);
    const order: TestAgent[] = [];
    const all = [...acked, fresh, silent, snapshotting];
    const shedTimes: number[] = [];
    for (let round = 0; round < 10; round++) {
      await advance(clock, 1_000);
      const shed = await h.metric('cattail_connections_shed_total', { reason: 'over-target' });
      while (shedTimes.length < shed) shedTimes.push(clock.monotonic());
      await waitUntil(() => all.filter((a) => a.closeCode !== undefined).length === shed, 'shed agents closed');
      for (const a of all) if (a.closeCode !== undefined && !order.includes(a)) order.push(a);
    }
    // Three could go; the one in its handshake and the one in its snapshot stay although over target.
    const name = (a: TestAgent): string => ['acked', 'acked', 'fresh', 'silent', 'snapshotting'][all.indexOf(a)]!;
    expect(order.map(name)).toEqual(['acked', 'acked', 'fresh']);
    expect(silent.closeCode).toBeUndefined();
    expect(snapshotting.closeCode).toBeUndefined();
    // One per interval (±10 %), not a burst.
    for (let i = 1; i < shedTimes.length; i++) expect(shedTimes[i]! - shedTimes[i - 1]!).toBeGreaterThanOrEqual(900);
    for (const a of order) {
      expect(a.closeCode).toBe(4009);
      const g = a.goodbyeMessages[0]!;
      expect(g.reason).toBe('shed');
      expect([...(g.endpoints ?? [])].sort()).toEqual(PEERS);
      expect(g.reconnectDelayMs).toBeLessThan(1_000);
    }

    // Once its snapshot is through, the snapshotting agent may go too; the silent one never.
    snapshotting.socket.resume();
    await snapshotting.untilRevision('felix', 1);
    for (let round = 0; round < 5 && snapshotting.closeCode === undefined; round++) {
      await advance(clock, 1_000);
      await waitUntil(async () => all.filter((a) => a.closeCode !== undefined).length === (await h.metric('cattail_connections_shed_total')), 'shed agents closed');
    }
    expect(snapshotting.closeCode).toBe(4009);
    await advance(clock, 5_000);
    expect(silent.closeCode).toBeUndefined();
    expect(await h.metric('cattail_connections_shed_total', { reason: 'over-target' })).toBe(4);
  });
});

describe('shedder - the flush before the closes', () => {
  it('a flush that throws does not stop the paced drain nor the closes at once: every agent still gets its GOODBYE', async () => {
    const clock = new FakeClock();
    const conns = new Set<Connection>();
    const failed: string[] = [];
    for (let i = 0; i < 4; i++) {
      const c = {
        id: i, node: `n${i}`, open: true, state: 'streaming', cursors: [], writableBytes: 0, needsService: false,
        fail(code: string, _msg: string, reason: string) {
          failed.push(`${i} ${code} ${reason}`);
          this.open = false;
          conns.delete(c as unknown as Connection);
        },
      };
      conns.add(c as unknown as Connection);
    }
    let flushes = 0;
    const shedder = new Shedder({
      clock, random: seededRandom(1), metrics: createMetrics(new FanOutStats(), { defaultMetrics: false }), log: undefined,
      connections: () => conns, governor: new Governor({ maxConnections: 100, retryAfterMs: 1_000, random: seededRandom(2) }),
      shedIntervalMs: 1_000, shutdownTimeoutMs: 60_000,
      whenEmpty: () => new Promise<void>(() => undefined),
      flushPending: () => {
        flushes++;
        throw new Error('a flush bug');
      },
    });
    void shedder.drain();
    // Paced closes: before, the first one's flush threw out of the drain timer.
    for (let t = 0; t < 20_000 && failed.length < 2; t += 100) clock.advance(100);
    expect(failed.length).toBeGreaterThanOrEqual(2);
    // The rest at once (a second signal): the same.
    const left = 4 - failed.length;
    expect(shedder.closeRest('drain-forced')).toBe(left);
    expect(failed).toHaveLength(4);
    expect(failed.every((f) => f.includes('CATTAIL_SERVER_SHUTTING_DOWN shutdown'))).toBe(true);
    expect(flushes).toBeGreaterThanOrEqual(3);
    shedder.stop();
  });
});
