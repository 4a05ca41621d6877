import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { FakeClock } from '../../src/clock.js';
import type { UpstreamHandle, UpstreamOptions } from '../../src/server/upstream/index.js';
import type { KubeObject } from '../../src/server/upstream/types.js';
import type { FakeApiServer } from '../support/fake-apiserver.js';
import { anotherUpstreamOnFakeApi, upstreamOnFakeApi } from '../support/upstream.js';
import { waitUntil } from '../support/wait.js';
import { customFeed, expectedState, pod, RecordingSink, sameState } from './helpers.js';

/**
 * An etcd restored from a backup without a revision bump: the cluster's revision goes back below
 * what the replica applied, and the API server answers a watch from the replica's RV with a 200
 * and silence (the fake server drops events and bookmarks at or below a watch's RV, as the watch
 * cache does). The replica must notice (revision-probe.ts), go stale rather than serve the old
 * timeline as fresh, and end on the restored timeline's state once the revision passes its own.
 */
const PODS_FEED = { name: 'pods', resources: [{ resource: 'pods' }] };
const podsFeed = customFeed(PODS_FEED);

const objects = (server: FakeApiServer): KubeObject[] => [...(server.store.get('pods')?.values() ?? [])];
const converged = (server: FakeApiServer, sink: RecordingSink): boolean => sameState(sink.state.get('pods'), expectedState(podsFeed, () => objects(server)));
const probes = async (up: UpstreamHandle, result: string): Promise<number> =>
  (await up.metrics.revisionProbes.get()).values.filter((v) => v.labels.result === result).reduce((n, v) => n + v.value, 0);

let dir: string | undefined;
afterEach(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

async function start(opts: Partial<UpstreamOptions>): Promise<{ server: FakeApiServer; clock: FakeClock; up: UpstreamHandle; sink: RecordingSink }> {
  const { server, clock, up } = await upstreamOnFakeApi({ customFeeds: [PODS_FEED], random: () => 0, ...opts });
  return { server, clock, up, sink: new RecordingSink() };
}

describe('etcd restored without a revision bump', () => {
  it.each([false, true])('a running replica notices the silent re-watch, goes stale instead of serving the old timeline, and relists once the revision passes it (WatchList %s)', async (watchList) => {
    const { server, clock, up, sink } = await start({ watchList });
    server.upsert('pods', pod('a', { ip: '10.0.0.1' }));
    const backup = server.backup();
    server.upsert('pods', pod('b', { ip: '10.0.0.2' }));
    server.upsert('pods', pod('c', { ip: '10.0.0.3' }));
    up.start(sink);
    await waitUntil(() => sink.status.get('pods') === 'in-sync' && server.openWatches === 1 && converged(server, sink), { clock });
    const applied = server.rv;
    const batches = sink.batches.length;
    // The restore: back to {a}, every watch ended (the API servers restart). The restored timeline
    // writes d at a revision at or below what the replica applied: a watch from its RV never
    // carries it.
    server.restore(backup);
    server.upsert('pods', pod('d', { ip: '10.0.0.4' }));
    expect(server.rv).toBeLessThanOrEqual(applied);
    await waitUntil(() => up.health()[0]?.stale === true && sink.stale.get('pods') === true, { clock, stepMs: 1_000, timeoutMs: 600_000 });
    expect(up.ready()).toBe(false);
    expect(await probes(up, 'behind')).toBeGreaterThanOrEqual(2);
    // Nothing of the restored timeline was applied while it was behind (no update, no deletion).
    expect(sink.batches.slice(batches).flatMap((b) => b.batch.updates)).toEqual([]);
    // While behind, the retries are one-item probes, not whole lists (or WatchLists) refused again.
    const fullLists = (): number => server.requests.filter((r) => new URLSearchParams(r.query).get('limit') !== '1' && (!r.watch || r.query.includes('sendInitialEvents=true'))).length;
    const listsBefore = fullLists();
    const probesBefore = await probes(up, 'behind');
    await waitUntil(async () => (await probes(up, 'behind')) >= probesBefore + 2, { clock, stepMs: 1_000 });
    expect(fullLists()).toBe(listsBefore);
    // No relist was counted for them: none was made.
    expect((await up.metrics.relists.get()).values.filter((v) => v.labels.reason === 'stale-list')).toEqual([]);
    // The cluster's revision passes the applied one: one consistent relist, and the state is the
    // restored timeline's (b and c deleted, d there although its revision was at or below ours).
    while (server.rv <= applied) server.upsert('pods', pod('e', { ip: '10.0.0.5' }));
    await waitUntil(() => up.health()[0]?.stale === false && converged(server, sink), { clock, stepMs: 1_000, timeoutMs: 120_000 });
    expect(sink.state.get('pods')?.size).toBe(3);
    expect(up.ready()).toBe(true);
  });

  it('a probe that fails (throttled after the restore) is asked again while the watch lives: the server behind is found within seconds, not at the next re-watch', async () => {
    const { server, clock, up, sink } = await start({ watchList: false });
    server.upsert('pods', pod('a', { ip: '10.0.0.1' }));
    const backup = server.backup();
    server.upsert('pods', pod('b', { ip: '10.0.0.2' }));
    server.upsert('pods', pod('c', { ip: '10.0.0.3' }));
    up.start(sink);
    await waitUntil(() => sink.status.get('pods') === 'in-sync' && server.openWatches === 1, { clock });
    // The restored API server throttles the first two one-item LISTs.
    let throttled = 0;
    server.intercept = (info, _req, res) => {
      if (info.watch || info.query.get('limit') !== '1' || throttled >= 2) return false;
      throttled++;
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '1' });
      res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 429, reason: 'TooManyRequests', message: 'Too many requests, please try again later.' }));
      return true;
    };
    server.restore(backup);
    await waitUntil(() => throttled === 2, { clock, stepMs: 100 });
    const t0 = clock.monotonic();
    await waitUntil(async () => (await probes(up, 'behind')) >= 1, { clock, stepMs: 100 });
    expect(clock.monotonic() - t0).toBeLessThan(10_000);
    expect(await probes(up, 'failed')).toBe(2);
    await waitUntil(() => up.health()[0]?.stale === true, { clock, stepMs: 1_000 });
  });

  it('a warm restart from a checkpoint ahead of the server does not count as synced: a cold relist once the revision passes it', async () => {
    dir = mkdtempSync(join(tmpdir(), 'cattail-restore-'));
    const first = await start({ stateDir: dir, watchList: false });
    const { server } = first;
    server.upsert('pods', pod('a', { ip: '10.0.0.1' }));
    const backup = server.backup();
    server.upsert('pods', pod('b', { ip: '10.0.0.2' }));
    server.upsert('pods', pod('c', { ip: '10.0.0.3' }));
    first.up.start(first.sink);
    await waitUntil(() => first.sink.status.get('pods') === 'in-sync' && converged(server, first.sink), { clock: first.clock });
    await first.up.finalCheckpoint();
    await first.up.stop();
    const applied = server.rv;
    server.restore(backup);
    server.upsert('pods', pod('d', { ip: '10.0.0.4' }));
    // The same replica again, against the restored server (the same address: the same cluster).
    const up = anotherUpstreamOnFakeApi(server, first.clock, { customFeeds: [PODS_FEED], random: () => 0, stateDir: dir, watchList: false });
    const sink = new RecordingSink();
    up.start(sink);
    expect(await up.warmStart()).toBe('warm');
    // The restored checkpoint is not taken for the server's state: not synced, not ready, while the
    // watch from its RV stays silent for far longer than SEED_PROOF_MS.
    const until = first.clock.monotonic() + 60_000;
    await waitUntil(() => up.health()[0]?.synced === true || first.clock.monotonic() > until, { clock: first.clock, stepMs: 500 });
    expect(up.health()[0]?.synced).toBe(false);
    expect(await probes(up, 'behind')).toBeGreaterThanOrEqual(1);
    expect(up.ready()).toBe(false);
    expect(sink.status.get('pods')).not.toBe('in-sync');
    while (server.rv <= applied) server.upsert('pods', pod('e', { ip: '10.0.0.5' }));
    await waitUntil(() => sink.status.get('pods') === 'in-sync' && converged(server, sink), { clock: first.clock, stepMs: 1_000, timeoutMs: 120_000 });
    expect([...(sink.state.get('pods')?.keys() ?? [])].length).toBe(3);
  });
});
