import { describe, expect, it } from 'vitest';
import { encodeFrame } from '../../proto/index.js';
import { compressFrame } from '../../src/frame-compression.js';
import { on, skipWait } from './helpers/harness.js';
import { waitUntil } from '../support/wait.js';
import { tracked } from './helpers/tracked.js';
import { hostileTally } from '../support/reliability-record.js';

const tally = hostileTally('agent', false);

// Over in-memory pairs (the client's `dial` seam): the whole lifecycle with no socket underneath.
const { server, setup } = tracked({ memory: true });

describe('client - lifecycle', () => {
  it('applies an in-band snapshot on the live connection as a reconciliation', async () => {
    const srv = await server();
    srv.load('felix', [['/a', 1], ['/b', 2]]);
    const { client, rec, guard } = setup({ endpoints: [srv.url] });
    await client.whenInSync();
    srv.feed().entries.delete('/a');
    srv.load('felix', [['/c', 3]]);
    srv.feed().revision = 40;
    for (const c of srv.clients) srv.sendSnapshot(c, srv.feed());
    await waitUntil(() => client.feed('felix').revision === 40, 'in-band snapshot applied', on(client));
    expect(rec.changes.at(-1)).toMatchObject({ cause: 'snapshot', revision: 40, deletes: ['/a'] });
    expect(rec.changes.at(-1)!.upserts.map((u) => u.key)).toEqual(['/c']);
    expect(client.state).toBe('in-sync');
    expect(guard.problems()).toEqual([]);
  });

  it('ends a handshake that gets no WELCOME within handshakeTimeoutMs', async () => {
    const srv = await server();
    srv.noWelcome = true;
    const { client, clock, rec } = setup({ endpoints: [srv.url], handshakeTimeoutMs: 4_000 });
    await waitUntil(() => srv.rec.hellos.length === 1, 'hello sent', on(srv));
    await clock.advanceAsync(3_999);
    expect(client.state).toBe('connecting');
    await clock.advanceAsync(1);
    await waitUntil(() => client.state === 'reconnecting', 'handshake timed out', on(client));
    expect(rec.last('reconnecting')!.reason?.code).toBe('CATTAIL_CLIENT_HANDSHAKE_TIMEOUT');
    await waitUntil(() => srv.rec.clientCloses.length === 1, 'close seen', on(srv));
    expect(srv.rec.clientCloses[0]!.code).toBe(4013);
  });

  it('treats an unknown feed (4006) as a rejection and waits the longest backoff', async () => {
    const srv = await server({ feeds: ['felix'] });
    const { client, rec } = setup({ endpoints: [srv.url], feeds: ['nope'], reconnectMaxDelayMs: 60_000 });
    await waitUntil(() => client.state === 'reconnecting', 'rejected', on(client));
    const ev = rec.last('reconnecting')!;
    expect(ev.reason).toMatchObject({ code: 'CATTAIL_CLIENT_REJECTED', details: { closeCode: 4006 } });
    expect(ev.delayMs).toBe(45_000);
  });

  it('closes a WELCOME of another protocol version with 4001 and, as after a server\'s 4001, waits the longest backoff', async () => {
    const srv = await server();
    srv.noWelcome = true;
    const { client, rec } = setup({ endpoints: [srv.url], reconnectMaxDelayMs: 60_000 });
    await waitUntil(() => srv.rec.hellos.length === 1, 'hello sent', on(srv));
    srv.sendRawToAll(encodeFrame({
      type: 'welcome', protocol: 2, serverId: 'future', pingIntervalMs: 10_000, pongTimeoutMs: 60_000, maxFrameBytes: 1_048_576,
      maxInboundBytes: 65_536, compression: 'none', caps: [], feeds: [{ name: 'felix', id: 1, mode: 'snapshot' }],
    }));
    await waitUntil(() => client.state === 'reconnecting', 'closed on the WELCOME', on(client));
    const ev = rec.last('reconnecting')!;
    expect(ev.reason).toMatchObject({ code: 'CATTAIL_CLIENT_PROTOCOL_ERROR', details: { closeCode: 4001, protoCode: 'CATTAIL_PROTO_UNSUPPORTED_VERSION' } });
    // PROTOCOL.md §1.3: "do not retry this server with this version"; not the first backoff step (188 ms).
    expect(ev.delayMs).toBe(45_000);
    await waitUntil(() => srv.rec.clientCloses.length === 1, 'close seen', on(srv));
    expect(srv.rec.clientCloses[0]!.code).toBe(4001);
    expect(client.stats.protocolErrors).toBe(1);
  });

  it('close() during a reconnect wait ends at once; destroy(reason) reports it', async () => {
    const srv = await server();
    const { client, rec } = setup({ endpoints: [srv.url] });
    await client.whenInSync();
    await srv.stop();
    await waitUntil(() => client.state === 'reconnecting', 'reconnecting', on(client));
    await client.close();
    expect(client.state).toBe('closed');
    expect(rec.last('closed')!.reason).toBeUndefined();

    const other = await server();
    const s2 = setup({ endpoints: [other.url] });
    await s2.client.whenInSync();
    s2.client.destroy(new Error('host shutting down'));
    await waitUntil(() => s2.client.state === 'closed', 'closed', on(s2.client));
    expect(s2.rec.last('closed')!.reason).toMatchObject({ code: 'CATTAIL_CLIENT_CLOSED', cause: expect.objectContaining({ message: 'host shutting down' }) });
    // No reconnect after a destroy, whatever timers were armed.
    await skipWait(s2.clock);
    await s2.clock.advanceAsync(60_000);
    expect(other.rec.upgrades).toBe(1);
  });

  it('close() or destroy() from a synchronous status listener leaves no timer armed (the host can exit)', async () => {
    // On 'reconnecting': the retry timer was armed after the event, so close() found none to cancel.
    const srv = await server();
    const a = setup({ endpoints: [srv.url], reconnectMaxDelayMs: 30_000 });
    await a.client.whenInSync();
    a.client.on('status', (e) => {
      if (e.state === 'reconnecting') void a.client.close();
    });
    for (const c of srv.clients) c.ws.terminate();
    await waitUntil(() => a.client.state === 'closed', 'closed from the listener', on(a.client));
    expect(a.rec.states().slice(-2)).toEqual(['reconnecting', 'closed']);
    expect(a.clock.pending()).toBe(0);

    // On 'connecting': the connection ended before start(), which then armed its handshake timer.
    const b = setup({ endpoints: [srv.url] });
    b.client.on('status', (e) => {
      if (e.state === 'connecting') b.client.destroy();
    });
    await waitUntil(() => b.client.state === 'closed', 'destroyed from the listener', on(b.client));
    expect(b.clock.pending()).toBe(0);

    // No endpoint at all (a Service without replicas): 'connecting' then 'reconnecting' and a wait.
    const c = setup({ endpoints: [], service: 'calico-system/cattail', endpointSliceSource: { list: () => Promise.resolve([]) } });
    c.client.on('status', (e) => {
      if (e.state === 'connecting') void c.client.close();
    });
    await waitUntil(() => c.client.state === 'closed', 'closed from the listener', on(c.client));
    expect(c.rec.states()).toEqual(['connecting', 'closed']);
    expect(c.clock.pending()).toBe(0);
    expect(srv.rec.upgrades).toBe(1);
  });

  it('a status iterator left with break stops queueing; a listener that throws does not break the client', async () => {
    const srv = await server();
    srv.load('felix', [['/a', 1]]);
    const { client, rec } = setup({ endpoints: [srv.url] });
    const errors: unknown[] = [];
    client.on('listenerError', (e) => errors.push(e));
    client.on('change', () => {
      throw new Error('host bug');
    });
    for await (const e of client.status()) {
      if (e.state === 'syncing') break;
    }
    await client.whenInSync();
    srv.apply('felix', { upserts: [['/x', 1]] });
    await waitUntil(() => client.feed('felix').revision === 2, 'delta applied despite the throwing listener', on(client));
    expect(errors).toHaveLength(2);
    expect(client.stats.listenerErrors).toBe(2);
    expect(client.stats.statusEventsDropped).toBe(0);
    expect(rec.states()).toEqual(['connecting', 'syncing', 'in-sync']);
  });

  it('refuses a decompression bomb (4003) and a COMPRESSED frame where none was negotiated (4002)', async () => {
    const bomb = compressFrame('brotli', encodeFrame({ type: 'delta', feedId: 1, fromRevision: 1, toRevision: 2, more: false, upserts: [['/big', Buffer.alloc(200_000)]], deletes: [] }));
    expect(bomb.length).toBeLessThan(2_000);
    const z = await server({ compression: 'brotli' });
    const s1 = setup({ endpoints: [z.url], maxFrameBytes: 65_536 });
    s1.guard.allow('CATTAIL_CLIENT_PROTOCOL_ERROR');
    await s1.client.whenInSync();
    z.sendRawToAll(bomb);
    await waitUntil(() => z.rec.clientCloses.length === 1, 'closed', on(z));
    expect(z.rec.clientCloses[0]!.code).toBe(4003);
    await waitUntil(() => s1.rec.last('reconnecting') !== undefined, 'reconnecting', on(s1.client));
    expect((s1.rec.last('reconnecting')!.reason!.cause as { code: string }).code).toBe('CATTAIL_PROTO_FRAME_TOO_LARGE');

    const plain = await server();
    const s2 = setup({ endpoints: [plain.url], compression: [] });
    await s2.client.whenInSync();
    expect(plain.rec.hellos[0]!.caps).toEqual(['resume.watermarks', 'repair.buckets', 'feed.resources', 'scope.node', 'scope.watermarks']);
    plain.sendRawToAll(bomb);
    await waitUntil(() => plain.rec.clientCloses.length === 1, 'closed', on(plain));
    expect(plain.rec.clientCloses[0]!.code).toBe(4002);
    expect(s1.guard.problems()).toEqual([]);
    tally.add('decompression bomb from a server (200 KB from under 2 KB)', 'CATTAIL_PROTO_FRAME_TOO_LARGE, close 4003, reconnect');
    tally.add('COMPRESSED frame where none was negotiated', 'close 4002');
  });

  it('refuses a frame above maxFrameBytes with 4003, and an absurd one at the WebSocket layer', async () => {
    const srv = await server();
    const { client, clock, rec, guard } = setup({ endpoints: [srv.url], maxFrameBytes: 4_096 });
    guard.allow('CATTAIL_CLIENT_PROTOCOL_ERROR');
    await client.whenInSync();
    const big = (n: number): Buffer => encodeFrame({ type: 'delta', feedId: 1, fromRevision: 1, toRevision: 2, more: false, upserts: [['/big', Buffer.alloc(n)]], deletes: [] });
    srv.sendRawToAll(big(6_000));
    await waitUntil(() => srv.rec.clientCloses.length === 1, 'closed', on(srv));
    expect(srv.rec.clientCloses[0]!.code).toBe(4003);
    await waitUntil(() => rec.last('reconnecting') !== undefined, 'reconnecting', on(client));
    expect((rec.last('reconnecting')!.reason!.cause as { code: string }).code).toBe('CATTAIL_PROTO_FRAME_TOO_LARGE');
    await skipWait(clock);
    await waitUntil(() => client.inSync, 'in sync again', on(client));
    srv.sendRawToAll(big(20_000));
    await waitUntil(() => srv.rec.clientCloses.length === 2, 'closed again', on(srv));
    expect(srv.rec.clientCloses[1]!.code).toBe(1009);
    await waitUntil(() => client.stats.protocolErrors === 2, 'second protocol error', on(client));
    expect(guard.problems()).toEqual([]);
  });

  it('refuses (4003) a body above the maxFrameBytes the WELCOME announced, smaller than its own, plain or inflated', async () => {
    const srv = await server({ welcomeMaxFrameBytes: 8_192, compression: 'deflate' });
    const { client, clock, rec, guard } = setup({ endpoints: [srv.url] }); // its own: 1 MiB
    guard.allow('CATTAIL_CLIENT_PROTOCOL_ERROR');
    await client.whenInSync();
    const big = encodeFrame({ type: 'delta', feedId: 1, fromRevision: 1, toRevision: 2, more: false, upserts: [['/big', Buffer.alloc(20_000)]], deletes: [] });
    srv.sendRawToAll(big);
    await waitUntil(() => srv.rec.clientCloses.length === 1, 'closed', on(srv));
    expect(srv.rec.clientCloses[0]!.code).toBe(4003);
    await skipWait(clock);
    await waitUntil(() => client.inSync, 'in sync again', on(client));
    srv.sendRawToAll(compressFrame('deflate', big));
    await waitUntil(() => srv.rec.clientCloses.length === 2, 'closed again', on(srv));
    expect(srv.rec.clientCloses[1]!.code).toBe(4003);
    expect((rec.last('reconnecting')!.reason!.cause as { code: string }).code).toBe('CATTAIL_PROTO_FRAME_TOO_LARGE');
    expect(guard.problems()).toEqual([]);
  });
});
