import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildFrame, encodeFrame } from '../../proto/index.js';
import type { Client } from '../../src/client/index.js';
import { fullDigest, pack, type FakeServer } from './helpers/fake-server.js';
import { on, skipWait } from './helpers/harness.js';
import { waitUntil } from '../support/wait.js';
import { tracked } from './helpers/tracked.js';

const { server, setup } = tracked();

const data: [string, unknown][] = [
  ['/pods/demo/a', { ip: '10.0.0.1' }],
  ['/pods/demo/b', { ip: '10.0.0.2' }],
];

/** Two replicas of the same upstream: same data, different server ids (tokens do not carry over). */
async function replicas(wmA = '100', wmB = '100'): Promise<[FakeServer, FakeServer]> {
  const a = await server({ serverId: 'replica-a' });
  const b = await server({ serverId: 'replica-b' });
  a.load('felix', data, { pods: wmA });
  b.load('felix', data, { pods: wmB });
  return [a, b];
}

function withType(frame: Buffer, type: number): Buffer {
  frame[1] = type;
  return frame;
}

function connectedTo(client: Client, s: FakeServer): boolean {
  return client.stats.serverId === s.serverId && client.inSync;
}

describe('client - watermarks (PROTOCOL.md §8)', () => {
  it('closes with 4002 on a watermark that is not a decimal resourceVersion, and takes nothing of that state', async () => {
    const a = await server({ serverId: 'replica-a' });
    a.load('felix', data, { pods: '100' });
    a.fakeWatermarks = { pods: 'v100' };
    const { client, rec, guard } = setup({ endpoints: [a.url] });
    guard.allow('CATTAIL_CLIENT_PROTOCOL_ERROR', 'CATTAIL_CLIENT_SERVER_CLOSED');
    // Before, it was kept: no later state could be judged against it, and a relay's store refused
    // every batch that carried it.
    await waitUntil(() => rec.events.some((e) => e.reason?.code === 'CATTAIL_CLIENT_PROTOCOL_ERROR'), 'refused', on(client));
    expect(String(rec.events.find((e) => e.reason?.code === 'CATTAIL_CLIENT_PROTOCOL_ERROR')?.reason?.message)).toContain('not a decimal resourceVersion');
    expect(client.feed('felix').size).toBe(0);
    expect(client.feed('felix').status.watermarks).toEqual({});
    expect(a.rec.clientCloses.some((c) => c.code === 4002)).toBe(true);
  });
});

describe('client - another cluster (PROTOCOL.md §8)', () => {
  it('keeps the WELCOME\'s cluster and presents it; refuses (4002) a WELCOME of another cluster that would continue its state, and forgets the name at a WELCOME without one', async () => {
    const a = await server({ serverId: 'replica-a' });
    a.load('felix', data, { pods: '100' });
    a.cluster = 'kube-system/one';
    const { client, clock, rec, guard } = setup({ endpoints: [a.url] });
    guard.allow('CATTAIL_CLIENT_SERVER_CLOSED', 'CATTAIL_CLIENT_CONNECT_FAILED', 'CATTAIL_CLIENT_HANDSHAKE_FAILED', 'CATTAIL_CLIENT_GOODBYE');
    await client.whenInSync();
    expect(client.cluster).toBe('kube-system/one');
    // A broken server: it names another cluster and resumes the token anyway.
    a.cluster = 'kube-system/two';
    a.goodbyeAll({ reconnectDelayMs: 0 });
    for (let i = 0; i < 5 && !rec.events.some((e) => e.reason?.code === 'CATTAIL_CLIENT_HANDSHAKE_FAILED'); i++) {
      await waitUntil(() => client.state === 'reconnecting', 'reconnecting', on(client));
      await skipWait(clock);
      await waitUntil(() => client.state !== 'connecting', 'attempt settled', on(client));
    }
    expect(rec.events.some((e) => e.reason?.code === 'CATTAIL_CLIENT_HANDSHAKE_FAILED')).toBe(true);
    expect(a.rec.hellos.at(-1)?.cluster).toBe('kube-system/one');
    expect(client.feed('felix').size).toBe(2);
    // A server that names none: the watermarks decide, and the client keeps no name.
    a.cluster = undefined;
    await skipWait(clock);
    await waitUntil(() => client.inSync && client.cluster === undefined, 'in sync, no name kept', on(client));
  });
});

describe('client - failover', () => {
  it('fails over between two replicas when the connected one dies, with no spurious changes', async () => {
    const [a, b] = await replicas();
    const { client, clock, rec, guard } = setup({ endpoints: [a.url, b.url] });
    guard.allow('CATTAIL_CLIENT_SERVER_CLOSED', 'CATTAIL_CLIENT_CONNECT_FAILED');
    await client.whenInSync();
    const first = client.stats.serverId === 'replica-a' ? a : b;
    const other = first === a ? b : a;
    await first.stop();
    // Retry the same replica once (a blip is resumed there), then move on.
    for (let i = 0; i < 5 && !connectedTo(client, other); i++) {
      await waitUntil(() => client.state === 'reconnecting' || connectedTo(client, other), 'reconnecting or failed over', on(client));
      if (client.state === 'reconnecting') await skipWait(clock);
      await waitUntil(() => client.state !== 'connecting', 'attempt settled', on(client));
    }
    await waitUntil(() => connectedTo(client, other), 'in sync on the other replica', on(client));
    expect(rec.changes).toHaveLength(1);
    expect(client.feed('felix').size).toBe(2);
    expect(guard.problems()).toEqual([]);
  });

  it('refuses a replica whose watermarks are behind: keeps its state, reports behind, syncs elsewhere', async () => {
    const [a, b] = await replicas('200', '150');
    a.apply('felix', { upserts: [['/pods/demo/c', { ip: '10.0.0.3' }]], watermarks: { pods: '201' } });
    // Start on A only, then fail over to a list where B (behind) comes first.
    const s1 = setup({ endpoints: [a.url] });
    await s1.client.whenInSync();
    expect(s1.client.feed('felix').status.watermarks).toEqual({ pods: '201' });
    s1.client.destroy();

    // A second client that has applied A's state, then fails over: B is behind, C is current.
    const c = await server({ serverId: 'replica-c' });
    c.load('felix', [...data, ['/pods/demo/c', { ip: '10.0.0.3' }]], { pods: '205' });
    const { client, clock, rec, guard } = setup({ endpoints: [a.url, b.url, c.url], random: () => 0 });
    guard.allow('CATTAIL_CLIENT_SERVER_CLOSED', 'CATTAIL_CLIENT_CONNECT_FAILED', 'CATTAIL_CLIENT_REPLICA_BEHIND');
    await client.whenInSync();
    const held = new Map([...client.feed('felix').keys()].map((k) => [k, client.feed('felix').getRaw(k)]));
    const changesBefore = rec.changes.length;
    const firstServer = client.stats.serverId;
    for (const s of [a, b, c]) if (s.serverId === firstServer) await s.stop();
    const deadline = 10;
    for (let i = 0; i < deadline && !(client.inSync && client.stats.serverId === 'replica-c'); i++) {
      await waitUntil(() => client.state === 'reconnecting' || client.state === 'behind' || client.inSync, 'settled', on(client));
      if (client.state === 'reconnecting' || client.state === 'behind') await skipWait(clock);
      await waitUntil(() => client.state !== 'connecting' && client.state !== 'syncing', 'attempt settled', on(client));
    }
    if (firstServer !== 'replica-b') {
      // B was tried (the rotation covers every endpoint) and refused as behind.
      const behind = rec.last('behind');
      expect(behind?.reason?.code).toBe('CATTAIL_CLIENT_REPLICA_BEHIND');
      expect(behind?.reason?.details?.['behind']).toEqual([{ resource: 'pods', applied: expect.any(String), offered: '150' }]);
      expect(b.rec.clientGoodbyes[0]).toMatchObject({ reason: 'replica-behind' });
      // The state held while B was refused: nothing was replaced or deleted.
      expect(rec.changes.slice(changesBefore).every((ch) => ch.deletes.length === 0)).toBe(true);
    }
    expect(client.inSync).toBe(true);
    expect(client.feed('felix').size).toBe(held.size);
    expect(guard.problems()).toEqual([]);
  });

  it('reports behind when the only replica is behind, and keeps the state', async () => {
    const [a, b] = await replicas('300', '100');
    const { client, clock, rec, guard } = setup({ endpoints: [a.url], behindRetryDelayMs: 5_000 });
    guard.allow('CATTAIL_CLIENT_SERVER_CLOSED', 'CATTAIL_CLIENT_REPLICA_BEHIND', 'CATTAIL_CLIENT_CONNECT_FAILED');
    await client.whenInSync();
    // Replica A is replaced by a lagging one on the same address.
    a.fakeWatermarks = { pods: '100' };
    a.epoch = 'new';
    for (const c of a.clients) c.ws.terminate();
    a.feed().entries.delete('/pods/demo/a');
    await waitUntil(() => client.state === 'reconnecting', 'reconnecting', on(client));
    await skipWait(clock);
    await waitUntil(() => client.state === 'behind', 'behind', on(client));
    const ev = rec.last('behind')!;
    expect(ev.delayMs).toBe(5_000);
    expect(ev.reason?.code).toBe('CATTAIL_CLIENT_REPLICA_BEHIND');
    expect(client.feed('felix').size).toBe(2);
    expect(client.feed('felix').has('/pods/demo/a')).toBe(true);
    expect(rec.changes).toHaveLength(1);
    // Caught up: accepted, and only then is the deletion applied.
    a.fakeWatermarks = undefined;
    a.feed().watermarks = { pods: '301' };
    await skipWait(clock);
    await waitUntil(() => client.inSync, 'in sync after the replica caught up', on(client));
    expect(client.feed('felix').has('/pods/demo/a')).toBe(false);
    expect(rec.changes.at(-1)!.deletes).toEqual(['/pods/demo/a']);
    expect(b.rec.hellos).toHaveLength(0);
    expect(guard.problems()).toEqual([]);
  });
});

describe('client - liveness and server hints', () => {
  it('detects a black-holed connection by its read timeout (3 × pingIntervalMs) and syncs elsewhere', async () => {
    const a = await server({ serverId: 'a', pingIntervalMs: 1_000 });
    const b = await server({ serverId: 'b', pingIntervalMs: 1_000 });
    const { client, clock, rec, guard } = setup({ endpoints: [a.url, b.url], random: () => 0 });
    guard.allow('CATTAIL_CLIENT_READ_TIMEOUT');
    await client.whenInSync();
    const first = client.stats.serverId === 'a' ? a : b;
    const other = first === a ? b : a;
    await clock.advanceAsync(2_000);
    expect(client.state).toBe('in-sync');
    first.ping();
    await waitUntil(() => client.stats.framesReceived >= 4, 'ping received', on(client));
    await clock.advanceAsync(2_500);
    expect(client.state).toBe('in-sync');
    first.blackhole();
    await clock.advanceAsync(3_000);
    // The close handshake cannot complete with a black hole: the close timeout forces it.
    await clock.advanceAsync(2_000);
    await waitUntil(() => rec.last('reconnecting') !== undefined, 'reconnecting', on(client));
    expect(rec.last('reconnecting')!.reason).toMatchObject({ code: 'CATTAIL_CLIENT_READ_TIMEOUT', details: { readTimeoutMs: 3_000 } });
    expect(client.stats.readTimeouts).toBe(1);
    if (client.state === 'reconnecting') await skipWait(clock);
    await waitUntil(() => client.inSync && client.stats.serverId === other.serverId, 'in sync on the other server', on(client));
    expect(guard.problems()).toEqual([]);
  });

  it('honours GOODBYE during shutdown: waits the hinted delay, then tries the hinted endpoint first', async () => {
    const a = await server({ serverId: 'a' });
    const b = await server({ serverId: 'b' });
    const c = await server({ serverId: 'c' });
    const { client, clock, rec, guard } = setup({ endpoints: [a.url, b.url], random: () => 0 });
    guard.allow('CATTAIL_CLIENT_SERVER_CLOSED');
    await client.whenInSync();
    const first = client.stats.serverId === 'a' ? a : b;
    first.goodbyeAll({ reconnectDelayMs: 7_000, endpoints: [c.url] });
    await waitUntil(() => client.state === 'reconnecting', 'reconnecting', on(client));
    const ev = rec.last('reconnecting')!;
    expect(ev.delayMs).toBe(7_000);
    expect(ev.reason?.details?.['goodbye']).toMatchObject({ reason: 'shutdown', reconnectDelayMs: 7_000 });
    expect(client.stats.goodbyes).toBe(1);
    await clock.advanceAsync(6_999);
    expect(client.state).toBe('reconnecting');
    expect(c.rec.upgrades).toBe(0);
    await clock.advanceAsync(1);
    await waitUntil(() => client.inSync && client.stats.serverId === 'c', 'in sync on the hinted endpoint', on(client));
    await waitUntil(() => first.rec.clientCloses.length === 1, 'client close seen', on(first));
    expect(first.rec.clientCloses[0]!.code).toBe(1000);
    expect(guard.problems()).toEqual([]);
  });

  it('a GOODBYE asking for days keeps the agent off that server only: the others are tried after reconnectMaxDelayMs', async () => {
    const a = await server({ serverId: 'a' });
    const b = await server({ serverId: 'b' });
    const { client, clock, rec, guard } = setup({ endpoints: [a.url, b.url], random: () => 0.999999, reconnectMaxDelayMs: 30_000 });
    guard.allow('CATTAIL_CLIENT_SERVER_CLOSED');
    await client.whenInSync();
    expect(client.stats.serverId).toBe('a');
    a.goodbyeAll({ reconnectDelayMs: 10 * 86_400_000 });
    await waitUntil(() => client.state === 'reconnecting', 'reconnecting', on(client));
    expect(rec.last('reconnecting')!.delayMs).toBe(30_000);
    await clock.advanceAsync(30_000);
    await waitUntil(() => client.inSync && client.stats.serverId === 'b', 'in sync on the other replica', on(client));
    expect(a.rec.hellos).toHaveLength(1);
    expect(guard.problems()).toEqual([]);
  });

  it('goodbyeDelayMaxMs bounds how long a GOODBYE keeps the client off the other replicas, never the one that sent it', async () => {
    const a = await server({ serverId: 'a' });
    const b = await server({ serverId: 'b' });
    const { client, clock, rec, guard } = setup({ endpoints: [a.url], random: () => 0, goodbyeDelayMaxMs: 1_000 });
    guard.allow('CATTAIL_CLIENT_SERVER_CLOSED');
    await client.whenInSync();
    // A closing replica's hint: the peer to go to, and 20 s to spread a crowd.
    a.goodbyeAll({ reconnectDelayMs: 20_000, endpoints: [b.url] });
    await waitUntil(() => client.state === 'reconnecting', 'reconnecting', on(client));
    expect(rec.last('reconnecting')!.delayMs).toBe(1_000);
    await clock.advanceAsync(999);
    expect(b.rec.upgrades).toBe(0);
    await clock.advanceAsync(1);
    await waitUntil(() => client.inSync && client.stats.serverId === 'b', 'in sync on the peer after a second', on(client));
    // The replica that sent it, when the client is sent away again before 20 s: not tried, the
    // client waits for it (or another) to be free.
    b.goodbyeAll({ reconnectDelayMs: 0 });
    await waitUntil(() => client.state === 'reconnecting', 'sent away by the peer', on(client));
    await clock.advanceAsync(5_000);
    expect(a.rec.hellos).toHaveLength(1);
    expect(guard.problems()).toEqual([]);
  });

  it('a GOODBYE before WELCOME from a server that then neither welcomes nor closes: honoured at once, not lost to the handshake timeout', async () => {
    const a = await server({ serverId: 'a' });
    const b = await server({ serverId: 'b' });
    a.noWelcome = true;
    const { client, clock, rec, guard } = setup({ endpoints: [a.url], random: () => 0, handshakeTimeoutMs: 10_000 });
    guard.allow('CATTAIL_CLIENT_SERVER_CLOSED');
    await waitUntil(() => a.rec.hellos.length === 1, 'hello', on(a));
    a.sendRawToAll(encodeFrame({ type: 'goodbye', reason: 'shutdown', message: 'draining', reconnectDelayMs: 3_000, endpoints: [b.url] }));
    // No time passes: the client leaves on the GOODBYE, not on its handshake timeout.
    await waitUntil(() => client.state === 'reconnecting', 'reconnecting on the GOODBYE', on(client));
    const ev = rec.last('reconnecting')!;
    expect(ev.reason?.code).toBe('CATTAIL_CLIENT_SERVER_CLOSED');
    expect(ev.reason?.details?.['goodbye']).toMatchObject({ reason: 'shutdown', reconnectDelayMs: 3_000 });
    expect(ev.delayMs).toBe(3_000);
    await waitUntil(() => a.rec.clientCloses.length === 1, 'the client closed', on(a));
    expect(a.rec.clientCloses[0]!.code).toBe(1000);
    await clock.advanceAsync(3_000);
    await waitUntil(() => client.inSync && client.stats.serverId === 'b', 'in sync on the hinted replica', on(client));
    expect(guard.problems()).toEqual([]);
  });

  it('a GOODBYE before WELCOME near the handshake timeout, from a server that does not answer the close: the GOODBYE still decides', async () => {
    const a = await server({ serverId: 'a' });
    a.noWelcome = true;
    const { client, clock, rec, guard } = setup({ endpoints: [a.url], random: () => 0, handshakeTimeoutMs: 10_000 });
    guard.allow('CATTAIL_CLIENT_SERVER_CLOSED');
    await waitUntil(() => a.rec.hellos.length === 1, 'hello', on(a));
    await clock.advanceAsync(9_000);
    a.sendRawToAll(encodeFrame({ type: 'goodbye', reason: 'shutdown', message: 'draining', reconnectDelayMs: 4_000 }));
    // It reads nothing more from now on: the client's close frame is never answered.
    a.blackhole();
    await waitUntil(() => client.stats.framesReceived === 1, 'the GOODBYE read', on(client));
    // Past the handshake timeout, within the client's close timeout (2 s): the close is under way.
    await clock.advanceAsync(1_500);
    await clock.advanceAsync(1_000);
    await waitUntil(() => client.state === 'reconnecting', 'reconnecting', on(client));
    const ev = rec.last('reconnecting')!;
    expect(ev.reason?.code).toBe('CATTAIL_CLIENT_SERVER_CLOSED');
    expect(ev.reason?.details?.['goodbye']).toMatchObject({ reconnectDelayMs: 4_000 });
    expect(ev.delayMs).toBe(4_000);
    expect(guard.problems()).toEqual([]);
  });

  it('moveOn() leaves the replica with GOODBYE moving and connects to the next endpoint at once, keeping the state', async () => {
    const a = await server({ serverId: 'a' });
    const b = await server({ serverId: 'b' });
    for (const s of [a, b]) s.load('felix', data);
    const { client, clock, rec, guard } = setup({ endpoints: [a.url, b.url], random: () => 0 });
    guard.allow('CATTAIL_CLIENT_MOVED');
    await client.whenInSync();
    const [left, next] = client.stats.serverId === 'a' ? [a, b] : [b, a];
    const held = client.feed('felix').size;
    expect(client.moveOn('test')).toBe(true);
    // The close under way keeps its end: a second call does nothing.
    expect(client.moveOn('again')).toBe(false);
    await waitUntil(() => client.state === 'reconnecting', 'reconnecting', on(client));
    const ev = rec.last('reconnecting')!;
    expect(ev.reason?.code).toBe('CATTAIL_CLIENT_MOVED');
    expect(ev.delayMs).toBe(0);
    // No wait: the next endpoint on the clock's next tick.
    await clock.advanceAsync(0);
    await waitUntil(() => client.inSync && client.stats.serverId === next.serverId, 'in sync on the next replica', on(client));
    expect(client.feed('felix').size).toBe(held);
    await waitUntil(() => left.rec.clientGoodbyes.length === 1 && left.rec.clientCloses.length === 1, 'GOODBYE and close at the one left', on(left));
    expect(left.rec.clientGoodbyes[0]).toMatchObject({ type: 'goodbye', reason: 'moving' });
    expect(left.rec.clientCloses[0]!.code).toBe(1000);
    expect(guard.problems()).toEqual([]);
    // Nothing to leave once closed.
    await client.close();
    expect(client.moveOn('test')).toBe(false);
  });

  it('moveOn() does nothing when every other endpoint is pinned (it would come straight back)', async () => {
    const a = await server({ serverId: 'a' });
    const b = await server({ serverId: 'b' });
    for (const s of [a, b]) s.load('felix', data);
    const { client, clock, guard } = setup({ endpoints: [a.url, b.url], random: () => 0, goodbyeDelayMaxMs: 1_000 });
    guard.allow('CATTAIL_CLIENT_SERVER_CLOSED');
    await client.whenInSync();
    const [first, second] = client.stats.serverId === 'a' ? [a, b] : [b, a];
    // The first says GOODBYE for two minutes: the client goes to the second after a second, the
    // first pinned for the two minutes.
    first.goodbyeAll({ reconnectDelayMs: 120_000, endpoints: [second.url] });
    await waitUntil(() => client.state === 'reconnecting', 'reconnecting', on(client));
    await clock.advanceAsync(1_000);
    await waitUntil(() => client.inSync && client.stats.serverId === second.serverId, 'in sync on the second', on(client));
    expect(client.moveOn('test')).toBe(false);
    expect(client.state).toBe('in-sync');
    await waitUntil(() => first.rec.clientCloses.length === 1, 'the first closed', on(first));
    expect(second.rec.clientGoodbyes).toHaveLength(0);
    expect(guard.problems()).toEqual([]);
  });

  it('honours a 503 refusal: no retry of that server before Retry-After, hinted endpoint first', async () => {
    const a = await server({ serverId: 'a' });
    a.refuse = { count: 1, retryAfterS: 30, endpoints: [] };
    const { client, clock, rec, guard } = setup({ endpoints: [a.url] });
    guard.allow('CATTAIL_CLIENT_REFUSED');
    await waitUntil(() => client.state === 'reconnecting', 'refused', on(client, a));
    const ev = rec.last('reconnecting')!;
    expect(ev.reason).toMatchObject({ code: 'CATTAIL_CLIENT_REFUSED', details: { retryAfterMs: 30_000, status: 503 } });
    // The backoff delay ends well before Retry-After: the client must wait on.
    await clock.advanceAsync(ev.delayMs!);
    expect(a.rec.upgrades).toBe(1);
    expect(client.state).toBe('reconnecting');
    await clock.advanceAsync(30_000 - ev.delayMs! - 1);
    expect(a.rec.upgrades).toBe(1);
    await clock.advanceAsync(1);
    await waitUntil(() => client.inSync, 'in sync after Retry-After', on(client));
    expect(a.rec.upgrades).toBe(2);
    expect(client.stats.refusals).toBe(1);
    expect(guard.problems()).toEqual([]);
  });

  it('a 503 with X-Cattail-Endpoints sends the client to the hinted server at once', async () => {
    const a = await server({ serverId: 'a' });
    const b = await server({ serverId: 'b' });
    a.refuse = { count: 1, retryAfterS: 60, endpoints: [b.url] };
    const { client, clock, guard } = setup({ endpoints: [a.url] });
    guard.allow('CATTAIL_CLIENT_REFUSED');
    await waitUntil(() => client.state === 'reconnecting', 'refused', on(client, a));
    await skipWait(clock);
    await waitUntil(() => client.inSync, 'in sync on the hinted server', on(client));
    expect(client.stats.serverId).toBe('b');
    expect(guard.problems()).toEqual([]);
  });
});

describe('client - hints do not outlive the reconnect they were for', () => {
  it('a 503 names peers, the agent syncs on one; a later GOODBYE\'s peers are tried first, not the 503\'s others (gone by then)', async () => {
    const a = await server({ serverId: 'a' });
    const b = await server({ serverId: 'b' });
    const c = await server({ serverId: 'c' });
    // Peers of the 503 that a rollout replaced later: nothing listens there any more.
    const gone = await Promise.all([server(), server(), server()]);
    for (const g of gone) await g.stop();
    a.refuse = { count: 1, retryAfterS: 60, endpoints: [b.url, ...gone.map((g) => g.url)] };
    const { client, clock, rec, guard } = setup({ endpoints: [a.url] });
    guard.allow('CATTAIL_CLIENT_REFUSED', 'CATTAIL_CLIENT_SERVER_CLOSED');
    await waitUntil(() => client.state === 'reconnecting', 'refused', on(client, a));
    await skipWait(clock);
    await waitUntil(() => client.inSync && client.stats.serverId === 'b', 'in sync on the hinted peer', on(client));
    // Days later b shuts down and names the peer that replaced the others.
    b.goodbyeAll({ reconnectDelayMs: 1_000, endpoints: [c.url] });
    await waitUntil(() => client.state === 'reconnecting', 'goodbye', on(client));
    await clock.advanceAsync(1_000);
    await waitUntil(() => client.inSync || rec.last('reconnecting')?.reason?.code === 'CATTAIL_CLIENT_CONNECT_FAILED', 'the next attempt settled', on(client));
    expect(client.inSync).toBe(true);
    expect(client.stats.serverId).toBe('c');
    expect(client.stats.attempts).toBe(3);
    // No CATTAIL_CLIENT_CONNECT_FAILED on the way: no dead hint was tried.
    expect(guard.problems()).toEqual([]);
  });
});

describe('client - a client that speaks TLS stays on it', () => {
  it('never follows a ws:// hint (a GOODBYE\'s peers) when TLS is configured: plaintext would skip every server identity check', async () => {
    const a = await server({ serverId: 'a' });
    const b = await server({ serverId: 'b' });
    // a is reached over ws:// here only because the fake speaks plaintext; `tls` makes the client secure.
    const { client, clock } = setup({ endpoints: [a.url], tls: { serverName: 'cattail.test' } });
    await client.whenInSync();
    a.goodbyeAll({ reconnectDelayMs: 1_000, endpoints: [b.url] });
    await waitUntil(() => client.state === 'reconnecting', 'goodbye', on(client));
    await clock.advanceAsync(1_000);
    await waitUntil(() => client.inSync, 'back in sync', on(client));
    // Before, the hint came first: b, in plaintext.
    expect(client.stats.serverId).toBe('a');
    expect(b.rec.hellos).toHaveLength(0);
  });

  it('discovers wss:// replicas when every static endpoint is wss://, also without TLS options (the system CAs)', async () => {
    const slices = [{ ports: [{ name: 'agents', port: 5473 }], endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }] }];
    const { client, rec } = setup({ endpoints: ['wss://127.0.0.1:1/'], service: 'calico-system/cattail', endpointSliceSource: { list: () => Promise.resolve(slices) } });
    await waitUntil(() => rec.states().includes('reconnecting'), 'the first attempt', on(client));
    const tried = rec.events.map((e) => e.endpoint).filter((e): e is string => e !== undefined);
    expect(tried.length).toBeGreaterThan(0);
    // Before, the first look replaced the working wss:// list with ws://<pod>:5473.
    expect(tried.every((e) => e.startsWith('wss://'))).toBe(true);
  });
});

describe('client - hostile and inconsistent servers', () => {
  it('closes on malformed frames with a coded error and close code, reconnects, and keeps its state', async () => {
    const a = await server();
    a.load('felix', data);
    const { client, clock, rec, guard } = setup({ endpoints: [a.url] });
    guard.allow('CATTAIL_CLIENT_PROTOCOL_ERROR', 'CATTAIL_CLIENT_REVISION_GAP');
    await client.whenInSync();
    const cases: { bytes: Buffer; binary?: boolean; close: number; proto?: string }[] = [
      { bytes: Buffer.from([1, 2, 3]), close: 4000, proto: 'CATTAIL_PROTO_TRUNCATED' },
      { bytes: withType(buildFrame({ type: 0x08, flags: 0, feedId: 0xffff, fromRevision: 0, toRevision: 0 }, Buffer.from([0x80])), 0x7f), close: 4002, proto: 'CATTAIL_PROTO_UNKNOWN_TYPE' },
      { bytes: buildFrame({ type: 0x06, flags: 0, feedId: 1, fromRevision: 1, toRevision: 2 }, Buffer.from([0xc1])), close: 4000, proto: 'CATTAIL_PROTO_BAD_BODY' },
      { bytes: encodeFrame({ type: 'pong', t: 1 }), close: 4002 },
      { bytes: encodeFrame({ type: 'delta', feedId: 1, fromRevision: 7, toRevision: 8, more: false, upserts: [], deletes: [] }), close: 4014 },
      { bytes: encodeFrame({ type: 'status', feedId: 9, revision: 1, status: 'in-sync', stale: false, watermarks: {}, digest: Buffer.alloc(8), token: Buffer.alloc(1) }), close: 4002 },
      { bytes: Buffer.from('hello'), binary: false, close: 4002 },
    ];
    for (const [i, c] of cases.entries()) {
      a.sendRawToAll(c.bytes, c.binary ?? true);
      await waitUntil(() => client.state === 'reconnecting', `reconnecting after case ${i}`, on(client));
      const ev = rec.last('reconnecting')!;
      expect(ev.reason?.code, `case ${i}`).toBe(c.close === 4014 ? 'CATTAIL_CLIENT_REVISION_GAP' : 'CATTAIL_CLIENT_PROTOCOL_ERROR');
      if (c.proto !== undefined) expect((ev.reason?.cause as { code?: string }).code, `case ${i}`).toBe(c.proto);
      await waitUntil(() => a.rec.clientCloses.length === i + 1, `close ${i} seen`, on(a));
      expect(a.rec.clientCloses[i]!.code, `case ${i}`).toBe(c.close);
      expect(client.feed('felix').size).toBe(2);
      await skipWait(clock);
      await waitUntil(() => client.inSync, `in sync after case ${i}`, on(client));
    }
    expect(client.stats.protocolErrors).toBe(cases.length - 1);
    expect(client.stats.revisionGaps).toBe(1);
    expect(a.rec.clientErrors.length).toBe(cases.length);
    // Resumed after each protocol error; the revision gap alone forced a (reconciled) snapshot:
    // no change events beyond the first load.
    expect(client.stats.snapshotsApplied).toBe(2);
    expect(rec.changes).toHaveLength(1);
    expect(guard.problems()).toEqual([]);
  });

  it('takes an in-sync STATUS without digest only on a scoped connection and when it advertised scope.watermarks (§4.7); else closes 4000', async () => {
    // A server that announces scope.node (it scopes a feed of the connection).
    const a = await server({ welcomeCaps: ['scope.node'] });
    a.load('felix', data, { pods: '100' });
    const feed = a.feed('felix');
    const undigested = (pods: string): Buffer => encodeFrame({ type: 'status', feedId: 1, revision: feed.revision, status: 'in-sync', stale: false, watermarks: { pods }, token: a.token(feed, feed.revision) });
    // Advertised (the default, with scope.node): the watermarks move, no digest is checked, no reconnect.
    const withCap = setup({ endpoints: [a.url] });
    await withCap.client.whenInSync();
    expect(a.rec.hellos[0]!.caps).toEqual(expect.arrayContaining(['scope.node', 'scope.watermarks']));
    a.sendRawToAll(undigested('150'));
    await waitUntil(() => withCap.client.feed('felix').status.watermarks['pods'] === '150', 'watermarks moved', on(withCap.client));
    expect(withCap.client.state).toBe('in-sync');
    expect(a.rec.clientCloses).toEqual([]);
    await withCap.client.close();
    // Not advertised: a malformed body, as before the capability existed.
    const without = setup({ endpoints: [a.url], acceptScopedFeeds: false });
    without.guard.allow('CATTAIL_CLIENT_PROTOCOL_ERROR');
    await without.client.whenInSync();
    expect(a.rec.hellos[1]!.caps).not.toContain('scope.watermarks');
    a.sendRawToAll(undigested('160'));
    await waitUntil(() => without.client.state === 'reconnecting', 'reconnecting', on(without.client));
    expect((without.rec.last('reconnecting')!.reason!.cause as { code: string }).code).toBe('CATTAIL_PROTO_BAD_BODY');
    await waitUntil(() => a.rec.clientCloses.length === 2, 'closed', on(a));
    expect(a.rec.clientCloses[1]!.code).toBe(4000);
    expect(without.client.feed('felix').status.watermarks['pods']).toBe('100');
    expect(without.guard.problems()).toEqual([]);
    await without.client.close();
    // Advertised, but the connection has no scoped feed (no scope.node in WELCOME): a digest is due.
    const plain = await server();
    plain.load('felix', data, { pods: '100' });
    const unscoped = setup({ endpoints: [plain.url] });
    unscoped.guard.allow('CATTAIL_CLIENT_PROTOCOL_ERROR');
    await unscoped.client.whenInSync();
    const pf = plain.feed('felix');
    plain.sendRawToAll(encodeFrame({ type: 'status', feedId: 1, revision: pf.revision, status: 'in-sync', stale: false, watermarks: { pods: '170' }, token: plain.token(pf, pf.revision) }));
    await waitUntil(() => unscoped.client.state === 'reconnecting', 'reconnecting', on(unscoped.client));
    expect((unscoped.rec.last('reconnecting')!.reason!.cause as { code: string }).code).toBe('CATTAIL_PROTO_BAD_BODY');
    await waitUntil(() => plain.rec.clientCloses.length === 1, 'closed', on(plain));
    expect(plain.rec.clientCloses[0]!.code).toBe(4000);
    expect(unscoped.guard.problems()).toEqual([]);
    await unscoped.client.close();
    // Scoped and advertised, but the feed is not in sync yet: a STATUS without digest never makes it so.
    const syncing = await server({ welcomeCaps: ['scope.node'] });
    syncing.load('felix', data, { pods: '100' });
    syncing.setStatus('felix', { status: 'resyncing' });
    const early = setup({ endpoints: [syncing.url] });
    early.guard.allow('CATTAIL_CLIENT_PROTOCOL_ERROR');
    await waitUntil(() => early.client.feed('felix').size === 2, 'snapshot applied', on(early.client));
    const sf = syncing.feed('felix');
    syncing.sendRawToAll(encodeFrame({ type: 'status', feedId: 1, revision: sf.revision, status: 'in-sync', stale: false, watermarks: { pods: '180' }, token: syncing.token(sf, sf.revision) }));
    await waitUntil(() => syncing.rec.clientCloses.length === 1, 'closed', on(syncing));
    expect(syncing.rec.clientCloses[0]!.code).toBe(4002);
    expect(early.client.inSync).toBe(false);
    expect(early.guard.problems()).toEqual([]);
  });

  it('detects a digest mismatch, closes 4014, drops its token and resyncs with a snapshot', async () => {
    const a = await server();
    a.load('felix', data, { pods: '100' });
    const { client, clock, rec, guard } = setup({ endpoints: [a.url] });
    guard.allow('CATTAIL_CLIENT_DIGEST_MISMATCH');
    await client.whenInSync();
    a.corruptDigests = 1;
    a.apply('felix', { upserts: [['/pods/demo/z', { ip: 'z' }]] });
    await waitUntil(() => client.state === 'reconnecting', 'reconnecting', on(client));
    expect(rec.last('reconnecting')!.reason).toMatchObject({ code: 'CATTAIL_CLIENT_DIGEST_MISMATCH', details: { feed: 'felix', expected: '0123456789abcdef' } });
    await waitUntil(() => a.rec.clientCloses.length === 1, 'close', on(a));
    expect(a.rec.clientCloses[0]!.code).toBe(4014);
    await skipWait(clock);
    await waitUntil(() => client.inSync && a.rec.hellos.length === 2, 'resynced', on(client, a));
    expect(a.rec.hellos[1]!.feeds[0]!.token).toBeUndefined();
    // The token is gone, what it applied is not: notBefore (PROTOCOL.md §8) spares it a snapshot
    // older than that. The first HELLO, with nothing applied, had none.
    expect(a.rec.hellos[0]!.feeds[0]!.notBefore).toBeUndefined();
    expect(a.rec.hellos[1]!.feeds[0]!.notBefore).toEqual(a.feed('felix').watermarks);
    expect(Object.keys(a.feed('felix').watermarks).length).toBeGreaterThan(0);
    expect(client.stats.snapshotsApplied).toBe(2);
    expect(client.stats.digestMismatches).toBe(1);
    expect(client.feed('felix').size).toBe(3);
    expect(guard.problems()).toEqual([]);
  });

  it('a refused incoming snapshot keeps the held state\'s token and checkpoint: a restart restores it, a reconnect resumes', async () => {
    const a = await server();
    a.load('felix', data, { pods: '100' });
    const dir = mkdtempSync(join(tmpdir(), 'cattail-snapshot-only-'));
    try {
      const inBandBad = (): void => {
        a.corruptDigests = 1;
        for (const c of a.clients) a.sendSnapshot(c, a.feed());
      };
      const first = setup({ endpoints: [a.url], stateDir: dir, checkpointIntervalMs: 0 });
      first.guard.allow('CATTAIL_CLIENT_DIGEST_MISMATCH');
      await first.client.whenInSync();
      await waitUntil(() => (first.client.stats.checkpoint?.written ?? 0) >= 1, 'checkpoint written', on(first.client));
      inBandBad();
      await waitUntil(() => first.client.state === 'reconnecting', 'snapshot refused', on(first.client));
      expect(first.rec.last('reconnecting')!.reason).toMatchObject({ code: 'CATTAIL_CLIENT_DIGEST_MISMATCH', details: { feed: 'felix', snapshotOnly: true } });
      await first.client.close();
      expect(first.guard.problems()).toEqual([]);
      // The checkpoint of the verified state is still there: a restart resumes from it.
      const second = setup({ endpoints: [a.url], stateDir: dir, checkpointIntervalMs: 0 });
      second.guard.allow('CATTAIL_CLIENT_DIGEST_MISMATCH');
      await second.client.whenInSync();
      expect(second.client.stats.checkpoint).toMatchObject({ restored: 1 });
      expect(a.rec.hellos[1]!.feeds[0]!.token).toBeDefined();
      expect(second.client.stats).toMatchObject({ resumes: 1, snapshotsApplied: 0 });
      // And so does a reconnect of a live client.
      inBandBad();
      await waitUntil(() => second.client.state === 'reconnecting', 'snapshot refused', on(second.client));
      await skipWait(second.clock);
      await waitUntil(() => second.client.inSync && a.rec.hellos.length === 3, 'in sync again', on(second.client, a));
      expect(a.rec.hellos[2]!.feeds[0]!.token).toBeDefined();
      expect(second.client.stats).toMatchObject({ resumes: 2, snapshotsApplied: 0, digestMismatches: 1 });
      expect(second.client.feed('felix').size).toBe(2);
      expect(second.guard.problems()).toEqual([]);
      await second.client.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a DELTA or STATUS that comes before the snapshot of a feed in mode snapshot (4002), however well its revision fits', async () => {
    const a = await server({ serverId: 'a' });
    a.load('felix', data, { pods: '100' });
    a.apply('felix', { upserts: [['/pods/demo/c', { ip: '10.0.0.3' }]] });
    const { client, clock, rec, guard } = setup({ endpoints: [a.url] });
    guard.allow('CATTAIL_CLIENT_SERVER_CLOSED', 'CATTAIL_CLIENT_PROTOCOL_ERROR');
    await client.whenInSync();
    const held = client.feed('felix').revision!;
    const changes = rec.changes.length;
    // Another server's WELCOME (or this one's after a restart): a snapshot is due, and its
    // revisions are its own; the held one happens to fit.
    const welcome = encodeFrame({
      type: 'welcome', protocol: 1, serverId: 'b', pingIntervalMs: 10_000, pongTimeoutMs: 60_000, maxFrameBytes: 1_048_576,
      maxInboundBytes: 65_536, compression: 'none', caps: [], feeds: [{ name: 'felix', id: 1, mode: 'snapshot', reason: 'other-server' }],
    });
    const early = [
      encodeFrame({ type: 'delta', feedId: 1, fromRevision: held, toRevision: held + 1, more: false, upserts: [['/pods/demo/x', pack({ ip: 'x' })]], deletes: [] }),
      encodeFrame({ type: 'status', feedId: 1, revision: held, status: 'in-sync', stale: false, watermarks: { pods: '100' }, digest: fullDigest(a.feed().entries), token: Buffer.from('other') }),
    ];
    a.noWelcome = true;
    for (const c of a.clients) c.ws.terminate();
    for (const [i, frame] of early.entries()) {
      await waitUntil(() => client.state === 'reconnecting', `reconnecting before case ${i}`, on(client));
      await skipWait(clock);
      await waitUntil(() => a.rec.hellos.length === i + 2, `hello ${i}`, on(a));
      a.sendRawToAll(welcome);
      a.sendRawToAll(frame);
      await waitUntil(() => client.state === 'reconnecting' || client.inSync || client.feed('felix').has('/pods/demo/x'), `case ${i} settled`, on(client));
      expect(client.state, `case ${i}`).toBe('reconnecting');
      expect(rec.last('reconnecting')!.reason?.code, `case ${i}`).toBe('CATTAIL_CLIENT_PROTOCOL_ERROR');
      await waitUntil(() => a.rec.clientCloses.at(-1)?.code === 4002, `close ${i}`, on(a));
    }
    expect(a.rec.clientErrors.map((m) => (m as { code: string }).code)).toEqual(['CATTAIL_CLIENT_PROTOCOL_ERROR', 'CATTAIL_CLIENT_PROTOCOL_ERROR']);
    expect(client.feed('felix').revision).toBe(held);
    expect(client.feed('felix').has('/pods/demo/x')).toBe(false);
    expect(rec.changes.length).toBe(changes);
    expect(guard.problems()).toEqual([]);
  });

  it('detects a wrong snapshot digest before replacing the state', async () => {
    const a = await server();
    a.load('felix', data);
    a.corruptDigests = 1;
    const { client, clock, guard } = setup({ endpoints: [a.url] });
    guard.allow('CATTAIL_CLIENT_DIGEST_MISMATCH');
    await waitUntil(() => client.state === 'reconnecting', 'reconnecting', on(client));
    expect(client.feed('felix').size).toBe(0);
    await skipWait(clock);
    await waitUntil(() => client.inSync, 'in sync', on(client));
    expect(client.feed('felix').size).toBe(2);
    expect(guard.problems()).toEqual([]);
  });
});
