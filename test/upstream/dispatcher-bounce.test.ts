/**
 * The dispatcher merges a feed's events between two batches, last value per key. A key that
 * changed and came back within them (A→B→A, or deleted and created again) goes out marked
 * `force`: the store then counts it as a change although its bytes equal what it holds, which a
 * rebase of an agent holding B relies on (PROTOCOL.md §7.1; test/snapshot/rebase.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/clock.js';
import { createLogger } from '../../src/log.js';
import { FeedDispatcher } from '../../src/server/upstream/dispatcher.js';
import { customFeed } from './helpers.js';
import type { FeedBatch } from '../../src/server/pipeline/seams.js';

describe('dispatcher - keys that change and come back between two batches', () => {
  it('marks them force, and only them', () => {
    const d = new FeedDispatcher([customFeed({ name: 'pods', resources: [{ resource: 'pods' }] })], createLogger('silent'), 10_000, new FakeClock());
    const batches: FeedBatch[] = [];
    d.start({ onBatch: (_feed, b) => batches.push(b) });
    const f = d.feed('pods')!;
    const A = Buffer.from('a');
    const B = Buffer.from('b');
    d.queue(f, 'k', A);
    d.queue(f, 'same', A);
    d.flush();
    d.queue(f, 'k', B);
    d.queue(f, 'k', A);
    d.queue(f, 'gone', null);
    d.queue(f, 'gone', A);
    d.queue(f, 'same', A);
    d.queue(f, 'same', A);
    d.flush();
    const last = batches.at(-1)!;
    expect(last.updates).toEqual([
      { key: 'k', value: A, force: true },
      { key: 'gone', value: A, force: true },
      { key: 'same', value: A },
    ]);
    // The mark does not outlive its batch.
    d.queue(f, 'k', A);
    d.flush();
    expect(batches.at(-1)!.updates).toEqual([{ key: 'k', value: A }]);
  });
});

describe('dispatcher - after stop()', () => {
  it('delivers nothing more and arms no trailing flush, also for a held watermark-only change', async () => {
    const clock = new FakeClock();
    const d = new FeedDispatcher([customFeed({ name: 'pods', resources: [{ resource: 'pods' }] })], createLogger('silent'), 10_000, clock);
    const batches: FeedBatch[] = [];
    d.start({ onBatch: (_feed, b) => batches.push(b) });
    const f = d.feed('pods')!;
    d.setWatermark('pods', '10');
    d.flush();
    const before = batches.length;
    // A watermark-only change right after a batch is held (at most one a second) ...
    d.setWatermark('pods', '11');
    d.stop();
    // ... and a reflector winding down flushes again after the stop.
    d.flush();
    d.queue(f, 'k', Buffer.from('a'));
    d.flush();
    await clock.advanceAsync(5_000);
    expect(batches.length).toBe(before);
  });
});
