/**
 * The raw-socket load client of bench/fanout.ts and of `cattail bench`'s plain-TCP floor, in its own process (pinned to its own core when taskset
 * exists, so client CPU is never server CPU): N raw TCP sockets that do the WebSocket upgrade by
 * hand and send a real HELLO ('ws' mode), or just connect ('raw' mode, for the plain `net` floor),
 * then only read frame headers (WebSocket header + the 28-byte Cattail header) to count frames and
 * note when each socket reaches a revision. Bodies are skipped unread. A few full clients (the
 * real client library, which checks every frame and the store digest) verify content.
 *
 * Every wait is bounded by the orchestrator's deadlines; this process only answers commands, and
 * ends (no exit call) once its parent disconnects.
 */
import { connect, type Socket } from 'node:net';
import { encodeFrame } from '../../proto/index.js';
import { connect as connectClient, type Client } from '../client/index.js';

interface ClientState {
  sock: Socket;
  /** Sent once the 101 arrives: RFC 6455 §4.1 has the client wait for the handshake response (uWS enforces it). */
  hello: Buffer | undefined;
  upgraded: boolean;
  http: string;
  hdr: Buffer;
  have: number;
  skip: number;
  revision: number;
  /** Which server's sockets these are (bench/fanout.ts measures a target and the floor side by side). */
  group: number;
}

export type ClientCmd =
  /** `group`: a label for these sockets (default 0), so that `target` can wait for one server's alone. */
  | { cmd: 'connect'; host: string; port: number; n: number; mode: 'ws' | 'raw'; caps: string[]; feed: string; concurrency: number; group?: number }
  /** Answers `reached` once every socket (of `group`, when given) has `revision`. */
  | { cmd: 'target'; revision: number; group?: number }
  | { cmd: 'full'; url: string; n: number; feed: string }
  | { cmd: 'fullReport'; feed: string }
  | { cmd: 'closeAll' }
  /** Start (or restart) recording, per revision, how many sockets reached it and the first and last receipt. */
  | { cmd: 'trackArrivals' }
  /** Answers `arrivals`: revision → [sockets, first ms, last ms] (CLOCK_MONOTONIC, comparable across processes). */
  | { cmd: 'arrivals' }
  | { cmd: 'exit' };

const clients: ClientState[] = [];
const full: Client[] = [];
let target = Infinity;
/** The group `target` is for; undefined: every socket. */
let targetGroup: number | undefined;
/** Sockets `target` waits for (of targetGroup, or all). */
let targetSockets = 0;
let atTarget = 0;
let lastCrossMs = 0;
let frames = 0;
let bytes = 0;
let arrivals: Map<number, [number, number, number]> | undefined;
const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;
const send = (m: Record<string, unknown>): void => void process.send?.(m);

function maskedFrame(payload: Buffer): Buffer {
  // Client frames must be masked (RFC 6455 §5.3); an all-zero key keeps the payload as is.
  const n = payload.length;
  const hl = n < 126 ? 2 : 4;
  const out = Buffer.alloc(hl + 4 + n);
  out[0] = 0x82;
  if (hl === 2) out[1] = 0x80 | n;
  else {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(n, 2);
  }
  payload.copy(out, hl + 4);
  return out;
}

function onRevision(c: ClientState, rev: number): void {
  if (rev <= c.revision) return;
  const was = c.revision;
  c.revision = rev;
  if (arrivals !== undefined) {
    const t = nowMs();
    const a = arrivals.get(rev);
    if (a === undefined) arrivals.set(rev, [1, t, t]);
    else {
      a[0]++;
      a[2] = t;
    }
  }
  if (was < target && rev >= target && (targetGroup === undefined || c.group === targetGroup)) {
    lastCrossMs = nowMs();
    if (++atTarget === targetSockets) send({ ev: 'reached', revision: target, lastMs: lastCrossMs });
  }
}

/**
 * Every socket reads into this one buffer (net's `onread`), and onData is done with it before the
 * next read: Node would otherwise allocate 64 KiB per read, and reading a cold start's 4.6 GB that
 * way kept this process in full GCs every ~40 ms (external memory), reading slower than the
 * server wrote; the kernel then spent the difference on loss recovery, on the server's account.
 */
const READ_BUFFER = Buffer.allocUnsafe(65_536);

/** Reads WebSocket + Cattail headers from the stream (`chunk`'s first `length` bytes); skips bodies. */
function onData(c: ClientState, chunk: Buffer, length: number): void {
  bytes += length;
  let off = 0;
  if (!c.upgraded) {
    c.http += chunk.toString('latin1', 0, length);
    const end = c.http.indexOf('\r\n\r\n');
    if (end < 0) return;
    if (!c.http.startsWith('HTTP/1.1 101')) {
      send({ ev: 'refused', status: c.http.split('\r\n')[0] });
      c.sock.destroy();
      return;
    }
    off = length - (c.http.length - end - 4);
    c.upgraded = true;
    if (c.hello !== undefined) c.sock.write(c.hello);
  }
  while (off < length) {
    if (c.skip > 0) {
      const n = Math.min(c.skip, length - off);
      off += n;
      c.skip -= n;
      continue;
    }
    // Collect the WebSocket header, then up to 28 bytes of the Cattail header.
    c.hdr[c.have++] = chunk[off++] as number;
    if (c.have < 2) continue;
    const l7 = (c.hdr[1] as number) & 0x7f;
    const wsh = l7 < 126 ? 2 : l7 === 126 ? 4 : 10;
    if (c.have < wsh) continue;
    const len = wsh === 2 ? l7 : wsh === 4 ? c.hdr.readUInt16BE(2) : c.hdr.readUInt32BE(2) * 2 ** 32 + c.hdr.readUInt32BE(6);
    // A continuation frame (opcode 0: the rest of a message uWS sent in fragments) carries no
    // Cattail header: skip it whole. A message's first fragment starts with the header as usual.
    if (((c.hdr[0] as number) & 0x0f) === 0) {
      c.skip = len;
      c.have = 0;
      continue;
    }
    const want = Math.min(28, len);
    if (c.have < wsh + want) continue;
    frames++;
    if (want === 28) {
      const type = c.hdr[wsh + 1];
      const flags = c.hdr[wsh + 2] as number;
      const to = c.hdr.readUInt32BE(wsh + 16) * 2 ** 32 + c.hdr.readUInt32BE(wsh + 20);
      // DELTA (0x06) or SNAPSHOT_END (0x05) without MORE completes a revision.
      if ((type === 0x06 || type === 0x05) && (flags & 0x02) === 0) onRevision(c, to);
    }
    c.skip = len - want;
    c.have = 0;
  }
}

function openOne(m: Extract<ClientCmd, { cmd: 'connect' }>, req: string, hello: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({
      host: m.host, port: m.port, noDelay: true,
      onread: { buffer: READ_BUFFER, callback: (n: number, buf: Uint8Array): boolean => { onData(c, buf as Buffer, n); return true; } },
    });
    const c: ClientState = { sock, hello: m.mode === 'ws' ? hello : undefined, upgraded: m.mode === 'raw', http: '', hdr: Buffer.alloc(40), have: 0, skip: 0, revision: 0, group: m.group ?? 0 };
    sock.on('connect', () => {
      if (m.mode === 'ws') sock.write(req);
      clients.push(c);
      resolve(true);
    });
    sock.on('error', () => resolve(false));
  });
}

async function connectAll(m: Extract<ClientCmd, { cmd: 'connect' }>): Promise<void> {
  const hello = maskedFrame(encodeFrame({ type: 'hello', protocol: 1, node: 'bench', clientId: 'bench', feeds: [{ name: m.feed }], caps: m.caps }));
  const req = `GET / HTTP/1.1\r\nHost: ${m.host}:${m.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: cattail.v1\r\n\r\n`;
  let failed = 0;
  const step = m.concurrency > 0 ? m.concurrency : m.n;
  for (let i = 0; i < m.n; i += step) {
    const ok = await Promise.all(Array.from({ length: Math.min(step, m.n - i) }, () => openOne(m, req, hello)));
    failed += ok.filter((x) => !x).length;
  }
  send({ ev: 'connected', n: clients.length, failed });
}

process.on('message', (m: ClientCmd) => {
  switch (m.cmd) {
    case 'connect':
      void connectAll(m);
      break;
    case 'target': {
      target = m.revision;
      targetGroup = m.group;
      const waited = targetGroup === undefined ? clients : clients.filter((c) => c.group === targetGroup);
      targetSockets = waited.length;
      atTarget = waited.filter((c) => c.revision >= target).length;
      if (atTarget === targetSockets) send({ ev: 'reached', revision: target, lastMs: nowMs() });
      break;
    }
    case 'full': {
      for (let i = 0; i < m.n; i++) full.push(connectClient({ endpoints: [m.url], feeds: [m.feed], node: `full-${i}`, raw: true, compression: ['deflate'] }));
      void Promise.all(full.map((c) => c.whenInSync())).then(() => send({ ev: 'fullReady' }));
      break;
    }
    case 'fullReport':
      send({
        ev: 'fullReport',
        clients: full.map((c) => {
          const s = c.stats;
          // A repaired mismatch (PROTOCOL.md §7.2) is still a mismatch for the benchmark's correctness check.
          return { revision: c.feed(m.feed).revision, inSync: c.inSync, digestMismatches: s.digestMismatches + s.repairsRequested, revisionGaps: s.revisionGaps, protocolErrors: s.protocolErrors, reconnects: s.reconnects };
        }),
      });
      break;
    case 'closeAll':
      for (const c of clients.splice(0)) c.sock.destroy();
      for (const c of full.splice(0)) c.destroy();
      target = Infinity;
      targetGroup = undefined;
      targetSockets = 0;
      atTarget = 0;
      send({ ev: 'closed', frames, bytes, cpuS: (process.cpuUsage().user + process.cpuUsage().system) / 1e6 });
      // Counts are per session: the orchestrator divides them by this session's clients.
      frames = 0;
      bytes = 0;
      break;
    case 'trackArrivals':
      arrivals = new Map();
      break;
    case 'arrivals':
      send({ ev: 'arrivals', arrivals: [...(arrivals ?? new Map<number, [number, number, number]>())] });
      break;
    case 'exit':
      shutdown();
      process.disconnect();
  }
});

/** Closes every socket and client; with the IPC channel gone, the process ends by itself. */
function shutdown(): void {
  for (const c of clients.splice(0)) c.sock.destroy();
  for (const c of full.splice(0)) c.destroy();
}
process.on('disconnect', shutdown);
send({ ev: 'ready' });
