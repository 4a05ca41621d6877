/**
 * HELLOs are answered in service turns, not in the socket's read callback (issue 14's cold-start
 * loop-delay target), and what an agent may send while its HELLO waits (PROTOCOL.md §4.1).
 */
import { describe, expect, it } from 'vitest';
import { type Harness, harness } from './helpers/harness.js';
import { entryBytes } from '../../src/server/transport/framing.js';
import { opened } from './helpers/agent.js';
import type { HelloMessage, Message } from '../../proto/index.js';

async function seeded(opts: Parameters<typeof harness>[0] = {}, n = 1): Promise<Harness> {
  const h = await harness(opts);
  const objects: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) objects[`/pods/ns/p${i}`] = { i, pad: 'x'.repeat(100) };
  h.upstream.apply('felix', objects, { status: 'in-sync' });
  return h;
}

const hello = (feeds: string[]): HelloMessage => ({ type: 'hello', protocol: 1, node: 'node-1', clientId: 'test', feeds: feeds.map((name) => ({ name })), caps: [] });

describe('HELLO answered in service turns', () => {
  it('closes a message sent between HELLO and WELCOME with 4002, before any WELCOME', async () => {
    const h = await seeded();
    const a = h.agent({ feeds: [], silent: true });
    await opened(a);
    // One TCP write: the server reads both frames in one callback, so the ACK meets a HELLO that
    // is queued and not yet answered (answered inline, it would meet a streaming connection and
    // fail as "never sent" after a WELCOME).
    a.socket.cork();
    a.sendMessage(hello(['felix']));
    a.sendMessage({ type: 'ack', feedId: 0, revision: 1 });
    a.socket.uncork();
    expect(await a.closed).toBe(4002);
    expect(a.errors.map((e) => e.code)).toEqual(['CATTAIL_SERVER_UNEXPECTED_MESSAGE']);
    expect(a.errors[0]?.message).toBe('ack before WELCOME');
    expect(a.received).not.toContain('welcome');
  });

  it('a GOODBYE while the HELLO waits closes with 1000 and no WELCOME', async () => {
    const h = await seeded();
    const a = h.agent({ feeds: [], silent: true });
    await opened(a);
    a.socket.cork();
    a.sendMessage(hello(['felix']));
    a.sendMessage({ type: 'goodbye', reason: 'client-close', message: 'changed my mind' } as Message);
    a.socket.uncork();
    expect(await a.closed).toBe(1000);
    expect(a.received).not.toContain('welcome');
    expect(a.errors).toEqual([]);
  });

  it('a second HELLO before WELCOME is refused as a second HELLO', async () => {
    const h = await seeded();
    const a = h.agent({ feeds: [], silent: true });
    await opened(a);
    a.socket.cork();
    a.sendMessage(hello(['felix']));
    a.sendMessage(hello(['felix']));
    a.socket.uncork();
    expect(await a.closed).toBe(4002);
    expect(a.errors[0]?.message).toBe('a second HELLO');
  });

  it('answers a storm of HELLOs one per turn when the turn budget allows one, and every agent ends equal to the store', async () => {
    // maxBytes 1: every item (a HELLO answer writes a WELCOME) ends its turn.
    const h = await seeded({ serviceTurn: { maxMs: 60_000, maxBytes: 1 } }, 40);
    const agents = Array.from({ length: 30 }, () => h.agent({ feeds: [], silent: true }));
    await Promise.all(agents.map((a) => opened(a)));
    const turns0 = h.server.fanoutStats().serviceTurns;
    for (const a of agents) a.sendMessage(hello(['felix']));
    const rev = h.storeRevision('felix');
    await Promise.all(agents.map((a) => a.untilRevision('felix', rev)));
    for (const a of agents) expect(a.digest('felix').equals(h.storeDigest('felix'))).toBe(true);
    // 30 HELLO answers and 30 snapshot streams, each in a turn of its own.
    expect(h.server.fanoutStats().serviceTurns - turns0).toBeGreaterThanOrEqual(60);
    expect(await h.metric('cattail_handshake_queue_length')).toBe(0);
  });
});

describe('snapshot chunks', () => {
  it('cuts chunks at snapshotChunkBytes, gives a larger entry a chunk of its own, and announces the state\'s raw bytes', async () => {
    const h = await harness({ snapshotChunkBytes: 4_096 });
    const objects: Record<string, unknown> = {};
    for (let i = 0; i < 100; i++) objects[`/pods/ns/p${String(i).padStart(3, '0')}`] = { pad: 'x'.repeat(200) };
    objects['/pods/ns/zz-big'] = { pad: 'y'.repeat(10_000) };
    h.upstream.apply('felix', objects, { status: 'in-sync' });
    const a = h.agent({ feeds: [{ name: 'felix' }], record: true });
    await a.untilRevision('felix', h.storeRevision('felix'));
    expect(a.digest('felix').equals(h.storeDigest('felix'))).toBe(true);
    const chunks = a.messages.filter((m): m is Extract<Message, { type: 'snapshotChunk' }> => m.type === 'snapshotChunk');
    expect(chunks.length).toBeGreaterThan(5);
    let big = 0;
    for (const c of chunks) {
      // A chunk's body: its entries plus at most 16 bytes of map, key and array headers.
      const body = 16 + c.entries.reduce((s, e) => s + entryBytes(e), 0);
      if (c.entries.some(([k]) => k.includes('zz-big'))) {
        expect(c.entries).toHaveLength(1);
        big++;
      } else expect(body).toBeLessThanOrEqual(4_096);
    }
    expect(big).toBe(1);
    const begin = a.messages.find((m) => m.type === 'snapshotBegin') as Extract<Message, { type: 'snapshotBegin' }>;
    let raw = 0;
    for (const [k, v] of h.server.stores.get('felix')?.current().entries() ?? []) raw += Buffer.byteLength(k) + v.length;
    expect(raw).toBeGreaterThan(100 * 200);
    expect(begin.rawBytes).toBe(raw);
  });
});
