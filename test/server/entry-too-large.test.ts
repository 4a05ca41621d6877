/**
 * PROTOCOL.md §2.2: an entry that does not fit in one body of a connection's frame size cannot be
 * split. The server never exceeds the agent's maxFrameBytes: it closes that agent with ERROR
 * CATTAIL_SERVER_ENTRY_TOO_LARGE and 4003, on every path a frame is built (snapshot, live delta,
 * catch-up, resume), while agents with room for the entry keep streaming it.
 */
import { describe, expect, it } from 'vitest';
import { chunkBodyBytes, entryBytes } from '../../proto/entries.js';
import { encodeValue } from '../support/scripted-upstream.js';
import { harness } from './helpers/harness.js';
import { waitUntil } from '../support/wait.js';

const BIG = { blob: 'x'.repeat(8_000) }; // ~8 KB: above a 4,096-byte agent, far below the 1 MiB default

async function setup() {
  const h = await harness({ flushWindowMs: 0 });
  h.upstream.apply('felix', { '/pods/ns/a': { a: 1 } }, { status: 'in-sync' });
  return h;
}

describe('server - an entry larger than an agent\'s frame size', () => {
  it('closes the agent with 4003 and ENTRY_TOO_LARGE when the snapshot holds it; a roomy agent gets it', async () => {
    const h = await setup();
    h.upstream.apply('felix', { '/pods/ns/big': BIG });
    const small = h.agent({ feeds: [{ name: 'felix' }], maxFrameBytes: 4_096 });
    const roomy = h.agent({ feeds: [{ name: 'felix' }] });
    expect(await small.closed).toBe(4003);
    expect(small.errors.map((e) => e.code)).toEqual(['CATTAIL_SERVER_ENTRY_TOO_LARGE']);
    expect(small.errors[0]?.message).toContain('/pods/ns/big');
    // It names the size to announce: the server rounds an agent's value down to a power of two.
    expect(small.errors[0]?.message).toMatch(/raise the agent's maxFrameBytes to at least (8192|16384)\b/);
    // Nothing above the agent's limit ever reached it.
    expect(small.largestBodyBytes).toBeLessThanOrEqual(4_096);
    await roomy.untilRevision('felix', 2);
    expect(roomy.feed('felix').entries.has('/pods/ns/big')).toBe(true);
  });

  it('sends in a snapshot an entry that fills a chunk body exactly, and refuses one byte more', async () => {
    // A value whose one-entry SNAPSHOT_CHUNK body is exactly the agent's 4,096 bytes: it fits.
    // (The chunk cutter's 16-byte upper bound for headers once refused it here.)
    const key = '/pods/ns/exact';
    const bodyOf = (n: number): number => chunkBodyBytes(1, entryBytes(Buffer.byteLength(key), encodeValue({ blob: 'x'.repeat(n) }).length));
    let n = 3_900;
    while (bodyOf(n) < 4_096) n++;
    expect(bodyOf(n)).toBe(4_096);
    const h = await setup();
    h.upstream.apply('felix', { [key]: { blob: 'x'.repeat(n) } });
    const a = h.agent({ feeds: [{ name: 'felix' }], maxFrameBytes: 4_096 });
    await a.untilRevision('felix', 2);
    expect(a.feed('felix').entries.has(key)).toBe(true);
    expect(a.largestBodyBytes).toBe(4_096);
    // One byte more does not fit a chunk: a new agent's snapshot is refused, not sent larger. (The
    // agent above gets the change as a DELTA, whose larger overhead refuses it too.)
    h.upstream.apply('felix', { [key]: { blob: 'x'.repeat(n + 1) } });
    expect(await a.closed).toBe(4003);
    const b = h.agent({ feeds: [{ name: 'felix' }], maxFrameBytes: 4_096, node: 'node-b' });
    expect(await b.closed).toBe(4003);
    expect(b.welcome?.feeds[0]?.mode).toBe('snapshot');
    expect(b.errors.map((e) => e.code)).toEqual(['CATTAIL_SERVER_ENTRY_TOO_LARGE']);
    expect(b.largestBodyBytes).toBeLessThanOrEqual(4_096);
  });

  it('closes a streaming agent when a live delta brings such an entry, and the others get the delta', async () => {
    const h = await setup();
    const small = h.agent({ feeds: [{ name: 'felix' }], maxFrameBytes: 4_096 });
    const small2 = h.agent({ feeds: [{ name: 'felix' }], maxFrameBytes: 4_096, node: 'node-2' });
    const roomy = h.agent({ feeds: [{ name: 'felix' }] });
    await Promise.all([small.untilRevision('felix', 1), small2.untilRevision('felix', 1), roomy.untilRevision('felix', 1)]);
    h.upstream.apply('felix', { '/pods/ns/big': BIG, '/pods/ns/b': { b: 2 } });
    expect(await small.closed).toBe(4003);
    expect(await small2.closed).toBe(4003);
    for (const a of [small, small2]) expect(a.errors.map((e) => e.code)).toEqual(['CATTAIL_SERVER_ENTRY_TOO_LARGE']);
    await roomy.untilRevision('felix', 2);
    expect(roomy.feed('felix').entries.has('/pods/ns/big')).toBe(true);
    await waitUntil(() => h.server.connectionCount() === 1, 'the small agents released');
  });

  it('closes a resuming agent whose missed changes hold such an entry', async () => {
    const h = await setup();
    const first = h.agent({ feeds: [{ name: 'felix' }], maxFrameBytes: 4_096 });
    await first.untilRevision('felix', 1);
    const kept = first.feed('felix');
    first.close();
    await first.closed;
    h.upstream.apply('felix', { '/pods/ns/big': BIG });
    const again = h.agent({ feeds: [{ name: 'felix', token: kept.token!, entries: kept.entries, revision: kept.revision }], maxFrameBytes: 4_096 });
    expect(await again.closed).toBe(4003);
    expect(again.welcome?.feeds[0]?.mode).toBe('resume');
    expect(again.errors.map((e) => e.code)).toEqual(['CATTAIL_SERVER_ENTRY_TOO_LARGE']);
  });
});
