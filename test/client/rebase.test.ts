/**
 * Resume on any replica (PROTOCOL.md §7.1): the client moves from replica A to replica B, both
 * fed the same upstream events in different batch groupings, and B continues the client's state
 * with the difference (mode `rebase`) instead of a snapshot. Real servers on loopback, the
 * client's timers on a FakeClock.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Client } from '../../src/client/index.js';
import { computeDigest } from '../../proto/digest.js';
import { waitUntil } from '../support/wait.js';
import { on, skipWait, start, type Setup } from './helpers/harness.js';
import { type ScriptedReplica, scriptedReplica } from '../support/replica.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

type Replica = ScriptedReplica;

const replica = (serverId: string): Promise<ScriptedReplica> => scriptedReplica(serverId, cleanups);

function setup(opts: Parameters<typeof start>[0]): Setup {
  const s = start(opts);
  cleanups.push(() => s.client.destroy());
  return s;
}

/** The upstream: events at resourceVersions 1000, 1001, …, each changing one pod. */
function upstreamEvents(n: number, from = 0): { key: string; value: unknown; rv: number }[] {
  return Array.from({ length: n }, (_, j) => {
    const i = from + j;
    return { key: `/pods/demo/p${String(i % 400).padStart(3, '0')}`, value: { i, pad: 'x'.repeat(200) }, rv: 1000 + i };
  });
}

/** Feeds events to a replica in batches of `size`, each with the watermark of its last event. */
function feed(r: Replica, events: ReturnType<typeof upstreamEvents>, size: number): void {
  for (let i = 0; i < events.length; i += size) {
    const part = events.slice(i, i + size);
    r.upstream.apply('felix', Object.fromEntries(part.map((e) => [e.key, e.value])), { status: 'in-sync', watermarks: { pods: String(part.at(-1)!.rv) } });
  }
}

function localDigest(client: Client): string {
  const f = client.feed('felix');
  return computeDigest([...f.keys()].map((k) => [k, f.getRaw(k)!] as const)).toString('hex');
}

function storeDigest(r: Replica): string {
  return r.server.stores.get('felix')!.current().digest.toString('hex');
}

async function failOver(s: Setup, a: Replica, toServerId: string): Promise<void> {
  const { client, clock, rec } = s;
  await a.server.close();
  await waitUntil(() => rec.last('reconnecting') !== undefined, 'left A', on(client));
  for (let i = 0; i < 8 && !(client.inSync && client.stats.serverId === toServerId); i++) {
    await waitUntil(() => client.state === 'reconnecting' || client.state === 'behind' || client.inSync, 'settled', on(client));
    if (!client.inSync) await skipWait(clock);
    await waitUntil(() => client.state !== 'connecting' && client.state !== 'syncing', 'attempt settled', on(client));
  }
}

describe('client - rebase onto another replica', () => {
  it('after A says GOODBYE, B continues the state with only the changes (no snapshot), and the digest agrees', async () => {
    const a = await replica('real-a');
    const b = await replica('real-b');
    const initial = upstreamEvents(400);
    feed(a, initial, 400);
    feed(b, initial, 37); // other batch boundaries, other revision numbers
    // No compression: the byte counts below compare payloads, not how well padding compresses.
    const s = setup({ endpoints: [a.server.url, b.server.url], random: () => 0.999999, compression: [] });
    s.guard.allow('CATTAIL_CLIENT_SERVER_CLOSED', 'CATTAIL_CLIENT_CONNECT_FAILED');
    await s.client.whenInSync();
    expect(s.client.stats.serverId).toBe('real-a');
    const snapshotBytes = s.client.stats.bytesReceived;
    const before = s.rec.changes.length;
    // B moves on while the agent changes replica: 10 more events.
    feed(b, upstreamEvents(10, 400), 3);
    await failOver(s, a, 'real-b');
    const { client } = s;
    expect(client.stats.serverId).toBe('real-b');
    expect(client.inSync).toBe(true);
    expect(client.stats.rebases).toBe(1);
    expect(client.stats.snapshotsApplied).toBe(1);
    await waitUntil(() => client.feed('felix').status.verifiedRevision === client.feed('felix').revision, 'verified by STATUS', on(client));
    expect(localDigest(client)).toBe(storeDigest(b));
    expect(client.stats.digestMismatches).toBe(0);
    expect(client.stats.repairsRequested).toBe(0);
    // Only the ten changed pods reached the host, as one delta.
    const after = s.rec.changes.slice(before);
    expect(after.map((c) => c.cause)).toEqual(['delta']);
    expect(after[0]!.upserts).toHaveLength(10);
    expect(client.stats.bytesReceived - snapshotBytes).toBeLessThan(snapshotBytes / 5);
    const metrics = await b.server.metrics.registry.getSingleMetricAsString('cattail_handshake_feeds_total');
    expect(metrics).toContain('mode="rebase"');
    expect(s.guard.problems()).toEqual([]);
  });

  it('takes no rebase from a replica behind the agent watermarks (refused with 4015 before any snapshot byte; the agent keeps its state)', async () => {
    const a = await replica('real-a');
    const b = await replica('real-b');
    const c = await replica('real-c');
    const events = upstreamEvents(60);
    feed(a, events, 60);
    feed(b, events.slice(0, 50), 10); // behind: rv 1049 < 1059
    feed(c, events, 7);
    // No compression: B's snapshot, had it come, would be its 50 padded entries' own bytes.
    const s = setup({ endpoints: [a.server.url, b.server.url, c.server.url], random: () => 0.999999, compression: [] });
    s.guard.allow('CATTAIL_CLIENT_SERVER_CLOSED', 'CATTAIL_CLIENT_REPLICA_BEHIND', 'CATTAIL_CLIENT_CONNECT_FAILED');
    await s.client.whenInSync();
    const snapshotBytes = s.client.stats.bytesReceived;
    await failOver(s, a, 'real-c');
    const { client } = s;
    expect(client.stats.serverId).toBe('real-c');
    // B refused it before WELCOME (close 4015): B cost it no snapshot bytes.
    expect(s.rec.last('behind')?.reason?.details).toMatchObject({ endpoint: b.server.url, closeCode: 4015 });
    expect(client.stats.bytesReceived - snapshotBytes).toBeLessThan(snapshotBytes / 2);
    const bMetrics = await b.server.metrics.registry.getSingleMetricAsString('cattail_handshake_feeds_total');
    expect(bMetrics).toContain('mode="refused",reason="behind"');
    expect(bMetrics).not.toContain('mode="rebase"');
    // C is current: it rebases.
    expect(client.stats.rebases).toBe(1);
    expect(client.stats.snapshotsApplied).toBe(1);
    await waitUntil(() => client.feed('felix').status.verifiedRevision === client.feed('felix').revision, 'verified by STATUS', on(client));
    expect(localDigest(client)).toBe(storeDigest(c));
    expect(s.guard.problems()).toEqual([]);
  });
});
