import WebSocket from 'ws';
import { connect } from 'node:net';
import { REFUSED_CLOSE_GRACE_MS } from '../../src/server/transport/accept.js';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/clock.js';
import { seededRandom } from '../../src/random.js';
import { decodeFrame, encodeFrame } from '../../proto/index.js';
import { type Harness, harness } from './helpers/harness.js';
import { waitUntil } from '../support/wait.js';
import { type TestAgent, opened } from './helpers/agent.js';
import { hostileTally } from '../support/reliability-record.js';
import { TEST_TRANSPORT } from '../support/transport.js';

const tally = hostileTally('session', false);

async function expectCodedClose(h: Harness, a: TestAgent, klass: string, code: number, errorCode?: string): Promise<void> {
  expect(await a.closed).toBe(code);
  if (errorCode !== undefined) expect(a.errors.map((e) => e.code)).toContain(errorCode);
  await waitUntil(() => h.server.connectionCount() === 0, 'connection released');
  expect(await h.metric('cattail_connections_active')).toBe(0);
  tally.add(klass, errorCode === undefined ? `close ${code}` : `${errorCode}, close ${code}`);
}

async function seeded(opts: Parameters<typeof harness>[0] = {}): Promise<Harness> {
  const h = await harness({ maxInboundBytes: 4_096, ...opts });
  h.upstream.apply('felix', { '/pods/ns/a': { a: 1 } }, { status: 'in-sync' });
  return h;
}

describe('server - hostile peers get coded closes and the gauge returns to zero', () => {
  it('closes a malformed frame with 4000', async () => {
    const h = await seeded();
    const a = h.agent({ feeds: [], silent: true });
    await opened(a);
    a.sendRaw(Buffer.from('this is not a cattail frame at all, not even close'));
    await expectCodedClose(h, a, 'not a frame', 4000, 'CATTAIL_PROTO_BAD_HEADER');
  });

  it('closes a truncated frame with 4000', async () => {
    const h = await seeded();
    const a = h.agent({ feeds: [], silent: true });
    await opened(a);
    const hello = encodeFrame({ type: 'hello', protocol: 1, node: 'n', clientId: 'c', feeds: [{ name: 'felix' }], caps: [] });
    a.sendRaw(hello.subarray(0, hello.length - 3));
    await expectCodedClose(h, a, 'truncated frame', 4000, 'CATTAIL_PROTO_TRUNCATED');
  });

  it('closes a frame above maxInboundBytes with 4003', async () => {
    const h = await seeded();
    const a = h.agent({ feeds: [], silent: true });
    await opened(a);
    a.sendRaw(Buffer.alloc(5_000, 1));
    await expectCodedClose(h, a, 'frame above maxInboundBytes', 4003, 'CATTAIL_PROTO_FRAME_TOO_LARGE');
  });

  it('closes a text message with 4002', async () => {
    const h = await seeded();
    const a = h.agent({ feeds: [], silent: true });
    await opened(a);
    a.sendRaw('{"hello": true}');
    await expectCodedClose(h, a, 'text message', 4002);
  });

  it('closes messages out of order or in the wrong direction with 4002', async () => {
    const h = await seeded();
    const early = h.agent({ feeds: [], silent: true });
    await opened(early);
    early.sendMessage({ type: 'pong', t: 1 });
    await expectCodedClose(h, early, 'message before HELLO', 4002, 'CATTAIL_SERVER_UNEXPECTED_MESSAGE');

    const twice = h.agent({ feeds: [{ name: 'felix' }] });
    await twice.untilRevision('felix', 1);
    twice.sendMessage({ type: 'hello', protocol: 1, node: 'n', clientId: 'c', feeds: [{ name: 'felix' }], caps: [] });
    await expectCodedClose(h, twice, 'second HELLO', 4002);

    const acker = h.agent({ feeds: [{ name: 'felix' }] });
    await acker.untilRevision('felix', 1);
    acker.sendMessage({ type: 'ack', feedId: 0, revision: 1 });
    acker.sendMessage({ type: 'ack', feedId: 0, revision: 50 });
    await expectCodedClose(h, acker, 'ACK of a revision never sent', 4002);

    const server = h.agent({ feeds: [], silent: true });
    await opened(server);
    server.sendMessage({ type: 'delta', feedId: 0, fromRevision: 0, toRevision: 1, more: false, upserts: [], deletes: [] });
    await expectCodedClose(h, server, 'server-only message from an agent', 4002);
  });

  it('closes REPAIR_REQUESTs the protocol does not allow with 4002 (PROTOCOL.md §7.2)', async () => {
    const h = await seeded();
    const sums = Buffer.alloc(2048);
    const noCap = h.agent({ feeds: [{ name: 'felix' }] });
    await noCap.untilRevision('felix', 1);
    noCap.sendMessage({ type: 'repairRequest', feedId: 0, revision: 1, sums });
    await expectCodedClose(h, noCap, 'REPAIR_REQUEST without repair.buckets', 4002, 'CATTAIL_SERVER_UNEXPECTED_MESSAGE');

    const future = h.agent({ feeds: [{ name: 'felix' }], caps: ['repair.buckets'] });
    await future.untilRevision('felix', 1);
    future.sendMessage({ type: 'repairRequest', feedId: 0, revision: 50, sums });
    await expectCodedClose(h, future, 'REPAIR_REQUEST for a revision never sent', 4002, 'CATTAIL_SERVER_UNEXPECTED_MESSAGE');

    const otherFeed = h.agent({ feeds: [{ name: 'felix' }], caps: ['repair.buckets'] });
    await otherFeed.untilRevision('felix', 1);
    otherFeed.sendMessage({ type: 'repairRequest', feedId: 7, revision: 1, sums });
    await expectCodedClose(h, otherFeed, 'REPAIR_REQUEST for a feed not of the connection', 4002, 'CATTAIL_SERVER_UNEXPECTED_MESSAGE');
  });

  it('closes a wrong or missing subprotocol with 4001', async () => {
    const h = await seeded();
    for (const protocol of ['cattail.v2', []]) {
      const a = h.agent({ feeds: [{ name: 'felix' }], protocol });
      expect(await a.closed).toBe(4001);
      expect(a.closeReason).toMatch(/cattail\.v1/);
      tally.add('wrong or missing subprotocol', 'close 4001');
    }
    expect(h.server.connectionCount()).toBe(0);
    expect(await h.metric('cattail_connections_refused_total', { reason: 'subprotocol' })).toBe(2);
  });

  it('cuts a refused socket that ignores the close frame after REFUSED_CLOSE_GRACE_MS (it never holds a slot for the library\'s 30 s)', async () => {
    const clock = new FakeClock();
    const h = await harness({ clock });
    h.upstream.apply('felix', { '/pods/a': { n: 1 } }, { status: 'in-sync' });
    const url = new URL(h.server.url);
    const sock = connect(Number(url.port), url.hostname);
    await new Promise<void>((r) => sock.once('connect', () => r()));
    // A raw upgrade offering another subprotocol; the client then reads but never answers the close.
    sock.write(['GET / HTTP/1.1', `Host: ${url.host}`, 'Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Protocol: other.v1', '', ''].join('\r\n'));
    let received = Buffer.alloc(0);
    let ended = false;
    sock.on('data', (d: Buffer) => (received = Buffer.concat([received, d])));
    sock.on('close', () => (ended = true));
    await waitUntil(() => received.includes(Buffer.from('101 Switching Protocols')) && received.length > 200, 'upgraded, ERROR and close frame read');
    clock.advance(1_000);
    await new Promise((r) => setTimeout(r, 100));
    // Over ws the socket waits for the peer's close frame until the grace cuts it; uWS ends the
    // TCP connection itself right after its close frame, so there it is gone already.
    if (TEST_TRANSPORT === 'ws') expect(ended).toBe(false);
    clock.advance(REFUSED_CLOSE_GRACE_MS);
    await waitUntil(() => ended, 'the server cut the socket');
    tally.add('a refused socket ignoring the close frame', 'cut after 2 s');
  });

  it('closes an unknown feed with 4006 and a bad protocol version with 4001', async () => {
    const h = await seeded();
    const a = h.agent({ feeds: [{ name: 'felix' }, { name: 'nope' }] });
    await expectCodedClose(h, a, 'unknown feed', 4006, 'CATTAIL_SERVER_UNKNOWN_FEED');
    const b = h.agent({ feeds: [], silent: true });
    await opened(b);
    b.sendMessage({ type: 'hello', protocol: 2, node: 'n', clientId: 'c', feeds: [{ name: 'felix' }], caps: [] });
    await expectCodedClose(h, b, 'other protocol version in HELLO', 4001, 'CATTAIL_PROTO_UNSUPPORTED_VERSION');
  });

  it('refuses a HELLO announcing maxFrameBytes below 4,096 with 4000, and takes 4,096', async () => {
    const h = await seeded();
    const small = h.agent({ feeds: [{ name: 'felix' }], maxFrameBytes: 4_095 });
    await expectCodedClose(h, small, 'maxFrameBytes below the floor', 4000, 'CATTAIL_SERVER_BAD_HELLO');
    expect(small.errors[0]?.message).toMatch(/at least 4096/);
    const floor = h.agent({ feeds: [{ name: 'felix' }], maxFrameBytes: 4_096 });
    await floor.untilRevision('felix', 1);
    expect(floor.welcome?.maxFrameBytes).toBe(4_096);
  });

  it('closes a silent agent with 4004 after handshakeTimeoutMs', async () => {
    const clock = new FakeClock();
    const h = await seeded({ clock, handshakeTimeoutMs: 5_000 });
    const a = h.agent({ feeds: [], silent: true });
    await opened(a);
    await waitUntil(() => h.server.connectionCount() === 1, 'accepted');
    clock.advance(4_000);
    expect(a.closeCode).toBeUndefined();
    clock.advance(2_000);
    await expectCodedClose(h, a, 'no HELLO (silent agent)', 4004, 'CATTAIL_SERVER_HANDSHAKE_TIMEOUT');
  });

  it('pings, and closes an agent that never answers with 4005 after pongTimeoutMs', async () => {
    const clock = new FakeClock();
    const h = await seeded({ clock, flushWindowMs: 0, pingIntervalMs: 1_000, pongTimeoutMs: 5_000 });
    const answers = h.agent({ feeds: [{ name: 'felix' }] });
    const mute = h.agent({ feeds: [{ name: 'felix' }], autoPong: false });
    await Promise.all([answers.untilRevision('felix', 1), mute.untilRevision('felix', 1)]);
    for (let step = 0; step < 40 && mute.closeCode === undefined; step++) {
      clock.advance(250);
      // Before time moves on, let every PING the answering agent got be answered and processed.
      const pings = (a: TestAgent): number => a.received.filter((t) => t === 'ping').length;
      await waitUntil(() => mute.closeCode !== undefined || pings(answers) + pings(mute) >= h.server.fanoutStats().pingsSent, 'pings delivered');
      await waitUntil(() => h.server.fanoutStats().pongsReceived >= pings(answers), 'pongs processed');
    }
    expect(await mute.closed).toBe(4005);
    expect(mute.errors.map((e) => e.code)).toEqual(['CATTAIL_SERVER_PONG_TIMEOUT']);
    expect(answers.closeCode).toBeUndefined();
    tally.add('PINGs never answered', 'CATTAIL_SERVER_PONG_TIMEOUT, close 4005');
    expect(answers.received.filter((t) => t === 'ping').length).toBeGreaterThan(3);
    answers.close();
    await waitUntil(() => h.server.connectionCount() === 0, 'released');
  });

  it('sends PINGs every pingIntervalMs ±10 %, jittered across that whole range (§4.8)', async () => {
    const clock = new FakeClock();
    const h = await seeded({ clock, flushWindowMs: 0, random: seededRandom(7), pingIntervalMs: 1_000, pongTimeoutMs: 600_000, handshakeTimeoutMs: 600_000, maxFallBehindMs: 600_000 });
    const a = h.agent({ feeds: [{ name: 'felix' }] });
    const sentAt: number[] = [];
    a.ws.on('message', (data: Buffer) => {
      // PING's t is the server's monotonic ms when it sent it (§4.8): the FakeClock's time.
      const m = decodeFrame(data, { maxBodyBytes: 1 << 20 });
      if (m.type === 'ping') sentAt.push(m.t);
    });
    await a.untilRevision('felix', 1);
    for (let i = 0; i < 200; i++) clock.advance(1_000);
    await waitUntil(() => sentAt.length >= h.server.fanoutStats().pingsSent, 'pings delivered');
    const gaps = sentAt.slice(1).map((t, i) => t - (sentAt[i] as number));
    expect(gaps.length).toBeGreaterThan(150);
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(900);
    expect(Math.max(...gaps)).toBeLessThanOrEqual(1_100);
    // Jittered, not one fixed interval: PINGs leave on sweep ticks (a twentieth of the interval
    // here), so the gaps take the few tick multiples inside the range, none of them most of the time.
    const counts = new Map<number, number>();
    for (const g of gaps) counts.set(g, (counts.get(g) ?? 0) + 1);
    expect(counts.size).toBeGreaterThanOrEqual(3);
    for (const [g, n] of counts) expect(n, `gap ${g}`).toBeLessThan(gaps.length / 2);
    const mean = gaps.reduce((s, g) => s + g, 0) / gaps.length;
    expect(Math.abs(mean - 1_000)).toBeLessThan(25);
  });

  it('refuses upgrades above maxConnections with 503 and Retry-After', async () => {
    const h = await seeded({ maxConnections: 1, refuseRetryAfterMs: 3_000 });
    const a = h.agent({ feeds: [{ name: 'felix' }] });
    await a.untilRevision('felix', 1);
    const refused = await new Promise<{ status: number | undefined; retryAfter: string | undefined }>((resolve) => {
      const ws = new WebSocket(h.server.url, 'cattail.v1');
      ws.on('error', () => undefined);
      ws.on('unexpected-response', (_req, res) => {
        resolve({ status: res.statusCode, retryAfter: res.headers['retry-after'] });
        res.resume();
      });
    });
    expect(refused).toEqual({ status: 503, retryAfter: '3' });
    tally.add('upgrade above maxConnections', 'HTTP 503 with Retry-After');
    expect(await h.metric('cattail_connections_refused_total', { reason: 'max-connections' })).toBe(1);
  });
});
