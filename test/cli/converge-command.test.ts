/**
 * `cattail converge` against two real replicas on loopback (scripted upstreams, so the test says
 * which resourceVersion each replica holds), real library agents that ACK, and a raw agent that
 * never does.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { connect, type Client } from '../../src/client/index.js';
import { runCli } from '../support/cli.js';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { waitUntil } from '../support/wait.js';
import { TestAgent } from '../server/helpers/agent.js';
import { simFixture } from '../support/sim.js';
import { discoverReplicas, replicaOpsUrls } from '../../src/cli/converge-discovery.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ScriptedReplica, scriptedReplica } from '../support/replica.js';

const sims = simFixture({ nodes: 1, podsPerNode: 1, churnPerSec: 0, seed: 3 });

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

type Replica = ScriptedReplica;

async function replica(serverId: string): Promise<Replica> {
  const r = await scriptedReplica(serverId, cleanups);
  r.upstream.apply('felix', { '/pods/demo/a': { v: 1 } }, { watermarks: { pods: '100' }, status: 'in-sync' });
  return r;
}

async function agent(r: Replica, node: string): Promise<Client> {
  const c = connect({ endpoints: [r.server.url], feeds: ['felix'], node, clientId: `id-${node}`, ackIntervalMs: 0 });
  cleanups.push(() => c.destroy());
  await c.whenInSync();
  return c;
}

const args = (a: Replica, b: Replica, ...rest: string[]): string[] => ['converge', '--endpoints', `${a.server.httpUrl},${b.server.httpUrl}`, '--resource', 'pods', ...rest];

/**
 * A replica's ops port that answers its first `busyFor` asks 503 TOO_MANY_WAITERS (Retry-After 1 s)
 * and then a converged report; `seen` has each ask's timeoutMs.
 */
async function busyReplica(serverId: string): Promise<{ url: string; seen: string[]; busyFor(n: number): void }> {
  let busyFor = 1;
  const seen: string[] = [];
  const srv = createHttpServer((req, res) => {
    seen.push(new URL(req.url ?? '/', 'http://x').searchParams.get('timeoutMs') ?? '');
    if (busyFor-- > 0) {
      res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' }).end(JSON.stringify({ error: { code: 'CATTAIL_CONVERGENCE_TOO_MANY_WAITERS', message: 'busy' } }));
      return;
    }
    const report = { converged: true, timedOut: false, serverId, resource: 'pods', resourceVersion: '5', replicaResourceVersion: '5', agents: 1, convergedAgents: 1, laggardCount: 0, laggards: [], missingNodes: [], waitedMs: 0 };
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(report));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => srv.close(() => r())));
  return { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`, seen, busyFor: (n) => (busyFor = n) };
}

describe('cattail converge', () => {
  it('exits 0 when every agent of both replicas has applied the resourceVersion; --node asks each replica for its own nodes', async () => {
    const a = await replica('rep-a');
    const b = await replica('rep-b');
    await agent(a, 'node-a');
    await agent(b, 'node-b');
    // The change may land before or while the command waits: either way it answers once both agents ACK it.
    const pending = runCli(args(a, b, '--resource-version', '105', '--timeout-ms', '20000'));
    a.upstream.apply('felix', { '/pods/demo/a': { v: 2 } }, { watermarks: { pods: '105' } });
    b.upstream.apply('felix', { '/pods/demo/a': { v: 2 } }, { watermarks: { pods: '105' } });
    const all = await pending;
    expect(all.err).toBe('');
    expect(all.code).toBe(0);
    expect(all.out).toContain('rep-a (');
    expect(all.out).toContain('rep-b (');
    expect(all.out).toContain('converged: 2 agents on 2 replicas have applied pods 105');

    // Each node is connected to one replica: the other must not hold the command for the timeout.
    const named = await runCli(args(a, b, '--resource-version', '105', '--timeout-ms', '60000', '--node', 'node-a', '--node', 'node-b'));
    expect(named.code).toBe(0);
    expect(named.out).toContain('converged: 2 agents on 2 replicas');

    const nowhere = await runCli(args(a, b, '--resource-version', '105', '--timeout-ms', '60000', '--node', 'node-a', '--node', 'node-gone'));
    expect(nowhere.code).toBe(6);
    expect(nowhere.out).toContain('laggard node-gone: not connected to any replica');
    expect(nowhere.err).toMatch(/^cattail: CATTAIL_CONVERGENCE_NOT_CONVERGED: /);
  });

  it('names the stalled agent and exits with CATTAIL_CONVERGENCE_NOT_CONVERGED at the timeout; a dead replica is REPLICA_FAILED', async () => {
    const a = await replica('rep-a');
    const b = await replica('rep-b');
    await agent(a, 'node-a');
    const stalled = new TestAgent(b.server.url, { feeds: [{ name: 'felix' }], node: 'node-stalled' });
    cleanups.push(() => stalled.ws.terminate());
    await waitUntil(() => stalled.welcome !== undefined && stalled.feed('felix').status === 'in-sync', 'the stalled agent in sync');
    const r = await runCli(args(a, b, '--resource-version', '100', '--timeout-ms', '300'));
    expect(r.code).toBe(6);
    expect(r.out).toContain('rep-b (');
    expect(r.out).toMatch(/rep-b .*NOT converged \(timed out after \d+ ms\): 0\/1 agents/);
    expect(r.out).toContain('laggard node-stalled (client test on rep-b): applied unknown (no ACK yet)');
    expect(r.err).toContain('CATTAIL_CONVERGENCE_NOT_CONVERGED');

    const json = await runCli(args(a, b, '--resource-version', '100', '--timeout-ms', '0', '--json'));
    expect(json.code).toBe(6);
    expect(JSON.parse(json.out)).toMatchObject({ converged: false, agents: 2, laggards: [{ node: 'node-stalled', replica: 'rep-b', connected: true }] });

    await b.server.close();
    const dead = await runCli(args(a, b, '--resource-version', '100', '--timeout-ms', '0'));
    expect(dead.code).toBe(7);
    expect(dead.err).toContain('CATTAIL_CONVERGENCE_REPLICA_FAILED');
  });

  it('asks a busy replica (503 TOO_MANY_WAITERS) again after its Retry-After, within the timeout; past it, REPLICA_FAILED', async () => {
    const busy = await busyReplica('busy-1');
    const { url, seen } = busy;
    const ok = await runCli(['converge', '--endpoints', url, '--resource', 'pods', '--resource-version', '5', '--timeout-ms', '20000']);
    expect(ok.code).toBe(0);
    expect(seen).toHaveLength(2);
    expect(Number(seen[1])).toBeLessThan(20_000); // the retry asks for what is left of the timeout
    // A Retry-After beyond the timeout: not asked again, the replica counts as failed.
    busy.busyFor(1);
    seen.length = 0;
    const late = await runCli(['converge', '--endpoints', url, '--resource', 'pods', '--resource-version', '5', '--timeout-ms', '500']);
    expect(late.code).toBe(7);
    expect(seen).toHaveLength(1);
    expect(late.out).toContain('CATTAIL_CONVERGENCE_TOO_MANY_WAITERS');
  });

  it('with --node, a replica busy at the first ask (where is each node) is asked again too, not counted as failed', async () => {
    const { url, seen } = await busyReplica('busy-2');
    const ok = await runCli(['converge', '--endpoints', url, '--resource', 'pods', '--resource-version', '5', '--timeout-ms', '20000', '--node', 'n1']);
    // Before: the busy first ask made the replica failed and n1 "not connected to any replica" (exit 7).
    expect(ok.code).toBe(0);
    // The first ask and its retry stay timeout-0 asks; then the waiting ask for n1.
    expect(seen.slice(0, 2)).toEqual(['0', '0']);
    expect(seen).toHaveLength(3);
  });

  it('refuses bad arguments before asking, and a resource no replica serves with the replica\'s coded 400', async () => {
    const a = await replica('rep-a');
    const b = await replica('rep-b');
    const noRv = await runCli(['converge', '--endpoints', a.server.httpUrl, '--resource', 'pods']);
    expect(noRv.code).toBe(2);
    expect(noRv.err).toContain('resourceVersion');
    const badUrl = await runCli(['converge', '--endpoints', 'ws://x:1', '--resource', 'pods', '--resource-version', '1']);
    expect(badUrl.code).toBe(2);
    const tooLong = await runCli(['converge', '--endpoints', a.server.httpUrl, '--resource', 'pods', '--resource-version', '1', '--timeout-ms', '300001']);
    expect(tooLong.err).toContain('CATTAIL_CONFIG_INVALID_VALUE');
    const unknown = await runCli(['converge', '--endpoints', `${a.server.httpUrl},${b.server.httpUrl}`, '--resource', 'widgets', '--resource-version', '1']);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/CATTAIL_CONVERGENCE_BAD_REQUEST: .*widgets/);
  });
});

describe('cattail converge --service', () => {
  it('asks every endpoint of the Service\'s EndpointSlices, not-ready and terminating ones too', () => {
    const urls = replicaOpsUrls([
      { addressType: 'IPv4', ports: [{ name: 'agents', port: 5473 }, { name: 'metrics', port: 9093 }], endpoints: [{ addresses: ['10.0.0.1'], conditions: { ready: true } }, { addresses: ['10.0.0.2'], conditions: { ready: false } }, { addresses: ['10.0.0.3'], conditions: { ready: false, terminating: true } }] },
      { addressType: 'IPv6', ports: [{ name: 'metrics', port: 9093 }], endpoints: [{ addresses: ['fd00::1'] }] },
      { addressType: 'IPv4', ports: [{ name: 'agents', port: 5473 }], endpoints: [{ addresses: ['10.0.0.9'] }] },
    ], 'metrics');
    expect(urls).toEqual(['http://10.0.0.1:9093', 'http://10.0.0.2:9093', 'http://10.0.0.3:9093', 'http://[fd00::1]:9093']);
    // Replicas run with --http-tls: --service-scheme https.
    expect(replicaOpsUrls([{ addressType: 'IPv4', ports: [{ name: 'metrics', port: 9093 }], endpoints: [{ addresses: ['10.0.0.1'] }] }], 'metrics', 'https')).toEqual(['https://10.0.0.1:9093']);
  });

  it('bounds the EndpointSlice read by the timeout and by the stop signal: an API server that never answers fails it with a code', async () => {
    const hung = createHttpServer(() => undefined); // accepts, never answers
    await new Promise<void>((r) => hung.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => { hung.closeAllConnections(); hung.close(() => r()); }));
    const dir = mkdtempSync(join(tmpdir(), 'cattail-conv-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(kubeconfig, `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "http://127.0.0.1:${(hung.address() as AddressInfo).port}", insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`);
    const t0 = Date.now();
    await expect(discoverReplicas('calico-system/cattail', 'metrics', 'http', kubeconfig, new AbortController().signal, 300)).rejects.toMatchObject({ code: 'CATTAIL_CLIENT_DISCOVERY_FAILED', message: expect.stringContaining('within 300 ms') });
    expect(Date.now() - t0).toBeLessThan(5_000);
    const stop = new AbortController();
    const stopped = discoverReplicas('calico-system/cattail', 'metrics', 'http', kubeconfig, stop.signal, 600_000);
    setTimeout(() => stop.abort(), 100);
    await expect(stopped).rejects.toMatchObject({ code: 'CATTAIL_CLIENT_DISCOVERY_FAILED', message: expect.stringContaining('stopped') });
  });

  it('finds the replicas through the API server and asks them', async () => {
    const a = await replica('rep-a');
    const b = await replica('rep-b');
    await agent(a, 'node-a');
    await agent(b, 'node-b');
    const sim = await sims.start();
    for (const [name, r] of [['cattail-a', a], ['cattail-b', b]] as const) {
      sim.admin.create('endpointslices.discovery.k8s.io', {
        apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: 'IPv4',
        metadata: { name, namespace: 'calico-system', labels: { 'kubernetes.io/service-name': 'cattail' } },
        ports: [{ name: 'metrics', port: Number(new URL(r.server.httpUrl).port), protocol: 'TCP' }],
        endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }],
      });
    }
    const r = await runCli(['converge', '--service', 'calico-system/cattail', '--kubeconfig', sim.kubeconfigPath, '--resource', 'pods', '--resource-version', '100', '--timeout-ms', '10000']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toContain('converged: 2 agents on 2 replicas');
    const none = await runCli(['converge', '--resource', 'pods', '--resource-version', '100']);
    expect(none.code).toBe(2);
    expect(none.err).toContain('--endpoints');
  });
});
