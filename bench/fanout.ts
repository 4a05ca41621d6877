/**
 * The fan-out reference measurement (issue 14): Cattail over `ws` and over uWebSockets.js against a
 * plain `net` server writing the same bytes to the same number of sockets (the floor), in the same
 * run, so only ratios are compared (absolute times on shared machines vary ±35 % between runs).
 *
 *   node --expose-gc dist/bench/fanout.js [--quick] [--runs 5] [--clients 1000,5000] [--out bench/results/fanout]
 *                                         [--cold-only | --idle-only | --burst-only] [--cold-entries 50000] [--targets net,ws,uws]
 *
 * This process is the server (pinned to CPU 0 with taskset when it exists); the load client is
 * src/bench/raw-clients.ts in its own process (CPU 1): raw sockets that upgrade, send a real HELLO
 * and count frames from their headers, plus 3 full clients (the client library, which checks
 * every frame and the store digest) on Cattail targets.
 *
 * Per run, per client count N, per target (net, ws, uws):
 *  - idle memory per connection after GC (RSS and JS heap+external, N idle sockets vs none), in a
 *    fresh process per target (bench/idle-child.ts);
 *  - one change at a time (lock-step): push → the last of N clients has it (p50 over the rounds),
 *    and push → the server had written it to every socket (what of it is the load client's reading);
 *  - a burst at flushWindowMs 0 (one flush per change): server CPU per delivered frame, measured
 *    only from the first change to the last client's receipt, never over connection setup;
 *    both of these paired: the floor's sockets and a Cattail target's held at once, measured in
 *    alternation (pairedSession);
 *  - a burst at the default flushWindowMs (Cattail only): CPU per delivered change.
 * Per run, N=1,000: cold start, all clients connecting at once to a 50,000-entry feed: time to
 * the last client, event-loop delay max, snapshot builds, server CPU (floor: the same snapshot
 * frames written by a `net` server with the same high-water mark, run before and after every
 * other target: coldOrder), the loop delay split into the main thread's run time and its wait for
 * the core (src/bench/loop-stalls.ts), and the main thread's CPU beside the process's.
 * Every loop is bounded in count and by deadlines; everything runs on 127.0.0.1.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { ServerHandle } from '../src/server/server.js';
import type { FanOutStatsSnapshot } from '../src/server/fanout/stats.js';
import { encodeChunk, encodeDelta, encodeMessage, entryBytes } from '../src/server/transport/framing.js';
import { uwsAvailable } from '../src/server/transport/uws-loader.js';
import { forEachFrame } from '../src/server/transport/seam.js';
import type { ScriptedUpstream } from '../test/support/scripted-upstream.js';
import { workloadEndpoint } from './workload.js';
import { seededRandom } from '../src/random.js';
import type { ClientCmd } from '../src/bench/raw-clients.js';
import { type NetServer, netServer } from '../src/bench/floor.js';
import { plainWsServer, rawWsServer, sendPaced } from '../src/bench/ws-floor.js';
import type { Socket } from 'node:net';
import type { IdleCmd, IdleEvent, IdleMem, IdleTarget } from './idle-child.js';
import { DEFAULT_SNAPSHOT_CHUNK_BYTES } from '../src/server/fanout/snapshot-cache.js';
import { pinProcess } from '../src/bench/procs.js';
import { Child } from '../src/bench/child.js';
import { type CattailTarget, startCattailTarget } from './cattail-target.js';
import { readTcpCounters, tcpCountersSince } from '../src/bench/tcp-counters.js';
import { LoopStallMonitor, parseSchedstat } from '../src/bench/loop-stalls.js';
import { type MeasureWindow, type RunRec, coldOrder, coldRatios, runRatios } from './fanout-runs.js';

/**
 * `wsplain`: the cold start's second floor, a plain `ws` server; `wsraw`: its third, the bare
 * upgrade on Node's HTTP server and the `net` floor's writes after it (src/bench/ws-floor.ts).
 */
type Target = 'net' | 'wsplain' | 'wsraw' | 'ws' | 'uws';
/** The targets of every scenario but the cold start (the idle memory has wsplain too). */
type MainTarget = Exclude<Target, 'wsplain' | 'wsraw'>;
type Rec = Record<string, number | string | boolean | undefined>;
/** Cattail itself (over either transport), as against the floors. */
const isCattail = (t: Target): t is 'ws' | 'uws' => t === 'ws' || t === 'uws';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? def) : def;
}
const QUICK = process.argv.includes('--quick');
const RUNS = Number(arg('runs', QUICK ? '1' : '5'));
const COUNTS = arg('clients', QUICK ? '1000' : '1000,5000').split(',').map(Number);
const OUT = arg('out', QUICK ? 'bench/results/fanout-quick' : 'bench/results/fanout');
const FEED_ENTRIES = 1_000;
const COLD_ENTRIES = Number(arg('cold-entries', QUICK ? '10000' : '50000'));
/** Only the cold start (for profiling it; the summary's other rows stay empty). */
const COLD_ONLY = process.argv.includes('--cold-only');
/** Only the idle-memory measurement (each target in a fresh process). */
const IDLE_ONLY = process.argv.includes('--idle-only');
/** Only the lock-step and burst scenarios (for profiling the flush; no idle memory, no cold start). */
const BURST_ONLY = process.argv.includes('--burst-only');
const COLD_CLIENTS = 1_000;
/** Library clients per Cattail session that check content (they get every change too). */
const FULL_CLIENTS = 3;
const LOCKSTEP_ROUNDS = QUICK ? 10 : 25;
const LOCKSTEP_WARMUP = 3;
const burstRounds = (n: number): number => Math.max(20, Math.round((QUICK ? 60_000 : 200_000) / n));
/** The whole run stops starting new work after this (the results so far are written). */
const TOTAL_DEADLINE_MS = 14 * 60_000;
const STEP_DEADLINE_MS = 60_000;
const HWM = 1_048_576;
const started = Date.now();
const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;
const cpuS = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
/** CPU (s) of this process's main thread alone (Linux: schedstat, ns), NaN where there is none. */
const MAIN_SCHEDSTAT = `/proc/self/task/${process.pid}/schedstat`;
const mainCpuS = (): number => {
  try {
    return (parseSchedstat(readFileSync(MAIN_SCHEDSTAT, 'utf8'))?.runMs ?? Number.NaN) / 1000;
  } catch {
    return Number.NaN;
  }
};
/**
 * CPU (s) over one block: the whole process's (what the ratios use) and the main thread's. The
 * rest is V8's and libuv's other threads (concurrent GC, compilation, the thread pool), which a
 * CPU profile of the main thread never shows.
 */
interface BlockCpu {
  all: number;
  main: number;
}
const blockCpu = (): BlockCpu => ({ all: cpuS(), main: mainCpuS() });
const cpuSince = (t0: BlockCpu): BlockCpu => ({ all: cpuS() - t0.all, main: mainCpuS() - t0.main });
const addCpu = (a: BlockCpu, b: BlockCpu): BlockCpu => ({ all: a.all + b.all, main: a.main + b.main });
const NO_CPU: BlockCpu = { all: 0, main: 0 };
/**
 * --windows <file>: every burst block's side, span and deliveries (MeasureWindow), written at exit,
 * so that a CPU profile of this process (node --cpu-prof) can be cut into the floor's blocks and
 * Cattail's (bench/profile-split.ts). The span is on the monotonic clock in µs, which is the clock
 * of the profile's sample times.
 */
const WINDOWS_OUT = arg('windows', '');
const windows: MeasureWindow[] = [];
/** The session the blocks being recorded belong to (set when a Cattail target's session starts). */
let windowOf: Pick<MeasureWindow, 'target' | 'n'> = { target: '', n: 0 };
if (WINDOWS_OUT !== '') process.on('exit', () => writeFileSync(WINDOWS_OUT, JSON.stringify(windows)));
const gc = (globalThis as { gc?: () => void }).gc;
const immediate = (): Promise<void> => new Promise((r) => setImmediate(r));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---- pinning and the client process ----------------------------------------------------------

let pinned = false;
function pin(pid: number, cpu: number): void {
  pinned = pinProcess(pid, cpu);
}

class Clients {
  readonly child: ChildProcess;
  constructor() {
    this.child = fork(new URL('../src/bench/raw-clients.js', import.meta.url), { stdio: 'inherit' });
  }
  send(m: ClientCmd): void {
    this.child.send(m);
  }
  wait<T = Rec>(ev: string, timeoutMs = STEP_DEADLINE_MS): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.child.off('message', on);
        reject(new Error(`bench: timed out waiting for ${ev}`));
      }, timeoutMs);
      const on = (m: { ev: string }): void => {
        if (m.ev === 'refused') console.error('refused:', m);
        if (m.ev !== ev) return;
        clearTimeout(timer);
        this.child.off('message', on);
        resolve(m as T);
      };
      this.child.on('message', on);
    });
  }
  /** Resolves with the ms the last socket (of `group`, when given) had `revision`. */
  async reach(revision: number, group?: number, timeoutMs = STEP_DEADLINE_MS): Promise<number> {
    const p = this.wait<{ lastMs: number }>('reached', timeoutMs);
    this.send({ cmd: 'target', revision, ...(group !== undefined ? { group } : {}) });
    return (await p).lastMs;
  }
  /** Opens `n` more connections (labelled `group`); `total`: how many the load client then holds (default `n`). */
  async connect(port: number, n: number, mode: 'ws' | 'raw', concurrency: number, total = n, group = 0): Promise<void> {
    const p = this.wait<{ n: number; failed: number }>('connected');
    this.send({ cmd: 'connect', host: '127.0.0.1', port, n, mode, caps: ['compress.deflate'], feed: 'felix', concurrency, group });
    const r = await p;
    if (r.failed > 0 || r.n !== total) throw new Error(`bench: ${r.failed} of ${n} connections failed (${r.n} held, ${total} expected)`);
  }
  async closeAll(): Promise<Rec> {
    const p = this.wait('closed');
    this.send({ cmd: 'closeAll' });
    return p;
  }
}

// ---- data ------------------------------------------------------------------------------------

const rand = seededRandom(14);
const entries = Array.from({ length: Math.max(FEED_ENTRIES, COLD_ENTRIES) }, (_, i) => workloadEndpoint(i, rand));
let generation = 1;
/** One changed entry (a new generation of an existing one): what "one change" is everywhere. */
function change(): { key: string; value: Buffer } {
  const i = (generation * 7919) % FEED_ENTRIES;
  const e = workloadEndpoint(i, rand, generation++);
  return { key: (entries[i] as { key: string }).key, value: e.value };
}

// ---- Cattail targets -------------------------------------------------------------------------

function cattail(transport: 'ws' | 'uws', flushWindowMs: number, feedEntries: number): Promise<CattailTarget> {
  return startCattailTarget(transport, flushWindowMs, entries.slice(0, feedEntries));
}

/** Load-client groups of a paired session: the floor's sockets and the Cattail target's. */
const FLOOR_GROUP = 0;
const CATTAIL_GROUP = 1;
/** Burst blocks per side in a paired session (ABBA order, so that drift over the session cancels). */
const PAIRED_BLOCKS = 4;
/** Floor blocks of the control before Cattail's sockets connect, and again after its server closed. */
const CONTROL_BLOCKS = 2;

/** The floor's side of a paired session: a `net` server and the revision its sockets last got. */
interface FloorSide {
  readonly srv: NetServer;
  revision: number;
  /** Bytes of the last change's buffer (what each socket got). */
  bytes: number;
}

/** One change written by the floor to every socket (what a Cattail flush of one change writes). */
function floorChange(f: FloorSide): number {
  const buf = floorRound(++f.revision);
  f.bytes = buf.length;
  for (const s of f.srv.sockets) s.write(buf);
  return f.revision;
}

/**
 * One burst block of Cattail: `changes` changes, one per loop turn; its CPU (s) until the last
 * socket (of `group`) has the last. `sockets`: how many the server writes each change to.
 */
async function cattailBlock(c: Clients, server: ServerHandle, upstream: ScriptedUpstream, changes: number, sockets: number, group?: number): Promise<BlockCpu> {
  const cpu0 = blockCpu();
  const t0 = nowMs() * 1000;
  for (let i = 0; i < changes; i++) {
    upstream.push('felix', { updates: [change()] });
    await immediate();
  }
  await c.reach(server.stores.get('felix')?.revision ?? 0, group);
  windows.push({ side: group === undefined ? 'coalesced' : 'cattail', ...windowOf, t0, t1: nowMs() * 1000, deliveries: changes * sockets, changes });
  return cpuSince(cpu0);
}

/**
 * One burst block of the floor: `changes` changes, one per loop turn; its CPU (s) until the last
 * floor socket has the last. `paired`: one of the blocks alternated with Cattail's (the others
 * are the control's and the warm-up, marked `floor-alone` in the --windows file).
 */
async function floorBlock(c: Clients, floor: FloorSide, changes: number, paired = false): Promise<BlockCpu> {
  const cpu0 = blockCpu();
  const t0 = nowMs() * 1000;
  for (let i = 0; i < changes; i++) {
    floorChange(floor);
    await immediate();
  }
  await c.reach(floor.revision, FLOOR_GROUP);
  windows.push({ side: paired ? 'floor' : 'floor-alone', ...windowOf, t0, t1: nowMs() * 1000, deliveries: changes * floor.srv.sockets.length, changes });
  return cpuSince(cpu0);
}

/**
 * The floor and one Cattail target measured side by side, in one session: both servers in this
 * process, both sets of N sockets held by the load client at once (told apart by group), and the
 * two measured in alternation (lock-step rounds one after the other, which first alternating;
 * bursts in ABBA blocks). The ratio of the two is then taken over seconds, not over the tens of
 * seconds between two sessions, in which this machine's speed drifts by a third.
 *
 * The price: the floor now writes in a process that also holds Cattail's N connections. What that
 * costs it is measured in the same session (the control): floor blocks before Cattail's sockets
 * connect and after its server closed, against the floor's blocks in alternation with Cattail
 * (`pairedVsAlone`; the mean of before and after cancels a steady drift).
 */
async function pairedSession(c: Clients, transport: 'ws' | 'uws', n: number): Promise<{ cattail: Rec; floor: Rec }> {
  const srv = await netServer(() => undefined);
  try {
    return await pairedWith(c, transport, n, { srv, revision: 1, bytes: 0 });
  } finally {
    await srv.close();
  }
}

async function pairedWith(c: Clients, transport: 'ws' | 'uws', n: number, floor: FloorSide): Promise<{ cattail: Rec; floor: Rec }> {
  windowOf = { target: transport, n };
  const { server, upstream, port } = await cattail(transport, 0, FEED_ENTRIES);
  let serverOpen = true;
  const store = server.stores.get('felix');
  const rev = (): number => store?.revision ?? 0;
  try {
    const fullReady = c.wait('fullReady');
    c.send({ cmd: 'full', url: server.url, n: FULL_CLIENTS, feed: 'felix' });
    await fullReady;
    await c.connect(floor.srv.port, n, 'raw', 500, n, FLOOR_GROUP);
    const until = Date.now() + 10_000;
    while (floor.srv.sockets.length < n && Date.now() < until) await sleep(10);
    const perBlock = Math.max(5, Math.round(burstRounds(n) / PAIRED_BLOCKS));
    // The control's first half: the floor before Cattail's N sockets connect, after one block
    // not counted (the floor's code warm, as in its paired blocks).
    await floorBlock(c, floor, perBlock);
    let aloneCpu = NO_CPU;
    for (let b = 0; b < CONTROL_BLOCKS; b++) aloneCpu = addCpu(aloneCpu, await floorBlock(c, floor, perBlock));
    await c.connect(port, n, 'ws', 500, 2 * n, CATTAIL_GROUP);
    await c.reach(rev(), CATTAIL_GROUP);
    const cattailRec: Rec = {};
    const floorRec: Rec = {};
    // One change at a time: push → the last client has it; the two sides in alternation.
    // Per round: ms from the change to the last client's receipt, and to the server having handed
    // it to every socket (the floor: its write loop's end; Cattail: the first turn after its flush).
    // Where the server is done well before the last receipt, the load client's reading is the rest.
    interface Round { last: number; written: number }
    const lat = { cattail: [] as Round[], floor: [] as Round[] };
    const floorRound1 = async (): Promise<Round> => {
      const t0 = nowMs();
      const revision = floorChange(floor);
      const written = nowMs() - t0;
      return { last: (await c.reach(revision, FLOOR_GROUP)) - t0, written };
    };
    const cattailRound1 = async (): Promise<Round> => {
      const t0 = nowMs();
      const f0 = server.fanoutStats().flushes;
      upstream.push('felix', { updates: [change()] });
      const reached = c.reach(rev(), CATTAIL_GROUP);
      // Handled now: if the wait below gives up first, the rejection is not left unhandled.
      reached.catch(() => undefined);
      while (server.fanoutStats().flushes === f0) {
        if (nowMs() - t0 > STEP_DEADLINE_MS) throw new Error('bench: no flush within the step deadline after a lock-step change');
        await immediate();
      }
      const written = nowMs() - t0;
      return { last: (await reached) - t0, written };
    };
    for (let i = 0; i < LOCKSTEP_ROUNDS + LOCKSTEP_WARMUP; i++) {
      const floorFirst = i % 2 === 0;
      const a = floorFirst ? await floorRound1() : await cattailRound1();
      const b = floorFirst ? await cattailRound1() : await floorRound1();
      if (i >= LOCKSTEP_WARMUP) {
        lat.floor.push(floorFirst ? a : b);
        lat.cattail.push(floorFirst ? b : a);
      }
    }
    for (const [rec, rounds] of [[floorRec, lat.floor], [cattailRec, lat.cattail]] as const) {
      rec['lockstepLastClientP50Ms'] = +median(rounds.map((r) => r.last)).toFixed(2);
      rec['lockstepWrittenP50Ms'] = +median(rounds.map((r) => r.written)).toFixed(2);
    }
    // Bursts at flushWindowMs 0: one change per loop turn, one flush per change; in blocks,
    // floor and Cattail in ABBA order (F C C F F C C F ...), each side's CPU summed over its blocks.
    const cpu = { cattail: NO_CPU, floor: NO_CPU };
    const s0 = server.fanoutStats();
    for (let b = 0; b < 2 * PAIRED_BLOCKS; b++) {
      const floorsBlock = b % 4 === 0 || b % 4 === 3;
      if (floorsBlock) cpu.floor = addCpu(cpu.floor, await floorBlock(c, floor, perBlock, true));
      else cpu.cattail = addCpu(cpu.cattail, await cattailBlock(c, server, upstream, perBlock, n + FULL_CLIENTS, CATTAIL_GROUP));
    }
    const s1 = server.fanoutStats();
    const rounds = perBlock * PAIRED_BLOCKS;
    floorRec['burstRounds'] = rounds;
    cattailRec['burstRounds'] = rounds;
    floorRec['burstCpuUsPerDelivery'] = +((cpu.floor.all * 1e6) / (rounds * n)).toFixed(2);
    floorRec['burstMainThreadCpuUsPerDelivery'] = +((cpu.floor.main * 1e6) / (rounds * n)).toFixed(2);
    // Every socket the flush writes to is a delivery: the full clients' too (the floor has n).
    cattailRec['burstCpuUsPerDelivery'] = +((cpu.cattail.all * 1e6) / (rounds * (n + FULL_CLIENTS))).toFixed(2);
    cattailRec['burstMainThreadCpuUsPerDelivery'] = +((cpu.cattail.main * 1e6) / (rounds * (n + FULL_CLIENTS))).toFixed(2);
    cattailRec['burstFlushes'] = s1.flushes - s0.flushes;
    // Bytes per socket write: Cattail's mean over the blocks; the floor's last buffer (its DELTA +
    // STATUS mirror a flush's, a few dozen bytes apart: its STATUS fields are placeholders).
    cattailRec['burstBytesPerWrite'] = Math.round((s1.sharedBytes - s0.sharedBytes) / Math.max(1, s1.flushWrites - s0.flushWrites));
    floorRec['burstBytesPerWrite'] = floor.bytes;
    cattailRec['burstWritesPerClientPerFlush'] = +((s1.flushWrites - s0.flushWrites) / Math.max(1, (s1.flushes - s0.flushes) * (n + FULL_CLIENTS))).toFixed(3);
    // Content: the full clients end at the last revision with no digest mismatch or gap.
    const deadline = Date.now() + 10_000;
    let full: { clients: Rec[] } = { clients: [] };
    while (Date.now() < deadline) {
      const p = c.wait<{ clients: Rec[] }>('fullReport');
      c.send({ cmd: 'fullReport', feed: 'felix' });
      full = await p;
      if (full.clients.every((x) => x['revision'] === rev())) break;
      await sleep(50);
    }
    cattailRec['fullClientsOk'] = full.clients.length === FULL_CLIENTS && full.clients.every((x) => x['revision'] === rev() && x['inSync'] === true && x['digestMismatches'] === 0 && x['revisionGaps'] === 0 && x['protocolErrors'] === 0);
    // The control's second half: the floor after Cattail's server (and its connections) closed.
    serverOpen = false;
    await server.close();
    // Its N sockets' teardown (FINs, close events) must not run in the floor's blocks.
    await sleep(1_000);
    for (let b = 0; b < CONTROL_BLOCKS; b++) aloneCpu = addCpu(aloneCpu, await floorBlock(c, floor, perBlock));
    const aloneUs = (aloneCpu.all * 1e6) / (2 * CONTROL_BLOCKS * perBlock * n);
    floorRec['aloneCpuUsPerDelivery'] = +aloneUs.toFixed(2);
    floorRec['pairedVsAlone'] = +((cpu.floor.all * 1e6) / (rounds * n) / aloneUs).toFixed(3);
    const cl = await c.closeAll();
    // Both groups' frames: the floor's and Cattail's (the field names the session's total).
    floorRec['sessionFramesTotal'] = cl['frames'];
    return { cattail: cattailRec, floor: floorRec };
  } finally {
    if (serverOpen) await server.close();
  }
}

/** One change per loop turn for burstRounds(n) changes; server CPU until the last client has the last one. */
async function burst(c: Clients, server: ServerHandle, upstream: ScriptedUpstream, n: number): Promise<{ rounds: number; cpu: number; s0: FanOutStatsSnapshot; s1: FanOutStatsSnapshot }> {
  const rounds = burstRounds(n);
  const s0 = server.fanoutStats();
  const cpu = (await cattailBlock(c, server, upstream, rounds, n)).all;
  return { rounds, cpu, s0, s1: server.fanoutStats() };
}

/**
 * Idle memory, then a burst at the default flushWindowMs (changes coalesce; CPU per delivered
 * change). The feed starts with 10 entries so that what stays after GC is the connections, not
 * allocator pages left by snapshot sends (uWS copies unsent bytes into per-socket buffers).
 */
async function cattailCoalesced(c: Clients, transport: 'ws' | 'uws', n: number): Promise<Rec> {
  windowOf = { target: transport, n };
  const { server, upstream, port } = await cattail(transport, 5, 10);
  const store = server.stores.get('felix');
  try {
    await c.connect(port, n, 'ws', 500);
    await c.reach(store?.revision ?? 0);
    const { rounds, cpu, s0, s1 } = await burst(c, server, upstream, n);
    await c.closeAll();
    return { coalescedFlushes: s1.flushes - s0.flushes, coalescedCpuUsPerDeliveredChange: +((cpu * 1e6) / (rounds * n)).toFixed(2) };
  } finally {
    await server.close();
  }
}

// ---- idle memory, each target in a fresh process (bench/idle-child.ts says why) ----------------

/**
 * The idle child's young generation, fixed at 16 MiB per semi-space. V8 otherwise sizes it from
 * the heap limit (on this 24 GiB machine up to 3 × 16 MiB on Node 20 and 3 × 64 MiB on Node 24;
 * 3 × 8 and 3 × 32 under a 2 GiB memory limit), grows it toward that while the upgrades allocate
 * fast, and keeps it after GC: a one-time cost, bounded by V8 and not by the connection count,
 * that measured from the process's start came out as 3-6 KB per connection at 5,000 for every
 * Cattail and `ws` target (docs/transport.md).
 */
const IDLE_V8_FLAGS = ['--min-semi-space-size=16', '--max-semi-space-size=16'];
/** Connections opened at once by the load client in the idle measurement. */
const IDLE_CONCURRENCY = 500;

async function idleMemory(c: Clients, target: IdleTarget, n: number): Promise<Rec> {
  // From the built src/bench/child.js: ../../bench/ is this file's directory.
  const child = new Child<IdleCmd, IdleEvent>('../../bench/idle-child.js', pinned ? 0 : undefined, ['--expose-gc', ...IDLE_V8_FLAGS]);
  try {
    const started = child.wait('started', STEP_DEADLINE_MS);
    child.send({ cmd: 'start', target });
    const s = await started;
    // In two steps, measured after each: a first part of the connections (a fifth, and at least
    // one batch of IDLE_CONCURRENCY), then the rest. The figure is the second step's growth per
    // connection: what one more connection holds. The first step takes the process's one-time
    // growth: the peak of a batch of upgrades at once (memory the allocator keeps after it is
    // freed), Node's pool of HTTP parsers, the fan-out's lists. "From start" keeps it.
    const first = Math.min(n - 1, Math.max(Math.ceil(n / 5), IDLE_CONCURRENCY));
    const steps: IdleMem[] = [];
    for (const [add, total] of [[first, first], [n - first, n]] as const) {
      await c.connect(s.port, add, target === 'net' ? 'raw' : 'ws', IDLE_CONCURRENCY, total);
      // Cattail's clients idle once they hold the feed's snapshot; the floor's once accepted.
      if (isCattail(target)) await c.reach(s.revision);
      const measured = child.wait('measured', STEP_DEADLINE_MS);
      child.send({ cmd: 'measure', connections: total });
      const m = await measured;
      if (m.sockets < total) throw new Error(`bench: idle child holds ${m.sockets} of ${total} connections`);
      steps.push(m.mem);
    }
    const [a, b] = steps as [IdleMem, IdleMem];
    const added = n - first;
    return {
      idleRssBytesPerConn: Math.round((b.rss - a.rss) / added),
      idleHeapBytesPerConn: Math.round((b.heap - a.heap) / added),
      // From the process's start (one-time growth included).
      idleRssFromStartBytesPerConn: Math.round((b.rss - s.mem.rss) / n),
      // RSS a second warm-up of the young generation added (idle-child.ts): near 0 when the first had made it resident.
      idleWarmupResidualBytes: s.warmupResidualBytes,
    };
  } finally {
    await c.closeAll().catch(() => undefined);
    // Its figures are in: killed, not asked (bounded either way).
    await child.stop();
  }
}

// ---- the floor: a plain net server writing the same bytes -------------------------------------

function floorRound(revision: number): Buffer {
  const e = change();
  const delta = encodeDelta(0, revision - 1, revision, [[e.key, e.value]], [], 'none', HWM, 1_024);
  const status = encodeMessage({ type: 'status', feedId: 0, revision, status: 'in-sync', stale: false, watermarks: { pods: String(revision) }, token: Buffer.alloc(40), digest: Buffer.alloc(32) });
  return Buffer.concat([...delta, status]);
}

// ---- cold start ------------------------------------------------------------------------------

/** The snapshot a Cattail server sends for the cold-start feed (deflate, its default chunk size), for the floor. */
function coldSnapshotFrames(): Buffer[] {
  // In key order, as the store streams them (the same chunks, so the same compressed bytes).
  const es = entries.slice(0, COLD_ENTRIES).map((e) => [e.key, e.value] as [string, Buffer]).sort((a, b) => Buffer.compare(Buffer.from(a[0]), Buffer.from(b[0])));
  const frames = [encodeMessage({ type: 'snapshotBegin', feedId: 0, revision: 1, entries: es.length, rawBytes: 0 }, 'deflate', 1_024)];
  let chunk: [string, Buffer][] = [];
  let bytes = 16;
  for (const e of es) {
    const b = entryBytes(e);
    if (chunk.length > 0 && bytes + b > DEFAULT_SNAPSHOT_CHUNK_BYTES) {
      frames.push(encodeChunk(0, 1, chunk, 'deflate', 1_024));
      chunk = [];
      bytes = 16;
    }
    chunk.push(e);
    bytes += b;
  }
  if (chunk.length > 0) frames.push(encodeChunk(0, 1, chunk, 'deflate', 1_024));
  frames.push(encodeMessage({ type: 'snapshotEnd', feedId: 0, revision: 1, digest: Buffer.alloc(32), watermarks: { pods: '1' }, status: 'in-sync', stale: false, token: Buffer.alloc(40) }, 'deflate', 1_024));
  return frames;
}

async function coldStart(c: Clients, target: Target, frames: Buffer[]): Promise<Rec> {
  let close: () => Promise<void>;
  let port: number;
  let rev = 1;
  let built: () => number = () => 0;
  if (target === 'wsplain') {
    // The same messages, unframed: ws.send frames them itself.
    const payloads: Buffer[] = [];
    for (const f of frames) forEachFrame(f, (p) => payloads.push(p));
    const srv = await plainWsServer((ws) => sendPaced(ws, payloads, HWM));
    close = srv.close;
    port = srv.port;
  } else if (target === 'net' || target === 'wsraw') {
    const send = (s: Socket): void => {
      // Same rule as the fan-out: write while under the high-water mark, resume on drain.
      let next = 0;
      const pump = (): void => {
        while (next < frames.length && s.writableLength <= HWM) s.write(frames[next++] as Buffer);
      };
      s.on('drain', pump);
      pump();
    };
    // The frames are whole WebSocket frames already (server frames are unmasked): after its own
    // 101, wsraw writes exactly what the net floor writes.
    const srv = target === 'net' ? await netServer(send) : await rawWsServer(send);
    close = srv.close;
    port = srv.port;
  } else {
    const t = await cattail(target, 5, COLD_ENTRIES);
    close = () => t.server.close();
    port = t.port;
    rev = t.server.stores.get('felix')?.revision ?? 1;
    built = () => t.server.snapshotStats().built;
  }
  const loop = monitorEventLoopDelay({ resolution: 2 });
  // The same delays split into the main thread's own run time and its wait for the core (src/bench/loop-stalls.ts).
  const stalls = new LoopStallMonitor(2, 50);
  let rssTimer: NodeJS.Timeout | undefined;
  try {
    // Every target starts from a collected heap: what the previous target (or the store's load of
    // the feed) left is not collected during this one's measurement.
    gc?.();
    gc?.();
    await sleep(200);
    let rssPeak = 0;
    rssTimer = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 100);
    loop.enable();
    stalls.start();
    const cpu0 = process.cpuUsage();
    const ru0 = process.resourceUsage();
    const main0 = mainCpuS();
    const tcp0 = readTcpCounters();
    const t0 = nowMs();
    await c.connect(port, COLD_CLIENTS, target === 'net' ? 'raw' : 'ws', 0);
    const last = await c.reach(rev, undefined, 120_000);
    const split = process.cpuUsage(cpu0);
    const mainCpu = mainCpuS() - main0;
    const ru = process.resourceUsage();
    const cpu = (split.user + split.system) / 1e6;
    const tcp = tcpCountersSince(tcp0, readTcpCounters());
    windows.push({ side: 'cold', target, n: COLD_CLIENTS, t0: t0 * 1000, t1: nowMs() * 1000, deliveries: COLD_CLIENTS, changes: 0 });
    loop.disable();
    const st = stalls.stop();
    clearInterval(rssTimer);
    const cl = await c.closeAll();
    return {
      coldLastClientMs: Math.round(last - t0), coldLoopDelayMaxMs: +(loop.max / 1e6).toFixed(1), coldLoopDelayP99Ms: +(loop.percentile(99) / 1e6).toFixed(1),
      coldServerCpuS: +cpu.toFixed(2), coldMainThreadCpuS: +mainCpu.toFixed(2), coldMinorFaults: ru.minorPageFault - ru0.minorPageFault, coldVoluntarySwitches: ru.voluntaryContextSwitches - ru0.voluntaryContextSwitches, coldInvoluntarySwitches: ru.involuntaryContextSwitches - ru0.involuntaryContextSwitches, coldServerUserS: +(split.user / 1e6).toFixed(2), coldServerSysS: +(split.system / 1e6).toFixed(2), coldSnapshotBuilds: built(),
      ...(st === undefined ? {} : { coldStallMaxGapMs: +st.maxGapMs.toFixed(1), coldStallMaxGapRunMs: +st.maxGapRunMs.toFixed(1), coldStallMaxGapWaitMs: +st.maxGapWaitMs.toFixed(1), coldStallMaxRunMs: +st.maxRunMs.toFixed(1), coldStallRunsOver50: st.runsOver, coldStallGapsOver50: st.gapsOver }),
      coldRssPeakMB: Math.round(rssPeak / 1e6), clientBytesTotal: cl['bytes'],
      ...(tcp === undefined ? {} : Object.fromEntries(Object.entries(tcp).map(([k, n]) => [`coldTcp_${k}`, n]))),
    };
  } finally {
    // Also when a step failed: the timers would otherwise tick through every later cold start.
    loop.disable();
    stalls.stop();
    clearInterval(rssTimer);
    await close();
  }
}

// ---- statistics and output -------------------------------------------------------------------

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

const runs: (RunRec & { target: Target })[] = [];
const errors: string[] = [];

/** `scenario`: its name, or (the floor's paired measurements, `main:<target>`) a pattern. */
function valuesOf(n: number, target: Target, scenario: string | RegExp, key: string): number[] {
  return runs.filter((r) => r.n === n && r.target === target && (typeof scenario === 'string' ? r.scenario === scenario : scenario.test(r.scenario))).map((r) => r.values[key]).filter((v): v is number => typeof v === 'number');
}

/** Per-run ratios target/floor of one metric (same run only), then median and spread. */
function ratios(n: number, target: Target, scenario: string, key: string, floorScenario = scenario, floor: Target = 'net'): number[] {
  return runRatios(runs, n, target, scenario, key, floorScenario, floor);
}

const fmt = (xs: number[], digits = 2): string => (xs.length === 0 ? '–' : `${median(xs).toFixed(digits)} [${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)}]`);

async function main(): Promise<void> {
  pin(process.pid, 0);
  const c = new Clients();
  await c.wait('ready');
  if (c.child.pid !== undefined && pinned) pin(c.child.pid, 1);
  const known: Target[] = ['net', 'wsplain', 'wsraw', 'ws', ...(uwsAvailable() ? (['uws'] as const) : [])];
  const only = arg('targets', '').split(',').filter((t) => t !== '');
  const unknown = only.filter((t) => !known.includes(t as Target));
  // A typo (or uws where it does not load) would run nothing and still overwrite the results.
  if (unknown.length > 0) throw new Error(`bench: --targets ${unknown.join(',')}: not a target here (known: ${known.join(', ')})`);
  // The cold start runs every selected target; the plain `ws` server runs in the cold start and,
  // last, for idle memory (the WebSocket library's own share), never in the other scenarios.
  const coldTargets = known.filter((t) => only.length === 0 || only.includes(t));
  const targets = coldTargets.filter((t): t is MainTarget => t !== 'wsplain' && t !== 'wsraw');
  // The floor's lock-step and burst run only paired with a Cattail target (pairedSession).
  if (!IDLE_ONLY && !COLD_ONLY && !targets.some(isCattail)) throw new Error('bench: --targets without ws or uws measures no lock-step or burst (the floor runs paired with a Cattail target); add one, or pass --idle-only or --cold-only');
  const idleTargets: (MainTarget | 'wsplain')[] = [...targets, ...coldTargets.filter((t): t is 'wsplain' => t === 'wsplain')];
  const frames = coldSnapshotFrames();
  const loadBefore = loadavg().map((x) => +x.toFixed(2));
  try {
    outer: for (let run = 0; run < RUNS; run++) {
      for (const n of COLD_ONLY ? [] : COUNTS) {
        for (const target of idleTargets) {
          if (Date.now() - started > TOTAL_DEADLINE_MS) break outer;
          console.error(`fanout bench: run ${run + 1}/${RUNS}, N=${n}, ${target} ...`);
          try {
            // The floor's lock-step and burst are measured in each Cattail target's session (paired).
            if (!IDLE_ONLY && isCattail(target)) {
              const paired = await pairedSession(c, target, n);
              runs.push({ run, n, target, scenario: 'main', values: paired.cattail });
              runs.push({ run, n, target: 'net', scenario: `main:${target}`, values: paired.floor });
              runs.push({ run, n, target, scenario: 'coalesced', values: await cattailCoalesced(c, target, n) });
            }
            if (!BURST_ONLY) runs.push({ run, n, target, scenario: 'idle', values: await idleMemory(c, target, n) });
          } catch (err) {
            errors.push(`run ${run} N=${n} ${target}: ${(err as Error).message}`);
            await c.closeAll().catch(() => undefined);
          }
        }
      }
      for (const [slot, target] of (IDLE_ONLY || BURST_ONLY ? [] : coldOrder(coldTargets, run)).entries()) {
        if (Date.now() - started > TOTAL_DEADLINE_MS) break outer;
        console.error(`fanout bench: run ${run + 1}/${RUNS}, cold start ${COLD_CLIENTS} × ${COLD_ENTRIES} entries, ${target} (${slot + 1}) ...`);
        try {
          runs.push({ run, n: COLD_CLIENTS, target, scenario: 'cold', values: { ...(await coldStart(c, target, frames)), coldSlot: slot } });
        } catch (err) {
          errors.push(`run ${run} cold ${target}: ${(err as Error).message}`);
          await c.closeAll().catch(() => undefined);
        }
      }
    }
  } finally {
    c.send({ cmd: 'exit' });
  }
  write(idleTargets, coldTargets, loadBefore);
  // A bench entry point: end even if a library left a handle open (its absence is what tests check).
  process.exit(0);
}

/** `rowTargets`: the per-N table's rows (every target but the plain `ws` server has every column). */
function write(rowTargets: Target[], coldTargets: Target[], loadBefore: number[]): void {
  const meta = {
    node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model, date: new Date().toISOString(), quick: QUICK, runs: RUNS,
    pinned: pinned ? 'server+orchestrator on CPU 0, load client on CPU 1 (taskset)' : 'not pinned (no taskset)', gcExposed: gc !== undefined,
    loadAverageBefore: loadBefore, loadAverageAfter: loadavg().map((x) => +x.toFixed(2)), wallS: Math.round((Date.now() - started) / 1000), errors,
  };
  const rows: string[] = [];
  const summary: Record<string, unknown>[] = [];
  for (const n of COLD_ONLY ? [] : COUNTS) {
    for (const t of rowTargets) {
      // The floor's row: its measurements in every Cattail target's paired session.
      const main = t === 'net' ? /^main:/ : 'main';
      const row = {
        n, target: t,
        cpuUsPerDelivery: valuesOf(n, t, main, 'burstCpuUsPerDelivery'), mainThreadUsPerDelivery: valuesOf(n, t, main, 'burstMainThreadCpuUsPerDelivery'), cpuVsFloor: !isCattail(t) ? [] : ratios(n, t, 'main', 'burstCpuUsPerDelivery', `main:${t}`),
        lockstepP50Ms: valuesOf(n, t, main, 'lockstepLastClientP50Ms'), writtenP50Ms: valuesOf(n, t, main, 'lockstepWrittenP50Ms'), latencyVsFloor: !isCattail(t) ? [] : ratios(n, t, 'main', 'lockstepLastClientP50Ms', `main:${t}`),
        idleRssBytesPerConn: valuesOf(n, t, 'idle', 'idleRssBytesPerConn'), idleHeapBytesPerConn: valuesOf(n, t, 'idle', 'idleHeapBytesPerConn'),
        idleRssFromStartBytesPerConn: valuesOf(n, t, 'idle', 'idleRssFromStartBytesPerConn'), idleWarmupResidualBytes: valuesOf(n, t, 'idle', 'idleWarmupResidualBytes'),
        coalescedCpuUsPerChange: valuesOf(n, t, 'coalesced', 'coalescedCpuUsPerDeliveredChange'), coalescedFlushes: valuesOf(n, t, 'coalesced', 'coalescedFlushes'),
        writesPerClientPerFlush: valuesOf(n, t, 'main', 'burstWritesPerClientPerFlush'),
        floorPairedVsAlone: t === 'net' ? valuesOf(n, t, main, 'pairedVsAlone') : [],
        fullClientsOk: runs.filter((r) => r.n === n && r.target === t && r.scenario === 'main').map((r) => r.values['fullClientsOk']),
      };
      summary.push(row);
      rows.push(`| ${n} | ${t} | ${fmt(row.cpuUsPerDelivery)} | ${fmt(row.mainThreadUsPerDelivery)} | ${fmt(row.cpuVsFloor)} | ${fmt(row.lockstepP50Ms, 1)} | ${fmt(row.writtenP50Ms, 1)} | ${fmt(row.latencyVsFloor)} | ${fmt(row.idleRssBytesPerConn.map((b) => b / 1024), 1)} | ${fmt(row.idleHeapBytesPerConn.map((b) => b / 1024), 1)} | ${fmt(row.idleRssFromStartBytesPerConn.map((b) => b / 1024), 1)} | ${fmt(row.coalescedCpuUsPerChange)} | ${fmt(row.writesPerClientPerFlush, 3)} | ${fmt(row.floorPairedVsAlone)} | ${!isCattail(t) || row.fullClientsOk.length === 0 ? '–' : row.fullClientsOk.every((x) => x === true) ? `ok (${row.fullClientsOk.length})` : 'FAILED'} |`);
    }
  }
  const coldRows: string[] = [];
  for (const t of coldTargets) {
    const v = (k: string): number[] => valuesOf(COLD_CLIENTS, t, 'cold', k);
    const row = { target: t, lastClientMs: v('coldLastClientMs'), loopDelayMaxMs: v('coldLoopDelayMaxMs'), loopDelayP99Ms: v('coldLoopDelayP99Ms'), stallGapMs: v('coldStallMaxGapMs'), stallRunMs: v('coldStallMaxGapRunMs'), stallWaitMs: v('coldStallMaxGapWaitMs'), maxRunMs: v('coldStallMaxRunMs'), runsOver: v('coldStallRunsOver50'), serverCpuS: v('coldServerCpuS'), mainS: v('coldMainThreadCpuS'), userS: v('coldServerUserS'), sysS: v('coldServerSysS'), cpuVsFloor: t === 'net' ? [] : coldRatios(runs, t, 'coldServerCpuS'), cpuVsPlainWs: isCattail(t) ? ratios(COLD_CLIENTS, t, 'cold', 'coldServerCpuS', 'cold', 'wsplain') : [], builds: v('coldSnapshotBuilds'), tcpPressures: v('coldTcp_TCPMemoryPressures'), tcpLossProbes: v('coldTcp_TCPLossProbes'), tcpTimeouts: v('coldTcp_TCPTimeouts'), rssPeakMB: v('coldRssPeakMB'), clientMBPerConn: v('clientBytesTotal').map((b) => b / COLD_CLIENTS / 1e6) };
    summary.push({ scenario: 'cold', ...row });
    coldRows.push(`| ${t} | ${fmt(row.lastClientMs, 0)} | ${fmt(row.loopDelayMaxMs, 1)} | ${fmt(row.loopDelayP99Ms, 1)} | ${fmt(row.stallGapMs, 1)} | ${fmt(row.stallRunMs, 1)} | ${fmt(row.stallWaitMs, 1)} | ${fmt(row.maxRunMs, 1)} | ${fmt(row.runsOver, 0)} | ${fmt(row.serverCpuS)} | ${fmt(row.mainS)} | ${fmt(row.userS)} | ${fmt(row.sysS)} | ${fmt(row.cpuVsFloor)} | ${fmt(row.cpuVsPlainWs)} | ${isCattail(t) ? fmt(row.builds, 0) : '–'} | ${fmt(row.tcpPressures, 0)} | ${fmt(row.tcpLossProbes, 0)} | ${fmt(row.tcpTimeouts, 0)} | ${fmt(row.rssPeakMB, 0)} | ${fmt(row.clientMBPerConn, 2)} |`);
  }
  writeFileSync(`${OUT}.json`, JSON.stringify({ meta, summary, runs }, null, 2) + '\n');
  const warmupLeft = runs.filter((r) => r.scenario === 'idle' && typeof r.values['idleWarmupResidualBytes'] === 'number' && r.values['idleWarmupResidualBytes'] > 1_048_576).length;
  const md = [
    `# Fan-out reference measurement (bench/fanout.ts${QUICK ? ' --quick' : ''})`,
    '',
    `Node ${meta.node}, ${meta.cpus} vCPU (${meta.cpuModel ?? '?'}), ${meta.date}; ${meta.pinned}; ${RUNS} run(s), ${meta.wallS} s; load average ${loadBefore.join('/')} before, ${meta.loadAverageAfter.join('/')} after.${errors.length ? ` Errors: ${errors.join('; ')}.` : ''}`,
    '',
    'Cells: median [min–max] over the runs. "vs floor" is the per-run ratio to the plain `net` server writing the same bytes to the same number of sockets in the same run, then its median: compare those, not absolute times (±35 % between runs on this machine).',
    '',
    '`net` = plain Node `net` server writing one pre-framed DELTA+STATUS buffer per socket per change (the floor). `ws` / `uws` = Cattail with that transport. `wsplain` (idle memory and the cold start) = a plain `ws` server holding the same connections: the WebSocket library\'s own share. A feed of 1,000 WorkloadEndpoint-like values (~500 B); one change = one changed value. Paired: each Cattail target\'s session holds the floor\'s N sockets and its own N at once (both servers in this process) and measures the two in alternation, so a ratio spans seconds, not the tens of seconds between sessions. CPU/delivery: bursts at flushWindowMs 0 (one flush per change, one loop turn per change) in ' + String(PAIRED_BLOCKS) + ' blocks per side in ABBA order, server CPU from a block\'s first change to its last client\'s receipt, summed per side and divided by changes × clients (with a Cattail target: its 3 full clients too); "of it main thread" is the same for the server\'s main thread alone (Linux schedstat; the rest is V8\'s and libuv\'s other threads, such as concurrent GC). Lock-step: push one change, time until the last client has it (p50; floor and Cattail rounds alternate, each first in every other round), and of it the time until the server had handed the change to every socket (the floor: its write loop\'s end; Cattail: the first loop turn after its flush); the rest is the load client reading. Floor CPU paired ÷ alone (the control): the floor\'s CPU per delivery in its blocks alternated with Cattail, over its CPU in ' + String(CONTROL_BLOCKS) + ' blocks before Cattail\'s sockets connect and ' + String(CONTROL_BLOCKS) + ' after its server closed: what sharing the process with Cattail\'s connections costs the floor (above 1: the ratios to the floor flatter Cattail by that much). Idle memory: what one more idle connection holds, after GC, each target in a fresh process of its own (bench/idle-child.ts; Cattail with a 10-entry feed, so the snapshot sends leave no allocator pages behind): RSS (and JS heap + external) growth per connection from a first step of the connections (a fifth, and at least 500: one batch of upgrades) to all of them, V8\'s young generation fixed at 16 MiB semi-spaces and touched before the first reading (left to itself V8 grows it to tens of MiB, sized from the heap limit: a one-time cost, not a per-connection one); "from start" is the RSS growth from before the first connection, one-time growth included. Coalesced: the same burst at the default flushWindowMs (5 ms), CPU per delivered change. Full clients: 3 library clients per Cattail run ended at the last revision, in sync, with no digest mismatch, gap or protocol error.',
    '',
    ...(COLD_ONLY ? ['(--cold-only: the cold start alone.)'] : [
      '| clients | target | CPU µs/delivery | of it main thread | vs floor | lock-step last client p50 ms | of it until the server had written to every socket | vs floor | idle RSS KB/conn | idle heap KB/conn | idle RSS from start KB/conn | coalesced CPU µs/change | writes/client/flush | floor CPU paired ÷ alone | full clients |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
      ...rows,
      ...(warmupLeft > 0 ? ['', `In ${warmupLeft} idle measurement(s) a second warm-up of the young generation still added more than 1 MiB of RSS: the first had not made it all resident, and the "from start" figure there includes the rest.`] : []),
    ]),
    '',
    ...(BURST_ONLY ? ['(--burst-only: no idle memory, no cold start.)'] : [
      `Cold start: ${COLD_CLIENTS} clients connecting at once to a ${COLD_ENTRIES.toLocaleString('en')}-entry feed (deflate). Server CPU covers the whole cold start (accepts, handshakes, snapshot build and sends); the floor writes the same snapshot frames (the same chunks, in key order) with the same 1 MiB high-water mark, and runs before and after every other target (floor, a, floor, b, …, floor; the others' order rotated per run): "vs floor" divides by the mean of the two floor cold starts around it. \`wsplain\` is a second floor: a plain \`ws\` server that answers the upgrade, waits for the HELLO (unread) and sends the same messages with \`ws.send\` under the same high-water mark; "vs plain ws" is Cattail's own share (HELLO, store, snapshot build, pacing) beyond the WebSocket protocol's. \`wsraw\` is a third: the bare upgrade on Node's HTTP server (its own 101, no WebSocket library) and then the \`net\` floor's writes of the same frames, what an own WebSocket transport could get down to. The TCP columns are the kernel's counters over the same window (this network namespace, both processes): loss probes and retransmission timeouts fire when the one-core load client reads slower than the server writes, memory pressure when the sockets' buffers pass \`net.ipv4.tcp_mem\`; that recovery work is charged to the server's system time, so a run's CPU ratio moves with them (docs/transport.md). The loop-delay columns after the p99 split the delay: a timer ticking every 2 ms reads the main thread's run time and run-queue wait (Linux schedstat, up to date to the scheduler tick, so a few ms either way) at each tick; for its worst delay, how much of the time between those two ticks the main thread ran (its own work, user or kernel) and how much it waited for the core (behind V8's own threads, which the pinning puts on the same core, or other jobs); then the most run time between any two ticks (the longest stretch of the process's own work, to the tick's resolution) and how many times that was over 50 ms (src/bench/loop-stalls.ts). The floor's row has every floor cold start of every run (it runs before and after each other target).`,
      '',
      '| target | last client ms | loop delay max ms | loop delay p99 ms | worst delay between two 2 ms ticks ms | of it: main thread on CPU ms | of it: waiting for the core ms | most main-thread CPU between two ticks ms | times over 50 ms on CPU | server CPU s | of it main thread s | of it user s | of it system s | vs floor | vs plain ws | snapshot builds | TCP memory pressure events | TCP loss probes | TCP retransmission timeouts | RSS peak MB | MB per client |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
      ...coldRows,
    ]),
    '',
  ].join('\n');
  writeFileSync(`${OUT}.md`, md);
  console.error(md);
}

await main();
