/**
 * Micro-benchmarks of the client's receive path, without sockets: decode (src/wire) + apply
 * (src/client FeedState: copy, incremental digest, reconcile). Run: `npm run bench:client`
 * (builds, then runs dist/bench/client.js with --expose-gc). Writes bench/results/client.json and
 * bench/results/client.md. Wall-clock figures on whatever machine runs it: compare runs on one
 * machine, not across machines.
 *
 * What it answers: how long a node agent spends loading a 150,000-object snapshot (the big-cluster
 * start-of-day), how long a resync that finds the same data costs (reconcile, no events), how many
 * 1,000-update deltas per second it applies, and how much heap the held state takes.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { Packr } from 'msgpackr';
import { encodeDeltaFrames, encodeSnapshotChunkFrames, type Entry } from '../proto/index.js';
import { FeedState } from '../src/client/feed-state.js';
import { computeDigest } from '../proto/digest.js';
import { decodeWireFrame } from '../src/frame-compression.js';

const root = join(import.meta.dirname, '..', '..');
const gc = (globalThis as { gc?: () => void }).gc;
const packr = new Packr({ useRecords: false });
const N = 150_000;
const MAX_BODY = 1_048_576;

function value(i: number, gen: number): Buffer {
  return Buffer.from(packr.pack({
    name: `pod-${i}`, namespace: `ns-${i % 50}`, node: `node-${i % 5000}`,
    ips: [`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`],
    labels: { app: `app-${i % 100}`, 'pod-template-hash': `h${gen}` },
    profiles: [`kns.ns-${i % 50}`, `ksa.ns-${i % 50}.default`],
  }));
}

const key = (i: number): string => `/pods/ns-${i % 50}/pod-${String(i).padStart(7, '0')}`;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

function time(fn: () => void): number {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}

const entries: Entry[] = Array.from({ length: N }, (_, i) => [key(i), value(i, 0)] as const).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
const digest = computeDigest(entries);
const frames = [...encodeSnapshotChunkFrames(1, 1, entries, MAX_BODY)];
const rawBytes = entries.reduce((n, [k, v]) => n + Buffer.byteLength(k) + v.length, 0);

function loadSnapshot(fs: FeedState, revision: number): void {
  fs.snapshotBegin(revision, N, rawBytes);
  for (const f of frames) {
    const m = decodeWireFrame(f, 'none', { maxBodyBytes: MAX_BODY });
    if (m.type !== 'snapshotChunk') throw new Error('expected a chunk');
    fs.snapshotChunk(revision, m.entries);
  }
  const r = fs.snapshotEnd({ revision, digest, watermarks: { pods: String(revision) }, status: 'in-sync', stale: false, token: Buffer.from('t') });
  if (r.kind !== 'applied') throw new Error('behind?');
}

const runs = 5;
const load: number[] = [];
const resync: number[] = [];
for (let r = 0; r < runs; r++) {
  const fs = new FeedState('felix');
  load.push(time(() => loadSnapshot(fs, 1)));
  fs.startConnection('snapshot');
  resync.push(time(() => loadSnapshot(fs, 1)));
}

// Deltas: 1,000 changed values per unit, applied in order.
const fs = new FeedState('felix');
loadSnapshot(fs, 1);
const deltaFrames: Buffer[][] = [];
for (let d = 0; d < 50; d++) {
  const ups: Entry[] = [];
  for (let j = 0; j < 1000; j++) {
    const i = (d * 1000 + j * 7) % N;
    ups.push([key(i), value(i, d + 1)]);
  }
  deltaFrames.push(encodeDeltaFrames(1, 1 + d, 2 + d, ups, [], MAX_BODY));
}
const deltaMs = time(() => {
  for (const unit of deltaFrames) {
    for (const f of unit) {
      const m = decodeWireFrame(f, 'none', { maxBodyBytes: MAX_BODY });
      if (m.type !== 'delta') throw new Error('expected a delta');
      fs.deltaFrame(m.fromRevision, m.toRevision, m.more, m.upserts, m.deletes);
    }
  }
});

// Heap held by one loaded feed (values copied out of the frames). Two GC rounds with a turn of the
// event loop between them, so external (Buffer) memory of earlier runs is released first.
async function settle(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((r) => setImmediate(r));
  }
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}
let heapBytes = NaN;
if (gc !== undefined) {
  const before = await settle();
  const held = new FeedState('felix');
  loadSnapshot(held, 1);
  const after = await settle();
  heapBytes = after - before;
  if (held.size !== N) throw new Error('lost entries');
}

const result = {
  when: new Date().toISOString(),
  machine: { cpus: cpus().length, model: cpus()[0]?.model, loadavg: loadavg() },
  node: process.version,
  snapshot: { entries: N, rawBytes, frames: frames.length, loadMsMedian: median(load), loadMsRuns: load, entriesPerSecond: Math.round(N / (median(load) / 1000)) },
  resyncSameData: { msMedian: median(resync), msRuns: resync },
  deltas: { units: deltaFrames.length, updatesPerUnit: 1000, ms: deltaMs, updatesPerSecond: Math.round((deltaFrames.length * 1000) / (deltaMs / 1000)) },
  heap: { bytes: heapBytes, bytesPerEntry: Math.round(heapBytes / N), note: gc === undefined ? 'run with --expose-gc' : 'heapUsed + arrayBuffers delta' },
};

const dir = join(root, 'bench', 'results');
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, 'client.json'), JSON.stringify(result, null, 2) + '\n');
const md = `# Client receive path (bench/client.ts)

Run ${result.when} on ${result.machine.cpus} × ${result.machine.model ?? '?'} (load ${result.machine.loadavg.map((x) => x.toFixed(1)).join(' ')}), Node ${result.node}.
Decode (src/wire) + apply (FeedState: copy, incremental digest, reconcile); no sockets.

| measure | value |
|---|---|
| snapshot load, ${N.toLocaleString('en-US')} entries (${(rawBytes / 1e6).toFixed(1)} MB raw, ${frames.length} frames) | ${result.snapshot.loadMsMedian.toFixed(0)} ms median of ${runs} (${result.snapshot.entriesPerSecond.toLocaleString('en-US')} entries/s) |
| resync with the same data (reconcile, no changes) | ${result.resyncSameData.msMedian.toFixed(0)} ms median |
| deltas, 50 units × 1,000 updates | ${result.deltas.ms.toFixed(0)} ms (${result.deltas.updatesPerSecond.toLocaleString('en-US')} updates/s) |
| heap held by the loaded feed | ${Number.isNaN(heapBytes) ? 'n/a' : `${(heapBytes / 1e6).toFixed(1)} MB (${result.heap.bytesPerEntry} B/entry)`} |
`;
writeFileSync(join(dir, 'client.md'), md);
process.stdout.write(md);
