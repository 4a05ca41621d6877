import { describe, expect, it } from 'vitest';
import type { FaultRule } from '../../src/sim/index.js';
import {
  bothRounds,
  converged,
  expectNeverBack,
  type Harness,
  metric,
  reflectors,
  simRequests,
  startHarness,
  synced,
  UA,
  watchesOpen,
} from './fault-scenarios.js';
import { waitUntil } from '../support/wait.js';

/**
 * Issue 7's adversarial behaviours against the real simulator's faults (part 1: stream and
 * watch faults). Every scenario runs twice: once with no change on the server — the recovery
 * must deliver zero updates and zero store revisions — and once with three real changes made
 * while the fault is in force, which must arrive exactly once each. After each round every feed
 * equals the simulator's objects through the upstream's projectors, and no watermark went back.
 */


const faultsFired = (h: Harness, kind: string, resource = 'pods'): number => h.sim.faults.log().filter((e) => e.kind === kind && e.resource === resource).length;
const opened = (h: Harness, resource: string): number => {
  const o = h.sim.admin.counters().watchesOpened;
  return typeof o === 'number' ? o : (o[resource] ?? 0);
};

/** Adds a rule for the upstream's pods watch and ends the current one so the next watch meets it. */
function armAndReconnect(h: Harness, rule: FaultRule, changes: () => void): void {
  h.sim.faults.add({ resource: 'pods', clientId: UA, ...rule });
  h.sim.admin.closeWatches('pods');
  changes();
}

describe('upstream against the simulator under faults (watch and stream)', () => {
  it('HTTP 410 on a watch → relist NotOlderThan, only real differences', async () => {
    const h = await startHarness();
    await synced(h);
    let want = 0;
    await bothRounds(
      h,
      (_round, changes) => {
        want++;
        armAndReconnect(h, { kind: 'http_410', verb: 'WATCH', times: 1 }, changes);
      },
      () => waitUntil(async () => faultsFired(h, 'http_410') === want && (await metric(h.up, 'relists', { resource: 'pods', reason: 'expired' })) === want && watchesOpen(h, 'pods') === 1, { clock: h.clock }),
    );
  });

  it('in-stream ERROR 410 → relist, only real differences', async () => {
    const h = await startHarness();
    await synced(h);
    let want = 0;
    await bothRounds(
      h,
      (round, changes) => {
        want++;
        // Round 1: one event gets through before the ERROR, so the relist starts from a newer RV.
        armAndReconnect(h, { kind: 'error_410', times: 1, afterEvents: round }, changes);
      },
      () => waitUntil(async () => faultsFired(h, 'error_410') === want && (await metric(h.up, 'relists', { resource: 'pods', reason: 'expired' })) === want && watchesOpen(h, 'pods') === 1, { clock: h.clock }),
    );
  });

  it('TCP reset in the middle of a JSON line → re-watch from the last RV, nothing partial or twice', async () => {
    const h = await startHarness();
    await synced(h);
    let want = 0;
    let openedAt = 0;
    await bothRounds(
      h,
      (round, changes) => {
        want++;
        openedAt = opened(h, 'pods');
        // Round 1: the pod creation passes, the deletion is cut in half by the RST.
        armAndReconnect(h, { kind: 'reset_mid_line', times: 1, afterEvents: round }, changes);
      },
      () => waitUntil(async () => faultsFired(h, 'reset_mid_line') === want && opened(h, 'pods') >= openedAt + 2 && watchesOpen(h, 'pods') === 1, { clock: h.clock }),
    );
    expect(await metric(h.up, 'watchRestarts', { resource: 'pods', reason: 'network' })).toBeGreaterThanOrEqual(2);
    expect(await metric(h.up, 'skipped', { resource: 'pods' })).toBe(0);
    // A reset is not an expiry: the watch resumed, nothing was relisted.
    expect(await metric(h.up, 'relists', { resource: 'pods' })).toBe(0);
  });

  it('black hole (headers, then silence) → the inactivity watchdog aborts and re-watches', async () => {
    const h = await startHarness();
    await synced(h);
    let want = 0;
    let openedAt = 0;
    await bothRounds(
      h,
      (_round, changes) => {
        want++;
        openedAt = opened(h, 'pods');
        armAndReconnect(h, { kind: 'blackhole', verb: 'WATCH', times: 1 }, changes);
      },
      // The black-holed request is no watch at the simulator: the next opened watch is the recovery.
      () => waitUntil(async () => faultsFired(h, 'blackhole') === want && opened(h, 'pods') >= openedAt + 1 && watchesOpen(h, 'pods') === 1, { clock: h.clock }),
    );
    expect(await metric(h.up, 'watchRestarts', { resource: 'pods', reason: 'watchdog' })).toBeGreaterThanOrEqual(2);
    expect(await metric(h.up, 'relists', { resource: 'pods' })).toBe(0);
  });

  it('in-stream ERROR 500 → backoff and re-watch from the same RV, no relist', async () => {
    const h = await startHarness();
    await synced(h);
    let want = 0;
    await bothRounds(
      h,
      (_round, changes) => {
        want += 2;
        armAndReconnect(h, { kind: 'error_500', times: 2 }, changes);
      },
      () => waitUntil(async () => faultsFired(h, 'error_500') === want && (await metric(h.up, 'watchRestarts', { resource: 'pods', reason: 'stream-error' })) === want && watchesOpen(h, 'pods') === 1, { clock: h.clock }),
    );
    expect(await metric(h.up, 'relists', { resource: 'pods' })).toBe(0);
  });

  it('mass termination then 429 + Retry-After: Retry-After honoured (counted requests), no herd', async () => {
    const h = await startHarness();
    await synced(h);
    const ids = ['pods', 'nodes', 'namespaces'];
    const RETRY_AFTER_MS = 10_000;
    let rounds = 0;
    let windowEnd = 0;
    const throttled = (id: string): number => h.sim.faults.log().filter((e) => e.kind === 'throttle_429' && e.resource === id).length;
    const requestsAt: Record<string, number>[] = [];
    await bothRounds(
      h,
      (_round, changes) => {
        rounds++;
        requestsAt.push(Object.fromEntries(ids.map((id) => [id, simRequests(h.sim, 'WATCH', id) + simRequests(h.sim, 'LIST', id)])));
        windowEnd = h.clock.monotonic() + RETRY_AFTER_MS;
        // The watch cache re-initialises: every watch of every resource ends, then 429s for 10 s.
        for (const id of ids) h.sim.faults.terminateWatches(id, RETRY_AFTER_MS);
        changes();
      },
      () => waitUntil(async () => h.clock.monotonic() > windowEnd && ids.every((id) => throttled(id) >= rounds) && watchesOpen(h) === reflectors(h), { clock: h.clock }),
    );
    for (const id of ids) {
      // Each reflector met the 429 and then waited out Retry-After: one refused request per
      // window (two at most, if its first retry raced the window's start), never a retry storm.
      expect(throttled(id)).toBeGreaterThanOrEqual(2);
      expect(throttled(id)).toBeLessThanOrEqual(2 * rounds);
    }
    // Per round and resource: the refused request(s) plus the successful re-watch, nothing more.
    const after = Object.fromEntries(ids.map((id) => [id, simRequests(h.sim, 'WATCH', id) + simRequests(h.sim, 'LIST', id)]));
    for (const id of ids) expect((after[id] as number) - (requestsAt[0]?.[id] as number)).toBeLessThanOrEqual(2 * 3);
    expect(await metric(h.up, 'watchRestarts', { reason: 'throttled' })).toBe(ids.reduce((n, id) => n + throttled(id), 0));
  });
});

/**
 * A synced harness whose pods watch gets 410 next, so that it relists (a WatchList), with `rule`
 * armed for the WatchLists that follow; the pods LISTs made before it.
 */
async function watchListRelistMeets(rule: FaultRule): Promise<{ h: Harness; listsBefore: number }> {
  const h = await startHarness();
  await synced(h);
  const listsBefore = simRequests(h.sim, 'LIST', 'pods');
  h.sim.faults.add({ kind: 'http_410', resource: 'pods', clientId: UA, verb: 'WATCH', times: 1 });
  h.sim.faults.add({ resource: 'pods', clientId: UA, ...rule });
  h.sim.admin.closeWatches('pods');
  return { h, listsBefore };
}

describe('WatchList under transient faults', () => {
  it('a WatchList relist that ends cleanly before its initial events did falls back to LIST for an hour, then tries WatchList again', async () => {
    const h = await startHarness();
    await synced(h);
    const initialEvents = (): number => {
      const c = h.sim.admin.counters().initialEvents;
      return typeof c === 'number' ? c : (c['pods'] ?? 0);
    };
    const lists = (): number => simRequests(h.sim, 'LIST', 'pods');
    const listsBefore = lists();
    // 410 on the next watch → relist (a WatchList), whose stream ends at once: ambiguous.
    h.sim.faults.add({ kind: 'http_410', resource: 'pods', clientId: UA, verb: 'WATCH', times: 1 });
    h.sim.faults.add({ kind: 'close_after_headers', resource: 'pods', clientId: UA, verb: 'WATCH', times: 1 });
    h.sim.admin.closeWatches('pods');
    await waitUntil(async () => (await metric(h.up, 'relists', { resource: 'pods', reason: 'watchlist-fallback' })) === 1 && watchesOpen(h, 'pods') === 1 && h.up.ready(), { clock: h.clock });
    expect(lists()).toBe(listsBefore + 1);
    await converged(h);
    // Within the hour, a relist is a paged LIST.
    h.sim.faults.add({ kind: 'http_410', resource: 'pods', clientId: UA, verb: 'WATCH', times: 1 });
    h.sim.admin.closeWatches('pods');
    await waitUntil(() => lists() === listsBefore + 2 && watchesOpen(h, 'pods') === 1, { clock: h.clock });
    // After it, WatchList again: no LIST, the pods come as initial events.
    const initialBefore = initialEvents();
    await h.clock.advanceAsync(3_600_000);
    h.sim.faults.add({ kind: 'http_410', resource: 'pods', clientId: UA, verb: 'WATCH', times: 1 });
    h.sim.admin.closeWatches('pods');
    await waitUntil(() => faultsFired(h, 'http_410') === 3 && watchesOpen(h, 'pods') === 1 && h.up.ready(), { clock: h.clock });
    await converged(h);
    expect(lists()).toBe(listsBefore + 2);
    expect(initialEvents()).toBeGreaterThan(initialBefore);
    expect(await metric(h.up, 'relists', { resource: 'pods', reason: 'watchlist-fallback' })).toBe(1);
    expectNeverBack(h);
  });

  it('an in-stream 500 during the initial events of a WatchList relist is retried as WatchList, not a permanent fallback to LIST', async () => {
    // 410 on the next watch → relist (a WatchList); its initial events are cut by an ERROR 500.
    const { h, listsBefore } = await watchListRelistMeets({ kind: 'error_500', times: 1, afterEvents: 2 });
    await waitUntil(async () => faultsFired(h, 'error_500') === 1 && faultsFired(h, 'http_410') === 1 && watchesOpen(h, 'pods') === 1 && h.up.ready(), { clock: h.clock });
    await converged(h);
    expect(await metric(h.up, 'relists', { resource: 'pods', reason: 'watchlist-fallback' })).toBe(0);
    expect(simRequests(h.sim, 'LIST', 'pods')).toBe(listsBefore);
    expectNeverBack(h);
  });

  it('WatchList relists whose initial events end in a 5xx three times in a row turn to paged LIST for an hour (a watch cache that cannot catch up)', async () => {
    // Every WatchList's initial events are cut by an ERROR 504, as a watch cache that cannot
    // catch up answers (no progress notifications from etcd), then the list that follows works.
    const { h, listsBefore } = await watchListRelistMeets({ kind: 'error_504', times: 3, afterEvents: 1 });
    // Before, every WatchList failed and was tried again, for as long as the server kept failing.
    await waitUntil(async () => (await metric(h.up, 'relists', { resource: 'pods', reason: 'watchlist-fallback' })) === 1 && watchesOpen(h, 'pods') === 1 && h.up.ready(),
      'paged LIST after three failed WatchLists', { clock: h.clock });
    expect(faultsFired(h, 'error_504')).toBe(3);
    expect(simRequests(h.sim, 'LIST', 'pods')).toBe(listsBefore + 1);
    await converged(h);
    expectNeverBack(h);
  });
});
