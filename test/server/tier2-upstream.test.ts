/**
 * The second tier's upstream (upstream-cattail.ts) against a scripted tier-1 client: what reaches
 * the store, in which batches, and when the feed turns stale. The client's events are emitted by
 * hand and the clock is a FakeClock, so each case is exact. tier2.test.ts runs the real thing.
 */
import { describe, expect, it } from 'vitest';
import type { ChangeBatch, FeedStatus } from '../../src/client/feed-view.js';
import type { StatusEvent } from '../../src/client/status.js';
import { FakeClock } from '../../src/clock.js';
import type { FeedBatch } from '../../src/server/pipeline/seams.js';
import { CattailUpstream, HELD_MAX_MS, TIER1_AHEAD_PERSIST_MS, TIER1_GOODBYE_WAIT_MAX_MS, TIER1_MOVE_MIN_MS, type Tier1Client } from '../../src/server/upstream-cattail.js';
import { builtinFeed } from '../../src/server/upstream/feeds.js';

interface Events {
  change: ChangeBatch;
  feedStatus: FeedStatus;
  status: StatusEvent;
}

/** A tier-1 client whose events the test emits. */
class ScriptedClient {
  readonly listeners: { [K in keyof Events]: ((e: Events[K]) => void)[] } = { change: [], feedStatus: [], status: [] };
  on<K extends keyof Events>(event: K, fn: (e: Events[K]) => void): () => void {
    (this.listeners[event] as ((e: Events[K]) => void)[]).push(fn);
    return () => undefined;
  }
  emit<K extends keyof Events>(event: K, e: Events[K]): void {
    for (const fn of this.listeners[event] as ((e: Events[K]) => void)[]) fn(e);
  }
  /** moveOn() calls, and what it answers (false: no connection open). */
  readonly moves: string[] = [];
  connected = true;
  inSync = true;
  moveOn(why: string): boolean {
    if (this.connected) this.moves.push(why);
    return this.connected;
  }
  feed(): { model: undefined } {
    return { model: undefined };
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

function setup(staleAfterMs = 1_000, feeds = ['felix']) {
  const clock = new FakeClock();
  const client = new ScriptedClient();
  const batches: FeedBatch[] = [];
  const up = new CattailUpstream({
    endpoints: ['ws://tier1.test:5473/'], service: undefined, feeds, replicaId: 't2', staleAfterMs, clock,
    connect: () => client as unknown as Tier1Client,
  });
  const byFeed: [string, FeedBatch][] = [];
  up.start({ onBatch: (feed, b) => (batches.push(b), byFeed.push([feed, b])) });
  return { clock, client, batches, byFeed, up };
}

const change = (key: string, v: number, feed = 'felix'): ChangeBatch => ({ feed, revision: v, cause: 'delta', upserts: [{ key, value: Buffer.from([v]), raw: Buffer.from([v]) }], deletes: [] });
const status = (sync: FeedStatus['sync'], watermarks: Record<string, string>, stale = false, historySkips = 0, feed = 'felix'): FeedStatus => ({
  feed, sync, stale, revision: 1, size: 1, verifiedRevision: 1, watermarks, retiredWatermarks: {}, lagMs: 0, snapshot: undefined, historySkips,
});
const state = (s: StatusEvent['state']): StatusEvent => ({ state: s, from: 'idle', endpoint: 'ws://tier1.test:5473/', serverId: undefined, reason: undefined, delayMs: undefined, staleFeeds: undefined, discovery: undefined, attempt: 0, at: 0 });

describe('tier 2: agents that hold newer state than its tier-1 replica', () => {
  it('moves to another tier-1 replica when agents go on being refused as ahead for TIER1_AHEAD_PERSIST_MS, at most once per TIER1_MOVE_MIN_MS', () => {
    const { clock, client, up } = setup();
    const POOLS = ['ippools.crd.projectcalico.org'];
    // One refusal is no evidence (tier-1 replicas trail each other by moments).
    up.recheckMissing(POOLS);
    clock.advance(TIER1_AHEAD_PERSIST_MS - 1);
    up.recheckMissing(POOLS);
    expect(client.moves).toHaveLength(0);
    clock.advance(1);
    up.recheckMissing(POOLS);
    expect(client.moves).toHaveLength(1);
    expect(client.moves[0]).toContain('ippools.crd.projectcalico.org');
    // Within the minute: no further move, whatever the refusals.
    clock.advance(TIER1_MOVE_MIN_MS - 1);
    up.recheckMissing(POOLS);
    expect(client.moves).toHaveLength(1);
    clock.advance(1);
    // Evidence starts again after a move.
    up.recheckMissing(POOLS);
    clock.advance(TIER1_AHEAD_PERSIST_MS);
    up.recheckMissing(POOLS);
    expect(client.moves).toHaveLength(2);
  });

  it('does not move while it catches up with tier 1, on a refusal that names no resource, or on evidence older than a minute', () => {
    const { clock, client, up } = setup();
    client.inSync = false;
    up.recheckMissing(['pods']);
    clock.advance(TIER1_AHEAD_PERSIST_MS);
    up.recheckMissing(['pods']);
    expect(client.moves).toHaveLength(0);
    client.inSync = true;
    up.recheckMissing([]);
    clock.advance(TIER1_AHEAD_PERSIST_MS);
    up.recheckMissing([]);
    expect(client.moves).toHaveLength(0);
    // A first refusal, then the next only after a minute: that one starts the evidence anew.
    up.recheckMissing(['pods']);
    clock.advance(TIER1_MOVE_MIN_MS);
    up.recheckMissing(['pods']);
    expect(client.moves).toHaveLength(0);
    clock.advance(TIER1_AHEAD_PERSIST_MS);
    // moveOn refused (no connection open, or nowhere else to go now): tried again at the next refusal.
    client.connected = false;
    up.recheckMissing(['pods']);
    client.connected = true;
    up.recheckMissing(['pods']);
    expect(client.moves).toHaveLength(1);
  });
});

describe('tier 2: what reaches the store', () => {
  it('asks tier 1 for feeds of its own definition only: the resources of each built-in feed it follows (PROTOCOL.md §8 "A feed\'s resources")', () => {
    let asked: Parameters<NonNullable<ConstructorParameters<typeof CattailUpstream>[0]['connect']>>[0] | undefined;
    const up = new CattailUpstream({
      endpoints: ['ws://tier1.test:5473/'], service: undefined, feeds: ['felix', 'bgp'], replicaId: 't2', staleAfterMs: 1_000, clock: new FakeClock(),
      connect: (o) => ((asked = o), new ScriptedClient() as unknown as Tier1Client),
    });
    up.start({ onBatch: () => undefined });
    expect(asked?.resources).toEqual({ felix: builtinFeed('felix').resources, bgp: builtinFeed('bgp').resources });
    expect(asked?.resources?.['felix']?.length).toBeGreaterThan(10);
    // And values of its own data model only: a tier 1 announcing another is refused at WELCOME
    // (4002), where before its values were passed on under this replica's model.
    expect(asked?.models).toEqual({ felix: [builtinFeed('felix').model ?? 'calico.v1'], bgp: [builtinFeed('bgp').model ?? 'calico.v1'] });
    expect(asked?.models?.['felix']).toEqual(['libcalico.v3']);
    // A tier-1 GOODBYE keeps it off the other tier-1 replicas for a second at most, not the
    // up to 30 s a crowd of agents is spread over (its own agents hear nothing meanwhile).
    expect(asked?.goodbyeDelayMaxMs).toBe(TIER1_GOODBYE_WAIT_MAX_MS);
    expect(TIER1_GOODBYE_WAIT_MAX_MS).toBeLessThanOrEqual(1_000);
  });

  it('a change goes to the store with the watermarks of the STATUS that follows it, in one batch', () => {
    const { client, batches } = setup();
    client.emit('feedStatus', status('in-sync', { pods: '100' }));
    client.emit('change', change('/a', 1));
    client.emit('change', change('/b', 2));
    // Nothing yet: a revision applied now would be recorded at {pods: 100}, before the change.
    expect(batches).toHaveLength(1);
    client.emit('feedStatus', status('in-sync', { pods: '105' }));
    expect(batches).toHaveLength(2);
    expect(batches[1]?.updates.map((u) => u.key)).toEqual(['/a', '/b']);
    expect(batches[1]?.watermarks).toEqual({ pods: '105' });
    expect(batches[1]?.status).toBe('in-sync');
  });

  it('a change with no STATUS after it goes alone after HELD_MAX_MS, and a later one waits its own full time', () => {
    const { clock, client, batches } = setup();
    client.emit('change', change('/a', 1));
    clock.advance(HELD_MAX_MS - 1);
    expect(batches).toHaveLength(0);
    clock.advance(1);
    expect(batches).toEqual([{ updates: [{ key: '/a', value: Buffer.from([1]) }] }]);
    // A change whose STATUS came cancels the timer: the next change is not released early.
    client.emit('change', change('/b', 2));
    client.emit('feedStatus', status('in-sync', { pods: '7' }));
    clock.advance(HELD_MAX_MS - 10);
    client.emit('change', change('/c', 3));
    clock.advance(20);
    expect(batches).toHaveLength(2);
    client.emit('feedStatus', status('in-sync', { pods: '8' }));
    expect(batches[2]).toMatchObject({ updates: [{ key: '/c' }], watermarks: { pods: '8' } });
  });

  it('each feed waits its own HELD_MAX_MS: another feed\'s STATUS does not release, nor an earlier change\'s timer', () => {
    const { clock, client, byFeed } = setup(1_000, ['felix', 'bgp']);
    client.emit('change', change('/a', 1));
    clock.advance(995);
    client.emit('change', change('/b', 2, 'bgp'));
    clock.advance(1);
    client.emit('feedStatus', status('in-sync', { pods: '5' }));
    expect(byFeed.map(([f]) => f)).toEqual(['felix']);
    clock.advance(HELD_MAX_MS - 10);
    expect(byFeed.map(([f]) => f)).toEqual(['felix']);
    client.emit('feedStatus', status('in-sync', { bgp: '9' }, false, 0, 'bgp'));
    expect(byFeed[1]).toEqual(['bgp', expect.objectContaining({ updates: [expect.objectContaining({ key: '/b' })], watermarks: { bgp: '9' } })]);
  });

  it('once in sync, a tier-1 status that goes back (a replica resyncing from its checkpoint) is not passed on', () => {
    const { client, batches } = setup();
    client.emit('feedStatus', status('resyncing', { pods: '1' }));
    client.emit('feedStatus', status('in-sync', { pods: '2' }));
    client.emit('feedStatus', status('resyncing', { pods: '3' }, true));
    expect(batches.map((b) => b.status)).toEqual(['resyncing', 'in-sync', undefined]);
    // Its watermarks and staleness still are.
    expect(batches[2]).toMatchObject({ watermarks: { pods: '3' }, stale: true });
  });

  it('records keys tier 1 sent with the value already held (A→B→A there) as changes: force, so a rebase from before them sends them', () => {
    const { client, batches } = setup();
    client.emit('feedStatus', status('in-sync', { pods: '1' }));
    client.emit('change', { ...change('/a', 1), upserts: [], reasserted: [{ key: '/k', raw: Buffer.from([7]) }] });
    client.emit('change', { ...change('/b', 2), reasserted: [{ key: '/j', raw: Buffer.from([8]) }] });
    client.emit('feedStatus', status('in-sync', { pods: '3' }));
    expect(batches.at(-1)?.updates).toEqual([
      { key: '/k', value: Buffer.from([7]), force: true },
      { key: '/b', value: Buffer.from([2]) },
      { key: '/j', value: Buffer.from([8]), force: true },
    ]);
    expect(batches.at(-1)?.barrier).toBeUndefined();
  });

  it('marks the batch after a skip in the client\'s history (a resync, unheld deletions) as a barrier, once', () => {
    const { client, batches } = setup();
    client.emit('feedStatus', status('in-sync', { pods: '1' }));
    client.emit('change', change('/a', 1));
    client.emit('feedStatus', status('in-sync', { pods: '2' }, false, 1));
    client.emit('feedStatus', status('in-sync', { pods: '3' }, false, 1));
    expect(batches.map((b) => b.barrier)).toEqual([undefined, true, undefined]);
  });
});

describe('tier 2: staleness', () => {
  it('turns stale when tier 1 keeps cutting it off after WELCOME (syncing) for staleAfterMs', () => {
    const { clock, client, batches, up } = setup(1_000);
    client.emit('feedStatus', status('in-sync', { pods: '1' }));
    client.emit('status', state('in-sync'));
    client.emit('status', state('reconnecting'));
    for (let i = 0; i < 3; i++) {
      clock.advance(300);
      client.emit('status', state('syncing'));
      clock.advance(100);
      client.emit('status', state('reconnecting'));
    }
    expect(batches.some((b) => b.stale === true)).toBe(true);
    expect(up.health().every((h) => h.stale)).toBe(true);
  });

  it('stays stale after a long outage when one feed\'s snapshot completes on a short visit that never reaches in-sync', () => {
    const { clock, client, byFeed } = setup(1_000, ['felix', 'bgp']);
    client.emit('feedStatus', status('in-sync', { pods: '1' }));
    client.emit('feedStatus', status('in-sync', { bgp: '1' }, false, 0, 'bgp'));
    client.emit('status', state('in-sync'));
    client.emit('status', state('reconnecting'));
    clock.advance(1_500);
    expect(byFeed.filter(([f, b]) => f === 'bgp' && b.stale === true)).toHaveLength(1);
    // Tier 1 answers for a moment: bgp's snapshot ends (its STATUS not stale), then the connection
    // is lost during felix's. The client as a whole never reached in-sync: the outage goes on.
    client.emit('status', state('syncing'));
    client.emit('feedStatus', status('in-sync', { bgp: '2' }, false, 0, 'bgp'));
    client.emit('status', state('reconnecting'));
    clock.advance(10_000);
    // Before, that STATUS cleared bgp's stale flag and nothing set it again.
    const last = byFeed.filter(([f]) => f === 'bgp').at(-1)?.[1];
    expect(last?.stale).toBe(true);
    // Tier 1 back for good: bgp's snapshot ends first (the outage still counted), then felix's;
    // once in sync, both are fresh again, without waiting for tier 1's next STATUS of bgp.
    // (The client's order: the last feed's snapshot end moves it to in-sync, then that feed's STATUS.)
    client.emit('status', state('syncing'));
    client.emit('feedStatus', status('in-sync', { bgp: '3' }, false, 0, 'bgp'));
    client.emit('status', state('in-sync'));
    client.emit('feedStatus', status('in-sync', { pods: '3' }));
    for (const feed of ['felix', 'bgp']) expect(byFeed.filter(([f]) => f === feed).at(-1)?.[1].stale, feed).toBe(false);
  });

  it('a confirmed sync ends the outage: no stale after it', () => {
    const { clock, client, batches } = setup(1_000);
    client.emit('status', state('reconnecting'));
    clock.advance(500);
    client.emit('status', state('syncing'));
    client.emit('status', state('in-sync'));
    clock.advance(5_000);
    expect(batches.some((b) => b.stale === true)).toBe(false);
  });
});
