/**
 * GET /v1/convergence end to end on loopback: the simulator as the API server, the real upstream
 * and server, real library clients as agents (they ACK as a real agent does), and a raw agent that
 * completes its handshake but never ACKs (the stalled agent the barrier must name).
 */
import { MAX_CONVERGENCE_NODES } from '../../src/server/ops/convergence-endpoint.js';
import { harness } from './helpers/harness.js';
import { createServer as createHttpServer } from 'node:http';
import { type AddressInfo, connect as netConnect } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { CattailError } from '../../src/errors.js';
import { type ConvergenceSource, serveConvergence } from '../../src/server/ops/convergence-endpoint.js';
import { afterEach, describe, expect, it } from 'vitest';
import { connect, type Client } from '../../src/client/index.js';
import { startServer, type ServerHandle } from '../../src/server/server.js';
import { createUpstream } from '../../src/server/upstream/index.js';
import type { Sim } from '../../src/sim/index.js';
import { simFixture } from '../support/sim.js';
import { TEST_TRANSPORT } from '../support/transport.js';
import { waitUntil } from '../support/wait.js';
import { TestAgent } from './helpers/agent.js';

const NP = 'networkpolicies.networking.k8s.io';
const sims = simFixture({ nodes: 2, podsPerNode: 1, seed: 7 });
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

async function replica(sim: Sim, serverId: string): Promise<ServerHandle> {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(sim.kubeconfigPath);
  const upstream = createUpstream({ kubeConfig, replicaId: serverId, feeds: ['felix'] });
  const server = await startServer({ upstream, defaultMetrics: false, flushWindowMs: 1, serverId, transport: TEST_TRANSPORT });
  cleanups.push(() => server.close());
  return server;
}

function agent(server: ServerHandle, node: string): Client {
  // ackIntervalMs 0: the agent ACKs every revision at once, so the test waits on no second.
  const c = connect({ endpoints: [server.url], feeds: ['felix'], node, clientId: `id-${node}`, ackIntervalMs: 0 });
  cleanups.push(() => c.destroy());
  return c;
}

/** A raw agent: HELLO, then it takes every frame and never ACKs. */
function stalledAgent(server: ServerHandle, node: string): TestAgent {
  const a = new TestAgent(server.url, { feeds: [{ name: 'felix' }], node });
  cleanups.push(() => a.ws.terminate());
  return a;
}

async function ask(server: ServerHandle, query: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${server.httpUrl}/v1/convergence?${query}`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** Changes a NetworkPolicy in the simulator; returns the resourceVersion of the write. */
function changePolicy(sim: Sim, label: string): string {
  const np = sim.admin.list(NP)[0] as { metadata: { namespace: string; name: string } };
  const out = sim.admin.patch(NP, np.metadata.namespace, np.metadata.name, { metadata: { labels: { changed: label } } });
  return (out['metadata'] as { resourceVersion: string }).resourceVersion;
}

async function synced(server: ServerHandle, ...clients: Client[]): Promise<void> {
  await waitUntil(() => server.stores.get('felix')?.meta().status === 'in-sync', 'the replica in sync');
  await Promise.all(clients.map((c) => c.whenInSync()));
}

describe('GET /v1/convergence', () => {
  it('returns converged once every agent has applied the NetworkPolicy change, and meanwhile waits on ACKs', async () => {
    const sim = await sims.start();
    const server = await replica(sim, 'conv-a');
    const a = agent(server, 'node-a');
    const b = agent(server, 'node-b');
    await synced(server, a, b);
    const rv = changePolicy(sim, 'one');
    // Asked before the replica has even seen the change: the answer comes when both agents ACK it.
    const { status, body } = await ask(server, `resource=networkpolicies&resourceVersion=${rv}&timeoutMs=20000`);
    expect(status).toBe(200);
    expect(body).toMatchObject({ converged: true, timedOut: false, serverId: 'conv-a', resource: NP, resourceVersion: rv, agents: 2, convergedAgents: 2, laggardCount: 0, laggards: [] });
    const metric = await server.metrics.registry.getSingleMetric('cattail_agents_applied_resource_version')?.get();
    const min = metric?.values.find((v) => v.labels['resource'] === NP && v.labels['quantile'] === '0');
    expect(min?.value).toBeGreaterThanOrEqual(Number(rv));
    // The two agents were judged for the request at least when it came and at their ACKs.
    const checks = await server.metrics.registry.getSingleMetric('cattail_convergence_agent_checks_total')?.get();
    expect(checks?.values[0]?.value).toBeGreaterThanOrEqual(2);
  });

  it('times out naming the stalled agent; the node filter leaves it out or names a missing node', async () => {
    const sim = await sims.start();
    const server = await replica(sim, 'conv-b');
    const a = agent(server, 'node-a');
    await synced(server, a);
    const stalled = stalledAgent(server, 'node-stalled');
    await waitUntil(() => [...stalled.feeds.values()].some((f) => f.status === 'in-sync'), 'the stalled agent holding the snapshot');
    const rv = changePolicy(sim, 'two');
    const timedOut = await ask(server, `resource=${NP}&resourceVersion=${rv}&timeoutMs=1500`);
    expect(timedOut.status).toBe(200);
    expect(timedOut.body).toMatchObject({ converged: false, timedOut: true, agents: 2, convergedAgents: 1, laggardCount: 1 });
    expect(timedOut.body['laggards']).toEqual([{ node: 'node-stalled', clientId: 'test', appliedResourceVersion: null, connected: true }]);

    const onlyA = await ask(server, `resource=networkpolicies&resourceVersion=${rv}&timeoutMs=10000&node=node-a`);
    expect(onlyA.body).toMatchObject({ converged: true, agents: 1 });
    const missing = await ask(server, `resource=networkpolicies&resourceVersion=${rv}&timeoutMs=0&node=node-a&node=node-elsewhere`);
    expect(missing.body).toMatchObject({ converged: false, laggardCount: 1, laggards: [{ node: 'node-elsewhere', connected: false, clientId: null, appliedResourceVersion: null }] });

    const behind = await server.metrics.registry.getSingleMetric('cattail_agents_behind')?.get();
    expect(behind?.values.find((v) => v.labels['resource'] === NP)?.value).toBe(1);
    // The stalled agent leaving ends its claim on the barrier.
    stalled.ws.terminate();
    const after = await ask(server, `resource=networkpolicies&resourceVersion=${rv}&timeoutMs=10000`);
    expect(after.body).toMatchObject({ converged: true, agents: 1 });
  });

  it('refuses bad parameters with 400 and a stable code', async () => {
    const sim = await sims.start();
    const server = await replica(sim, 'conv-c');
    const cases = [
      'resourceVersion=5',
      'resource=widgets&resourceVersion=5',
      'resource=networkpolicies',
      'resource=networkpolicies&resourceVersion=abc',
      'resource=networkpolicies&resourceVersion=5&timeoutMs=300001',
      'resource=networkpolicies&resourceVersion=5&timeoutMs=-1',
      'resource=networkpolicies&resourceVersion=5&rv=6',
      'resource=networkpolicies&resourceVersion=5&resourceVersion=6',
    ];
    for (const q of cases) {
      const { status, body } = await ask(server, q);
      expect({ q, status, code: (body['error'] as { code: string } | undefined)?.code }).toEqual({ q, status: 400, code: 'CATTAIL_CONVERGENCE_BAD_REQUEST' });
    }
  });

  it('reads a request naming as many nodes as it accepts, each at the longest name (Node\'s 16 KiB header limit answered 431 from ~400 cloud names)', async () => {
    const sim = await sims.start();
    const server = await replica(sim, 'conv-d');
    const names = Array.from({ length: MAX_CONVERGENCE_NODES }, (_, i) => `${String(i).padStart(4, '0')}.${'n'.repeat(248)}`);
    const rv = changePolicy(sim, 'three');
    const { status, body } = await ask(server, `resource=networkpolicies&resourceVersion=${rv}&timeoutMs=0&${names.map((n) => `node=${n}`).join('&')}`);
    expect(status).toBe(200);
    expect(body).toMatchObject({ converged: false, laggardCount: MAX_CONVERGENCE_NODES });
    // One more name is the endpoint's own refusal, not the HTTP parser's.
    const over = await ask(server, `resource=networkpolicies&resourceVersion=${rv}&timeoutMs=0&${[...names, 'x'].map((n) => `node=${n}`).join('&')}`);
    expect(over.status).toBe(400);
  });
});

describe('GET /v1/convergence: a request dropped while waiting', () => {
  it('frees the waits of a caller that hangs up, also of requests pipelined on its connection', async () => {
    const signals: AbortSignal[] = [];
    const source: ConvergenceSource = {
      resolveResource: (n) => n,
      wait: (_q, signal) => {
        if (signal !== undefined) signals.push(signal);
        return new Promise(() => undefined); // never converges
      },
    };
    const srv = createHttpServer((req, res) => serveConvergence(source, new URL(req.url ?? '/', 'http://x'), req, res));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    try {
      const get = 'GET /v1/convergence?resource=pods&resourceVersion=5&timeoutMs=300000 HTTP/1.1\r\nHost: x\r\n\r\n';
      const sock = netConnect((srv.address() as AddressInfo).port, '127.0.0.1', () => sock.write(get + get + get));
      sock.on('error', () => undefined);
      await waitUntil(() => signals.length === 3, 'three waits');
      sock.destroy();
      await waitUntil(() => signals.every((sig) => sig.aborted), 'every wait freed');
    } finally {
      srv.closeAllConnections();
      await new Promise((r) => srv.close(r));
    }
  });

  it('is answered 503 CATTAIL_CONVERGENCE_TOO_MANY_WAITERS with Retry-After, as at admission', async () => {
    const source: ConvergenceSource = {
      resolveResource: (n) => n,
      wait: () => Promise.reject(new CattailError('CATTAIL_CONVERGENCE_TOO_MANY_WAITERS', 'grown past the bound')),
    };
    const srv = createHttpServer((req, res) => serveConvergence(source, new URL(req.url ?? '/', 'http://x'), req, res));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    try {
      const r = await fetch(`http://127.0.0.1:${(srv.address() as AddressInfo).port}/v1/convergence?resource=pods&resourceVersion=5&timeoutMs=1000`);
      expect(r.status).toBe(503);
      expect(r.headers.get('retry-after')).toMatch(/^[1-9][0-9]*$/);
      expect(await r.json()).toMatchObject({ error: { code: 'CATTAIL_CONVERGENCE_TOO_MANY_WAITERS' } });
    } finally {
      await new Promise((r) => srv.close(r));
    }
  });
});


describe('GET /v1/convergence: ACKs that acknowledge nothing new', () => {
  it('an agent repeating one ACK is not judged again against the waiting requests', async () => {
    const h = await harness({ flushWindowMs: 0 });
    h.upstream.apply('felix', { '/pods/ns/a': { a: 1 } }, { status: 'in-sync', watermarks: { pods: '100' } });
    const a = h.agent({ feeds: [{ name: 'felix' }], node: 'node-x' });
    await a.untilRevision('felix', 1);
    // Waiting requests for a resourceVersion nobody has: they stay pending while the agent ACKs.
    const waits = Array.from({ length: 5 }, () => fetch(`${h.server.httpUrl}/v1/convergence?resource=pods&resourceVersion=999999&timeoutMs=2000`));
    await waitUntil(async () => (await h.metric('cattail_convergence_waiters')) === 5, 'the requests wait');
    const before = await h.metric('cattail_convergence_agent_checks_total');
    a.sendMessage({ type: 'ack', feedId: 0, revision: 1 });
    await waitUntil(async () => (await h.metric('cattail_convergence_agent_checks_total')) > before, 'the first ACK judged');
    const judged = await h.metric('cattail_convergence_agent_checks_total');
    for (let i = 0; i < 200; i++) a.sendMessage({ type: 'ack', feedId: 0, revision: 1 });
    a.sendMessage({ type: 'pong', t: 0 });
    await waitUntil(() => h.server.fanoutStats().pongsReceived > 0, 'the ACKs read');
    // Before: one judgement per waiter for each of the 200.
    expect(await h.metric('cattail_convergence_agent_checks_total')).toBe(judged);
    await Promise.all((await Promise.allSettled(waits)).map(() => undefined));
  });
});

describe('GET /v1/convergence: a feed still at revision 0', () => {
  it('credits an agent that ACKed revision 0 of a feed in sync with no entries (its watermarks are recorded there)', async () => {
    const h = await harness({ flushWindowMs: 0 });
    h.upstream.apply('felix', {}, { status: 'in-sync', watermarks: { pods: '5' } });
    expect(h.storeRevision('felix')).toBe(0);
    const a = h.agent({ feeds: [{ name: 'felix' }], node: 'node-empty' });
    await a.until(() => a.feeds.get(0)?.status === 'in-sync', 'in sync at revision 0');
    a.sendMessage({ type: 'ack', feedId: 0, revision: 0 });
    const res = await fetch(`${h.server.httpUrl}/v1/convergence?resource=pods&resourceVersion=5&timeoutMs=3000`);
    // Before: the ACK of 0 was taken for "nothing new" and dropped, and an agent whose ACKed
    // revision is 0 counted as never having ACKed: not converged until the timeout.
    expect(await res.json()).toMatchObject({ converged: true, agents: 1, convergedAgents: 1 });
  });
});
