import { createRequire, syncBuiltinESMExports } from 'node:module';
import { afterEach, describe, expect, it } from 'vitest';
import { bodySizeFor } from '../../src/server/fanout/handshake.js';
import { Flags, HEADER_BYTES } from '../../proto/index.js';
import type * as Zlib from 'node:zlib';
import { defaultStoreFactory } from '../../src/server/pipeline/store-factory.js';
import type { StoreView } from '../../src/server/pipeline/store-port.js';
import type { TestAgent } from './helpers/agent.js';
import { harness } from './helpers/harness.js';
import { waitUntil } from '../support/wait.js';

const zlib = createRequire(import.meta.url)('node:zlib') as typeof Zlib;

/**
 * Counts the server's body compressions per algorithm by wrapping zlib's sync compressors (the
 * only ones frame-compression.ts uses). Counting the calls themselves, not our own counters, is
 * what catches a variant that encodes once but compresses per socket.
 */
function countCompressions(): { brotli: number; deflate: number; restore(): void } {
  const orig = { brotli: zlib.brotliCompressSync, deflate: zlib.deflateRawSync };
  const counts = {
    brotli: 0,
    deflate: 0,
    restore(): void {
      zlib.brotliCompressSync = orig.brotli;
      zlib.deflateRawSync = orig.deflate;
      syncBuiltinESMExports();
    },
  };
  zlib.brotliCompressSync = ((...a: Parameters<typeof orig.brotli>) => (counts.brotli++, orig.brotli(...a))) as typeof orig.brotli;
  zlib.deflateRawSync = ((...a: Parameters<typeof orig.deflate>) => (counts.deflate++, orig.deflate(...a))) as typeof orig.deflate;
  // ESM named imports of builtins are live bindings, updated from the CJS object only on request.
  syncBuiltinESMExports();
  restores.push(() => counts.restore());
  return counts;
}
const restores: (() => void)[] = [];
afterEach(() => {
  for (const r of restores.splice(0)) r();
});

/**
 * Counts, by type, an agent's frames that the server had to try to compress: the COMPRESSED ones
 * and the uncompressed ones whose body is at least compressMinBytes (compression did not gain).
 */
function compressionCandidates(a: TestAgent, compressMinBytes: number): Map<number, number> {
  const byType = new Map<number, number>();
  a.ws.on('message', (data: Buffer) => {
    if (data.length < HEADER_BYTES) return;
    const compressed = ((data[2] as number) & Flags.COMPRESSED) !== 0;
    if (compressed || data.readUInt32BE(24) >= compressMinBytes) byType.set(data[1] as number, (byType.get(data[1] as number) ?? 0) + 1);
  });
  return byType;
}

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

  it('reports on /metrics exactly the fan-out counters tests and benchmarks read (one copy of each count)', async () => {
    const h = await harness({ feeds: ['felix', 'bgp'], flushWindowMs: 5 });
    h.upstream.apply('felix', pods(5), { status: 'in-sync' });
    h.upstream.apply('bgp', pods(2), { status: 'in-sync' });
    const agents = Array.from({ length: 3 }, () => h.agent({ feeds: [{ name: 'felix' }, { name: 'bgp' }] }));
    await Promise.all(agents.map((a) => a.untilRevision('felix', 1)));
    h.upstream.apply('felix', pods(3, 1));
    h.upstream.apply('bgp', pods(1, 1));
    await Promise.all(agents.map((a) => Promise.all([a.untilRevision('felix', 2), a.untilRevision('bgp', 2)])));
    const s = h.server.fanoutStats();
    expect(s.deltaUnitsEncoded).toBeGreaterThan(0);
    expect(s.flushWrites).toBeGreaterThan(0);
    expect(await h.metric('cattail_deltas_encoded_total')).toBe(s.deltaUnitsEncoded);
    expect(await h.metric('cattail_deltas_encoded_total', { feed: 'bgp' })).toBeGreaterThan(0);
    expect(await h.metric('cattail_delta_bytes_encoded_total')).toBe(s.deltaBytesEncoded);
    expect(await h.metric('cattail_flushes_total')).toBe(s.flushes);
    expect(await h.metric('cattail_socket_writes_total', { path: 'flush' })).toBe(s.flushWrites);
    expect(await h.metric('cattail_socket_writes_total', { path: 'service' })).toBe(s.serviceWrites);
    expect(await h.metric('cattail_bytes_written_total', { kind: 'shared' })).toBe(s.sharedBytes);
    expect(await h.metric('cattail_bytes_written_total', { kind: 'own' })).toBe(s.ownBytes);
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
    expect(after.flushWrites - before.flushWrites).toBe(1);
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
    // pods(1) was one update; the pipeline counts it (read at scrape time from the feed's stats).
    expect(await h.metric('cattail_updates_total', { feed: 'felix' })).toBe(1);
    expect(await h.metric('cattail_updates_skipped_total', { feed: 'felix' })).toBe(0);
  });

  it('streams a snapshot to its agents while the build is still running', async () => {
    // Observe the build from the store side: the snapshot's second pass over the view's entries is
    // the build itself (the first sums rawBytes). Its progress when the agent's first CHUNK arrives
    // tells whether frames were streamed as they were built. A server that waits for the whole
    // build (or builds in one go) fails this.
    const passes: { yielded: number; done: boolean }[] = [];
    const track = (v: StoreView): StoreView =>
      new Proxy(v, {
        get(t, p) {
          if (p === 'entries') {
            return () => {
              const pass = { yielded: 0, done: false };
              passes.push(pass);
              return (function* () {
                for (const e of t.entries()) {
                  pass.yielded++;
                  yield e;
                }
                pass.done = true;
              })();
            };
          }
          const x: unknown = Reflect.get(t, p, t);
          return typeof x === 'function' ? (x as (...a: unknown[]) => unknown).bind(t) : x;
        },
      });
    const h = await harness({
      snapshotBuildSliceEntries: 10,
      createStore: (o) => {
        const store = defaultStoreFactory(o);
        const current = store.current.bind(store);
        return Object.assign(store, { current: () => track(current()) });
      },
    });
    h.upstream.apply('felix', pods(20_000), { status: 'in-sync' });
    // A small frame limit makes many chunks, so the first one is complete long before the end.
    const a = h.agent({ feeds: [{ name: 'felix' }], maxFrameBytes: 4_096 });
    let atFirstChunk: { yielded: number; done: boolean } | undefined;
    a.on('change', () => {
      if (atFirstChunk === undefined && a.received.includes('snapshotChunk')) atFirstChunk = { ...(passes.at(-1) as { yielded: number; done: boolean }) };
    });
    await a.untilRevision('felix', 1);
    // One pass: the build's (SNAPSHOT_BEGIN's rawBytes is the store's running sum, not a pass).
    expect(passes.length).toBe(1);
    expect(atFirstChunk?.done).toBe(false);
    expect(atFirstChunk?.yielded).toBeLessThan(20_000);
    expect(a.violations).toEqual([]);
    expect(a.digest('felix').equals(h.storeDigest('felix'))).toBe(true);
  });

  it('rounds an announced maxFrameBytes down to a power of two, so agents of nearby sizes share one snapshot build', async () => {
    const h = await harness({ snapshotReuseWindowMs: 60_000 });
    h.upstream.apply('felix', pods(50), { status: 'in-sync' });
    const agents = [4_096, 5_000, 8_191].map((m, i) => h.agent({ feeds: [{ name: 'felix' }], maxFrameBytes: m, node: `n${i}` }));
    for (const a of agents) await a.untilRevision('felix', 1);
    expect(agents.map((a) => a.welcome?.maxFrameBytes)).toEqual([4_096, 4_096, 4_096]);
    // Without the rounding each distinct size was a build of its own.
    expect(await h.metric('cattail_snapshots_generated_total')).toBe(1);
    const odd = h.agent({ feeds: [{ name: 'felix' }], maxFrameBytes: 1_000_000, node: 'n-odd' });
    const big = h.agent({ feeds: [{ name: 'felix' }], maxFrameBytes: 2_000_000, node: 'n-big' });
    await Promise.all([odd.untilRevision('felix', 1), big.untilRevision('felix', 1)]);
    expect(odd.welcome?.maxFrameBytes).toBe(524_288);
    expect(big.welcome?.maxFrameBytes).toBe(1_048_576); // the server's own limit
    for (const a of [...agents, odd, big]) expect(a.largestBodyBytes).toBeLessThanOrEqual(a.welcome!.maxFrameBytes);
    // Exact at every size (doubling, not a rounded log2).
    expect([4_096, 8_191, 8_192, 1_000_000, 2 ** 48 + 1, 2 ** 53 - 1].map(bodySizeFor)).toEqual([4_096, 4_096, 8_192, 524_288, 2 ** 48, 2 ** 52]);
    expect(bodySizeFor(undefined)).toBe(Infinity);
  });

  it('compresses each snapshot and delta frame once for all agents that negotiated the same compression', async () => {
    const h = await harness({ compressMinBytes: 64, snapshotReuseWindowMs: 60_000 });
    h.upstream.apply('felix', pods(400), { status: 'in-sync' });
    const counts = countCompressions();
    // Same compression and frame size: one shared build and one shared delta unit per pair.
    const opts = (caps: string[]): Parameters<typeof h.agent>[0] => ({ feeds: [{ name: 'felix' }], caps, maxFrameBytes: 4_096 });
    const br = [h.agent(opts(['compress.brotli'])), h.agent(opts(['compress.brotli']))];
    const df = [h.agent(opts(['compress.deflate'])), h.agent(opts(['compress.deflate']))];
    const plain = h.agent(opts([]));
    const seen = new Map([...br, ...df].map((a) => [a, compressionCandidates(a, 64)]));
    const all = [...br, ...df, plain];
    await Promise.all(all.map((a) => a.untilRevision('felix', 1)));
    const SNAPSHOT = [0x03, 0x04, 0x05];
    const DELTA = [0x06];
    const of = (a: TestAgent | undefined, types: number[]): number => types.reduce((n, t) => n + (a === undefined ? 0 : seen.get(a)?.get(t) ?? 0), 0);
    // Both agents of a pair got the same frames, each compressed exactly once for both.
    expect(of(br[0], SNAPSHOT)).toBeGreaterThan(2);
    expect(of(br[1], SNAPSHOT)).toBe(of(br[0], SNAPSHOT));
    expect(counts.brotli).toBe(of(br[0], SNAPSHOT));
    expect(counts.deflate).toBe(of(df[0], SNAPSHOT));
    expect(h.server.snapshotStats()).toEqual({ built: 3, reused: 2 });

    await waitUntil(() => h.server.fanoutStats().flushes >= 1, 'first flush');
    const before = { ...h.server.fanoutStats(), brotli: counts.brotli, deflate: counts.deflate };
    h.upstream.apply('felix', pods(400, 1));
    await Promise.all(all.map((a) => a.untilRevision('felix', 2)));
    // One unit per compression (none, brotli, deflate), not per socket ...
    expect(h.server.fanoutStats().deltaUnitsEncoded - before.deltaUnitsEncoded).toBe(3);
    // ... and one compression per frame of it, not per socket.
    expect(of(br[0], DELTA)).toBeGreaterThan(2);
    expect(of(br[1], DELTA)).toBe(of(br[0], DELTA));
    expect(counts.brotli - before.brotli).toBe(of(br[0], DELTA));
    expect(counts.deflate - before.deflate).toBe(of(df[0], DELTA));
    for (const a of all) {
      expect(a.violations).toEqual([]);
      expect(a.digest('felix').equals(h.storeDigest('felix'))).toBe(true);
    }
  });
});
