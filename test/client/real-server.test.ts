/**
 * The client against the real fan-out server (src/server startServer) on loopback, fed by a
 * scripted upstream. The client's own timers run on a FakeClock; the servers run on real time.
 * Network faults the server cannot make itself (a blip, a black hole) come from a TCP proxy.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { join } from 'node:path';
import { runCli } from '../support/cli.js';
import { afterEach, describe, expect, it } from 'vitest';
import type { Client } from '../../src/client/index.js';
import { startServer, type ServerHandle, type StartServerOptions } from '../../src/server/server.js';
import { createUpstream } from '../../src/server/upstream/index.js';
import { FakeApiServer } from '../support/fake-apiserver.js';
import { pod } from '../upstream/helpers.js';
import { computeDigest } from '../../proto/digest.js';
import { on, skipWait, start, type Setup } from './helpers/harness.js';
import { waitUntil } from '../support/wait.js';
import { TcpProxy } from './helpers/tcp-proxy.js';
import { type ScriptedReplica, scriptedReplica } from '../support/replica.js';
import { ScriptedUpstream } from '../support/scripted-upstream.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

type Replica = ScriptedReplica;

const replica = (serverId: string, opts: Partial<StartServerOptions> = {}): Promise<ScriptedReplica> => scriptedReplica(serverId, cleanups, opts);

function setup(opts: Parameters<typeof start>[0]): Setup {
  const s = start(opts);
  cleanups.push(() => s.client.destroy());
  return s;
}

/**
 * Drives the client's clock through its reconnects until it is in sync on `serverId`, at most
 * `attempts` tries (each: wait for the attempt to settle, skip the client's wait).
 */
async function settleOn(client: Setup['client'], clock: Setup['clock'], serverId: string, attempts = 8): Promise<void> {
  for (let i = 0; i < attempts && !(client.inSync && client.stats.serverId === serverId); i++) {
    await waitUntil(() => client.state === 'reconnecting' || client.state === 'behind' || client.inSync, 'settled', on(client));
    if (!client.inSync) await skipWait(clock);
    await waitUntil(() => client.state !== 'connecting' && client.state !== 'syncing', 'attempt settled', on(client));
  }
}

/** A fake API server (closed after the test) holding one pod, `a`. */
async function apiWithPod(): Promise<FakeApiServer> {
  const api = await new FakeApiServer().start();
  cleanups.push(() => api.close());
  api.upsert('pods', pod('a'));
  return api;
}

/** A loopback port free now, for a replica the client is told about before it starts. */
async function sparePort(): Promise<number> {
  const spare = createNetServer();
  await new Promise<void>((r) => spare.listen(0, '127.0.0.1', r));
  const port = (spare.address() as AddressInfo).port;
  await new Promise((r) => spare.close(r));
  return port;
}

/** A real server with the real upstream on `api`: one custom feed `wl` carrying `resources`. */
async function realReplica(api: FakeApiServer, serverId: string, resources: readonly string[], o: { upstream?: Partial<Parameters<typeof createUpstream>[0]>; listen?: string } = {}): Promise<ServerHandle> {
  const upstream = createUpstream({
    kubeConfig: api.kubeConfig(), replicaId: serverId, feeds: [], watchList: false, ...o.upstream,
    customFeeds: [{ name: 'wl', resources: resources.map((resource) => ({ resource })) }],
  });
  const server = await startServer({ upstream, defaultMetrics: false, flushWindowMs: 1, serverId, ...(o.listen !== undefined ? { listen: o.listen } : {}) });
  cleanups.push(() => server.close());
  return server;
}

function pods(n: number, gen = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) out[`/pods/demo/p${String(i).padStart(3, '0')}`] = { i, gen };
  return out;
}

function storeDigest(r: Replica): Buffer {
  return r.server.stores.get('felix')!.current().digest;
}

function localState(client: Client): Map<string, unknown> {
  const f = client.feed('felix');
  return new Map([...f.entries()]);
}

describe('client against the real server', () => {
  it('refuses a feed whose announced data model the agent does not apply, before any entry (§3.2)', async () => {
    const r = await replica('real-model');
    r.upstream.apply('felix', pods(3), { status: 'in-sync' });
    const any = setup({ endpoints: [r.server.url] });
    await any.client.whenInSync();
    // A WELCOME without `model` means calico.v1 (the scripted feeds announce none).
    const model = any.client.feed('felix').model ?? 'calico.v1';

    const other = setup({ endpoints: [r.server.url], models: { felix: ['libcalico.v9'] } });
    other.guard.allow('CATTAIL_CLIENT_HANDSHAKE_FAILED');
    await waitUntil(() => other.rec.last('reconnecting') !== undefined, 'refused', on(other.client));
    const reason = other.rec.last('reconnecting')!.reason!;
    expect(reason.code).toBe('CATTAIL_CLIENT_HANDSHAKE_FAILED');
    expect(reason.message).toContain(`model ${model} for feed felix`);
    expect(other.client.feed('felix').size).toBe(0);

    const knows = setup({ endpoints: [r.server.url], models: { felix: ['libcalico.v9', model] } });
    await knows.client.whenInSync();
    expect(knows.client.feed('felix').size).toBe(3);
    expect(() => start({ endpoints: [r.server.url], models: { felix: [] } })).toThrow(expect.objectContaining({ code: 'CATTAIL_INVALID_ARGUMENT', details: expect.objectContaining({ option: 'models' }) }));
  });

  it('takes a feed named like an Object property (`constructor`, a valid custom feed name) as any other, with and without models', async () => {
    const upstream = new ScriptedUpstream([{ name: 'constructor', resources: ['pods'], projectionVersion: 1 }]);
    const server = await startServer({ upstream, defaultMetrics: false, flushWindowMs: 1, serverId: 'real-ctor' });
    cleanups.push(() => server.close());
    upstream.apply('constructor', pods(2), { status: 'in-sync' });
    // Before, the WELCOME check looked the feed up in the models map, found Object's own
    // `constructor` and threw: 4012 CATTAIL_INTERNAL on every connection, for good.
    const plain = setup({ endpoints: [server.url], feeds: ['constructor'] });
    await plain.client.whenInSync();
    expect(plain.client.feed('constructor').size).toBe(2);
    const modelled = setup({ endpoints: [server.url], feeds: ['constructor'], models: { felix: ['libcalico.v9'] } });
    await modelled.client.whenInSync();
    expect(modelled.client.feed('constructor').size).toBe(2);
  });

  it('loads the snapshot, applies deltas, and its digest checks agree with the store', async () => {
    const r = await replica('real-a');
    r.upstream.apply('felix', pods(250), { status: 'in-sync', watermarks: { pods: '100' } });
    const { client, rec, guard } = setup({ endpoints: [r.server.url] });
    await client.whenInSync();
    expect(client.feed('felix').size).toBe(250);
    expect(client.feed('felix').get('/pods/demo/p007')).toEqual({ i: 7, gen: 0 });
    r.upstream.apply('felix', { '/pods/demo/p000': null, '/pods/demo/new': { n: 1 }, '/pods/demo/p001': { i: 1, gen: 1 } }, { watermarks: { pods: '101' } });
    await waitUntil(() => client.feed('felix').revision === r.server.stores.get('felix')!.revision, 'caught up', on(client));
    const last = rec.changes.at(-1)!;
    expect(last.cause).toBe('delta');
    expect(last.deletes).toEqual(['/pods/demo/p000']);
    expect(last.upserts.map((u) => u.key).sort()).toEqual(['/pods/demo/new', '/pods/demo/p001']);
    await waitUntil(() => client.feed('felix').status.verifiedRevision === client.feed('felix').revision, 'verified by STATUS', on(client));
    expect(client.stats.digestMismatches).toBe(0);
    expect(client.stats.repairsRequested).toBe(0);
    expect(storeDigest(r).toString('hex')).toBe(computeLocalDigest(client));
    expect(guard.problems()).toEqual([]);
  });

  it('an entry larger than its maxFrameBytes is a rejection (longest backoff), not a reconnect loop', async () => {
    const r = await replica('real-a');
    r.upstream.apply('felix', { '/pods/demo/big': { blob: 'x'.repeat(8_000) } }, { status: 'in-sync', watermarks: { pods: '1' } });
    const { client, rec, guard } = setup({ endpoints: [r.server.url], maxFrameBytes: 4_096, reconnectMaxDelayMs: 60_000 });
    guard.allow('CATTAIL_CLIENT_REJECTED');
    await waitUntil(() => rec.last('reconnecting') !== undefined, 'closed by the server', on(client));
    const reason = rec.last('reconnecting')!.reason!;
    expect(reason.code).toBe('CATTAIL_CLIENT_REJECTED');
    expect(reason.details?.['closeCode']).toBe(4003);
    expect((reason.details?.['serverError'] as { code: string }).code).toBe('CATTAIL_SERVER_ENTRY_TOO_LARGE');
    // The longest backoff: [maxDelay/2, maxDelay] with the default jitter.
    expect(rec.last('reconnecting')!.delayMs).toBeGreaterThanOrEqual(30_000);
  });

  it('resumes on the same server after a network blip (no snapshot, only the missed changes)', async () => {
    const r = await replica('real-a');
    r.upstream.apply('felix', pods(50), { status: 'in-sync', watermarks: { pods: '10' } });
    const proxy = await TcpProxy.start(r.port);
    cleanups.push(() => proxy.stop());
    const { client, clock, rec, guard } = setup({ endpoints: [proxy.url] });
    guard.allow('CATTAIL_CLIENT_SERVER_CLOSED', 'CATTAIL_CLIENT_CONNECT_FAILED');
    await client.whenInSync();
    proxy.cut();
    await waitUntil(() => client.state === 'reconnecting', 'reconnecting', on(client));
    r.upstream.apply('felix', { '/pods/demo/p003': null, '/pods/demo/p004': { i: 4, gen: 9 } }, { watermarks: { pods: '11' } });
    await skipWait(clock);
    await waitUntil(() => client.inSync && client.feed('felix').revision === r.server.stores.get('felix')!.revision, 'resumed and caught up', on(client));
    expect(client.stats.resumes).toBe(1);
    expect(client.stats.snapshotsApplied).toBe(1);
    const last = rec.changes.at(-1)!;
    expect(last).toMatchObject({ cause: 'delta', deletes: ['/pods/demo/p003'] });
    expect(last.upserts.map((u) => u.key)).toEqual(['/pods/demo/p004']);
    expect(guard.problems()).toEqual([]);
  });

  it('reconnects after a server restart and reconciles: only real changes reach the host', async () => {
    const r = await replica('real-a');
    r.upstream.apply('felix', pods(30), { status: 'in-sync', watermarks: { pods: '50' } });
    const { client, clock, rec, guard } = setup({ endpoints: [r.server.url] });
    guard.allow('CATTAIL_CLIENT_SERVER_CLOSED', 'CATTAIL_CLIENT_CONNECT_FAILED');
    await client.whenInSync();
    const before = rec.changes.length;
    await r.server.close();
    await waitUntil(() => client.state === 'reconnecting', 'reconnecting', on(client));
    // The restarted replica relists: same objects except one deleted and one changed meanwhile.
    const again = await replica('real-a', { listen: `127.0.0.1:${r.port}` });
    const data = pods(30);
    delete data['/pods/demo/p010'];
    data['/pods/demo/p011'] = { i: 11, gen: 5 };
    again.upstream.apply('felix', data, { status: 'in-sync', watermarks: { pods: '60' } });
    for (let i = 0; i < 8 && !client.inSync; i++) {
      await skipWait(clock);
      await waitUntil(() => client.state !== 'connecting' && client.state !== 'syncing', 'attempt settled', on(client));
    }
    expect(client.inSync).toBe(true);
    const after = rec.changes.slice(before);
    expect(after).toHaveLength(1);
    expect(after[0]!.cause).toBe('snapshot');
    expect(after[0]!.deletes).toEqual(['/pods/demo/p010']);
    expect(after[0]!.upserts.map((u) => u.key)).toEqual(['/pods/demo/p011']);
    expect(computeLocalDigest(client)).toBe(storeDigest(again).toString('hex'));
    expect(guard.problems()).toEqual([]);
  });

  it('on GOODBYE during shutdown fails over, refuses a replica that is behind, and syncs on a current one', async () => {
    const a = await replica('real-a');
    const b = await replica('real-b');
    const c = await replica('real-c');
    a.upstream.apply('felix', pods(20), { status: 'in-sync', watermarks: { pods: '200' } });
    b.upstream.apply('felix', pods(15), { status: 'in-sync', watermarks: { pods: '150' } });
    c.upstream.apply('felix', pods(20), { status: 'in-sync', watermarks: { pods: '210' } });
    // random ≈ 1 keeps the endpoint order: A first, then B (behind), then C.
    const { client, clock, rec, guard } = setup({ endpoints: [a.server.url, b.server.url, c.server.url], random: () => 0.999999 });
    guard.allow('CATTAIL_CLIENT_SERVER_CLOSED', 'CATTAIL_CLIENT_REPLICA_BEHIND', 'CATTAIL_CLIENT_CONNECT_FAILED');
    await client.whenInSync();
    expect(client.stats.serverId).toBe('real-a');
    const held = localState(client);
    await a.server.close();
    await waitUntil(() => rec.last('reconnecting') !== undefined, 'left A', on(client));
    await settleOn(client, clock, 'real-c');
    expect(client.stats.serverId).toBe('real-c');
    const goodbye = rec.events.find((e) => e.state === 'reconnecting');
    expect(goodbye?.reason?.details?.['goodbye']).toMatchObject({ reason: expect.any(String) });
    const behind = rec.last('behind');
    // B judged itself behind the watermarks the client sent and refused it before WELCOME (ERROR
    // + close 4015): no snapshot byte, the state kept, the client went on to C.
    expect(behind?.reason?.details).toMatchObject({ endpoint: b.server.url, closeCode: 4015, serverError: { code: 'CATTAIL_SERVER_REPLICA_BEHIND' } });
    // B's smaller state was never applied: no deletions reached the host, and the state equals A's.
    expect(rec.changes.every((ch) => ch.deletes.length === 0)).toBe(true);
    expect(localState(client)).toEqual(held);
    expect(client.feed('felix').status.watermarks).toEqual({ pods: '210' });
    expect(guard.problems()).toEqual([]);
  });

  it('etcd restored far behind without a revision bump: a replica in a new --cluster-epoch gives the agent the restored state (snapshot, other-cluster) instead of refusing it as ahead', async () => {
    const api = await apiWithPod();
    api.kubeSystemUid = '6d1c0c6e-0000-4000-8000-000000000001';
    const backup = api.backup();
    api.upsert('pods', pod('b'));
    api.upsert('pods', pod('c'));
    const port = await sparePort();
    const old = await realReplica(api, 'real-old', ['pods'], { listen: `127.0.0.1:${port}` });
    await waitUntil(() => old.stores.get('wl')?.meta().status === 'in-sync', 'the replica listed');
    // A first agent has the replica read the cluster's name; the one under test is then told it.
    const first = setup({ endpoints: [old.url], feeds: ['wl'] });
    await first.client.whenInSync();
    await waitUntil(async () => {
      const probe = setup({ endpoints: [old.url], feeds: ['wl'] });
      await probe.client.whenInSync();
      const named = probe.client.cluster !== undefined;
      probe.client.destroy();
      return named;
    }, 'the replica names its cluster');
    const { client, clock, rec, guard } = setup({ endpoints: [old.url], feeds: ['wl'] });
    guard.allow('CATTAIL_CLIENT_SERVER_CLOSED', 'CATTAIL_CLIENT_CONNECT_FAILED');
    await client.whenInSync();
    expect(client.cluster).toBe(`kube-system/${api.kubeSystemUid}`);
    expect(client.feed('wl').size).toBe(3);
    await old.close();
    // The restore: pods b and c gone, d written at a revision the agent's watermark is past.
    api.restore(backup);
    api.upsert('pods', pod('d'));
    const next = await realReplica(api, 'real-new', ['pods'], { listen: `127.0.0.1:${port}`, upstream: { clusterEpoch: 'restore-1' } });
    await waitUntil(() => next.stores.get('wl')?.meta().status === 'in-sync', 'the new replica listed the restored state');
    await settleOn(client, clock, 'real-new');
    expect(client.stats.serverId).toBe('real-new');
    expect(client.cluster).toBe(`kube-system/${api.kubeSystemUid}@restore-1`);
    expect(client.feed('wl').size).toBe(2); // a and d
    expect(client.feed('wl').status.watermarks).toEqual({ pods: String(api.rv) });
    expect(rec.last('behind')).toBeUndefined();
  });

  it('fails over to a replica that started earlier on the same upstream: a quiet feed\'s watermarks follow the upstream', async () => {
    // The real upstream (reflector → dispatcher → pipeline) of two replicas on one API server.
    const api = await apiWithPod();
    const serve = (serverId: string): Promise<ServerHandle> => realReplica(api, serverId, ['pods']);
    const podsMark = (s: ServerHandle): string | undefined => s.stores.get('wl')?.meta().watermarks['pods'];
    const b = await serve('real-b');
    await waitUntil(() => podsMark(b) === String(api.rv), 'B listed');
    // Status-only updates: the upstream moves on, the feed's entries do not. A starts after them.
    for (let i = 0; i < 5; i++) api.upsert('pods', pod('a', { ready: i % 2 === 0, restarts: i }));
    const a = await serve('real-a');
    await waitUntil(() => podsMark(a) === String(api.rv), 'A listed at the newer resourceVersion');
    // Both replicas hold the same upstream state; B says so too (it used to keep its startup value).
    await waitUntil(() => podsMark(b) === String(api.rv), 'B reports the upstream watermark of its unchanged feed');
    expect(b.stores.get('wl')?.revision).toBe(1);
    const { client, clock, rec, guard } = setup({ endpoints: [a.url, b.url], feeds: ['wl'], random: () => 0.999999 });
    guard.allow('CATTAIL_CLIENT_SERVER_CLOSED', 'CATTAIL_CLIENT_CONNECT_FAILED');
    await client.whenInSync();
    expect(client.stats.serverId).toBe('real-a');
    expect(client.feed('wl').status.watermarks).toEqual({ pods: String(api.rv) });
    await a.close();
    await waitUntil(() => rec.last('reconnecting') !== undefined, 'left A', on(client));
    await settleOn(client, clock, 'real-b');
    expect(rec.last('behind')).toBeUndefined();
    expect(client.stats.serverId).toBe('real-b');
    expect(guard.problems()).toEqual([]);
  });

  it('fails over to a replica started after a CRD was deleted: the CRD list\'s resourceVersion vouches for the empty resource (no lock-out)', async () => {
    const POOLS = 'ippools.crd.projectcalico.org';
    const api = await apiWithPod();
    api.upsert(POOLS, { metadata: { name: 'p' }, spec: { cidr: '10.0.0.0/16' } });
    // B starts later, on a port the client already knows.
    const bPort = await sparePort();
    const serve = (serverId: string, listen?: string): Promise<ServerHandle> => realReplica(api, serverId, ['pods', POOLS], { upstream: { minAttemptIntervalMs: 50 }, ...(listen !== undefined ? { listen } : {}) });
    const poolsMark = (s: ServerHandle): string | undefined => s.stores.get('wl')?.meta().watermarks[POOLS];
    const a = await serve('real-a');
    await waitUntil(() => poolsMark(a) === String(api.rv), 'A listed the pools');
    const { client, clock, rec, guard } = setup({ endpoints: [a.url, `ws://127.0.0.1:${bPort}`], feeds: ['wl'], random: () => 0.999999 });
    guard.allow('CATTAIL_CLIENT_SERVER_CLOSED', 'CATTAIL_CLIENT_CONNECT_FAILED');
    await client.whenInSync();
    expect(client.stats.serverId).toBe('real-a');
    const applied = client.feed('wl').status.watermarks[POOLS];
    expect(applied).toBeDefined();
    // The CRD is deleted: its objects first (DELETED events), then its watches end and it answers 404.
    api.remove(POOLS, undefined, 'p');
    api.missing.add(POOLS);
    api.endWatches();
    await waitUntil(() => client.feed('wl').size === 1 && client.inSync, 'the agent followed A', on(client));
    // B never saw the CRD. Before the probe it named no watermark for the pools, and an agent that
    // had applied them refused it (and every replica started since) for good.
    const b = await serve('real-b', `127.0.0.1:${bPort}`);
    await waitUntil(() => b.stores.get('wl')?.meta().status === 'in-sync', 'B in sync');
    expect(poolsMark(b)).toBe(String(api.rv));
    await a.close();
    await waitUntil(() => rec.last('reconnecting') !== undefined, 'left A', on(client));
    await settleOn(client, clock, 'real-b');
    expect(rec.last('behind')).toBeUndefined();
    expect(client.stats.serverId).toBe('real-b');
    expect([...client.feed('wl').keys()]).toEqual([...b.stores.get('wl')!.current().entries()].map(([k]) => k));
    expect(guard.problems()).toEqual([]);
  });

  it('moves to a replica whose feed no longer carries a resource (a release or configuration dropped it): the resource is retired, not a lock-out, and held again where it comes back', async () => {
    const POOLS = 'ippools.crd.projectcalico.org';
    const api = await apiWithPod();
    api.upsert(POOLS, { metadata: { name: 'p' }, spec: { cidr: '10.0.0.0/16' } });
    // B and C start later, on ports the client already knows.
    const ports = [await sparePort(), await sparePort()];
    const serve = (serverId: string, resources: string[], port?: number): Promise<ServerHandle> =>
      realReplica(api, serverId, resources, { upstream: { minAttemptIntervalMs: 50 }, ...(port !== undefined ? { listen: `127.0.0.1:${port}` } : {}) });
    const synced = (s: ServerHandle): boolean => s.stores.get('wl')?.meta().status === 'in-sync';
    const a = await serve('real-a', ['pods', POOLS]);
    await waitUntil(() => synced(a), 'A in sync');
    const { client, clock, rec, guard } = setup({ endpoints: [a.url, ...ports.map((p) => `ws://127.0.0.1:${p}`)], feeds: ['wl'], random: () => 0.999999 });
    guard.allow('CATTAIL_CLIENT_SERVER_CLOSED', 'CATTAIL_CLIENT_CONNECT_FAILED');
    await client.whenInSync();
    const poolsApplied = client.feed('wl').status.watermarks[POOLS];
    expect(poolsApplied).toBe(String(api.rv));
    const poolKey = [...client.feed('wl').keys()].find((k) => k.includes('ippools'));
    expect(poolKey).toBeDefined();

    // The new definition of the feed: pods only. Every replica of it lacks a pools watermark, so
    // before the retirement every one refused the agent (4015, its notBefore named the pools) and
    // the agent refused their snapshots: locked out of the feed for good.
    const b = await serve('real-b', ['pods'], ports[0]);
    await waitUntil(() => synced(b), 'B in sync');
    await a.close();
    await waitUntil(() => rec.last('reconnecting') !== undefined, 'left A', on(client));
    await settleOn(client, clock, 'real-b', 12);
    expect(rec.last('behind')).toBeUndefined();
    expect(client.stats.serverId).toBe('real-b');
    expect(client.feed('wl').status.watermarks).toEqual({ pods: b.stores.get('wl')?.meta().watermarks['pods'] });
    expect(client.feed('wl').status.retiredWatermarks).toEqual({ [POOLS]: poolsApplied });
    expect([...client.feed('wl').keys()]).toEqual([...b.stores.get('wl')!.current().entries()].map(([k]) => k));
    expect(rec.changes.some((ch) => ch.deletes.includes(poolKey as string))).toBe(true);

    // Rolled back: a replica carrying the pools again is held to what the agent applied of them.
    api.upsert(POOLS, { metadata: { name: 'q' }, spec: { cidr: '10.1.0.0/16' } });
    const c = await serve('real-c', ['pods', POOLS], ports[1]);
    await waitUntil(() => synced(c), 'C in sync');
    await b.close();
    await settleOn(client, clock, 'real-c', 12);
    expect(client.stats.serverId).toBe('real-c');
    expect(client.feed('wl').status.retiredWatermarks).toEqual({});
    expect(Number(client.feed('wl').status.watermarks[POOLS])).toBeGreaterThan(Number(poolsApplied));
    expect([...client.feed('wl').keys()].filter((k) => k.includes('ippools'))).toHaveLength(2);
    expect(guard.problems()).toEqual([]);
  });

  it('with the resources option, refuses a snapshot of another definition of the feed (4002) and retires nothing', async () => {
    const POOLS = 'ippools.crd.projectcalico.org';
    const api = await apiWithPod();
    const b = await realReplica(api, 'real-b', ['pods']);
    await waitUntil(() => b.stores.get('wl')?.meta().status === 'in-sync', 'B in sync');
    const { client, rec, guard } = setup({ endpoints: [b.url], feeds: ['wl'], resources: { wl: ['pods', POOLS] } });
    guard.allow('CATTAIL_CLIENT_HANDSHAKE_FAILED');
    await waitUntil(() => rec.last('reconnecting') !== undefined, 'refused the WELCOME', on(client));
    expect(rec.last('reconnecting')?.reason).toMatchObject({ code: 'CATTAIL_CLIENT_HANDSHAKE_FAILED' });
    expect(String((rec.last('reconnecting')?.reason as Error).message)).toContain(`lists resources pods for feed wl; this host's definition carries pods, ${POOLS}`);
    expect(client.feed('wl').size).toBe(0);
    expect(client.feed('wl').status.retiredWatermarks).toEqual({});
    // Its own definition: taken.
    const same = setup({ endpoints: [b.url], feeds: ['wl'], resources: { wl: ['pods'] } });
    await same.client.whenInSync();
    expect(same.client.feed('wl').size).toBe(1);
  });

  it('fails over between replicas that looked at a missing CRD at different times: the refusing one looks again at once', async () => {
    const POOLS = 'ippools.crd.projectcalico.org';
    const api = await new FakeApiServer().start();
    cleanups.push(() => api.close());
    api.missing.add(POOLS);
    api.upsert('pods', pod('a'));
    // No periodic look within the test: only the refusal may bring A's evidence forward.
    const serve = (serverId: string): Promise<ServerHandle> => realReplica(api, serverId, ['pods', POOLS], { upstream: { minAttemptIntervalMs: 50, missingResourceRetryMs: 600_000 } });
    const poolsMark = (s: ServerHandle): string | undefined => s.stores.get('wl')?.meta().watermarks[POOLS];
    const a = await serve('real-a');
    await waitUntil(() => poolsMark(a) === String(api.rv), 'A looked');
    const lookedA = String(api.rv);
    // The cluster moves on (the pod's status only: no entry changes); B looks later.
    for (let i = 0; i < 3; i++) api.upsert('pods', pod('a', { ready: i % 2 === 0, restarts: i }));
    const b = await serve('real-b');
    await waitUntil(() => poolsMark(b) === String(api.rv), 'B looked');
    expect(Number(poolsMark(b))).toBeGreaterThan(Number(lookedA));
    await waitUntil(() => a.stores.get('wl')?.meta().watermarks['pods'] === String(api.rv), 'A follows the pods');
    expect(poolsMark(a)).toBe(lookedA);
    const { client, clock, rec, guard } = setup({ endpoints: [b.url, a.url], feeds: ['wl'], random: () => 0.999999 });
    guard.allow('CATTAIL_CLIENT_SERVER_CLOSED', 'CATTAIL_CLIENT_CONNECT_FAILED', 'CATTAIL_CLIENT_REPLICA_BEHIND');
    await client.whenInSync();
    expect(client.stats.serverId).toBe('real-b');
    await b.close();
    await waitUntil(() => rec.last('reconnecting') !== undefined, 'left B', on(client));
    // A refuses it (4015: its evidence is older than B's) and looks again at once; its watermark
    // moves within the watermark-only rate limit (1 s), well before the agent's next try (5 s).
    for (let i = 0; i < 6 && rec.last('behind') === undefined; i++) {
      await waitUntil(() => client.state === 'reconnecting' || client.state === 'behind', 'settled', on(client));
      if (rec.last('behind') === undefined) await skipWait(clock);
    }
    expect(rec.last('behind')?.reason).toMatchObject({ code: 'CATTAIL_CLIENT_REPLICA_BEHIND' });
    await waitUntil(() => Number(poolsMark(a)) >= Number(api.rv), 'A looked again');
    await settleOn(client, clock, 'real-a', 12);
    expect(client.stats.serverId).toBe('real-a');
    expect(client.inSync).toBe(true);
    expect(guard.problems()).toEqual([]);
  });

  it('honours a 503 refusal with Retry-After from the server admission control', async () => {
    const r = await replica('real-a', { maxConnections: 1, refuseRetryAfterMs: 3_000 });
    r.upstream.apply('felix', pods(3), { status: 'in-sync', watermarks: { pods: '1' } });
    const first = setup({ endpoints: [r.server.url] });
    await first.client.whenInSync();
    const { client, clock, rec, guard } = setup({ endpoints: [r.server.url] });
    guard.allow('CATTAIL_CLIENT_REFUSED');
    await waitUntil(() => client.state === 'reconnecting', 'refused', on(client));
    const ev = rec.last('reconnecting')!;
    expect(ev.reason).toMatchObject({ code: 'CATTAIL_CLIENT_REFUSED', details: { status: 503, retryAfterMs: 3_000 } });
    await first.client.close();
    await clock.advanceAsync(2_999);
    expect(client.stats.attempts).toBe(1);
    await clock.advanceAsync(1);
    await waitUntil(() => client.inSync, 'admitted after Retry-After', on(client));
    expect(guard.problems()).toEqual([]);
  });

  it('detects a black-holed connection to the real server by its read timeout', async () => {
    const r = await replica('real-a', { pingIntervalMs: 1_000 });
    r.upstream.apply('felix', pods(3), { status: 'in-sync', watermarks: { pods: '1' } });
    const proxy = await TcpProxy.start(r.port);
    cleanups.push(() => proxy.stop());
    const { client, clock, rec, guard } = setup({ endpoints: [proxy.url] });
    guard.allow('CATTAIL_CLIENT_READ_TIMEOUT');
    await client.whenInSync();
    proxy.blackhole();
    await clock.advanceAsync(3_000);
    await clock.advanceAsync(2_000);
    await waitUntil(() => rec.last('reconnecting') !== undefined, 'read timeout', on(client));
    expect(rec.last('reconnecting')!.reason).toMatchObject({ code: 'CATTAIL_CLIENT_READ_TIMEOUT', details: { readTimeoutMs: 3_000 } });
    expect(client.feed('felix').size).toBe(3);
    expect(guard.problems()).toEqual([]);
  });

  it('reports upstream-stale from the real server and back to in-sync', async () => {
    const r = await replica('real-a');
    r.upstream.apply('felix', pods(2), { status: 'in-sync', watermarks: { pods: '1' } });
    const { client, rec, guard } = setup({ endpoints: [r.server.url] });
    await client.whenInSync();
    r.upstream.apply('felix', {}, { stale: true });
    await waitUntil(() => client.state === 'upstream-stale', 'stale', on(client));
    r.upstream.apply('felix', {}, { stale: false, watermarks: { pods: '2' } });
    await waitUntil(() => client.state === 'in-sync', 'in sync again', on(client));
    expect(rec.states()).toEqual(['connecting', 'syncing', 'in-sync', 'upstream-stale', 'in-sync']);
    expect(guard.problems()).toEqual([]);
  });

  it('cattail agent --once --dump against the real server', async () => {
    const r = await replica('real-a');
    r.upstream.apply('felix', pods(40), { status: 'in-sync', watermarks: { pods: '7' } });
    const dir = mkdtempSync(join(tmpdir(), 'cattail-agent-real-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const { code, out, err } = await runCli(['agent', '--server', r.server.url, '--once', '--dump', join(dir, 'dump.jsonl')]);
    expect(err).toBe('');
    expect(code).toBe(0);
    const lines = readFileSync(join(dir, 'dump.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { feed: string; key: string; value: unknown });
    expect(lines).toHaveLength(40);
    expect(lines[5]).toEqual({ feed: 'felix', key: '/pods/demo/p005', value: { i: 5, gen: 0 } });
    expect(out).toContain('in-sync real-a');
  });
});

function computeLocalDigest(client: Client): string {
  const f = client.feed('felix');
  return computeDigest([...f.keys()].map((k) => [k, f.getRaw(k)!] as const)).toString('hex');
}
