/**
 * The inbound budget on a real server (ws transport): agents that send the start of a large frame
 * and stop hold memory in the WebSocket layer; past maxInboundHeldBytes the ones holding the
 * longest are closed with GOODBYE + ERROR CATTAIL_SERVER_OVER_BUDGET + 4008, what they held is freed, and
 * a healthy agent on the same server keeps streaming.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { decodeFrame } from '../../proto/index.js';
import { startServer } from '../../src/server/server.js';
import { ScriptedUpstream } from '../support/scripted-upstream.js';
import { TEST_TRANSPORT } from '../support/transport.js';
import { waitUntil } from '../support/wait.js';
import { hostileTally } from '../support/reliability-record.js';
import { harness } from './helpers/harness.js';
import { HELD_PIECE_OVERHEAD_BYTES, INBOUND_MAX_FRAGMENTS } from '../../src/server/transport/inbound-budget.js';
import { WS_CLOSE_TIMEOUT_MS } from '../../src/server/transport/ws-transport.js';
import { type RawAgent, partialClientFrame, rawUpgrade } from './helpers/upgrade.js';
import pino from 'pino';
import { uwsAvailable } from '../../src/server/transport/uws-loader.js';

const tally = hostileTally('session', true);
const raws: RawAgent[] = [];
afterEach(() => {
  for (const r of raws.splice(0)) r.sock.destroy();
});

/** The cattail messages among a raw agent's frames (binary frames), by type and code. */
function messages(r: RawAgent): string[] {
  return r.frames.filter((f) => f.opcode === 0x2).map((f) => {
    const m = decodeFrame(f.payload, { maxBodyBytes: 1 << 20 });
    return m.type === 'error' ? `error ${m.code}` : m.type === 'goodbye' ? `goodbye ${m.reason}` : m.type;
  });
}

describe.skipIf(TEST_TRANSPORT !== 'ws')('server - inbound budget (maxInboundHeldBytes) and the ws layer\'s own refusals', () => {
  it('closes the agent whose unfinished frame began first once all of them pass the budget; the others and a healthy agent stay', async () => {
    const h = await harness({ maxInboundHeldBytes: 1_048_576, handshakeTimeoutMs: 60_000 });
    h.upstream.apply('felix', { '/pods/ns/a': { a: 1 } }, { status: 'in-sync' });
    const good = h.agent({ feeds: [{ name: 'felix' }] });
    await good.untilRevision('felix', 1);

    // Each announces a 250,000-byte frame (under the hard cap of 4 × 64 KiB) and sends part of it.
    // The gauge counts 256 bytes more per read the bytes took (HELD_PIECE_OVERHEAD_BYTES).
    const sent = [200_000, 190_000, 180_000, 170_000, 160_000];
    let bytes = 0;
    for (const [i, n] of sent.entries()) {
      const r = await rawUpgrade(h.server.url);
      raws.push(r);
      r.sock.write(partialClientFrame(250_000, n));
      bytes += 14 + n;
      await waitUntil(async () => (await h.metric('cattail_inbound_holding_sockets')) === i + 1 && (await h.metric('cattail_inbound_held_bytes')) >= bytes, `held ${bytes}`);
    }
    const before = await h.metric('cattail_inbound_held_bytes');
    expect(before).toBeLessThan(bytes + 5 * 64 * HELD_PIECE_OVERHEAD_BYTES);
    expect(await h.metric('cattail_inbound_over_budget_closes_total')).toBe(0);

    // The sixth passes 1 MiB (about 900 KB + 150 KB): the first, whose frame began first, goes,
    // which leaves about 850 KB, under 90 % of the budget; the sixth, whose read passed it, stays.
    const last = await rawUpgrade(h.server.url);
    raws.push(last);
    last.sock.write(partialClientFrame(250_000, 150_000));
    const first = raws[0] as RawAgent;
    await waitUntil(() => first.closeCode !== undefined, 'the first closed');
    expect(first.closeCode).toBe(4008);
    expect(messages(first)).toEqual(['goodbye over-budget', 'error CATTAIL_SERVER_OVER_BUDGET']);
    for (const r of raws.slice(1)) expect(r.closeCode).toBeUndefined();
    expect(await h.metric('cattail_inbound_over_budget_closes_total')).toBe(1);
    tally.add('unfinished inbound frames above maxInboundHeldBytes', 'CATTAIL_SERVER_OVER_BUDGET, close 4008');

    // What it held is freed with its socket.
    const withSixth = await h.metric('cattail_inbound_held_bytes');
    first.sock.destroy();
    await waitUntil(async () => (await h.metric('cattail_inbound_holding_sockets')) === 5, 'freed');
    expect(withSixth - (await h.metric('cattail_inbound_held_bytes'))).toBeGreaterThanOrEqual(200_014);
    await waitUntil(async () => (await h.metric('cattail_connections_closed_total', { code: '4008' })) === 1, 'counted by code');

    h.upstream.apply('felix', { '/pods/ns/b': { b: 2 } });
    await good.untilRevision('felix', 2);
    for (const r of raws.slice(1)) expect(r.closeCode).toBeUndefined();
  });

  it('closes a message in more than 64 fragments with 1008 (the WebSocket layer keeps each in a Buffer of its own)', async () => {
    const h = await harness({});
    h.upstream.apply('felix', { '/pods/ns/a': { a: 1 } }, { status: 'in-sync' });
    const good = h.agent({ feeds: [{ name: 'felix' }] });
    await good.untilRevision('felix', 1);
    const r = await rawUpgrade(h.server.url);
    raws.push(r);
    const fragment = (first: boolean): Buffer => Buffer.from([first ? 0x02 : 0x00, 0x81, 0, 0, 0, 0, 1]);
    r.sock.write(Buffer.concat(Array.from({ length: INBOUND_MAX_FRAGMENTS }, (_, i) => fragment(i === 0))));
    await waitUntil(async () => (await h.metric('cattail_inbound_held_bytes')) >= INBOUND_MAX_FRAGMENTS * 7 + HELD_PIECE_OVERHEAD_BYTES, 'all fragments held');
    expect(r.closeCode).toBeUndefined();
    r.sock.write(fragment(false));
    await waitUntil(() => r.closeCode !== undefined, 'closed');
    expect(r.closeCode).toBe(1008);
    h.upstream.apply('felix', { '/pods/ns/b': { b: 2 } });
    await good.untilRevision('felix', 2);
    tally.add('a message in more fragments than INBOUND_MAX_FRAGMENTS', 'close 1008');
  });

  it('cuts a socket whose frame ws refused (1002) when the agent does not answer the close within 2 s, not ws\'s 30 s', async () => {
    const h = await harness({});
    h.upstream.apply('felix', { '/pods/ns/a': { a: 1 } }, { status: 'in-sync' });
    const good = h.agent({ feeds: [{ name: 'felix' }] });
    await good.untilRevision('felix', 1);
    // A peer that neither answers the close frame nor ends its side of the TCP connection.
    const r = await rawUpgrade(h.server.url, true);
    raws.push(r);
    r.sock.on('error', () => undefined);
    await waitUntil(() => h.server.connectionCount() === 2, 'accepted');
    // Unmasked: a client frame must be masked (RFC 6455 §5.1).
    r.sock.write(Buffer.from([0x82, 0x01, 0x00]));
    await waitUntil(() => r.closeCode !== undefined, 'close frame');
    expect(r.closeCode).toBe(1002);
    const at = performance.now();
    await waitUntil(() => h.server.connectionCount() === 1, 'released', { timeoutMs: 10_000 });
    const ms = performance.now() - at;
    expect(ms).toBeGreaterThan(WS_CLOSE_TIMEOUT_MS - 500);
    expect(ms).toBeLessThan(WS_CLOSE_TIMEOUT_MS + 3_000);
    h.upstream.apply('felix', { '/pods/ns/b': { b: 2 } });
    await good.untilRevision('felix', 2);
    tally.add('a frame the WebSocket layer refuses, close never answered', 'close 1002, cut after 2 s');
  });

  it('refuses a budget below one agent\'s largest frame', async () => {
    await expect(startServer({ upstream: ScriptedUpstream.withFeeds('felix'), defaultMetrics: false, transport: 'ws', maxInboundBytes: 1_048_576, maxInboundHeldBytes: 2_097_152 })).rejects.toThrow(
      /maxInboundHeldBytes .* must be at least 4 × maxInboundBytes \(4194304\)/,
    );
  });
});

describe('server - maxInboundHeldBytes where it cannot be enforced (uWS)', () => {
  /** The start-up lines at warn and above, as JSON. */
  function warnings(): { log: pino.Logger; lines: Record<string, unknown>[] } {
    const lines: Record<string, unknown>[] = [];
    return { lines, log: pino({ level: 'warn' }, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) }) };
  }
  const notEnforced = (lines: Record<string, unknown>[]): Record<string, unknown> | undefined => lines.find((l) => String(l['msg']).startsWith('maxInboundHeldBytes is not enforced over uWS'));

  it.skipIf(!uwsAvailable())('warns at start with the bound that holds instead, when that is above the budget, and not when it is within it', async () => {
    const above = warnings();
    await harness({ transport: 'uws', log: above.log, maxConnections: 1_000 });
    expect(notEnforced(above.lines)).toMatchObject({ level: 40, transport: 'uws', maxInboundHeldBytes: 64 * 1_048_576, perSocketBytes: 4 * 65_536, maxConnections: 1_000, worstCaseBytes: 1_000 * 4 * 65_536 });

    const within = warnings();
    await harness({ transport: 'uws', log: within.log, maxConnections: 100, maxInboundHeldBytes: 100 * 4 * 65_536 });
    expect(notEnforced(within.lines)).toBeUndefined();
  });

  it('is not said over ws, which enforces the budget', async () => {
    const ws = warnings();
    await harness({ transport: 'ws', log: ws.log, maxConnections: 1_000 });
    expect(notEnforced(ws.lines)).toBeUndefined();
  });
});
