/**
 * Codec micro-benchmark: encode and decode MB/s for a 1,000-update DELTA and a 150,000-entry
 * snapshot chunk stream, with msgpackr (records off) encoding the same bodies side by side, and
 * per-frame compression levels. Plain performance.now loops, each bounded in iterations and time.
 *
 *   npm run bench:codec            # writes bench/results/codec.json
 *
 * MB/s counts body bytes (the msgpack the codec reads or writes), 10^6 bytes per MB.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { brotliCompressSync, constants, deflateRawSync, inflateRawSync, brotliDecompressSync } from 'node:zlib';
import { Packr, unpack } from 'msgpackr';
import {
  decodeFrame,
  DEFAULT_MAX_FRAME_BYTES,
  encodeDeltaFrames,
  encodeSnapshotChunkFrames,
  HEADER_BYTES,
  type DeltaMessage,
  type SnapshotChunkMessage,
} from '../proto/index.js';
import { deltaUpserts, snapshotEntries } from './workload.js';

const MIN_MS = 400;
const MAX_ITERS = 2_000;
const limits = { maxBodyBytes: DEFAULT_MAX_FRAME_BYTES };

interface Timing { iterations: number; cpuMs: number; medianMs: number; bestMs: number; minorPageFaults: number }

/**
 * Runs `fn` after one warm-up, at least 3 times and until MIN_MS has passed (at most MAX_ITERS).
 * The primary figure is process CPU time per iteration (user + system, all threads, so GC
 * helpers count against us): on a shared 2-vCPU machine wall time mostly measures how long we
 * waited for a CPU. The median and best wall-clock iterations are kept for comparison.
 */
function time(fn: () => void): Timing {
  fn();
  const samples: number[] = [];
  const start = performance.now();
  const cpu0 = process.cpuUsage();
  const faults0 = process.resourceUsage().minorPageFault;
  while (samples.length < MAX_ITERS && (samples.length < 3 || performance.now() - start < MIN_MS)) {
    const t = performance.now();
    fn();
    samples.push(performance.now() - t);
  }
  const cpu = process.cpuUsage(cpu0);
  samples.sort((a, b) => a - b);
  const round = (x: number): number => Math.round(x * 1000) / 1000;
  return {
    iterations: samples.length,
    cpuMs: round((cpu.user + cpu.system) / 1000 / samples.length),
    medianMs: round(samples[samples.length >> 1] as number),
    bestMs: round(samples[0] as number),
    minorPageFaults: Math.round((process.resourceUsage().minorPageFault - faults0) / samples.length),
  };
}

function rate(bytes: number, t: Timing): Timing & { MBps: { perCpuSecond: number; wallMedian: number; wallBest: number } } {
  return { ...t, MBps: { perCpuSecond: mbps(bytes, t.cpuMs), wallMedian: mbps(bytes, t.medianMs), wallBest: mbps(bytes, t.bestMs) } };
}

const mbps = (bytes: number, ms: number): number => Math.round((bytes / 1e6 / (ms / 1000)) * 10) / 10;
const bodyBytes = (frames: Buffer[]): number => frames.reduce((n, f) => n + f.length - HEADER_BYTES, 0);

/** Linux CPU pressure (share of time some task waited for a CPU): how shared the machine was. */
function cpuPressure(): string | undefined {
  const path = '/proc/pressure/cpu';
  return existsSync(path) ? readFileSync(path, 'utf8').split('\n')[0] : undefined;
}

const results: Record<string, unknown> = {
  machine: { cpu: cpus()[0]?.model ?? 'unknown', cpus: cpus().length, node: process.version },
  date: new Date().toISOString(),
  method: `per figure: one warm-up, then >= 3 iterations and >= ${MIN_MS} ms (at most ${MAX_ITERS}); MB/s per CPU-second (process user+system) and per wall second (median, best iteration); MB = 10^6 body bytes`,
  loadAverageAtStart: loadavg().map((x) => Math.round(x * 100) / 100),
  cpuPressureAtStart: cpuPressure(),
};

// ---- 1,000-update delta --------------------------------------------------------------------
const upserts = deltaUpserts(1_000);
let deltaFrames: Buffer[] = [];
const deltaEncode = time(() => { deltaFrames = encodeDeltaFrames(0, 100, 101, upserts, [], DEFAULT_MAX_FRAME_BYTES); });
const deltaBytes = bodyBytes(deltaFrames);
// The same work writing into reused memory: separates the codec's cost from first-touch page
// faults of fresh allocations (see the .md).
function arena(bytes: number): { alloc: (n: number) => Buffer; reset: () => void } {
  const slab = Buffer.alloc(bytes);
  let used = 0;
  return {
    alloc: (n) => {
      if (used + n > slab.length) throw new Error('bench arena too small');
      used += n;
      return slab.subarray(used - n, used);
    },
    reset: () => { used = 0; },
  };
}
const deltaArena = arena(2 * DEFAULT_MAX_FRAME_BYTES);
const deltaEncodeReused = time(() => { deltaArena.reset(); encodeDeltaFrames(0, 100, 101, upserts, [], DEFAULT_MAX_FRAME_BYTES, deltaArena.alloc); });
let decodedUpserts = 0;
const deltaDecode = time(() => {
  decodedUpserts = 0;
  for (const f of deltaFrames) decodedUpserts += (decodeFrame(f, limits) as DeltaMessage).upserts.length;
});
if (decodedUpserts !== upserts.length) throw new Error('delta decode lost entries');
const deltaDecodeValues = time(() => {
  for (const f of deltaFrames) for (const [, v] of (decodeFrame(f, limits) as DeltaMessage).upserts) unpack(v);
});
const packr = new Packr({ useRecords: false });
const msgpackrDelta = time(() => { packr.pack({ upserts: upserts.map(([k, v]) => [k, v]), deletes: [] }); });
const msgpackrDeltaDecode = time(() => { for (const f of deltaFrames) unpack(f.subarray(HEADER_BYTES)); });
results.delta1000 = {
  upserts: upserts.length,
  frames: deltaFrames.length,
  bodyBytes: deltaBytes,
  avgValueBytes: Math.round(upserts.reduce((n, [, v]) => n + v.length, 0) / upserts.length),
  encode: rate(deltaBytes, deltaEncode),
  encodeIntoReusedMemory: rate(deltaBytes, deltaEncodeReused),
  decode: rate(deltaBytes, deltaDecode),
  decodePlusUnpackValues: rate(deltaBytes, deltaDecodeValues),
  msgpackrPackSameBody: rate(deltaBytes, msgpackrDelta),
  msgpackrUnpackSameBody: rate(deltaBytes, msgpackrDeltaDecode),
};

// ---- 150,000-entry snapshot chunk stream ---------------------------------------------------
const entries = snapshotEntries(150_000);
let chunkFrames: Buffer[] = [];
const snapEncode = time(() => { chunkFrames = [...encodeSnapshotChunkFrames(0, 100, entries, DEFAULT_MAX_FRAME_BYTES)]; });
const snapBytes = bodyBytes(chunkFrames);
const snapArena = arena(snapBytes + chunkFrames.length * HEADER_BYTES);
const snapEncodeReused = time(() => {
  snapArena.reset();
  for (const f of encodeSnapshotChunkFrames(0, 100, entries, DEFAULT_MAX_FRAME_BYTES, snapArena.alloc)) if (f.length === 0) throw new Error('empty frame');
});
let decodedEntries = 0;
const snapDecode = time(() => {
  decodedEntries = 0;
  for (const f of chunkFrames) decodedEntries += (decodeFrame(f, limits) as SnapshotChunkMessage).entries.length;
});
if (decodedEntries !== entries.length) throw new Error('snapshot decode lost entries');
results.snapshot150k = {
  entries: entries.length,
  frames: chunkFrames.length,
  bodyBytes: snapBytes,
  avgValueBytes: Math.round(entries.reduce((n, [, v]) => n + v.length, 0) / entries.length),
  encode: rate(snapBytes, snapEncode),
  encodeIntoReusedMemory: rate(snapBytes, snapEncodeReused),
  decode: rate(snapBytes, snapDecode),
};

// ---- per-frame compression of 1 MiB chunk bodies -------------------------------------------
const sample = chunkFrames.slice(0, 8).map((f) => f.subarray(HEADER_BYTES));
const sampleBytes = sample.reduce((n, b) => n + b.length, 0);
const compression: Record<string, unknown> = {};
const candidates: [string, (b: Buffer) => Buffer, (b: Buffer) => Buffer][] = [
  ...[1, 2, 3, 6].map((level) => [`deflate-${level}`, (b: Buffer) => deflateRawSync(b, { level }), (b: Buffer) => inflateRawSync(b)] as [string, (b: Buffer) => Buffer, (b: Buffer) => Buffer]),
  ...[1, 2, 3, 4].map((q) => [`brotli-${q}`, (b: Buffer) => brotliCompressSync(b, { params: { [constants.BROTLI_PARAM_QUALITY]: q, [constants.BROTLI_PARAM_SIZE_HINT]: b.length } }), (b: Buffer) => brotliDecompressSync(b)] as [string, (b: Buffer) => Buffer, (b: Buffer) => Buffer]),
];
for (const [name, compress, inflate] of candidates) {
  let packed: Buffer[] = [];
  const c = time(() => { packed = sample.map(compress); });
  const d = time(() => { for (const p of packed) inflate(p); });
  const out = packed.reduce((n, b) => n + b.length, 0);
  compression[name] = { ratio: Math.round((sampleBytes / out) * 100) / 100, compressMBps: rate(sampleBytes, c).MBps, inflateMBps: rate(sampleBytes, d).MBps };
}
results.compression = { sampleBodies: sample.length, sampleBytes, byAlgorithm: compression };

results.loadAverageAtEnd = loadavg().map((x) => Math.round(x * 100) / 100);
results.cpuPressureAtEnd = cpuPressure();
const out = join(import.meta.dirname, '..', '..', 'bench', 'results', 'codec.json');
writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
process.stdout.write(`${JSON.stringify(results, null, 2)}\nwrote ${out}\n`);
