/**
 * The service queue's turn budget (turn-queue.ts): a turn ends on bytes or on time measured by the
 * injected clock, catch-ups go before snapshot streams, and a storm still converges. The clock is a
 * FakeClock that the served items advance by hand, so no test sleeps or reads wall time.
 */
import { describe, expect, it, vi } from 'vitest';
import { FakeClock } from '../../src/clock.js';
import { TurnQueue } from '../../src/server/fanout/turn-queue.js';
import { WsTransport } from '../../src/server/transport/ws-transport.js';
import { harness } from './helpers/harness.js';

describe('service turn budget', () => {
  it('ends a turn once its time on the injected clock is spent, serving at least one item', () => {
    const clock = new FakeClock();
    const q = new TurnQueue<number>(clock, { maxMs: 20, maxBytes: Infinity });
    for (let i = 0; i < 10; i++) q.add(i, false);
    const served: number[] = [];
    // Each item "takes" 7 ms: 0 ms, 7, 14 are under 20; the fourth starts at 21 ms and must wait.
    const cut = q.runTurn((i) => {
      served.push(i);
      clock.advance(7);
      return 0;
    });
    expect(cut).toBe(true);
    expect(served).toEqual([0, 1, 2]);
    expect(q.size).toBe(7);
    // An item slower than the whole budget still gets served alone: the queue always moves.
    const one: number[] = [];
    q.runTurn((i) => {
      one.push(i);
      clock.advance(500);
      return 0;
    });
    expect(one).toEqual([3]);
  });

  it('ends a turn once its bytes are spent', () => {
    const q = new TurnQueue<string>(new FakeClock(), { maxMs: 1_000, maxBytes: 3 * 1024 * 1024 });
    for (const c of 'abcdef') q.add(c, false);
    const served: string[] = [];
    expect(q.runTurn((c) => (served.push(c), 1024 * 1024))).toBe(true);
    expect(served).toEqual(['a', 'b', 'c']);
    expect(q.runTurn((c) => (served.push(c), 1024 * 1024))).toBe(false);
    expect(served).toEqual([...'abcdef']);
    expect(q.size).toBe(0);
  });

  it('serves urgent items (catch-ups) before the rest (snapshot streams), and re-queued items wait a turn', () => {
    const q = new TurnQueue<string>(new FakeClock(), { maxMs: 1_000, maxBytes: Infinity });
    q.add('snap1', false);
    q.add('snap2', false);
    q.add('catchup', true);
    q.add('snap2', true); // became urgent while waiting
    const served: string[] = [];
    q.runTurn((c) => {
      served.push(c);
      q.add(c, false); // its own progress queues it again
      return 0;
    });
    expect(served).toEqual(['catchup', 'snap2', 'snap1']);
    expect(q.size).toBe(3);
  });

  it('spreads a snapshot storm over budgeted turns and every agent still converges', async () => {
    // A slow build (20 entries per loop turn) keeps every agent subscribed to it at once, so each
    // slice queues all of them together with ~20 KB each: more than one turn's 64 KiB.
    const h = await harness({ serviceTurn: { maxMs: 1_000, maxBytes: 64 * 1024 }, snapshotBuildSliceEntries: 20, maxFrameBytes: 16_384 });
    const batch: Record<string, unknown> = {};
    for (let i = 0; i < 1_000; i++) batch[`/pods/ns/p${i}`] = { i, pad: 'y'.repeat(1_000) };
    h.upstream.apply('felix', batch, { status: 'in-sync' });
    const agents = Array.from({ length: 8 }, () => h.agent({ feeds: [{ name: 'felix' }] }));
    const rev = h.storeRevision('felix');
    await Promise.all(agents.map((a) => a.untilRevision('felix', rev)));
    for (const a of agents) expect(a.digest('felix')).toEqual(h.storeDigest('felix'));
    const s = h.server.fanoutStats();
    expect(s.serviceTurnsCut).toBeGreaterThan(0);
    expect(h.server.snapshotStats().built).toBe(1);
  });
});

describe('listen backlog', () => {
  it('passes listenBacklog to listen(2) and rejects values outside 1..65535', async () => {
    const hooks = { admit: () => undefined, refused: () => undefined, accept: () => undefined };
    const t = new WsTransport({ hooks, limits: { maxInboundBytes: 65_536, handshakeTimeoutMs: 1_000 } });
    const spy = vi.spyOn(t.http, 'listen');
    await t.listen({ host: '127.0.0.1', port: 0, backlog: 4096 });
    expect(spy.mock.calls[0]?.[0]).toEqual({ host: '127.0.0.1', port: 0, backlog: 4096 });
    await t.close();
    await expect(harness({ listenBacklog: 0 })).rejects.toMatchObject({ code: 'CATTAIL_INVALID_ARGUMENT' });
    const h = await harness({ listenBacklog: 8192 });
    expect(h.server.url).toMatch(/^ws:/);
  });
});
