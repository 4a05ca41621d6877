import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/clock.js';
import type { FanOut } from '../../src/server/fanout/fanout.js';
import type { FeedRuntime } from '../../src/server/fanout/feeds.js';
import type { Governor } from '../../src/server/transport/governor.js';
import { Health } from '../../src/server/ops/health.js';
import type { ResourceHealth } from '../../src/server/pipeline/seams.js';

function feed(name: string, status: string, stale = false): FeedRuntime {
  return { name, store: { revision: 3, meta: () => ({ status, stale }) } } as unknown as FeedRuntime;
}

describe('server health', () => {
  const clock = new FakeClock();
  const fanout = { lastSweepMs: 0, sweepIntervalMs: 500, connections: new Set() } as unknown as FanOut;
  const governor = { isDraining: false, targetConnections: undefined, refusing: () => undefined } as unknown as Governor;

  it('is ready only when every feed is in sync and fresh', () => {
    expect(new Health(clock, fanout, [feed('felix', 'in-sync'), feed('bgp', 'in-sync')], governor).ready().ok).toBe(true);
    expect(new Health(clock, fanout, [feed('felix', 'in-sync'), feed('bgp', 'resyncing')], governor).ready().ok).toBe(false);
    const stale = new Health(clock, fanout, [feed('felix', 'in-sync', true)], governor).ready();
    expect(stale.ok).toBe(false);
    expect(stale.lines.join('\n')).toContain('stale');
  });

  it('is not ready while the API server refuses us (401/403), even with in-sync feeds', () => {
    let health: ResourceHealth[] = [{ id: 'pods', synced: true, stale: false, lastHealthyMs: 0 }];
    const h = new Health(clock, fanout, [feed('felix', 'in-sync')], governor, { health: () => health }, 'test cluster');
    expect(h.ready().ok).toBe(true);
    health = [{ id: 'pods', synced: true, stale: false, lastHealthyMs: 0, authError: '403 Forbidden' }];
    const r = h.ready();
    expect(r.ok).toBe(false);
    expect(r.lines).toContain('upstream: test cluster');
    expect(r.lines.join('\n')).toContain('pods: API server refused us: 403 Forbidden');
  });

  it('liveness never depends on the upstream, only on the fan-out loop turning', () => {
    const h = new Health(clock, fanout, [feed('felix', 'waiting')], governor, { health: () => [{ id: 'pods', synced: false, stale: true, lastHealthyMs: undefined, authError: '401' }] });
    expect(h.live().ok).toBe(true);
    clock.advance(60_000);
    expect(h.live().ok).toBe(false);
  });
});
