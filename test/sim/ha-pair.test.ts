/**
 * The HA pair ("HA skew", kubernetes/kubernetes#133810): a follower over the same data lagging by
 * `lagRvs`, and a round-robin port that alternates between the two per connection, so a client
 * can be sent back in time.
 */
import { request } from 'node:http';
import { describe, expect, it } from 'vitest';
import type { Sim } from '../../src/sim/index.js';
import { getJson, type Loose } from './helpers.js';
import { simFixture } from '../support/sim.js';
import { RawConn } from './raw-conn.js';

const { start, track } = simFixture();

/** One request on a fresh connection (no keep-alive pool), so the proxy balances each. */
function listRv(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve((JSON.parse(body) as Loose).metadata.resourceVersion as string));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('sim HA pair', () => {
  it('the follower serves an older RV than the leader, releases events as the leader moves, and catches up with lag 0', async () => {
    const sim = await start({ nodes: 1, podsPerNode: 2, seed: 4, ha: { lagRvs: 3 } });
    const ha = sim.ha as NonNullable<Sim['ha']>;
    const base = Number(sim.admin.currentRv());
    for (let i = 0; i < 5; i++) sim.admin.create('namespaces', { metadata: { name: `ns-${i}` } });
    const leader = await getJson(`${sim.url}/api/v1/namespaces`);
    // Served from the follower's watch cache (RV=0): behind. A consistent list (RV unset) is read
    // at etcd's revision, by a lagging API server too: the leader's state.
    const follower = await getJson(`${ha.followerUrl}/api/v1/namespaces?resourceVersion=0`);
    expect((await getJson(`${ha.followerUrl}/api/v1/namespaces`)).body.metadata.resourceVersion).toBe(String(base + 5));
    expect(leader.body.metadata.resourceVersion).toBe(String(base + 5));
    expect(follower.body.metadata.resourceVersion).toBe(String(base + 2));
    const names = (b: Loose): string[] => b.items.map((n: Loose) => n.metadata.name).filter((n: string) => n.startsWith('ns-'));
    expect(names(leader.body)).toEqual(['ns-0', 'ns-1', 'ns-2', 'ns-3', 'ns-4']);
    expect(names(follower.body)).toEqual(['ns-0', 'ns-1']);

    const w = await RawConn.open(ha.followerPort, `/api/v1/namespaces?watch=true&resourceVersion=${base}`);
    track(w);
    await w.until(() => w.parsed().lines.length === 2, 'the two released events');
    sim.admin.create('namespaces', { metadata: { name: 'ns-5' } }); // leader +6: the follower reaches +3
    await w.until(() => w.parsed().lines.length === 3, 'the next released event');
    expect(w.parsed().lines.map((l) => (JSON.parse(l) as Loose).object.metadata.name)).toEqual(['ns-0', 'ns-1', 'ns-2']);

    ha.setLag(0);
    await w.until(() => w.parsed().lines.length === 6, 'catching up');
    expect((await getJson(`${ha.followerUrl}/api/v1/namespaces`)).body.metadata.resourceVersion).toBe(sim.admin.currentRv());
  });

  it('round-robin alternates leader and follower per connection: a client goes back in time, and its resume from the leader\'s RV is silent until the follower reaches it', async () => {
    const sim = await start({ nodes: 1, podsPerNode: 2, seed: 4, ha: { lagRvs: 2 }, rvWaitMs: 100 });
    const ha = sim.ha as NonNullable<Sim['ha']>;
    for (let i = 0; i < 3; i++) sim.admin.create('namespaces', { metadata: { name: `ns-${i}` } });
    const now = Number(sim.admin.currentRv());
    const rvs: number[] = [];
    for (let i = 0; i < 4; i++) rvs.push(Number(await listRv(`${ha.roundRobinUrl}/api/v1/namespaces?resourceVersion=0`)));
    expect(rvs).toEqual([now, now - 2, now, now - 2]);
    expect(ha.connections()).toEqual([2, 2]);
    // Resuming on the follower from the leader's RV, which it has not seen yet: answered 200 and
    // silent (the watch cache's rule), then the events after that RV once the follower reaches it.
    const w = await RawConn.open(Number(new URL(ha.followerUrl).port), `/api/v1/namespaces?watch=true&resourceVersion=${now}`);
    track(w);
    await w.until(() => w.parsed().status !== 0, 'headers');
    expect(w.parsed().status).toBe(200);
    sim.admin.create('namespaces', { metadata: { name: 'next' } });
    ha.setLag(0);
    sim.admin.create('namespaces', { metadata: { name: 'after' } });
    await w.until(() => w.parsed().lines.length >= 2, 'the events after the RV');
    expect(w.parsed().lines.map((l) => (JSON.parse(l) as Loose).object.metadata.name)).toEqual(['next', 'after']);
    // An etcd restore is not modelled with a follower (its queue of lagged events would outlive it).
    await expect(sim.faults.restore(sim.faults.backup())).rejects.toThrow('HA follower');
  });

  it('GET /_sim/ha tells a process outside the simulator where the pair is and what the follower served', async () => {
    const sim = await start({ nodes: 1, podsPerNode: 2, seed: 4, ha: { lagRvs: 2 } });
    const ha = sim.ha as NonNullable<Sim['ha']>;
    await listRv(`${ha.roundRobinUrl}/api/v1/namespaces?resourceVersion=0`);
    await listRv(`${ha.roundRobinUrl}/api/v1/namespaces?resourceVersion=0`);
    const lag = await fetch(`${sim.url}/_sim/faults/lag`, { method: 'POST', body: JSON.stringify({ lagRvs: 7 }) });
    expect(lag.status).toBe(200);
    const info = await getJson(`${sim.url}/_sim/ha`);
    expect(info.status).toBe(200);
    expect(info.body).toEqual({ followerUrl: ha.followerUrl, roundRobinUrl: ha.roundRobinUrl, lagRvs: 7, connections: [1, 1], followerRequests: { 'LIST,namespaces,200': 1 } });
    const single = await start({ nodes: 1, podsPerNode: 1, seed: 4 });
    expect((await getJson(`${single.url}/_sim/ha`)).status).toBe(400);
  });
});
