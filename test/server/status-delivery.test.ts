/**
 * A change of the feed's status without a new revision (staleness here; watermarks and sync status
 * go the same way) reaches every agent, also one that was not live and ready for it at that
 * moment (PROTOCOL.md §4.7): one streaming its snapshot, and one whose socket was above the
 * high-water mark. Both once ended with the old status until the next revision, which on a quiet
 * feed may never come.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { type Harness, harness } from './helpers/harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.server.close();
  h = undefined;
});

/** `n` entries of ~4 KB that deflate cannot shrink much: far more than loopback's socket buffers hold. */
function bulky(prefix: string, n: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) out[`/${prefix}/${i}`] = { pad: randomBytes(3_000).toString('base64') };
  return out;
}

const settle = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('status changes without a new revision', () => {
  it('reach an agent that was streaming its snapshot when the status changed', async () => {
    h = await harness({ feeds: ['felix'], socketHighWaterBytes: 64 * 1024 });
    h.upstream.apply('felix', bulky('big', 3_000), { status: 'in-sync', stale: false, watermarks: { pods: '1' } });
    const a = h.agent({ feeds: [{ name: 'felix' }] });
    await a.until(() => a.welcome !== undefined, 'WELCOME');
    a.socket.pause();
    const revision = h.storeRevision('felix');
    h.upstream.apply('felix', {}, { stale: true });
    await settle(50);
    expect(h.storeRevision('felix')).toBe(revision);
    a.socket.resume();
    await a.untilRevision('felix', revision, 20_000);
    // END said what the build saw (not stale); the STATUS after it says what holds now.
    expect(a.feed('felix').snapshotEnds).toHaveLength(1);
    await a.until(() => a.feed('felix').stale === true, 'the stale STATUS', 5_000);
    expect(a.violations).toEqual([]);
  }, 30_000);

  it('reach a live agent whose socket was above the high-water mark when the status changed', async () => {
    h = await harness({ feeds: ['felix'], socketHighWaterBytes: 64 * 1024 });
    h.upstream.apply('felix', { '/small/0': { v: 0 } }, { status: 'in-sync', stale: false, watermarks: { pods: '1' } });
    const a = h.agent({ feeds: [{ name: 'felix' }] });
    await a.untilRevision('felix', h.storeRevision('felix'));
    a.socket.pause();
    // One DELTA the agent takes whole (it is live at that revision) that leaves its socket far
    // above the mark, then the status change alone.
    const skips = h.server.fanoutStats().skips;
    h.upstream.apply('felix', bulky('big', 3_000));
    await settle(100);
    const revision = h.storeRevision('felix');
    h.upstream.apply('felix', {}, { stale: true });
    await settle(100);
    expect(h.storeRevision('felix')).toBe(revision);
    // The scenario itself: the agent was not skipped (no catch-up would carry the STATUS).
    expect(h.server.fanoutStats().skips).toBe(skips);
    a.socket.resume();
    await a.untilRevision('felix', revision, 20_000);
    await a.until(() => a.feed('felix').stale === true, 'the stale STATUS', 5_000);
    expect(a.violations).toEqual([]);
  }, 30_000);
});
