/**
 * Per-node scoping (#20) under random churn against the real server: agents of several nodes,
 * one of them stalled so the fan-out skips it and catches it up (scoped catch-up), and one whose
 * revision leaves the delta log (scoped in-band snapshot). After every round each agent's state is
 * its node's scoped view of the store, and no agent ever held another node's full endpoint.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FakeClock } from '../../../src/clock.js';
import { SCOPE_POLICIES, type ScopePolicy } from '../../../src/server/scoping/policy.js';
import { scopedView } from '../../../src/server/scoping/view.js';
import { workloadEndpointKey } from '../../../src/server/upstream/projections/calico-keys.js';
import { harness, type Harness } from '../helpers/harness.js';
import type { TestAgent } from '../helpers/agent.js';
import { waitUntil } from '../../support/wait.js';

const felix = SCOPE_POLICIES.get('felix') as ScopePolicy;
const NODES = ['n1', 'n2', 'n3', 'n4'];
const CAPS = ['scope.node'];
const BIG = 'x'.repeat(4_000);

function wep(node: string, pod: number, gen: number, pad = ''): [string, Record<string, unknown>] {
  return [workloadEndpointKey(node, 'demo', `p${pod}`), { profile_ids: ['kns.demo'], ipv4_nets: [`10.${pod}.0.${gen % 250}/32`], labels: { g: String(gen) }, annotations: { owner: node, pad } }];
}

function expectScoped(h: Harness, a: TestAgent, node: string): void {
  const want = scopedView(felix, h.server.stores.get('felix')!.current().entries(), node);
  const got = a.feed('felix').entries;
  expect(got.size, node).toBe(want.size);
  for (const [k, v] of want) expect(got.get(k)?.equals(v), `${node} ${k}`).toBe(true);
  for (const [k, v] of got) {
    const owner = felix.nodeOf(k, undefined);
    if (owner !== undefined && owner !== node) expect(v.includes(Buffer.from('owner')), `${node} holds ${k} in full`).toBe(false);
  }
}

const batchArb = fc.array(fc.record({ node: fc.nat(3), pod: fc.nat(7), del: fc.boolean() }), { minLength: 1, maxLength: 8 });

describe('per-node scoping - churn', () => {
  it('random batches; a stalled agent caught up with a scoped catch-up; every state is its node\'s view', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(batchArb, { minLength: 2, maxLength: 6 }), async (batches) => {
        const h = await harness({ scopedFeeds: ['felix'], socketHighWaterBytes: 64 * 1024 });
        const seed: Record<string, unknown> = {};
        for (const n of NODES) for (let p = 0; p < 8; p++) { const [k, v] = wep(n, p, 0); seed[k] = v; }
        h.upstream.apply('felix', seed, { status: 'in-sync' });
        const agents = NODES.map((n) => h.agent({ feeds: [{ name: 'felix' }], node: n, caps: CAPS }));
        const [slow, ...fast] = agents as [TestAgent, ...TestAgent[]];
        for (const a of agents) await a.untilRevision('felix', h.storeRevision('felix'));
        // Stall n1's agent until the fan-out skips it.
        slow.socket.pause();
        const skips = h.server.fanoutStats().skips;
        for (let i = 0; i < 400 && h.server.fanoutStats().skips === skips; i++) {
          const big: Record<string, unknown> = {};
          // Full values go to n1 alone (the others get them slim): n1's socket fills.
          for (let p = 0; p < 8; p++) { const [k, v] = wep('n1', 100 + p, i, BIG); big[k] = v; }
          h.upstream.apply('felix', big);
          const rev = h.storeRevision('felix');
          await Promise.all(fast.map((a) => a.untilRevision('felix', rev)));
        }
        expect(h.server.fanoutStats().skips).toBeGreaterThan(skips);
        let gen = 1;
        for (const b of batches) {
          const changes: Record<string, unknown> = {};
          for (const op of b) { const [k, v] = wep(NODES[op.node] as string, op.pod, gen++); changes[k] = op.del ? null : v; }
          h.upstream.apply('felix', changes);
          const rev = h.storeRevision('felix');
          await Promise.all(fast.map((a) => a.untilRevision('felix', rev)));
          for (const [i, a] of fast.entries()) expectScoped(h, a, NODES[i + 1] as string);
        }
        slow.socket.resume();
        await slow.untilRevision('felix', h.storeRevision('felix'));
        await slow.until(() => slow.feed('felix').status === 'in-sync' && slow.feed('felix').pendingDelta === undefined, 'settled');
        expect(slow.feed('felix').deltas.some((d) => d.to - d.from > 1)).toBe(true);
        expectScoped(h, slow, 'n1');
        for (const a of agents) expect(a.violations).toEqual([]);
        for (const a of agents) a.ws.terminate();
        await h.server.close();
      }),
      { numRuns: 4 },
    );
  }, 60_000);

  it('an agent whose revision left the log gets a scoped in-band snapshot', async () => {
    const clock = new FakeClock();
    const h = await harness({ clock, flushWindowMs: 0, scopedFeeds: ['felix'], socketHighWaterBytes: 64 * 1024, deltaLogMaxAgeMs: 1_000, pingIntervalMs: 600_000, pongTimeoutMs: 600_000, handshakeTimeoutMs: 600_000 });
    const seed: Record<string, unknown> = {};
    for (const n of NODES) for (let p = 0; p < 4; p++) { const [k, v] = wep(n, p, 0); seed[k] = v; }
    h.upstream.apply('felix', seed, { status: 'in-sync' });
    const slow = h.agent({ feeds: [{ name: 'felix' }], node: 'n2', caps: CAPS });
    const fast = h.agent({ feeds: [{ name: 'felix' }], node: 'n3', caps: CAPS });
    await Promise.all([slow.untilRevision('felix', 1), fast.untilRevision('felix', 1)]);
    slow.socket.pause();
    const skips = h.server.fanoutStats().skips;
    for (let i = 0; i < 400 && h.server.fanoutStats().skips === skips; i++) {
      const big: Record<string, unknown> = {};
      for (let p = 0; p < 8; p++) { const [k, v] = wep('n2', 100 + p, i, BIG); big[k] = v; }
      h.upstream.apply('felix', big);
      await fast.untilRevision('felix', h.storeRevision('felix'));
    }
    // Deletions age out of the log: the skipped agent's revision is then too old for a catch-up.
    h.upstream.apply('felix', { [wep('n2', 0, 0)[0]]: null, [wep('n1', 1, 0)[0]]: null });
    clock.advance(2_500);
    h.upstream.apply('felix', Object.fromEntries([wep('n2', 2, 9)]));
    await fast.untilRevision('felix', h.storeRevision('felix'));
    slow.socket.resume();
    await slow.untilRevision('felix', h.storeRevision('felix'));
    await waitUntil(() => slow.feed('felix').pendingDelta === undefined && slow.feed('felix').pendingSnapshot === undefined, 'settled');
    expect(slow.feed('felix').snapshots).toBe(2);
    expectScoped(h, slow, 'n2');
    expectScoped(h, fast, 'n3');
    expect(slow.violations).toEqual([]);
  });
});
