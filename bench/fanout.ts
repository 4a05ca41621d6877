/**
 * Fan-out macro benchmark: the server with a scripted source, N loopback clients in discard mode
 * (bench/fanout-clients.ts, its own process), a bounded update script.
 *
 *   node dist/bench/fanout.js [--clients 1000,5000] [--out bench/results/fanout]
 *
 * Per N: connect N clients (each gets the shared snapshot), then replay `rounds` batches of
 * `batchSize` changed WorkloadEndpoint-like values, one every `intervalMs`, and wait until every
 * client has the last revision. Reported: delivery lag (push → client receipt, CLOCK_MONOTONIC in
 * both processes) p50/p99 over all deliveries and for the last client of each revision; bytes
 * encoded per delta unit; corked writes per client per flush; server CPU during the replay; RSS.
 * Every phase (connect + snapshot, replay) is bounded in count and by a hard 20 s deadline.
 */
import { fork } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { startServer } from '../src/server/server.js';
import { ScriptedUpstream } from '../test/support/scripted-upstream.js';
import { workloadEndpoint } from './workload.js';
import { seededRandom } from '../src/random.js';

interface RunConfig {
  clients: number;
  entries: number;
  rounds: number;
  batchSize: number;
  intervalMs: number;
  caps: string[];
}

const RUN_DEADLINE_MS = 20_000;
const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

async function runOnce(cfg: RunConfig): Promise<Record<string, unknown>> {
  const upstream = ScriptedUpstream.withFeeds('felix');
  const server = await startServer({ upstream, serverId: 'bench', defaultMetrics: false, pingIntervalMs: 60_000, maxConnections: 20_000 });
  const rand = seededRandom(1);
  const keys: string[] = [];
  const seed: { key: string; value: Buffer | null }[] = [];
  for (let i = 0; i < cfg.entries; i++) {
    const { key, value } = workloadEndpoint(i, rand);
    keys.push(key);
    seed.push({ key, value: Buffer.from(value) });
  }
  upstream.push('felix', { updates: seed, status: 'in-sync', watermarks: { pods: '1' } });

  const child = fork(new URL('./fanout-clients.js', import.meta.url), { stdio: 'inherit' });
  const waitFor = <T>(ev: string): Promise<T> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`bench: timed out waiting for ${ev}`)), RUN_DEADLINE_MS);
      const on = (m: { ev: string }): void => {
        if (m.ev === 'refused') console.error('refused:', m);
        if (m.ev !== ev) return;
        clearTimeout(timer);
        child.off('message', on);
        resolve(m as T);
      };
      child.on('message', on);
    });
  const url = new URL(server.url);
  let rssPeak = process.memoryUsage().rss;
  const rssTimer = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 50);
  try {
    const rssBefore = process.memoryUsage().rss;
    // Event-loop delay while N agents connect and stream the shared snapshot: shows whether
    // starting thousands of sends blocks the loop.
    const loopSnap = monitorEventLoopDelay({ resolution: 10 });
    loopSnap.enable();
    const t0 = nowMs();
    child.send({ cmd: 'connect', host: url.hostname, port: Number(url.port), n: cfg.clients, caps: cfg.caps, feed: 'felix' });
    const connected = await waitFor<{ n: number; failed: number }>('connected');
    child.send({ cmd: 'target', revision: 1 });
    await waitFor('reached');
    const snapshotAllMs = nowMs() - t0;
    loopSnap.disable();
    const loopReplay = monitorEventLoopDelay({ resolution: 10 });
    loopReplay.enable();
    const snap = server.snapshotStats();

    const before = server.fanoutStats();
    const cpu0 = process.cpuUsage();
    const w0 = nowMs();
    const deadline = Date.now() + RUN_DEADLINE_MS;
    const pushTimesMs: Record<string, number> = {};
    const store = server.stores.get('felix');
    for (let r = 0; r < cfg.rounds && Date.now() < deadline; r++) {
      const updates = Array.from({ length: cfg.batchSize }, (_, j) => {
        const i = (r * cfg.batchSize + j * 7919) % cfg.entries;
        const { value } = workloadEndpoint(i, rand, r + 1);
        return { key: keys[i] as string, value: Buffer.from(value) };
      });
      upstream.push('felix', { updates, watermarks: { pods: String(r + 2) } });
      pushTimesMs[String(store?.revision)] = nowMs();
      await new Promise((res) => setTimeout(res, cfg.intervalMs));
    }
    child.send({ cmd: 'target', revision: store?.revision });
    await waitFor('reached');
    const replayWallS = (nowMs() - w0) / 1000;
    loopReplay.disable();
    const cpu = process.cpuUsage(cpu0);
    const after = server.fanoutStats();
    child.send({ cmd: 'report', pushTimesMs });
    const rep = await waitFor<Record<string, number>>('report');
    const flushes = after.flushes - before.flushes;
    const units = after.deltaUnitsEncoded - before.deltaUnitsEncoded;
    const revisions = Object.keys(pushTimesMs).length;
    const serverCpuS = (cpu.user + cpu.system) / 1e6;
    return {
      ...cfg,
      connected: connected.n,
      connectFailed: connected.failed,
      snapshotAllMs: Math.round(snapshotAllMs),
      loopDelaySnapshotP99Ms: +(loopSnap.percentile(99) / 1e6).toFixed(1),
      loopDelaySnapshotMaxMs: +(loopSnap.max / 1e6).toFixed(1),
      loopDelayReplayP99Ms: +(loopReplay.percentile(99) / 1e6).toFixed(1),
      snapshotBuilds: snap.built,
      snapshotReuses: snap.reused,
      revisions,
      flushes,
      deltaUnitsEncoded: units,
      bytesEncodedPerDelta: Math.round((after.deltaBytesEncoded - before.deltaBytesEncoded) / Math.max(1, units)),
      flushWrites: after.flushWrites - before.flushWrites,
      writesPerClientPerFlush: +((after.flushWrites - before.flushWrites) / Math.max(1, flushes * cfg.clients)).toFixed(3),
      skips: after.skips - before.skips,
      catchUps: after.catchUps - before.catchUps,
      deliveries: rep['deliveries'],
      lagP50Ms: +(rep['lagP50Ms'] ?? NaN).toFixed(1),
      lagP99Ms: +(rep['lagP99Ms'] ?? NaN).toFixed(1),
      lagMaxMs: +(rep['lagMaxMs'] ?? NaN).toFixed(1),
      lastClientLagP50Ms: +(rep['lastClientLagP50Ms'] ?? NaN).toFixed(1),
      lastClientLagP99Ms: +(rep['lastClientLagP99Ms'] ?? NaN).toFixed(1),
      replayWallS: +replayWallS.toFixed(2),
      serverCpuS: +serverCpuS.toFixed(2),
      serverCpuUsPerDelivery: +((serverCpuS * 1e6) / Math.max(1, rep['deliveries'] ?? 0)).toFixed(2),
      clientCpuS: +(rep['clientCpuS'] ?? NaN).toFixed(2),
      bytesReceived: rep['bytesReceived'],
      framesReceived: rep['framesReceived'],
      rssBeforeMB: Math.round(rssBefore / 1e6),
      rssPeakMB: Math.round(rssPeak / 1e6),
    };
  } finally {
    clearInterval(rssTimer);
    child.send({ cmd: 'exit' });
    await server.close();
  }
}

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? def) : def;
}

const counts = arg('clients', '1000,5000').split(',').map(Number);
const out = arg('out', 'bench/results/fanout');
const results: Record<string, unknown>[] = [];
const loadBefore = loadavg().map((x) => +x.toFixed(2));
for (const n of counts) {
  const cfg: RunConfig = { clients: n, entries: 1_000, rounds: n >= 5000 ? 100 : 200, batchSize: 10, intervalMs: 20, caps: ['compress.deflate'] };
  console.error(`fanout bench: N=${n} ...`);
  try {
    results.push(await runOnce(cfg));
  } catch (err) {
    results.push({ ...cfg, error: (err as Error).message });
  }
  console.error(JSON.stringify(results.at(-1)));
}
const meta = { node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model, date: new Date().toISOString(), loadAverageBefore: loadBefore, loadAverageAfter: loadavg().map((x) => +x.toFixed(2)), note: 'server and clients in separate processes, not pinned; shared 2-vCPU machine with other jobs running (see the load averages), so absolute times are pessimistic: compare CPU-seconds and counts, not wall time' };
writeFileSync(`${out}.json`, JSON.stringify({ meta, results }, null, 2) + '\n');
const cols = ['clients', 'rounds', 'revisions', 'replayWallS', 'snapshotAllMs', 'loopDelaySnapshotP99Ms', 'loopDelaySnapshotMaxMs', 'loopDelayReplayP99Ms', 'snapshotBuilds', 'snapshotReuses', 'flushes', 'bytesEncodedPerDelta', 'deltaUnitsEncoded', 'writesPerClientPerFlush', 'lagP50Ms', 'lagP99Ms', 'lastClientLagP50Ms', 'lastClientLagP99Ms', 'serverCpuS', 'serverCpuUsPerDelivery', 'clientCpuS', 'rssPeakMB', 'skips', 'catchUps'];
const md = [
  '# Fan-out benchmark (bench/fanout.ts)',
  '',
  `Node ${meta.node}, ${meta.cpus} vCPU (${meta.cpuModel ?? '?'}), ${meta.date}, load average ${meta.loadAverageBefore.join('/')} before and ${meta.loadAverageAfter.join('/')} after. ${meta.note}.`,
  '',
  'One feed of 1,000 WorkloadEndpoint-like values (~500 B); clients ask for deflate. Replay: a batch of 10 changed values every 20 ms (a round stops early at the 20 s replay deadline: see `revisions`); lag = push into the pipeline → client receipt of the DELTA (includes the 5 ms flush window). `snapshotAllMs` includes connecting all clients (batches of 200). `writesPerClientPerFlush` = corked writes / (flushes × clients): 1 means every delta and its STATUS went out in one write per socket.',
  '',
  `| ${cols.join(' | ')} |`,
  `| ${cols.map(() => '---').join(' | ')} |`,
  ...results.map((r) => `| ${cols.map((c) => String(r[c] ?? (c === 'clients' ? '' : r['error'] ?? ''))).join(' | ')} |`),
  '',
].join('\n');
writeFileSync(`${out}.md`, md);
console.error(md);
