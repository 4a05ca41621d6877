import { describe, expect, it } from 'vitest';
import type { Client } from '../../src/client/index.js';
import { fullDigest } from './helpers/fake-server.js';
import { on, skipWait } from './helpers/harness.js';
import { waitUntil } from '../support/wait.js';
import { tracked } from './helpers/tracked.js';

const { server, setup } = tracked();

function mapOf(client: Client): Map<string, Buffer> {
  const f = client.feed('felix');
  return new Map([...f.keys()].map((k) => [k, f.getRaw(k)!]));
}

const pods = (n: number, tag = 'a'): [string, unknown][] =>
  Array.from({ length: n }, (_, i) => [`/pods/demo/p${String(i).padStart(3, '0')}`, { name: `p${i}`, ip: `10.0.0.${i}`, tag }]);

describe('client - snapshot and deltas', () => {
  it('loads a multi-chunk snapshot, verifies it and reports in-sync with the values as plain objects', async () => {
    const srv = await server({ chunkEntries: 3 });
    srv.load('felix', pods(10), { pods: '100' });
    const { client, rec, guard } = setup({ endpoints: [srv.url] });
    await client.whenInSync();
    const feed = client.feed('felix');
    expect(feed.size).toBe(10);
    expect(feed.get('/pods/demo/p003')).toEqual({ name: 'p3', ip: '10.0.0.3', tag: 'a' });
    expect(feed.status.sync).toBe('in-sync');
    expect(feed.status.watermarks).toEqual({ pods: '100' });
    expect(rec.states()).toEqual(['connecting', 'syncing', 'in-sync']);
    expect(rec.changes).toHaveLength(1);
    expect(rec.changes[0]!.cause).toBe('snapshot');
    expect(rec.changes[0]!.upserts).toHaveLength(10);
    expect(rec.changes[0]!.deletes).toEqual([]);
    expect(srv.rec.hellos[0]!.feeds).toEqual([{ name: 'felix' }]);
    expect(srv.rec.hellos[0]!.node).toBe('test-node');
    // ACK at in-sync (PROTOCOL.md §4.10)
    await waitUntil(() => srv.rec.acks.length > 0, 'an ack', on(srv));
    expect(srv.rec.acks[0]).toEqual({ feed: 'felix', revision: 1 });
    expect(guard.problems()).toEqual([]);
  });

  it('applies deltas as change batches with only real changes', async () => {
    const srv = await server();
    srv.load('felix', pods(3));
    const { client, rec, guard } = setup({ endpoints: [srv.url] });
    await client.whenInSync();
    srv.apply('felix', { upserts: [['/pods/demo/new', { name: 'new' }]], deletes: ['/pods/demo/p000'] });
    await waitUntil(() => rec.changes.length === 2, 'the delta', on(client));
    expect(rec.changes[1]).toMatchObject({ feed: 'felix', revision: 2, cause: 'delta', deletes: ['/pods/demo/p000'] });
    expect(rec.changes[1]!.upserts.map((u) => [u.key, u.value])).toEqual([['/pods/demo/new', { name: 'new' }]]);
    // A byte-identical upsert and a deletion of an unknown key are no changes.
    srv.apply('felix', { upserts: [['/pods/demo/p001', { name: 'p1', ip: '10.0.0.1', tag: 'a' }]], deletes: ['/pods/demo/nope'] });
    srv.apply('felix', { upserts: [['/pods/demo/p002', { name: 'changed' }]] });
    await waitUntil(() => client.feed('felix').revision === 4, 'revision 4', on(client));
    expect(rec.changes).toHaveLength(3);
    expect(rec.changes[2]!.upserts.map((u) => u.key)).toEqual(['/pods/demo/p002']);
    expect(rec.changes.some((c) => c.reasserted !== undefined)).toBe(false);
    expect(client.stats.changeBatches).toBe(3);
    expect([...client.feed('felix').keys()].sort()).toEqual([...srv.feed().entries.keys()].sort());
    expect(client.feed('felix').status.verifiedRevision).toBe(4);
    expect(guard.problems()).toEqual([]);
  });

  it('hands over the msgpack bytes in raw mode', async () => {
    const srv = await server();
    srv.load('felix', pods(2));
    const { client, rec } = setup({ endpoints: [srv.url], raw: true });
    await client.whenInSync();
    const raw = client.feed('felix').get('/pods/demo/p000');
    expect(Buffer.isBuffer(raw)).toBe(true);
    expect(raw).toEqual(srv.feed().entries.get('/pods/demo/p000'));
    expect(Buffer.isBuffer(rec.changes[0]!.upserts[0]!.value)).toBe(true);
  });

  it('in raw mode, passes on a DELTA\'s upserts of values already held as `reasserted` (relays record them; a key that came back A→B→A)', async () => {
    const srv = await server();
    srv.load('felix', pods(2));
    const { client, rec } = setup({ endpoints: [srv.url], raw: true });
    await client.whenInSync();
    const held = srv.feed().entries.get('/pods/demo/p001')!;
    srv.apply('felix', { upserts: [['/pods/demo/p001', { name: 'p1', ip: '10.0.0.1', tag: 'a' }]] });
    await waitUntil(() => rec.changes.length === 2, 'the batch', on(client));
    expect(rec.changes[1]).toMatchObject({ cause: 'delta', upserts: [], deletes: [] });
    expect(rec.changes[1]!.reasserted).toEqual([{ key: '/pods/demo/p001', raw: held }]);
    // With a real change beside it, both.
    srv.apply('felix', { upserts: [['/pods/demo/p001', { name: 'p1', ip: '10.0.0.1', tag: 'a' }], ['/pods/demo/p000', { name: 'moved' }]] });
    await waitUntil(() => rec.changes.length === 3, 'the next batch', on(client));
    expect(rec.changes[2]!.upserts.map((u) => u.key)).toEqual(['/pods/demo/p000']);
    expect(rec.changes[2]!.reasserted?.map((u) => u.key)).toEqual(['/pods/demo/p001']);
    expect(client.stats.changeBatches).toBe(3);
  });

  it('inflates brotli and deflate bodies', async () => {
    for (const compression of ['brotli', 'deflate'] as const) {
      const srv = await server({ compression, chunkEntries: 50 });
      srv.load('felix', pods(40));
      const { client } = setup({ endpoints: [srv.url] });
      await client.whenInSync();
      expect(client.feed('felix').size).toBe(40);
      expect(client.stats.protocolErrors).toBe(0);
    }
  });

  it('keeps several feeds on one connection', async () => {
    const srv = await server({ feeds: ['felix', 'bgp'] });
    srv.load('felix', pods(2));
    srv.load('bgp', [['/nodes//n1', { asn: 64512 }]]);
    const { client } = setup({ endpoints: [srv.url], feeds: ['felix', 'bgp'] });
    await client.whenInSync();
    expect(client.feed('bgp').get('/nodes//n1')).toEqual({ asn: 64512 });
    expect(client.feed('felix').size).toBe(2);
    expect(srv.rec.hellos).toHaveLength(1);
    expect(() => client.feed('nope')).toThrow(expect.objectContaining({ code: 'CATTAIL_INVALID_ARGUMENT' }));
  });
});

describe('client - resume and reconnect', () => {
  it('presents its token after a dropped connection and is resumed (no snapshot, no spurious changes)', async () => {
    const srv = await server({ statusAfterDelta: false });
    srv.load('felix', pods(5));
    const { client, clock, rec, guard } = setup({ endpoints: [srv.url] });
    guard.allow('CATTAIL_CLIENT_SERVER_CLOSED');
    await client.whenInSync();
    // Deltas without a following STATUS: the token stays at revision 1 while the state moves on.
    srv.apply('felix', { upserts: [['/pods/demo/x', { v: 1 }]] });
    await waitUntil(() => client.feed('felix').revision === 2, 'revision 2', on(client));
    for (const c of srv.clients) c.ws.terminate();
    await waitUntil(() => client.state === 'reconnecting', 'reconnecting', on(client));
    srv.apply('felix', { upserts: [['/pods/demo/y', { v: 2 }]], deletes: ['/pods/demo/p004'] });
    await skipWait(clock);
    await waitUntil(() => client.feed('felix').revision === 3 && srv.rec.hellos.length === 2, 'resumed to revision 3', on(client, srv));
    expect(srv.rec.hellos[1]!.feeds[0]!.token).toBeDefined();
    expect(client.stats.resumes).toBe(1);
    expect(client.stats.snapshotsApplied).toBe(1);
    // The catch-up DELTA 1→3 repeats x (already held): only y and the deletion are changes.
    const last = rec.changes.at(-1)!;
    expect(last.upserts.map((u) => u.key)).toEqual(['/pods/demo/y']);
    expect(last.deletes).toEqual(['/pods/demo/p004']);
    srv.setStatus('felix', {});
    await waitUntil(() => client.inSync && client.feed('felix').status.verifiedRevision === 3, 'verified at 3', on(client));
    expect(fullDigest(mapOf(client)).equals(fullDigest(srv.feed().entries))).toBe(true);
    expect(guard.problems()).toEqual([]);
  });

  it('reconnects after a server restart and reconciles the new snapshot (deletions for vanished keys, nothing for unchanged)', async () => {
    const srv = await server();
    srv.load('felix', pods(4));
    const { client, clock, rec, guard } = setup({ endpoints: [srv.url] });
    guard.allow('CATTAIL_CLIENT_SERVER_CLOSED', 'CATTAIL_CLIENT_CONNECT_FAILED');
    await client.whenInSync();
    const before = rec.changes.length;
    await srv.stop();
    await waitUntil(() => client.state === 'reconnecting', 'reconnecting', on(client));
    // While it is down the API server deleted one pod and changed another.
    srv.feed().entries.delete('/pods/demo/p000');
    srv.load('felix', [['/pods/demo/p001', { changed: true }]]);
    await srv.restart();
    await skipWait(clock);
    await waitUntil(() => srv.rec.hellos.length === 2 && client.inSync, 'in sync again', on(client, srv));
    expect(srv.rec.hellos[1]!.feeds[0]!.token).toBeDefined();
    expect(client.stats.reconnects).toBe(1);
    const after = rec.changes.slice(before);
    expect(after).toHaveLength(1);
    expect(after[0]!.cause).toBe('snapshot');
    expect(after[0]!.upserts.map((u) => u.key)).toEqual(['/pods/demo/p001']);
    expect(after[0]!.deletes).toEqual(['/pods/demo/p000']);
    expect(client.feed('felix').size).toBe(3);
    expect(rec.states()).toEqual(['connecting', 'syncing', 'in-sync', 'reconnecting', 'connecting', 'syncing', 'in-sync']);
    expect(guard.problems()).toEqual([]);
  });

  it('reports upstream-stale and back, edge-triggered', async () => {
    const srv = await server();
    srv.load('felix', pods(1));
    const { client, rec, guard } = setup({ endpoints: [srv.url] });
    await client.whenInSync();
    srv.setStatus('felix', { stale: true });
    await waitUntil(() => client.state === 'upstream-stale', 'upstream-stale', on(client));
    srv.setStatus('felix', { stale: true });
    srv.setStatus('felix', { stale: false });
    await waitUntil(() => client.state === 'in-sync', 'in-sync again', on(client));
    expect(rec.states()).toEqual(['connecting', 'syncing', 'in-sync', 'upstream-stale', 'in-sync']);
    expect(rec.last('upstream-stale')!.staleFeeds).toEqual(['felix']);
    expect(guard.problems()).toEqual([]);
  });

  it('acks at most once per ackIntervalMs per feed, with a trailing ack', async () => {
    const srv = await server({ statusAfterDelta: false });
    const { client, clock } = setup({ endpoints: [srv.url] });
    await client.whenInSync();
    await waitUntil(() => srv.rec.acks.length === 1, 'in-sync ack', on(srv));
    for (let i = 0; i < 5; i++) srv.apply('felix', { upserts: [[`/k/${i}`, i]] });
    await waitUntil(() => client.feed('felix').revision === 6, 'revision 6', on(client));
    // The ack at in-sync happened at t=0; deltas at t=0 must wait for the interval.
    expect(srv.rec.acks).toHaveLength(1);
    await clock.advanceAsync(1_000);
    await waitUntil(() => srv.rec.acks.length === 2, 'trailing ack', on(srv));
    expect(srv.rec.acks[1]).toEqual({ feed: 'felix', revision: 6 });
  });

  it('answers PING with PONG', async () => {
    const srv = await server();
    const { client } = setup({ endpoints: [srv.url] });
    await client.whenInSync();
    srv.ping(4242);
    await waitUntil(() => srv.rec.pongs.includes(4242), 'pong', on(srv));
  });

  it('close() says GOODBYE and closes with 1000; the status stream ends with closed', async () => {
    const srv = await server();
    const { client } = setup({ endpoints: [srv.url] });
    const seen: string[] = [];
    const reading = (async () => {
      for await (const e of client.status()) seen.push(e.state);
    })();
    await client.whenInSync();
    await client.close();
    await reading;
    expect(seen).toEqual(['connecting', 'syncing', 'in-sync', 'closed']);
    await waitUntil(() => srv.rec.clientCloses.length === 1, 'close seen by server', on(srv));
    expect(srv.rec.clientCloses[0]!.code).toBe(1000);
    expect(srv.rec.clientGoodbyes[0]).toMatchObject({ reason: 'client-close' });
    await expect(client.whenInSync()).rejects.toMatchObject({ code: 'CATTAIL_CLIENT_CLOSED' });
    expect(client.feed('felix').status.sync).toBe('unknown');
  });
});
