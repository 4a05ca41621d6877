import { describe, expect, it } from 'vitest';
import { harness } from './helpers/harness.js';
import { waitUntil } from '../support/wait.js';

function pods(n: number, gen = 0, prefix = 'p'): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) out[`/pods/ns/${prefix}${i}`] = { name: `${prefix}${i}`, gen, ip: `10.0.${i % 250}.${gen % 250}` };
  return out;
}

describe('server - streaming', () => {
  it('sends a snapshot then deltas, and the agent ends equal to the store by digest', async () => {
    const h = await harness({ feeds: ['felix', 'bgp'] });
    h.upstream.apply('felix', pods(50), { status: 'in-sync', watermarks: { pods: '100' } });
    h.upstream.apply('bgp', { '/nodes//n1': { n: 1 } }, { status: 'in-sync' });
    const a = h.agent({ feeds: [{ name: 'felix' }, { name: 'bgp' }] });
    await a.untilRevision('felix', 1);
    await a.untilRevision('bgp', 1);
    expect(a.welcome?.feeds.map((f) => [f.name, f.mode, f.reason])).toEqual([['felix', 'snapshot', 'no-token'], ['bgp', 'snapshot', 'no-token']]);
    expect(a.feed('felix').snapshots).toBe(1);
    expect(a.feed('felix').entries.size).toBe(50);

    for (let g = 1; g <= 5; g++) h.upstream.apply('felix', { ...pods(10, g), [`/pods/ns/p${40 + g}`]: null }, { watermarks: { pods: String(100 + g) } });
    await a.untilRevision('felix', h.storeRevision('felix'));
    await a.until(() => a.feed('felix').status === 'in-sync', 'in-sync');
    expect(a.feed('felix').deltas.length).toBeGreaterThan(0);
    expect(a.violations).toEqual([]);
    expect(a.digest('felix').equals(h.storeDigest('felix'))).toBe(true);
    expect(a.digest('bgp').equals(h.storeDigest('bgp'))).toBe(true);
    expect(await h.metric('cattail_connections_active')).toBe(1);
  });

  it('encodes each flush once and writes the same frames to every caught-up agent', async () => {
    const h = await harness({ flushWindowMs: 20 });
    h.upstream.apply('felix', pods(5), { status: 'in-sync' });
    const agents = Array.from({ length: 5 }, () => h.agent({ feeds: [{ name: 'felix' }] }));
    await Promise.all(agents.map((a) => a.untilRevision('felix', 1)));
    await waitUntil(() => h.server.fanoutStats().flushes >= 1, 'first flush');
    const before = h.server.fanoutStats();
    // Three batches inside one flush window: one DELTA unit, encoded once, for all five agents.
    h.upstream.apply('felix', pods(3, 1));
    h.upstream.apply('felix', pods(3, 2));
    h.upstream.apply('felix', { '/pods/ns/p4': null });
    await Promise.all(agents.map((a) => a.untilRevision('felix', 4)));
    const after = h.server.fanoutStats();
    expect(after.deltaUnitsEncoded - before.deltaUnitsEncoded).toBe(1);
    for (const a of agents) {
      expect(a.feed('felix').deltas.at(-1)).toEqual({ from: 1, to: 4 });
      expect(a.violations).toEqual([]);
      expect(a.digest('felix').equals(h.storeDigest('felix'))).toBe(true);
    }
  });

  it('corks a flush that changes several feeds into one write per agent, and records ACKed lag', async () => {
    const h = await harness({ feeds: ['felix', 'bgp'], flushWindowMs: 20 });
    h.upstream.apply('felix', pods(5), { status: 'in-sync' });
    h.upstream.apply('bgp', pods(5), { status: 'in-sync' });
    const a = h.agent({ feeds: [{ name: 'felix' }, { name: 'bgp' }] });
    await Promise.all([a.untilRevision('felix', 1), a.untilRevision('bgp', 1)]);
    // The flush of revision 1 must be behind us, or it would carry revision 2 as well.
    await waitUntil(() => h.server.fanoutStats().flushes >= 1, 'first flush');
    const before = h.server.fanoutStats();
    h.upstream.apply('felix', pods(2, 1));
    h.upstream.apply('bgp', pods(2, 1));
    await Promise.all([a.untilRevision('felix', 2), a.untilRevision('bgp', 2)]);
    const after = h.server.fanoutStats();
    expect(after.flushes - before.flushes).toBe(1);
    expect(after.corkedWrites - before.corkedWrites).toBe(1);
    a.sendMessage({ type: 'ack', feedId: a.feed('felix').id, revision: 2 });
    await waitUntil(async () => (await h.metric('cattail_client_lag_seconds', { feed: 'felix' })) > 0, 'lag observed');
    expect(a.violations).toEqual([]);
    expect(a.digest('bgp').equals(h.storeDigest('bgp'))).toBe(true);
  });

  it('compresses once per algorithm and agents with different compressions converge', async () => {
    const h = await harness({ compressMinBytes: 64 });
    h.upstream.apply('felix', pods(200), { status: 'in-sync' });
    const plain = h.agent({ feeds: [{ name: 'felix' }] });
    const br = h.agent({ feeds: [{ name: 'felix' }], caps: ['compress.brotli', 'compress.deflate'] });
    const df = h.agent({ feeds: [{ name: 'felix' }], caps: ['compress.deflate'] });
    await Promise.all([plain, br, df].map((a) => a.untilRevision('felix', 1)));
    h.upstream.apply('felix', pods(100, 7));
    await Promise.all([plain, br, df].map((a) => a.untilRevision('felix', 2)));
    expect([plain, br, df].map((a) => a.welcome?.compression)).toEqual(['none', 'brotli', 'deflate']);
    expect(br.bytesReceived).toBeLessThan(plain.bytesReceived);
    for (const a of [plain, br, df]) {
      expect(a.violations).toEqual([]);
      expect(a.digest('felix').equals(h.storeDigest('felix'))).toBe(true);
    }
    expect(h.server.snapshotStats().built).toBe(3);
  });

  it('builds a snapshot once for many simultaneous agents and counts the reuses', async () => {
    const h = await harness({ snapshotBuildSliceEntries: 50 });
    h.upstream.apply('felix', pods(2_000), { status: 'in-sync' });
    const agents = Array.from({ length: 20 }, () => h.agent({ feeds: [{ name: 'felix' }] }));
    await Promise.all(agents.map((a) => a.untilRevision('felix', 1)));
    expect(h.server.snapshotStats()).toEqual({ built: 1, reused: 19 });
    expect(await h.metric('cattail_snapshots_generated_total')).toBe(1);
    expect(await h.metric('cattail_snapshots_reused_total')).toBe(19);
    for (const a of agents) expect(a.digest('felix').equals(h.storeDigest('felix'))).toBe(true);
  });

  it('serves a reused snapshot older than the store, then the deltas since', async () => {
    const h = await harness({ snapshotReuseWindowMs: 60_000 });
    h.upstream.apply('felix', pods(100), { status: 'in-sync' });
    const first = h.agent({ feeds: [{ name: 'felix' }] });
    await first.untilRevision('felix', 1);
    h.upstream.apply('felix', pods(10, 3));
    await first.untilRevision('felix', 2);
    const late = h.agent({ feeds: [{ name: 'felix' }] });
    await late.untilRevision('felix', 2);
    expect(h.server.snapshotStats()).toEqual({ built: 1, reused: 1 });
    expect(late.feed('felix').deltas).toEqual([{ from: 1, to: 2 }]);
    expect(late.violations).toEqual([]);
    expect(late.digest('felix').equals(h.storeDigest('felix'))).toBe(true);
  });

  it('reuses the build of the current revision past the window, and builds anew after a change', async () => {
    const h = await harness({ snapshotReuseWindowMs: 0 });
    h.upstream.apply('felix', pods(30), { status: 'in-sync' });
    const a = h.agent({ feeds: [{ name: 'felix' }] });
    await a.untilRevision('felix', 1);
    const b = h.agent({ feeds: [{ name: 'felix' }] });
    await b.untilRevision('felix', 1);
    expect(h.server.snapshotStats()).toEqual({ built: 1, reused: 1 });
    h.upstream.apply('felix', pods(3, 1));
    await a.untilRevision('felix', 2);
    const c = h.agent({ feeds: [{ name: 'felix' }] });
    await c.untilRevision('felix', 2);
    expect(h.server.snapshotStats()).toEqual({ built: 2, reused: 1 });
    for (const x of [a, b, c]) expect(x.digest('felix').equals(h.storeDigest('felix'))).toBe(true);
  });

  it('splits large units into MORE frames within maxFrameBytes', async () => {
    const h = await harness({ maxFrameBytes: 8_192 });
    h.upstream.apply('felix', pods(500), { status: 'in-sync' });
    const a = h.agent({ feeds: [{ name: 'felix' }] });
    await a.untilRevision('felix', 1);
    h.upstream.apply('felix', pods(400, 9));
    await a.untilRevision('felix', 2);
    expect(a.received.filter((t) => t === 'snapshotChunk').length).toBeGreaterThan(1);
    expect(a.received.filter((t) => t === 'delta').length).toBeGreaterThan(1);
    expect(a.violations).toEqual([]);
    expect(a.digest('felix').equals(h.storeDigest('felix'))).toBe(true);
  });

  it('serves /metrics, /livez and /readyz on the HTTP port', async () => {
    const h = await harness({ feeds: ['felix'] });
    let r = await fetch(`${h.server.httpUrl}/readyz`);
    expect(r.status).toBe(503);
    expect(await r.text()).toMatch(/feed felix: waiting/);
    h.upstream.apply('felix', pods(1), { status: 'in-sync' });
    r = await fetch(`${h.server.httpUrl}/readyz`);
    expect(r.status).toBe(200);
    h.upstream.apply('felix', {}, { stale: true });
    r = await fetch(`${h.server.httpUrl}/readyz`);
    expect(r.status).toBe(503);
    expect(await r.text()).toMatch(/stale/);
    expect((await fetch(`${h.server.httpUrl}/livez`)).status).toBe(200);
    const text = await (await fetch(`${h.server.httpUrl}/metrics`)).text();
    for (const name of ['cattail_connections_active', 'cattail_feed_revision', 'cattail_snapshots_generated_total', 'cattail_snapshots_reused_total', 'cattail_updates_total', 'cattail_updates_skipped_total', 'cattail_bytes_written_total', 'cattail_client_lag_seconds']) {
      expect(text).toContain(name);
    }
    await waitUntil(async () => (await h.metric('cattail_feed_revision', { feed: 'felix' })) === 1, 'revision metric');
  });
});
