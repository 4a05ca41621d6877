import { get } from 'node:http';
import { describe, expect, it } from 'vitest';
import { parseJson } from '../../src/server/upstream/json.js';
import {
  bothRounds,
  converged,
  differingKeys,
  expectedAll,
  expectNeverBack,
  invisibleWrite,
  isConverged,
  kubeTransport,
  metric,
  mutate,
  NODES_FEED,
  reflectors,
  SIM_RESOURCES,
  startHarness,
  SwitchableTransport,
  synced,
  UA,
  watchesOpen,
  WL_FEED,
} from './fault-scenarios.js';
import { idle, waitUntil } from '../support/wait.js';

/**
 * Issue 7's adversarial behaviours against the real simulator (part 2: server-side disasters,
 * HA, paging, auth, CRDs). Same oracle as part 1: after each scenario every feed equals the
 * simulator's objects through the upstream's projectors, a recovery with no real change delivers
 * zero updates and zero store revisions, and real changes arrive exactly once each.
 */


/** The resourceVersion of a LIST from the watch cache of `url` (RV=0: to show the follower really lags). */
function listRv(url: string, resource: string): Promise<number> {
  return new Promise((resolve, reject) => {
    get(`${url}/api/v1/${resource}?resourceVersion=0`, { headers: { 'user-agent': 'test-oracle' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Number((parseJson(Buffer.concat(chunks).toString('utf8')) as { metadata: { resourceVersion: string } }).metadata.resourceVersion)));
      res.on('error', reject);
    }).on('error', reject);
  });
}

describe('upstream against the simulator under faults (server, HA, auth)', () => {
  it('apiserver restart with empty history: refused for a while, then a relist with only real differences', async () => {
    const h = await startHarness();
    await synced(h);
    let restarting: Promise<void> | undefined;
    let done = false;
    await bothRounds(
      h,
      (_round, changes) => {
        done = false;
        restarting = h.sim.faults.restart({ refuseMs: 3_000 }).then(() => {
          done = true;
        });
        // Before the history is reset (after refuseMs): these changes are behind the new floor.
        changes();
      },
      async () => {
        await waitUntil(() => done, { clock: h.clock });
        await restarting;
        await waitUntil(async () => watchesOpen(h) === reflectors(h) && h.up.ready(), { clock: h.clock });
      },
    );
    // Every resume point was behind the emptied history at least once: all relisted, all expired.
    for (const id of SIM_RESOURCES) expect(await metric(h.up, 'relists', { resource: id, reason: 'expired' })).toBeGreaterThanOrEqual(1);
    expect(await metric(h.up, 'watchRestarts', { reason: 'network' })).toBeGreaterThan(0);
  });

  for (const [watchList, via] of [
    [true, 'follower'],
    [false, 'follower'],
    [true, 'round-robin'],
  ] as const) {
    it(`lagging HA replica (${watchList ? 'WatchList' : 'paged LIST'}, via the ${via} port): moved off the leader to a replica behind it, the upstream never goes back in time`, async () => {
      // The transport can be re-pointed: straight to the follower, or to the round-robin port
      // (every request is a new connection, so requests alternate between leader and follower).
      let transport: SwitchableTransport | undefined;
      const h = await startHarness({ up: { watchList }, sim: { ha: { lagRvs: 0 } }, transport: (s) => (transport = new SwitchableTransport(kubeTransport(s.url))) });
      const sim = h.sim;
      const ha = sim.ha;
      if (!ha || !transport) throw new Error('no HA pair');
      await synced(h);
      // The leader moves on (real changes the upstream sees), then the follower falls behind them.
      mutate(h, 'leader');
      await converged(h);
      const updates = h.sink.updates();
      const revisions = h.sink.revisions();
      const marks = Object.fromEntries(SIM_RESOURCES.map((id) => [id, h.sink.watermark('wl', id) as string]));
      ha.setLag(40);
      expect(await listRv(ha.followerUrl, 'pods')).toBeLessThan(Number(marks['pods']));
      transport.target = kubeTransport(via === 'follower' ? ha.followerUrl : ha.roundRobinUrl);
      // Watches end, and the first re-watch of each resource gets 410: a relist NotOlderThan our
      // RV, which the follower's cache cannot serve (504 after its wait; a WatchList, an ERROR
      // 504), then a consistent list, which a lagging API server reads at etcd's revision (not
      // older). Re-watches from our RV are silent until the follower reaches it.
      for (const id of SIM_RESOURCES) sim.faults.add({ kind: 'http_410', resource: id, clientId: UA, verb: 'WATCH', times: 1 });
      sim.admin.closeWatches();
      const followerAsks = (): number => Object.entries(ha.followerCounters().requests).reduce((n, [k, v]) => n + (k.startsWith('LIST,') || k.startsWith('WATCH,') ? v : 0), 0);
      // Via the round-robin port a resource may keep landing on the follower (requests of the
      // reflectors alternate in step): it then retries without ever taking an older state. Which
      // request meets the follower depends on that parity, hence fewer follower requests there.
      const settled = (): boolean => h.sim.faults.log().filter((e) => e.kind === 'http_410').length >= SIM_RESOURCES.length && followerAsks() >= (via === 'follower' ? 6 : 3) * reflectors(h);
      await waitUntil(async () => settled(), { clock: h.clock, stepMs: 100 });
      await idle(h.clock, 5_000);
      // Nothing older reached the feeds: no update at all, no store revision, no watermark back.
      expect(h.sink.updates()).toBe(updates);
      expect(h.sink.revisions()).toBe(revisions);
      expectNeverBack(h);
      for (const id of SIM_RESOURCES) expect(Number(h.sink.watermark('wl', id))).toBeGreaterThanOrEqual(Number(marks[id]));
      expect(isConverged(h)).toBe(true); // still the leader's (newer) state
      // The follower catches up: the upstream resyncs from it with no spurious update, and then
      // follows real changes through it exactly.
      ha.setLag(0);
      await waitUntil(async () => watchesOpen(h) + countOpen(ha.followerCounters().watchesOpen) === reflectors(h) && h.up.ready(), { clock: h.clock });
      await converged(h);
      expect(h.sink.updates()).toBe(updates);
      const before = expectedAll(h);
      mutate(h, 'follower');
      await converged(h);
      await idle(h.clock, 1_000);
      expect(h.sink.updates() - updates).toBe(differingKeys(before, expectedAll(h)));
      expectNeverBack(h);
    });
  }

  it('expired continue token: the paged list restarts consistently, nothing delivered twice', async () => {
    const h = await startHarness({ up: { watchList: false, listPageSize: 4 } });
    // The initial list meets it on its second page.
    h.sim.faults.add({ kind: 'expire_continue', resource: 'pods', clientId: UA, times: 1 });
    await synced(h);
    expect(await metric(h.up, 'relists', { resource: 'pods', reason: 'continue-expired' })).toBe(1);
    // Every key was delivered once, not once per list attempt.
    const feedUpdates = (feed: string): number => h.sink.updates(feed);
    const exp = expectedAll(h);
    expect(feedUpdates(WL_FEED.name)).toBe(exp[0]?.size);
    expect(feedUpdates(NODES_FEED.name)).toBe(exp[1]?.size);
    await converged(h);
    let want = 1;
    await bothRounds(
      h,
      (_round, changes) => {
        want++;
        h.sim.faults.add({ kind: 'expire_continue', resource: 'pods', clientId: UA, times: 1 });
        // Disconnected, then history compacted past our RV: the relist is paged and its token
        // expires. A status-only write (invisible in the projections) moves the RV in round 0.
        h.sim.admin.closeWatches('pods');
        changes();
        invisibleWrite(h);
        h.sim.faults.compact();
      },
      () => waitUntil(async () => (await metric(h.up, 'relists', { resource: 'pods', reason: 'continue-expired' })) === want && watchesOpen(h, 'pods') === 1, { clock: h.clock }),
    );
    expect(h.sim.faults.log().filter((e) => e.kind === 'expire_continue')).toHaveLength(3);
  });

  for (const [code, kind] of [
    [401, 'unauthorized'],
    [403, 'forbidden'],
  ] as const) {
    it(`${code} is loud (authError, counted, not ready, never "missing"), then recovers when fixed`, async () => {
      const h = await startHarness();
      await synced(h);
      let rule = '';
      let errors = 0;
      await bothRounds(
        h,
        (_round, changes) => {
          rule = h.sim.faults.add({ kind, resource: 'pods', clientId: UA });
          h.sim.admin.closeWatches('pods');
          changes();
        },
        async () => {
          await waitUntil(async () => (await metric(h.up, 'authErrors', { resource: 'pods', code: String(code) })) >= errors + 3, { clock: h.clock });
          errors = await metric(h.up, 'authErrors', { resource: 'pods', code: String(code) });
          const health = h.up.health().find((x) => x.id === 'pods');
          expect(health?.authError).toMatch(new RegExp(`HTTP ${code}`));
          expect(health?.missing).toBeUndefined();
          expect(h.up.ready()).toBe(false);
          // The refused resource is not emptied: nothing was delivered while refused.
          expect(h.sink.state.get(WL_FEED.name)?.size).toBeGreaterThan(0);
          h.sim.faults.remove(rule); // RBAC fixed / token valid again
          await waitUntil(async () => h.up.health().every((x) => x.authError === undefined) && h.up.ready() && watchesOpen(h, 'pods') === 1, { clock: h.clock });
        },
      );
      expect(await metric(h.up, 'relists', { resource: 'pods' })).toBe(0);
    });
  }

  it('missing CRD: counted as in sync, retried periodically, never a spurious update', async () => {
    const POOLS = 'ippools.crd.projectcalico.org';
    const mixed = { name: 'mixed', resources: [{ resource: 'pods' }, { resource: POOLS }] };
    const h = await startHarness({ sim: { resources: [...SIM_RESOURCES, POOLS], omitResources: [POOLS] }, feeds: [WL_FEED, NODES_FEED, mixed] });
    await synced(h);
    const pools = (): { missing?: boolean; synced: boolean; authError?: string } | undefined => h.up.health().find((x) => x.id === POOLS);
    expect(pools()).toMatchObject({ missing: true, synced: true });
    expect(pools()?.authError).toBeUndefined();
    expect(h.sink.status.get('mixed')).toBe('in-sync');
    expect(h.up.ready()).toBe(true);
    await converged(h);
    const updates = h.sink.updates();
    const revisions = h.sink.revisions();
    const retries = await metric(h.up, 'relists', { resource: POOLS, reason: 'missing-retry' });
    // missingResourceRetryMs is 3 s here: a few more virtual seconds, a few more lookups.
    await waitUntil(async () => (await metric(h.up, 'relists', { resource: POOLS, reason: 'missing-retry' })) >= retries + 3, { clock: h.clock, stepMs: 100 });
    const after = await metric(h.up, 'relists', { resource: POOLS, reason: 'missing-retry' });
    // One request per lookup and one CRD list (the not-served probe), none in between (not a hot
    // loop, not a backoff loop).
    expect(await metric(h.up, 'requests', { resource: POOLS, code: '404' })).toBe(after);
    expect(await metric(h.up, 'requests', { resource: POOLS, verb: 'crd-list', code: '200' })).toBe(after);
    expect(await metric(h.up, 'requests', { resource: POOLS })).toBe(2 * after);
    // The simulator's CRD list proves the pools absent: their watermark is its resourceVersion.
    expect(h.sink.batches.filter((b) => b.feed === 'mixed').at(-1)?.batch.watermarks?.[POOLS]).toMatch(/^[1-9][0-9]*$/);
    expect(h.sink.updates()).toBe(updates);
    expect(h.sink.revisions()).toBe(revisions);
    expect(pools()).toMatchObject({ missing: true, synced: true });
    // The served part of the same feed still follows real changes exactly.
    const before = expectedAll(h);
    mutate(h, 'crd');
    await converged(h);
    await idle(h.clock, 1_000);
    expect(h.sink.updates() - updates).toBe(differingKeys(before, expectedAll(h)));
    expectNeverBack(h);
  });
});

function countOpen(w: Record<string, number> | number): number {
  return typeof w === 'number' ? w : Object.values(w).reduce((a, b) => a + b, 0);
}
