/**
 * Load clients for bench/fanout.ts, in their own process (so client CPU is not server CPU): N raw
 * TCP sockets that do the WebSocket upgrade by hand, send HELLO, and then only read frame headers
 * (WebSocket header + the 28-byte Cattail header) to count frames and note when each revision
 * arrives — discard mode, like Typha's DebugDiscardKVUpdates. Bodies are skipped unread.
 */
import { connect, type Socket } from 'node:net';
import { encodeFrame } from '../proto/index.js';

interface ClientState {
  sock: Socket;
  upgraded: boolean;
  http: string;
  hdr: Buffer;
  have: number;
  skip: number;
  revision: number;
  frames: number;
  bytes: number;
}

type Cmd =
  | { cmd: 'connect'; host: string; port: number; n: number; caps: string[]; feed: string }
  | { cmd: 'target'; revision: number }
  | { cmd: 'report'; pushTimesMs: Record<string, number> }
  | { cmd: 'exit' };

const clients: ClientState[] = [];
/** receipt times (ms, CLOCK_MONOTONIC via hrtime) per revision, one per client. */
const receipts = new Map<number, number[]>();
let target = Infinity;
let atTarget = 0;
const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

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
  let list = receipts.get(rev);
  if (list === undefined) receipts.set(rev, (list = []));
  list.push(nowMs());
  if (was < target && rev >= target && ++atTarget === clients.length) process.send?.({ ev: 'reached', revision: target });
}

/** Reads WebSocket + Cattail headers from the stream; skips bodies. */
function onData(c: ClientState, chunk: Buffer): void {
  c.bytes += chunk.length;
  let off = 0;
  if (!c.upgraded) {
    c.http += chunk.toString('latin1');
    const end = c.http.indexOf('\r\n\r\n');
    if (end < 0) return;
    if (!c.http.startsWith('HTTP/1.1 101')) {
      process.send?.({ ev: 'refused', status: c.http.split('\r\n')[0] });
      c.sock.destroy();
      return;
    }
    off = chunk.length - (c.http.length - end - 4);
    c.upgraded = true;
  }
  while (off < chunk.length) {
    if (c.skip > 0) {
      const n = Math.min(c.skip, chunk.length - off);
      off += n;
      c.skip -= n;
      continue;
    }
    // Collect the WebSocket header, then up to 28 bytes of the Cattail header.
    c.hdr[c.have++] = chunk[off++] as number;
    const l7 = (c.hdr[1] ?? 0) & 0x7f;
    if (c.have < 2) continue;
    const wsh = l7 < 126 ? 2 : l7 === 126 ? 4 : 10;
    if (c.have < wsh) continue;
    const len = wsh === 2 ? l7 : wsh === 4 ? c.hdr.readUInt16BE(2) : c.hdr.readUInt32BE(2) * 2 ** 32 + c.hdr.readUInt32BE(6);
    const want = Math.min(28, len);
    if (c.have < wsh + want) continue;
    c.frames++;
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

async function connectAll(m: Extract<Cmd, { cmd: 'connect' }>): Promise<void> {
  const hello = maskedFrame(encodeFrame({ type: 'hello', protocol: 1, node: 'bench', clientId: 'bench', feeds: [{ name: m.feed }], caps: m.caps }));
  const req = `GET / HTTP/1.1\r\nHost: ${m.host}:${m.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: cattail.v1\r\n\r\n`;
  let failed = 0;
  const BATCH = 200;
  for (let i = 0; i < m.n; i += BATCH) {
    await Promise.all(
      Array.from({ length: Math.min(BATCH, m.n - i) }, () =>
        new Promise<void>((resolve) => {
          const sock = connect({ host: m.host, port: m.port, noDelay: true });
          const c: ClientState = { sock, upgraded: false, http: '', hdr: Buffer.alloc(40), have: 0, skip: 0, revision: 0, frames: 0, bytes: 0 };
          sock.on('connect', () => {
            sock.write(req);
            sock.write(hello);
            clients.push(c);
            resolve();
          });
          sock.on('data', (d: Buffer) => onData(c, d));
          sock.on('error', () => {
            failed++;
            resolve();
          });
        }),
      ),
    );
  }
  process.send?.({ ev: 'connected', n: clients.length, failed });
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

process.on('message', (m: Cmd) => {
  if (m.cmd === 'connect') void connectAll(m);
  else if (m.cmd === 'target') {
    target = m.revision;
    atTarget = clients.filter((c) => c.revision >= target).length;
    if (atTarget === clients.length) process.send?.({ ev: 'reached', revision: target });
  } else if (m.cmd === 'report') {
    const lags: number[] = [];
    const lastClientLags: number[] = [];
    for (const [revStr, pushed] of Object.entries(m.pushTimesMs)) {
      const got = receipts.get(Number(revStr));
      if (got === undefined) continue;
      let last = 0;
      for (const t of got) {
        lags.push(t - pushed);
        last = Math.max(last, t - pushed);
      }
      lastClientLags.push(last);
    }
    lags.sort((a, b) => a - b);
    lastClientLags.sort((a, b) => a - b);
    const cpu = process.cpuUsage();
    process.send?.({
      ev: 'report',
      deliveries: lags.length,
      lagP50Ms: pct(lags, 50), lagP99Ms: pct(lags, 99), lagMaxMs: lags.at(-1),
      lastClientLagP50Ms: pct(lastClientLags, 50), lastClientLagP99Ms: pct(lastClientLags, 99),
      framesReceived: clients.reduce((s, c) => s + c.frames, 0),
      bytesReceived: clients.reduce((s, c) => s + c.bytes, 0),
      clientCpuS: (cpu.user + cpu.system) / 1e6,
    });
  } else if (m.cmd === 'exit') {
    for (const c of clients) c.sock.destroy();
    process.exit(0);
  }
});
