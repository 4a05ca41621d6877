/**
 * The inbound budget on a real server (ws transport): agents that send the start of a large frame
 * and stop hold memory in the WebSocket layer; past maxInboundHeldBytes the ones holding the most
 * are closed with GOODBYE + ERROR CATTAIL_SERVER_OVER_BUDGET + 4008, what they held is freed, and
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
import { type RawAgent, partialClientFrame, rawUpgrade } from './helpers/upgrade.js';

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

describe.skipIf(TEST_TRANSPORT !== 'ws')('server - inbound budget (maxInboundHeldBytes)', () => {
  it('closes the agent holding the most unfinished inbound bytes once all of them pass the budget; the others and a healthy agent stay', async () => {
    const h = await harness({ maxInboundHeldBytes: 1_048_576, handshakeTimeoutMs: 60_000 });
    h.upstream.apply('felix', { '/pods/ns/a': { a: 1 } }, { status: 'in-sync' });
    const good = h.agent({ feeds: [{ name: 'felix' }] });
    await good.untilRevision('felix', 1);

    // Each announces a 250,000-byte frame (under the hard cap of 4 × 64 KiB) and sends part of it.
    const sent = [200_000, 190_000, 180_000, 170_000, 160_000];
    let held = 0;
    for (const n of sent) {
      const r = await rawUpgrade(h.server.url);
      raws.push(r);
      r.sock.write(partialClientFrame(250_000, n));
      held += 14 + n;
      await waitUntil(async () => (await h.metric('cattail_inbound_held_bytes')) === held, `held ${held}`);
    }
    expect(await h.metric('cattail_inbound_holding_sockets')).toBe(5);
    expect(await h.metric('cattail_inbound_over_budget_closes_total')).toBe(0);

    // The sixth passes 1 MiB (900,070 + 150,014): the first, holding the most, goes, which
    // leaves 850,070, under 90 % of the budget; the sixth, whose read passed it, stays.
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
    first.sock.destroy();
    await waitUntil(async () => (await h.metric('cattail_inbound_held_bytes')) === held + 150_014 - 200_014, 'freed');
    await waitUntil(async () => (await h.metric('cattail_connections_closed_total', { code: '4008' })) === 1, 'counted by code');

    h.upstream.apply('felix', { '/pods/ns/b': { b: 2 } });
    await good.untilRevision('felix', 2);
    for (const r of raws.slice(1)) expect(r.closeCode).toBeUndefined();
  });

  it('refuses a budget below one agent\'s largest frame', async () => {
    await expect(startServer({ upstream: ScriptedUpstream.withFeeds('felix'), defaultMetrics: false, transport: 'ws', maxInboundBytes: 1_048_576, maxInboundHeldBytes: 2_097_152 })).rejects.toThrow(
      /maxInboundHeldBytes .* must be at least 4 × maxInboundBytes \(4194304\)/,
    );
  });
});
