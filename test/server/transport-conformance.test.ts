/**
 * One conformance suite for every agent transport that loads on this machine (ws always; uws when
 * a uWebSockets.js build loads): what the fan-out relies on from the seam (seam.ts), checked end
 * to end with real sockets. Frames (a buffer holding a DELTA and its STATUS arrives as two
 * messages), backpressure and drain (a stalled agent is skipped, then caught up), coded closes,
 * oversize inbound frames, admission refusals, and slow handshakes before and after the upgrade.
 *
 * The bounds on waits are safety nets against hangs, not timing assertions.
 */
import { randomBytes } from 'node:crypto';
import { connect, createServer } from 'node:net';
import { networkInterfaces } from 'node:os';
import { describe, expect, it } from 'vitest';
import { waitUntil } from '../support/wait.js';
import { encodeFrame } from '../../proto/index.js';
import { loadUws, uwsAvailable } from '../../src/server/transport/uws-loader.js';
import { forEachFrame, peerAddress } from '../../src/server/transport/seam.js';
import { UWS_PIECE_BYTES } from '../../src/server/transport/uws-outbound.js';
import { encodeMessage } from '../../src/server/transport/framing.js';
import { TestAgent, opened } from './helpers/agent.js';
import { type Harness, harness } from './helpers/harness.js';
import { rawUpgrade } from './helpers/upgrade.js';

// uWS is listed even where no build of it loads (Node 22 and 24 here): its tests are reported as
// skipped there, not silently absent.
const TRANSPORTS = ['ws', 'uws'] as const;
const SKIP_UWS = !uwsAvailable();
/** `::1` on this machine's loopback (the dual-stack test needs both families). */
const IPV6_LOOPBACK = Object.values(networkInterfaces()).some((l) => l?.some((i) => i.family === 'IPv6' && i.internal) === true);

function seed(h: Harness, n = 20): void {
  const batch: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) batch[`/pods/ns/p${i}`] = { i };
  h.upstream.apply('felix', batch, { status: 'in-sync' });
}

/** Resolves when the peer closes a raw TCP connection (or after `boundMs`, with false). */
function rawClosed(port: number, send: string, boundMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port }, () => s.write(send));
    const timer = setTimeout(() => {
      s.destroy();
      resolve(false);
    }, boundMs);
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
    s.resume();
  });
}

it('peerAddress shows IPv4-mapped peers as IPv4 and IPv6 in its short form, whatever form the transport reports', () => {
  expect(peerAddress('10.1.2.3')).toBe('10.1.2.3');
  expect(peerAddress('::ffff:10.1.2.3')).toBe('10.1.2.3');
  expect(peerAddress('0000:0000:0000:0000:0000:ffff:0a01:0203')).toBe('10.1.2.3');
  expect(peerAddress('0000:0000:0000:0000:0000:0000:0000:0001')).toBe('::1');
  expect(peerAddress('fd00:0:0:0:0:0:0:1')).toBe('fd00::1');
  expect(peerAddress('not:an:address:zz')).toBe('not:an:address:zz');
  expect(peerAddress('')).toBe('');
});

it('forEachFrame cuts a pre-framed buffer back into each frame payload', () => {
  const a = encodeMessage({ type: 'ping', t: 1 });
  const big = encodeMessage({ type: 'error', code: 'X', message: 'y'.repeat(70_000) });
  const payloads: number[] = [];
  forEachFrame(Buffer.concat([a, big, a]), (p) => payloads.push(p.length));
  expect(payloads).toEqual([a.length - 2, big.length - 10, a.length - 2]);
});

it('--transport uws without a loadable uWebSockets.js build is a coded error naming each build tried', () => {
  expect(() => loadUws(['cattail-no-such-uws-build'])).toThrow(expect.objectContaining({
    code: 'CATTAIL_SERVER_TRANSPORT_UNAVAILABLE',
    message: expect.stringContaining('cattail-no-such-uws-build: not installed'),
  }));
});

for (const transport of TRANSPORTS) describe.skipIf(transport === 'uws' && SKIP_UWS)(`transport conformance: ${transport}`, () => {
  it('delivers shared pre-framed buffers as whole messages, a DELTA and its STATUS as two', async () => {
    const h = await harness({ transport });
    seed(h);
    const a = h.agent({ feeds: [{ name: 'felix' }] });
    await a.untilRevision('felix', 1);
    const n = a.received.length;
    h.upstream.apply('felix', { '/pods/ns/p1': { changed: true } }, { watermarks: { pods: '7' } });
    await a.untilRevision('felix', 2);
    await a.until(() => a.received.length >= n + 2, 'delta and status');
    expect(a.received.slice(n, n + 2)).toEqual(['delta', 'status']);
    expect(a.violations).toEqual([]);
    expect(a.digest('felix').equals(h.storeDigest('felix'))).toBe(true);
  });

  it.skipIf(!IPV6_LOOPBACK)('listens on every address for an empty host (:0): agents over IPv4 and IPv6 loopback, and the HTTP port too', async () => {
    const h = await harness({ transport, listen: ':0', httpListen: ':0', debugEndpoints: true });
    seed(h);
    const port = new URL(h.server.url).port;
    const httpPort = new URL(h.server.httpUrl).port;
    for (const host of ['127.0.0.1', '[::1]']) {
      const a = new TestAgent(`ws://${host}:${port}/`, { feeds: [{ name: 'felix' }], clientId: `via-${host}` });
      try {
        await a.untilRevision('felix', 1);
        expect(a.digest('felix').equals(h.storeDigest('felix')), host).toBe(true);
        // An IPv4 peer of the dual-stack socket is shown as IPv4, not ::ffff:127.0.0.1.
        const page = (await (await fetch(`http://${host}:${httpPort}/debug/clients`)).json()) as { clients: { clientId: string | null; remoteAddress: string | null }[] };
        const seen = page.clients.find((c) => c.clientId === `via-${host}`)?.remoteAddress ?? '';
        expect(seen, host).toMatch(host === '127.0.0.1' ? /^127\.0\.0\.1(:\d+)?$/ : /^(\[::1\]:\d+|::1)$/);
      } finally {
        a.ws.terminate();
      }
      expect((await fetch(`http://${host}:${httpPort}/livez`)).status, host).toBe(200);
    }
  });

  it('streams snapshot chunks longer than a uWS piece to an agent that reads slowly: whole messages, in order, in sync', async () => {
    const h = await harness({ transport });
    // ~1.6 MB that does not compress: 512 KiB chunks, well above what a paused reader's kernel
    // buffers take, so the server holds bytes (uWS: in its queue, sent as 64 KiB fragments).
    const batch: Record<string, unknown> = {};
    for (let i = 0; i < 400; i++) batch[`/pods/ns/big${i}`] = { pad: randomBytes(3_000).toString('base64') };
    h.upstream.apply('felix', batch, { status: 'in-sync' });
    const a = h.agent({ feeds: [{ name: 'felix' }] });
    await opened(a);
    a.socket.pause();
    // Changes while the snapshot is held up: they must reach the agent after it, never inside it.
    await waitUntil(() => h.server.snapshotStats().built > 0, 'the snapshot built');
    h.upstream.apply('felix', { '/pods/ns/big1': { changed: 1 }, '/pods/ns/big2': null, '/pods/ns/new': { n: 1 } });
    await new Promise((r) => setTimeout(r, 100));
    a.socket.resume();
    await a.untilRevision('felix', h.storeRevision('felix'), 20_000);
    expect(a.violations).toEqual([]);
    expect(a.digest('felix').equals(h.storeDigest('felix'))).toBe(true);
    expect(a.largestBodyBytes).toBeGreaterThan(UWS_PIECE_BYTES);
  });

  it('skips a stalled agent above the high-water mark and catches it up after it drains', async () => {
    const h = await harness({ transport, socketHighWaterBytes: 64 * 1024 });
    seed(h);
    const slow = h.agent({ feeds: [{ name: 'felix' }] });
    const fast = h.agent({ feeds: [{ name: 'felix' }] });
    await Promise.all([slow.untilRevision('felix', 1), fast.untilRevision('felix', 1)]);
    slow.socket.pause();
    const pad = 'z'.repeat(32 * 1024);
    for (let i = 0; i < 400 && h.server.fanoutStats().skips === 0; i++) {
      const batch: Record<string, unknown> = {};
      for (let k = 0; k < 16; k++) batch[`/pods/big/b${k}`] = { i, k, pad };
      h.upstream.apply('felix', batch);
      await fast.untilRevision('felix', h.storeRevision('felix'));
    }
    expect(h.server.fanoutStats().skips).toBeGreaterThan(0);
    slow.socket.resume();
    await slow.untilRevision('felix', h.storeRevision('felix'), 20_000);
    expect(slow.violations).toEqual([]);
    expect(slow.digest('felix').equals(h.storeDigest('felix'))).toBe(true);
    expect(h.server.fanoutStats().catchUps).toBeGreaterThan(0);
  });

  it('closes with the protocol codes: 4006 unknown feed, 4002 text, 4001 wrong subprotocol, 4010 + GOODBYE on shutdown', async () => {
    const h = await harness({ transport });
    seed(h);
    const unknown = h.agent({ feeds: [{ name: 'nope' }] });
    expect(await unknown.closed).toBe(4006);
    const text = h.agent({ feeds: [], silent: true });
    await opened(text);
    text.sendRaw('{"hello": true}');
    expect(await text.closed).toBe(4002);
    // A text message that is not UTF-8: over ws the same 4002 (its UTF-8 check is off, so the
    // message reaches the protocol's refusal); uWS checks UTF-8 itself and drops the connection
    // first (1006 here; RFC 6455 would have 1007; PROTOCOL.md §1.3 lists both).
    const badText = h.agent({ feeds: [], silent: true });
    await opened(badText);
    badText.sendText(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]));
    if (transport === 'uws') expect([1006, 1007]).toContain(await badText.closed);
    else expect(await badText.closed).toBe(4002);
    const wrong = h.agent({ feeds: [{ name: 'felix' }], protocol: 'cattail.v0' });
    expect(await wrong.closed).toBe(4001);
    expect(wrong.errors.map((e) => e.code)).toEqual(['CATTAIL_SERVER_BAD_SUBPROTOCOL']);
    const ok = h.agent({ feeds: [{ name: 'felix' }] });
    await ok.untilRevision('felix', 1);
    await h.server.close();
    expect(await ok.closed).toBe(4010);
    expect(ok.goodbyes).toEqual(['shutdown']);
  });

  it('cuts a peer that floods pings and reads nothing, before the pongs it owes pile up (ws: 60 pending; uWS: the same bound)', async () => {
    // No HELLO is ever sent: the handshake deadline must not be what ends it.
    const h = await harness({ transport, handshakeTimeoutMs: 120_000 });
    seed(h);
    const r = await rawUpgrade(h.server.url);
    r.sock.pause(); // reads nothing from here on: every pong stays with the server
    const closed = new Promise<void>((resolve) => r.sock.once('close', () => resolve()));
    // Masked pings of 125 bytes, in writes of 1,000 (~8 MB in all: past what the kernel buffers).
    const ping = Buffer.concat([Buffer.from([0x89, 0x80 | 125, 1, 2, 3, 4]), Buffer.alloc(125)]);
    const batch = Buffer.concat(Array.from({ length: 1_000 }, () => ping));
    let sent = 0;
    for (let i = 0; i < 60 && !r.sock.destroyed; i++) {
      if (!r.sock.write(batch)) await Promise.race([new Promise((res) => r.sock.once('drain', res)), closed, new Promise((res) => setTimeout(res, 2_000))]);
      sent++;
    }
    // Before, uWS kept answering (up to ~19 MiB per socket) and the socket stayed open.
    await waitUntil(() => r.sock.destroyed || h.server.connectionCount() === 0, 'the flooding peer cut', { timeoutMs: 8_000 });
    expect(sent).toBeGreaterThan(0);
    r.sock.destroy();
  });

  it('reads subprotocols offered over several Sec-WebSocket-Protocol lines (RFC 6455 §11.3.4), as one list', async () => {
    const h = await harness({ transport });
    seed(h);
    const a = await rawUpgrade(h.server.url, false, ['cattail.v1', 'other.v9']);
    const b = await rawUpgrade(h.server.url, false, ['other.v9', 'cattail.v1']);
    try {
      // Before, uWS kept the last line alone: b got other.v9 echoed and a 4001.
      for (const r of [a, b]) expect(r.head).toMatch(/\r\nsec-websocket-protocol: cattail\.v1(\r\n|$)/i);
    } finally {
      a.sock.destroy();
      b.sock.destroy();
    }
  });

  it('refuses an inbound frame above maxInboundBytes with 4003, and a huge one at the WebSocket layer', async () => {
    const h = await harness({ transport, maxInboundBytes: 4_096 });
    seed(h);
    const a = h.agent({ feeds: [], silent: true });
    await opened(a);
    a.sendRaw(Buffer.alloc(5_000, 1));
    expect(await a.closed).toBe(4003);
    expect(a.errors.map((e) => e.code)).toEqual(['CATTAIL_PROTO_FRAME_TOO_LARGE']);
    const huge = h.agent({ feeds: [], silent: true });
    await opened(huge);
    huge.sendRaw(Buffer.alloc(1_000_000, 1));
    // Above the transport's hard cap the library closes before buffering: 1009, or 1006 when it
    // drops the TCP connection without a close frame.
    expect([1006, 1009]).toContain(await huge.closed);
    await waitUntil(() => h.server.connectionCount() === 0, 'connections released');
  });

  it('fails to start on an address in use with CATTAIL_SERVER_LISTEN_FAILED naming EADDRINUSE (uWS itself says only that it failed)', async () => {
    const held = createServer();
    await new Promise<void>((r) => held.listen(0, '127.0.0.1', () => r()));
    const port = (held.address() as { port: number }).port;
    try {
      await expect(harness({ transport, listen: `127.0.0.1:${port}` })).rejects.toMatchObject({ code: 'CATTAIL_SERVER_LISTEN_FAILED', message: expect.stringMatching(/EADDRINUSE/) });
    } finally {
      await new Promise<void>((r) => held.close(() => r()));
    }
  });

  it('refuses upgrades above maxConnections with 503 and Retry-After', async () => {
    const h = await harness({ transport, maxConnections: 1, refuseRetryAfterMs: 3_000 });
    seed(h);
    const a = h.agent({ feeds: [{ name: 'felix' }] });
    await a.untilRevision('felix', 1);
    const port = Number(new URL(h.server.url).port);
    const answer = await new Promise<string>((resolve) => {
      let got = '';
      const s = connect({ host: '127.0.0.1', port }, () => s.write(`GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: cattail.v1\r\n\r\n`));
      s.on('data', (d: Buffer) => (got += d.toString('latin1')));
      s.on('error', () => undefined);
      s.on('close', () => resolve(got));
    });
    expect(answer).toMatch(/^HTTP\/1\.1 503/);
    expect(answer).toMatch(/retry-after: 3\r\n/i);
    expect(await h.metric('cattail_connections_refused_total', { reason: 'max-connections' })).toBe(1);
  });

  it('closes a connection that upgrades but dribbles its HELLO past handshakeTimeoutMs with 4004', async () => {
    const h = await harness({ transport, handshakeTimeoutMs: 200 });
    seed(h);
    const a = h.agent({ feeds: [], silent: true });
    await opened(a);
    const hello = encodeFrame({ type: 'hello', protocol: 1, node: 'n', clientId: 'c', feeds: [{ name: 'felix' }], caps: [] });
    // A WebSocket fragment carrying the first bytes only: the message never completes.
    a.socket.write(Buffer.from([0x02, 0x80 | 4, 0, 0, 0, 0, ...hello.subarray(0, 4)]));
    expect(await a.closed).toBe(4004);
  });

  it('cuts off a slow-loris client that never finishes its upgrade request', async () => {
    const h = await harness({ transport, handshakeTimeoutMs: 300 });
    const port = Number(new URL(h.server.url).port);
    // ws: node:http's headersTimeout (= handshakeTimeoutMs); uws: its own ~10 s HTTP idle timeout.
    const closed = await rawClosed(port, 'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n', 30_000);
    expect(closed).toBe(true);
  }, 40_000);
});
