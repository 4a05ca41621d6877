/**
 * The plain-TCP floor as a process of its own (forked by `cattail bench`, pinned to the replicas'
 * core): it accepts raw sockets and, on command, writes one pre-framed change to every socket at a
 * given rate, recording when each write began (CLOCK_MONOTONIC, comparable with the clients'
 * receipt times) and its own CPU from the first write until the kernel took the last byte.
 * Answers commands over IPC only; ends (by closing everything, no exit call) on `exit` or a lost parent.
 */
import type { Socket } from 'node:net';
import { floorFrame, netServer, type NetServer } from './floor.js';

export type FloorCmd =
  | { cmd: 'listen'; host: string }
  | { cmd: 'run'; sockets: number; changes: number; ratePerSec: number; frameBytes: number }
  | { cmd: 'exit' };

export type FloorEvent =
  | { ev: 'listening'; port: number }
  | { ev: 'ran'; writes: [number, number][]; cpuS: number; sockets: number; frameBytes: number };

const send = (m: FloorEvent): void => void process.send?.(m);
const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);
const cpuS = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
let server: NetServer | undefined;

/** Resolves once every socket's user-space buffer is empty (the kernel holds or sent the rest). */
async function drained(sockets: readonly Socket[]): Promise<void> {
  await Promise.all(sockets.map((s) => (s.writableLength === 0 || s.destroyed ? undefined : new Promise<void>((r) => s.once('drain', () => r())))));
}

async function run(m: Extract<FloorCmd, { cmd: 'run' }>): Promise<void> {
  const sockets = server?.sockets ?? [];
  // The clients' connect() resolves before this side's accept: wait for all of them (bounded).
  const until = Date.now() + 30_000;
  while (sockets.length < m.sockets && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
  const writes: [number, number][] = [];
  const gapMs = 1000 / m.ratePerSec;
  const cpu0 = cpuS();
  let next = Date.now();
  let frameBytes = 0;
  for (let rev = 1; rev <= m.changes; rev++) {
    // Built before the clock starts: Cattail encodes a change once too, before its fan-out.
    const buf = floorFrame(rev, m.frameBytes);
    frameBytes = buf.length;
    writes.push([rev, nowUs()]);
    for (const s of sockets) s.write(buf);
    next += gapMs;
    await new Promise((r) => setTimeout(r, Math.max(0, next - Date.now())));
  }
  await drained(sockets);
  send({ ev: 'ran', writes, cpuS: cpuS() - cpu0, sockets: sockets.length, frameBytes });
}

process.on('message', (m: FloorCmd) => {
  switch (m.cmd) {
    case 'listen':
      void netServer(() => undefined, m.host).then((s) => {
        server = s;
        send({ ev: 'listening', port: s.port });
      });
      return;
    case 'run':
      void run(m);
      return;
    case 'exit':
      void server?.close();
      process.disconnect();
  }
});
// Without the parent, nothing is left to do: closing the server lets the process end.
process.on('disconnect', () => void server?.close());
