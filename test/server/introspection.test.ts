import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TEST_TRANSPORT } from '../support/transport.js';
import { describe, expect, it } from 'vitest';
import { waitUntil } from '../support/wait.js';
import { FakeClock } from '../../src/clock.js';
import { TOMBSTONE_HEAP_BYTES } from '../../src/snapshot/index.js';
import type { ClientInfo, ClientsPage } from '../../src/server/ops/debug-clients.js';
import type { TestAgent } from './helpers/agent.js';
import { type Harness, harness } from './helpers/harness.js';

async function clients(h: Harness, query = ''): Promise<ClientsPage> {
  const r = await fetch(`${h.server.httpUrl}/debug/clients${query}`);
  expect(r.status).toBe(200);
  expect(r.headers.get('content-type')).toMatch(/^application\/json/);
  return (await r.json()) as ClientsPage;
}

function seed(h: Harness, n = 5, pad = ''): void {
  const batch: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) batch[`/pods/ns/p${i}`] = { i, pad };
  h.upstream.apply('felix', batch, { status: 'in-sync' });
}

/**
 * The one client of `page` whose remote address is `agent`'s local end. uWebSockets.js does not
 * expose the peer's port, so over it the address is the host alone and the agent's clientId
 * tells them apart.
 */
function clientOf(page: ClientsPage, agent: TestAgent, clientId: string): ClientInfo {
  const port = TEST_TRANSPORT === 'uws' ? '' : `:${agent.socket.localPort ?? 0}`;
  const me = `${agent.socket.localAddress ?? ''}${port}`;
  const c = page.clients.find((x) => x.remoteAddress === me && x.clientId === clientId);
  if (c === undefined) throw new Error(`no client ${clientId} at ${me} in ${JSON.stringify(page)}`);
  return c;
}

async function probe(url: string): Promise<{ status: number; body: string }> {
  const r = await fetch(url);
  return { status: r.status, body: await r.text() };
}

describe('server - introspection', () => {
  it("answers Typha's /liveness and /readiness exactly as /livez and /readyz", async () => {
    // A FakeClock keeps the sweep age in the liveness body identical between the two requests.
    const h = await harness({ feeds: ['felix'], upstreamDescription: 'scripted', clock: new FakeClock() });
    const both = async (a: string, b: string): Promise<{ status: number; body: string }> => {
      const [x, y] = await Promise.all([probe(`${h.server.httpUrl}${a}`), probe(`${h.server.httpUrl}${b}`)]);
      expect(y).toEqual(x);
      return x;
    };
    expect((await both('/readyz', '/readiness')).status).toBe(503);
    h.upstream.apply('felix', { '/pods/ns/p': { i: 1 } }, { status: 'in-sync' });
    const ready = await both('/readyz', '/readiness');
    expect(ready.status).toBe(200);
    expect(ready.body).toContain('feed felix: in-sync');
    expect((await both('/livez', '/liveness')).status).toBe(200);
  });

  it('serves /debug/clients only with debugEndpoints (404 otherwise: it names every node and address)', async () => {
    const h = await harness({ feeds: ['felix'] });
    const r = await fetch(`${h.server.httpUrl}/debug/clients`);
    expect(r.status).toBe(404);
    await r.text();
  });

  it('/debug/clients: one entry per connection with node, address, feeds, lag, buffers, mode, compression, since, bytes; node filter and paging', async () => {
    // flushWindowMs 0 flushes on the next loop turn, so the FakeClock only has to pin the wall time.
    const clock = new FakeClock();
    const h = await harness({ feeds: ['felix'], debugEndpoints: true, clock, flushWindowMs: 0 });
    seed(h);
    const a = h.agent({ feeds: [{ name: 'felix' }], node: 'node-a', clientId: 'agent-a' });
    const b1 = h.agent({ feeds: [{ name: 'felix' }], node: 'node-b', caps: ['compress.deflate'], clientId: 'agent-b1' });
    const b2 = h.agent({ feeds: [{ name: 'felix' }], node: 'node-b', clientId: 'agent-b2' });
    const rev = h.storeRevision('felix');
    await Promise.all([a, b1, b2].map((x) => x.untilRevision('felix', rev)));
    await waitUntil(async () => (await clients(h)).clients.every((c) => c.mode === 'streaming'), 'all streaming');

    const all = await clients(h);
    expect(all.open).toBe(3);
    expect(all.next).toBeNull();
    const ca = clientOf(all, a, 'agent-a');
    expect(ca).toMatchObject({
      node: 'node-a', clientId: 'agent-a', tlsIdentity: null, mode: 'streaming', compression: 'none',
      connectedSince: new Date(clock.now()).toISOString(), bufferedBytes: 0, ownBufferedBytes: 0,
      feeds: [{ feed: 'felix', mode: 'streaming', revisionSent: rev, revisionAcked: 0, revisionLatest: rev }],
    });
    expect(ca.feeds[0]?.lagMs).toBeGreaterThanOrEqual(0);
    // Every byte the agent received came through the counter, plus at most a 14-byte WebSocket header per frame.
    expect(ca.bytesWritten).toBeGreaterThan(a.bytesReceived);
    expect(ca.bytesWritten).toBeLessThanOrEqual(a.bytesReceived + 14 * a.received.length);
    expect(clientOf(all, b1, 'agent-b1').compression).toBe('deflate');

    const before = ca.bytesWritten;
    h.upstream.apply('felix', { '/pods/ns/p0': { changed: true } });
    await a.untilRevision('felix', rev + 1);
    const after = clientOf(await clients(h), a, 'agent-a');
    expect(after.bytesWritten).toBeGreaterThan(before);
    expect(after.feeds[0]?.revisionSent).toBe(rev + 1);

    const onlyB = await clients(h, '?node=node-b');
    expect(onlyB.clients.map((c) => c.node)).toEqual(['node-b', 'node-b']);
    expect(onlyB.open).toBe(3);

    const ids: number[] = [];
    let page = await clients(h, '?limit=1');
    for (;;) {
      expect(page.clients.length).toBe(1);
      ids.push(...page.clients.map((c) => c.id));
      if (page.next === null) break;
      page = await clients(h, `?limit=1&after=${page.next}`);
    }
    expect(ids).toEqual(all.clients.map((c) => c.id));

    const bad = await fetch(`${h.server.httpUrl}/debug/clients?limit=zero`);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('CATTAIL_INVALID_ARGUMENT');
  });

  it('every new metric exists and moves: snapshot sends, delta log, snapshot cache, flush duration, modes, build info, sheds', async () => {
    const h = await harness({ feeds: ['felix'] });
    const count = async (name: string, labels: Record<string, string> = {}): Promise<number> => h.metric(`${name}`, labels);
    const histCount = async (name: string, labels: Record<string, string> = {}): Promise<number> => {
      const data = await (h.server.metrics.registry.getSingleMetric(name) as NonNullable<ReturnType<typeof h.server.metrics.registry.getSingleMetric>>).get();
      return data.values.filter((v) => (v as { metricName?: string }).metricName === `${name}_count` && Object.entries(labels).every(([k, x]) => String((v.labels as Record<string, unknown>)[k]) === x)).reduce((s, v) => s + v.value, 0);
    };
    const text = await (await fetch(`${h.server.httpUrl}/metrics`)).text();
    for (const name of [
      'cattail_client_snapshot_send_seconds', 'cattail_snapshots_sent_total', 'cattail_snapshot_sent_raw_bytes_total', 'cattail_snapshot_sent_wire_bytes_total',
      'cattail_delta_log_entries', 'cattail_delta_log_bytes', 'cattail_snapshot_cache_builds', 'cattail_snapshot_cache_bytes', 'cattail_flush_duration_seconds',
      'cattail_connections_by_mode', 'cattail_connections_shed_total', 'cattail_build_info', 'cattail_service_queue_length', 'cattail_handshake_queue_length',
      'cattail_socket_buffered_bytes', 'cattail_socket_buffered_bytes_max', 'cattail_client_own_bytes',
    ]) {
      expect(text, name).toContain(`# HELP ${name} `);
    }
    expect(text).toMatch(/^cattail_build_info\{version="\d+\.\d+\.\d+[^"]*",node="v\d+\.\d+\.\d+"\} 1$/m);
    expect(await count('cattail_connections_shed_total')).toBe(0);
    expect(await count('cattail_connections_by_mode')).toBe(0);
    expect(await count('cattail_delta_log_entries', { feed: 'felix' })).toBe(0);
    expect(await count('cattail_snapshot_cache_builds')).toBe(0);

    seed(h);
    const flushes = await histCount('cattail_flush_duration_seconds');
    h.upstream.apply('felix', { '/pods/ns/p0': null, '/pods/ns/p1': null });
    expect(await count('cattail_delta_log_entries', { feed: 'felix' })).toBe(2);
    expect(await count('cattail_delta_log_bytes', { feed: 'felix' })).toBe(Buffer.byteLength('/pods/ns/p0') + Buffer.byteLength('/pods/ns/p1') + 2 * TOMBSTONE_HEAP_BYTES);
    await waitUntil(async () => (await histCount('cattail_flush_duration_seconds')) > flushes, 'a flush observed');

    const a = h.agent({ feeds: [{ name: 'felix' }] });
    await a.untilRevision('felix', h.storeRevision('felix'));
    expect(await count('cattail_snapshots_sent_total', { feed: 'felix' })).toBe(1);
    expect(await histCount('cattail_client_snapshot_send_seconds', { feed: 'felix' })).toBe(1);
    // The bytes sent are the build's: the same numbers as the latest-snapshot gauges.
    expect(await count('cattail_snapshot_sent_raw_bytes_total', { feed: 'felix' })).toBe(await count('cattail_snapshot_raw_bytes', { feed: 'felix' }));
    const wire = await count('cattail_snapshot_compressed_bytes', { feed: 'felix', compression: 'none' });
    expect(wire).toBeGreaterThan(0);
    expect(await count('cattail_snapshot_sent_wire_bytes_total', { feed: 'felix' })).toBe(wire);
    expect(await count('cattail_snapshot_cache_builds')).toBe(1);
    expect(await count('cattail_snapshot_cache_bytes')).toBe(wire);
    await waitUntil(async () => (await count('cattail_connections_by_mode', { mode: 'streaming' })) === 1, 'agent streaming');
    expect(await count('cattail_connections_by_mode')).toBe(1);

    a.close();
    await a.closed;
    await waitUntil(async () => (await count('cattail_connections_by_mode')) === 0, 'agent gone from the modes');
  });

  it('a stalled snapshot shows as mode snapshot with buffered bytes, then streaming once the agent reads', async () => {
    const h = await harness({ feeds: ['felix'], debugEndpoints: true, socketHighWaterBytes: 64 * 1024 });
    // Bigger than the loopback kernel buffers on both ends, so the server's own buffer fills.
    seed(h, 400, 'x'.repeat(32 * 1024));
    const a = h.agent({ feeds: [{ name: 'felix' }] });
    a.ws.once('open', () => a.socket.pause());
    await waitUntil(async () => (await h.metric('cattail_socket_buffered_bytes_max')) > 64 * 1024, 'server-side buffer above the high-water mark');
    expect(await h.metric('cattail_connections_by_mode', { mode: 'snapshot' })).toBe(1);
    expect(await h.metric('cattail_socket_buffered_bytes')).toBeGreaterThanOrEqual(await h.metric('cattail_socket_buffered_bytes_max'));
    const c = (await clients(h)).clients[0];
    expect(c?.mode).toBe('snapshot');
    expect(c?.feeds[0]?.mode).toBe('snapshot');
    expect(c?.bufferedBytes).toBeGreaterThan(64 * 1024);
    expect(await h.metric('cattail_snapshots_sent_total')).toBe(0);

    a.socket.resume();
    await a.untilRevision('felix', h.storeRevision('felix'), 30_000);
    await waitUntil(async () => (await h.metric('cattail_connections_by_mode', { mode: 'streaming' })) === 1, 'streaming');
    await waitUntil(async () => (await h.metric('cattail_socket_buffered_bytes')) === 0, 'buffer drained');
    expect(await h.metric('cattail_snapshots_sent_total')).toBe(1);
    expect(a.digest('felix').equals(h.storeDigest('felix'))).toBe(true);
  });

  it('every metric a running server exports is in docs/reference.md\'s metrics table', async () => {
    const h = await harness({});
    const text = await (await fetch(`${h.server.httpUrl}/metrics`)).text();
    const exported = [...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1] as string);
    expect(exported.length).toBeGreaterThan(40);
    const reference = readFileSync(join(import.meta.dirname, '..', '..', 'docs', 'reference.md'), 'utf8');
    const table = reference.slice(reference.indexOf('<!-- generated:metrics -->'), reference.indexOf('<!-- /generated:metrics -->'));
    expect(exported.filter((name) => !table.includes(`| \`${name}\` |`))).toEqual([]);
  });

  it('labels the closes metric only with listed codes: an agent\'s own odd code counts as other', async () => {
    const h = await harness({});
    h.upstream.apply('felix', { '/pods/ns/a': { a: 1 } }, { status: 'in-sync' });
    for (const code of [4999, 4321, 1000]) {
      const a = h.agent({ feeds: [{ name: 'felix' }], node: `n-${code}` });
      await a.untilRevision('felix', 1);
      a.close(code);
      await a.closed;
    }
    await waitUntil(async () => (await h.metric('cattail_connections_closed_total')) === 3, 'three closes counted');
    expect(await h.metric('cattail_connections_closed_total', { code: 'other' })).toBe(2);
    expect(await h.metric('cattail_connections_closed_total', { code: '1000' })).toBe(1);
    expect(await h.metric('cattail_connections_closed_total', { code: '4999' })).toBe(0);
  });
});
