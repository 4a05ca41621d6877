/**
 * Range repair (PROTOCOL.md §7.2) between the real client and the real fan-out server on loopback:
 * an agent whose state was corrupted (an extra key, a changed value, a lost key) is repaired on
 * the same connection at the cost of the buckets that differ, and falls back to an in-band
 * snapshot when the server's repair bound says so. The corruption is made inside the client's
 * FeedState, digest kept consistent, as a bug or a bit flip in the agent would leave it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Client } from '../../src/client/index.js';
import type { FeedState } from '../../src/client/internal.js';
import type { IncrementalDigest } from '../../src/client/digest.js';
import type { StartServerOptions } from '../../src/server/server.js';
import { on, start, type Setup } from './helpers/harness.js';
import { waitUntil } from '../support/wait.js';
import { scriptedReplica, type ScriptedReplica } from '../support/replica.js';
import { pack } from './helpers/fake-server.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

const replica = (serverId: string, opts: Partial<StartServerOptions> = {}): Promise<ScriptedReplica> => scriptedReplica(serverId, cleanups, opts);

function setup(opts: Parameters<typeof start>[0]): Setup {
  const s = start(opts);
  cleanups.push(() => s.client.destroy());
  return s;
}

function pods(n: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  // Padded so the state is not mostly keys and framing: the byte bound below compares payloads.
  for (let i = 0; i < n; i++) out[`/pods/demo/p${String(i).padStart(3, '0')}`] = { i, spec: `node-${i % 7}/${'x'.repeat(100)}` };
  return out;
}

/** Corrupts the client's copy of felix the way a bug would: entries and digest stay consistent. */
function corrupt(client: Client): void {
  const fs = (client as unknown as { feeds: Map<string, { state: FeedState }> }).feeds.get('felix')!.state;
  const digest = (fs as unknown as { digest: IncrementalDigest }).digest;
  const set = (key: string, value: Buffer | undefined): void => {
    const old = fs.entries.get(key);
    if (old !== undefined) digest.remove(key, old);
    if (value === undefined) fs.entries.delete(key);
    else {
      fs.entries.set(key, value);
      digest.add(key, value);
    }
  };
  set('/pods/demo/zombie', pack({ zombie: true }));
  set('/pods/demo/p005', pack({ i: 5, flipped: true }));
  set('/pods/demo/p010', undefined);
}

async function repairsOf(r: ScriptedReplica, outcome: string): Promise<number> {
  const data = await r.server.metrics.repairs.get();
  return data.values.filter((v) => v.labels['outcome'] === outcome).reduce((s, v) => s + v.value, 0);
}

function sameAsStore(client: Client, r: ScriptedReplica): boolean {
  const view = r.server.stores.get('felix')!.current();
  const f = client.feed('felix');
  return f.revision === view.revision && f.size === view.size && f.status.verifiedRevision === view.revision;
}

describe('range repair against the real server', () => {
  it('repairs a corrupted agent on the same connection, sending only the mismatching buckets', async () => {
    const r = await replica('repair-a');
    r.upstream.apply('felix', pods(400), { status: 'in-sync', watermarks: { pods: '100' } });
    const { client, guard, rec } = setup({ endpoints: [r.server.url] });
    await client.whenInSync();
    const syncingBefore = rec.states().filter((s) => s === 'syncing').length;
    const stateBytes = [...client.feed('felix').entries()].length * 130;
    corrupt(client);
    r.upstream.apply('felix', { '/pods/demo/p001': { i: 1, gen: 1 } }, { watermarks: { pods: '101' } });
    await waitUntil(() => client.stats.repairsApplied === 1 && sameAsStore(client, r), 'repaired', on(client));
    const stats = client.stats;
    expect(stats.repairsRequested).toBe(1);
    // While the repair is under way the client does not claim to be in sync.
    expect(rec.states().filter((s) => s === 'syncing').length).toBe(syncingBefore + 1);
    await waitUntil(() => client.state === 'in-sync', 'in sync again', on(client));
    expect(stats.repairedEntries).toBe(3);
    expect(stats.connects).toBe(1);
    expect(stats.snapshotsApplied).toBe(1);
    expect(stats.digestMismatches).toBe(0);
    expect(client.feed('felix').get('/pods/demo/zombie')).toBeUndefined();
    expect(client.feed('felix').get('/pods/demo/p005')).toMatchObject({ i: 5 });
    expect(client.feed('felix').get('/pods/demo/p010')).toMatchObject({ i: 10 });
    expect(await repairsOf(r, 'repaired')).toBe(1);
    // At most 3 of 256 buckets (~1.2 % of the state) plus framing and a STATUS: far below the
    // state (about 130 bytes of key and value per pod).
    const repairBytes = (await r.server.metrics.repairBytes.get()).values.reduce((s, v) => s + v.value, 0);
    expect(repairBytes).toBeGreaterThan(0);
    expect(repairBytes).toBeLessThan(stateBytes / 10);
    expect(guard.problems()).toEqual([]);
  });

  it('falls back to an in-band snapshot above maxRepairBytes, still without reconnecting', async () => {
    const r = await replica('repair-b', { maxRepairBytes: 0 });
    r.upstream.apply('felix', pods(50), { status: 'in-sync', watermarks: { pods: '100' } });
    const { client, guard } = setup({ endpoints: [r.server.url] });
    await client.whenInSync();
    corrupt(client);
    r.upstream.apply('felix', { '/pods/demo/p001': { i: 1, gen: 1 } }, { watermarks: { pods: '101' } });
    await waitUntil(() => client.stats.snapshotsApplied === 2 && sameAsStore(client, r), 'resynced in-band', on(client)).catch((err: unknown) => {
      throw new Error(`${String(err)}: ${JSON.stringify({ ...client.stats, feeds: undefined })} ${JSON.stringify(client.feed('felix').status)}`);
    });
    expect(client.stats.repairsRequested).toBe(1);
    expect(client.stats.repairsApplied).toBe(0);
    expect(client.stats.connects).toBe(1);
    expect(client.feed('felix').get('/pods/demo/zombie')).toBeUndefined();
    expect(await repairsOf(r, 'too-large')).toBe(1);
    expect(guard.problems()).toEqual([]);
  });
});
