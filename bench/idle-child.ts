/**
 * One target of the fan-out benchmark's idle-memory measurement, in a process of its own (forked
 * by bench/fanout.ts, pinned to the server's core): it starts the target (the `net` floor, a plain
 * `ws` server, or Cattail over `ws` or uWS with a 10-entry feed), reports its memory after GC, and again when told
 * that the clients are connected and idle.
 *
 * Why a fresh process: measured inside the benchmark's long-lived process, RSS after GC with 1,000
 * or 5,000 idle connections came out below the baseline as often as above it (-7 to +1.9 KB per
 * connection): the allocator handed back pages the previous scenario had freed, which swamped the
 * connections' own memory. A fresh process has freed only its own start-up and the parent's first
 * step of connections (bench/fanout.ts idleMemory), so its RSS growth is what the connections
 * hold, native memory included (uWS keeps its sockets outside the JS heap, where only RSS sees
 * them); the allocator can still reuse the first step's freed peak, which is why a small second
 * step (the 1,000 row) can come out below its heap growth.
 *
 * Answers IPC commands only; the parent kills it once it has the figures (src/bench/child.ts
 * `stop`), and a lost parent closes everything, which ends it (no exit call).
 */
import type { Socket } from 'node:net';
import { getHeapSpaceStatistics } from 'node:v8';
import { netServer } from '../src/bench/floor.js';
import { plainWsServer } from '../src/bench/ws-floor.js';
import { startCattailTarget } from './cattail-target.js';
import { workloadEndpoint } from './workload.js';
import { seededRandom } from '../src/random.js';

export type IdleTarget = 'net' | 'wsplain' | 'ws' | 'uws';
export type IdleCmd = { cmd: 'start'; target: IdleTarget } | { cmd: 'measure'; connections: number };
export interface IdleMem {
  readonly rss: number;
  /** JS heap used + external (Buffers). */
  readonly heap: number;
}
export type IdleEvent = { ev: 'started'; port: number; revision: number; mem: IdleMem; warmupResidualBytes: number } | { ev: 'measured'; mem: IdleMem; sockets: number };

const gc = (globalThis as { gc?: () => void }).gc;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const send = (m: IdleEvent): void => void process.send?.(m);

/** Memory after two full collections and a pause (V8 frees external memory after the GC's callbacks). */
async function settled(): Promise<IdleMem> {
  gc?.();
  gc?.();
  await sleep(200);
  gc?.();
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed + m.external };
}

/**
 * Allocates short-lived garbage several times the young generation's size, so that every page of
 * it is resident before the first measurement (it is fixed in size by the parent's flags, but its
 * pages count in RSS only once touched). Objects that outlive a collection are promoted to the old
 * generation, so this cannot hide what a connection keeps.
 */
function warmYoungGeneration(): void {
  let young = 0;
  for (const sp of getHeapSpaceStatistics()) if (sp.space_name === 'new_space') young = sp.space_size;
  let sink = 0;
  for (let bytes = 0; bytes < 4 * Math.max(young, 16 << 20); bytes += 1_024) sink += new Array<number>(120).fill(1).length;
  if (sink === 0) throw new Error('unreachable');
}

let close: () => Promise<void> = async () => undefined;
let sockets: () => number = () => 0;

async function start(target: IdleTarget): Promise<void> {
  let port: number;
  let revision = 0;
  if (target === 'net') {
    const srv = await netServer((s: Socket) => void s);
    close = srv.close;
    port = srv.port;
    sockets = () => srv.sockets.length;
  } else if (target === 'wsplain') {
    // The WebSocket library alone: upgrades, then holds the connections (the HELLO is not read).
    const srv = await plainWsServer(() => undefined);
    close = srv.close;
    port = srv.port;
    sockets = () => srv.connections();
  } else {
    const rand = seededRandom(14);
    const t = await startCattailTarget(target, 5, Array.from({ length: 10 }, (_, i) => workloadEndpoint(i, rand)));
    const { server } = t;
    // The pushed batch is applied on the next turns: wait for its revision (bounded), so that the
    // parent waits for the clients' snapshots, not for revision 0 (which every client has at once).
    const until = Date.now() + 10_000;
    while ((server.stores.get('felix')?.revision ?? 0) === 0 && Date.now() < until) await sleep(10);
    close = () => server.close();
    port = t.port;
    revision = server.stores.get('felix')?.revision ?? 0;
    if (revision === 0) throw new Error('bench: idle child: the feed never got its entries');
    sockets = () => server.connectionCount();
  }
  // Twice: what the second adds to RSS says whether the first made the young generation resident.
  warmYoungGeneration();
  const once = await settled();
  warmYoungGeneration();
  const mem = await settled();
  send({ ev: 'started', port, revision, mem, warmupResidualBytes: mem.rss - once.rss });
}

process.on('message', (m: IdleCmd) => {
  switch (m.cmd) {
    case 'start':
      void start(m.target);
      return;
    case 'measure':
      void (async () => {
        // The clients' side connects before this side has accepted (and upgraded) them all: wait, bounded.
        const until = Date.now() + 10_000;
        while (sockets() < m.connections && Date.now() < until) await sleep(20);
        send({ ev: 'measured', mem: await settled(), sockets: sockets() });
      })();
  }
});
process.on('disconnect', () => void close());
