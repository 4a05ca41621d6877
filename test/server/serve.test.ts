import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { waitUntil } from '../support/wait.js';
import { main, stopSignals } from '../../src/cli/main.js';
import { resolveConfig } from '../../src/config/load.js';
import { serveOptions, splitEndpoints } from '../../src/server/options.js';
import { createServeCommand, resolveUpstreamSource } from '../../src/server/serve.js';
import { ScriptedUpstream } from '../support/scripted-upstream.js';
import { startServer } from '../../src/server/server.js';
import { TestAgent } from './helpers/agent.js';

function sink(): Writable & { text: () => string; lines: string[] } {
  const lines: string[] = [];
  const w = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString());
      w.emit('line');
      cb();
    },
  });
  return Object.assign(w, { text: () => lines.join(''), lines });
}

async function run(argv: string[], env: Record<string, string> = {}): Promise<{ code: number; err: string }> {
  const stderr = sink();
  const code = await main(argv, { stdout: sink(), stderr, env });
  return { code, err: stderr.text() };
}

/** `cattail serve` on loopback with a scripted upstream (in sync, one pod) and a silent log. */
async function scriptedServe(argv: string[], ctx: { signal: AbortSignal; forceSignal?: AbortSignal }) {
  const upstream = ScriptedUpstream.withFeeds('felix');
  const serve = createServeCommand(
    () => Promise.resolve({ upstream, description: 'scripted' }),
    () => pino({ level: 'silent' }),
  );
  const config = resolveConfig(serveOptions, { argv: ['--kubeconfig', '/k', '--listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--health-listen', '127.0.0.1:0', ...argv] }).config;
  const stdout = sink();
  const done = serve(config, { stdout, env: {}, ...ctx });
  await new Promise<void>((resolve) => stdout.on('line', () => stdout.text().includes('connect an agent') && resolve()));
  const url = /agents on (ws:\S+)/.exec(stdout.text())?.[1] as string;
  upstream.apply('felix', { '/pods/ns/a': { a: 1 } }, { status: 'in-sync' });
  return { upstream, done, url, stdout };
}

describe('cattail serve', () => {
  it('exits with a coded error when there is no kubeconfig, KUBECONFIG or in-cluster config', async () => {
    const r = await run(['serve']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('CATTAIL_SERVE_NO_UPSTREAM_CONFIG');
  });

  it('refuses an --upstream-cattail that names no URL (an empty template variable) instead of starting', async () => {
    for (const value of ['', ',', ' , ']) {
      const r = await run(['serve', '--upstream-cattail', value, '--listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--health-listen', '127.0.0.1:0']);
      expect(r.code, JSON.stringify(value)).toBe(2);
      expect(r.err).toContain('CATTAIL_CONFIG_INVALID_VALUE');
      expect(r.err).toContain('names none');
    }
  });

  it('an upstream that fails to start leaves no port open: the server closes what it opened', async () => {
    const free = async (): Promise<number> => {
      const srv = createServer();
      await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
      const port = (srv.address() as AddressInfo).port;
      await new Promise<void>((resolve) => srv.close(() => resolve()));
      return port;
    };
    const [agentPort, httpPort] = [await free(), await free()];
    const upstream = ScriptedUpstream.withFeeds('felix');
    upstream.start = () => {
      throw new Error('injected: the upstream cannot start');
    };
    await expect(startServer({ upstream, defaultMetrics: false, listen: `127.0.0.1:${agentPort}`, httpListen: `127.0.0.1:${httpPort}` })).rejects.toThrow('injected');
    expect(upstream.stopped).toBe(true);
    // Both ports are free again: binding them succeeds.
    for (const port of [agentPort, httpPort]) {
      const srv = createServer();
      await new Promise<void>((resolve, reject) => srv.once('error', reject).listen(port, '127.0.0.1', resolve));
      await new Promise<void>((resolve) => srv.close(() => resolve()));
    }
  });

  it('refuses tier-2 TLS options without --upstream-cattail, and a client certificate without its key', async () => {
    const alone = await run(['serve', '--kubeconfig', '/k', '--upstream-cattail-ca-file', '/ca.pem', '--listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--health-listen', '127.0.0.1:0']);
    expect(alone.code).toBe(2);
    expect(alone.err).toContain('CATTAIL_CONFIG_INVALID_VALUE: option upstreamCattailCaFile is TLS to a tier-1 Cattail and needs --upstream-cattail');
    const half = await run(['serve', '--upstream-cattail', 'wss://127.0.0.1:1/', '--upstream-cattail-cert-file', '/c.pem', '--listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--health-listen', '127.0.0.1:0']);
    expect(half.code).toBe(2);
    expect(half.err).toContain('option upstreamCattailCertFile needs upstreamCattailKeyFile too');
    // A second tier names no cluster: an epoch there would do nothing.
    const epoch = await run(['serve', '--upstream-cattail', 'ws://127.0.0.1:1/', '--cluster-epoch', 'restore-1', '--listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--health-listen', '127.0.0.1:0']);
    expect(epoch.code).toBe(2);
    expect(epoch.err).toContain('CATTAIL_CONFIG_INVALID_VALUE: --cluster-epoch names the cluster of the API server watched');
  });

  it('refuses, at start-up, a --upstream-cattail-service whose every discovery would fail', async () => {
    const listen = ['--listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--health-listen', '127.0.0.1:0'];
    const noConfig = await run(['serve', '--upstream-cattail-service', 'calico-system/t1', ...listen], {});
    expect(noConfig.code).toBe(2);
    expect(noConfig.err).toContain('CATTAIL_CLIENT_NO_DISCOVERY_CONFIG: --upstream-cattail-service needs the Kubernetes API');
    const badFile = await run(['serve', '--upstream-cattail-service', 'calico-system/t1', '--kubeconfig', '/nonexistent/kubeconfig', ...listen], {});
    expect(badFile.code).toBe(2);
    expect(badFile.err).toMatch(/CATTAIL_CONFIG_INVALID_VALUE: option kubeconfig \(--kubeconfig\): cannot load kubeconfig \/nonexistent\/kubeconfig/);
    const ownService = await run(['serve', '--upstream-cattail-service', 'calico-system/cattail', '--service', 'calico-system/cattail', ...listen], {});
    expect(ownService.code).toBe(2);
    expect(ownService.err).toContain('is this replica\'s own Service');
    const schemes = await run(['serve', '--upstream-cattail', 'wss://t1:5473/', '--upstream-cattail-service', 'calico-system/t1', ...listen], {});
    expect(schemes.code).toBe(2);
    expect(schemes.err).toContain('would reach the discovered replicas with ws://');
  });

  it('validates its options before anything else', async () => {
    const r = await run(['serve', '--kubeconfig', '/nonexistent', '--listen', 'nowhere']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('CATTAIL_CONFIG_INVALID_VALUE');
    expect(r.err).toContain('listen');
  });

  it('refuses --state-dir on a second-tier replica (it has no API-server watches to checkpoint)', async () => {
    const r = await run(['serve', '--upstream-cattail', 'ws://127.0.0.1:1/', '--state-dir', '/tmp/x', '--listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--health-listen', '127.0.0.1:0']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('CATTAIL_CONFIG_INVALID_VALUE');
    expect(r.err).toContain('--state-dir');
  });

  it('refuses at start a --state-dir that can never hold a checkpoint (here: under a regular file), naming it; a missing one is created', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cattail-state-'));
    const file = join(dir, 'a-file');
    writeFileSync(file, 'x');
    const kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(kubeconfig, 'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "http://127.0.0.1:1", insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n');
    const r = await run(['serve', '--kubeconfig', kubeconfig, '--state-dir', join(file, 'state'), '--listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--health-listen', '127.0.0.1:0']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('CATTAIL_CONFIG_INVALID_VALUE');
    expect(r.err).toMatch(/--state-dir .*a-file\/state cannot hold the replica checkpoint \(ENOTDIR/);
    // A directory that does not exist yet is made (and stays empty: the probe file is gone).
    const { unusableStateDir } = await import('../../src/server/state/replica-state-file.js');
    expect(await unusableStateDir(join(dir, 'new', 'state'))).toBeUndefined();
    expect(readdirSync(join(dir, 'new', 'state'))).toEqual([]);
  });

  it('fails with a coded error when the kubeconfig cannot be loaded', async () => {
    const r = await run(['serve', '--kubeconfig', '/nonexistent', '--listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--health-listen', '127.0.0.1:0']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('CATTAIL_UPSTREAM_CONFIG');
    expect(r.err).toContain('/nonexistent');
  });

  it('refuses --embedded-sim with an explicit kubeconfig from a flag, a CATTAIL_ variable or the config file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cattail-serve-'));
    const file = join(dir, 'cattail.yaml');
    writeFileSync(file, 'kubeconfig: /from/file\n');
    const cases: [string[], Record<string, string>, string][] = [
      [['--kubeconfig', '/from/flag'], {}, '/from/flag'],
      [[], { CATTAIL_KUBECONFIG: '/from/env' }, '/from/env'],
      [['--config', file], {}, '/from/file'],
    ];
    for (const [argv, env, path] of cases) {
      const r = await run(['serve', '--embedded-sim', ...argv, '--listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--health-listen', '127.0.0.1:0'], env);
      expect(r.code, path).toBe(2);
      expect(r.err).toContain('CATTAIL_CONFIG_INVALID_VALUE');
      expect(r.err).toContain(`--kubeconfig (${path}) and --embedded-sim are two upstreams; choose one`);
    }
    // The ambient KUBECONFIG names no upstream of its own: it is ignored, not refused.
    const base = resolveConfig(serveOptions, {}).config;
    expect(resolveUpstreamSource({ ...base, embeddedSim: true }, { KUBECONFIG: '/ambient' }).kind).toBe('embedded-sim');
  });

  it('--embedded-sim: logs one warn-level JSON line saying the cluster is simulated', async () => {
    const logged = sink();
    const ac = new AbortController();
    const serve = createServeCommand(
      () => Promise.resolve({ upstream: ScriptedUpstream.withFeeds('felix'), description: 'scripted' }),
      (level) => pino({ level }, logged),
    );
    const config = resolveConfig(serveOptions, { argv: ['--embedded-sim', '--listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--health-listen', '127.0.0.1:0'] }).config;
    const stdout = sink();
    const done = serve(config, { stdout, env: {}, signal: ac.signal });
    await new Promise<void>((resolve) => stdout.on('line', () => stdout.text().includes('connect an agent') && resolve()));
    ac.abort();
    expect(await done).toBe(0);
    const warns = logged.text().trim().split('\n').map((l) => JSON.parse(l) as { level: number; msg: string; upstream?: string }).filter((l) => l.msg.includes('SIMULATED'));
    expect(warns).toHaveLength(1);
    expect(warns[0]).toMatchObject({ level: 40, upstream: 'embedded-sim' });
  });

  it('takes the drain options from flags and CATTAIL_* variables, and checks the peers are ws URLs', () => {
    const c = resolveConfig(serveOptions, { argv: ['--peer-endpoints', 'ws://a:5473/,wss://b:5473/', '--peer-endpoints', 'ws://c:5473/', '--target-connections', '500'], env: { CATTAIL_SHUTDOWN_TIMEOUT_MS: '60000' } }).config;
    expect(splitEndpoints(c.peerEndpoints)).toEqual(['ws://a:5473/', 'wss://b:5473/', 'ws://c:5473/']);
    expect([c.targetConnections, c.shutdownTimeoutMs, c.shedIntervalMs]).toEqual([500, 60_000, 1_000]);
    expect(() => resolveConfig(serveOptions, { argv: ['--peer-endpoints', 'http://a:5473/'] })).toThrow(/peerEndpoints.*ws:\/\/ or wss:\/\//);
  });

  it('picks the upstream source: embedded sim, flag, KUBECONFIG, in-cluster', () => {
    const base = resolveConfig(serveOptions, {}).config;
    expect(resolveUpstreamSource({ ...base, embeddedSim: true }, {}).kind).toBe('embedded-sim');
    expect(resolveUpstreamSource({ ...base, kubeconfig: '/k' }, { KUBECONFIG: '/e' })).toEqual({ kind: 'kubeconfig', path: '/k', from: 'flag' });
    expect(resolveUpstreamSource(base, { KUBECONFIG: '/e' })).toEqual({ kind: 'kubeconfig', path: '/e', from: 'KUBECONFIG' });
    expect(resolveUpstreamSource(base, { KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' }, () => true)).toEqual({ kind: 'in-cluster' });
    expect(() => resolveUpstreamSource(base, { KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' }, () => false)).toThrow(/no upstream configured/);
  });

  it('picks a tier-1 Cattail from static URLs, its Service, or both; the tier-2 TLS options go with either', () => {
    const base = resolveConfig(serveOptions, {}).config;
    expect(resolveUpstreamSource({ ...base, upstreamCattail: ['ws://a:5473/,ws://b:5473/'] }, { KUBECONFIG: '/e' })).toEqual({ kind: 'cattail', endpoints: ['ws://a:5473/', 'ws://b:5473/'] });
    expect(resolveUpstreamSource({ ...base, upstreamCattailService: 'calico-system/cattail' }, { KUBECONFIG: '/e' })).toEqual({ kind: 'cattail', endpoints: [], service: 'calico-system/cattail' });
    expect(resolveUpstreamSource({ ...base, upstreamCattailService: 'ns/t1', upstreamCattail: ['ws://a:5473/'], upstreamCattailCaFile: '/ca.pem' }, {})).toEqual({ kind: 'cattail', endpoints: ['ws://a:5473/'], service: 'ns/t1' });
    expect(() => resolveUpstreamSource({ ...base, upstreamCattailService: 'ns/t1', embeddedSim: true }, {})).toThrow('--upstream-cattail-service and --embedded-sim are two upstreams');
    expect(() => resolveConfig(serveOptions, { argv: ['--upstream-cattail-service', 'no-namespace'] })).toThrow(/upstreamCattailService/);
  });

  it('runs with an injected upstream, serves agents, and stops cleanly on abort', async () => {
    const ac = new AbortController();
    const { upstream, done, url } = await scriptedServe(['--server-id', 'serve-test'], { signal: ac.signal });
    const a = new TestAgent(url, { feeds: [{ name: 'felix' }] });
    await a.untilRevision('felix', 1);
    expect(a.welcome?.serverId).toBe('serve-test');
    ac.abort();
    expect(await done).toBe(0);
    expect(await a.closed).toBe(4010);
    expect(a.goodbyes).toEqual(['shutdown']);
    expect(upstream.stopped).toBe(true);
  });
});

describe('cattail serve: stopping', () => {
  it('a first signal drains (agents still open), a second closes the rest at once; exit 0', async () => {
    const { signal, forceSignal, onSignal } = stopSignals();
    const { upstream, done, url, stdout } = await scriptedServe(['--peer-endpoints', 'ws://peer-a.test:5473/,ws://peer-b.test:5473/'], { signal, forceSignal });
    const agents = [1, 2, 3].map(() => new TestAgent(url, { feeds: [{ name: 'felix' }] }));
    await Promise.all(agents.map((a) => a.untilRevision('felix', 1)));

    onSignal();
    await new Promise<void>((resolve) => (stdout.text().includes('draining 3 agent(s)') ? resolve() : stdout.on('line', () => stdout.text().includes('draining 3 agent(s)') && resolve())));
    // The first paced close is about a second away (300 s for 3 agents: the gap is capped at 1 s).
    expect(agents.every((a) => a.closeCode === undefined)).toBe(true);
    onSignal();
    expect(await done).toBe(0);
    for (const a of agents) {
      expect(await a.closed).toBe(4010);
      expect(a.goodbyeMessages[0]?.endpoints?.sort()).toEqual(['ws://peer-a.test:5473/', 'ws://peer-b.test:5473/']);
    }
    expect(upstream.stopped).toBe(true);
  });
});

/**
 * `cattail serve` whose final checkpoint never returns (a state volume that hangs), logging JSON
 * to `logged`, with an agent in sync: what a stop does with such a checkpoint.
 */
async function hangingCheckpointServe(finalCheckpointMaxMs: number, signals: { signal: AbortSignal; forceSignal?: AbortSignal }) {
  const logged = sink();
  const upstream = ScriptedUpstream.withFeeds('felix');
  const checkpoint: { asked: number; abandon: AbortSignal | undefined } = { asked: 0, abandon: undefined };
  const serve = createServeCommand(
    () => Promise.resolve({ upstream, description: 'scripted', beforeDrain: (signal: AbortSignal) => (checkpoint.asked++, (checkpoint.abandon = signal), new Promise<void>(() => undefined)) }),
    (level) => pino({ level }, logged),
    finalCheckpointMaxMs,
  );
  const config = resolveConfig(serveOptions, { argv: ['--kubeconfig', '/k', '--listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--health-listen', '127.0.0.1:0'] }).config;
  const stdout = sink();
  const done = serve(config, { stdout, env: {}, ...signals });
  await new Promise<void>((resolve) => stdout.on('line', () => stdout.text().includes('connect an agent') && resolve()));
  const url = /agents on (ws:\S+)/.exec(stdout.text())?.[1] as string;
  upstream.apply('felix', { '/pods/ns/a': { a: 1 } }, { status: 'in-sync' });
  const agent = new TestAgent(url, { feeds: [{ name: 'felix' }] });
  await agent.untilRevision('felix', 1);
  const logLine = (text: string): { level: number; msg: string; limitMs?: number } | undefined =>
    logged.text().trim().split('\n').map((l) => JSON.parse(l) as { level: number; msg: string; limitMs?: number }).find((l) => l.msg.includes(text));
  return { done, agent, checkpoint, logLine };
}

describe('cattail serve: the final checkpoint', () => {
  it('drains without it once it has taken finalCheckpointMaxMs (a state volume that hangs), and says so', async () => {
    const ac = new AbortController();
    // A checkpoint write that never returns: the drain must not wait for it past the limit.
    const { done, agent: a, checkpoint, logLine } = await hangingCheckpointServe(50, { signal: ac.signal });
    ac.abort();
    expect(await done).toBe(0);
    expect(checkpoint.asked).toBe(1);
    // And the checkpoint is told it was given up on: no write may start after this.
    expect(checkpoint.abandon?.aborted).toBe(true);
    expect(await a.closed).toBe(4010);
    expect(a.goodbyes).toEqual(['shutdown']);
    expect(logLine('final checkpoint did not finish')).toMatchObject({ level: 40, limitMs: 50 });
  });
});

describe('cattail serve: a second signal during the final checkpoint', () => {
  it('closes the agents at once instead of waiting for the checkpoint up to finalCheckpointMaxMs', async () => {
    const first = new AbortController();
    const second = new AbortController();
    const { done, agent: a, checkpoint, logLine } = await hangingCheckpointServe(600_000, { signal: first.signal, forceSignal: second.signal });
    first.abort();
    await waitUntil(() => checkpoint.abandon !== undefined, 'the final checkpoint started');
    second.abort();
    // Before, nothing happened until the checkpoint finished or its 10-minute limit here.
    expect(await a.closed).toBe(4010);
    expect(await done).toBe(0);
    expect(checkpoint.abandon?.aborted).toBe(true);
    expect(logLine('second signal during the final checkpoint')).toMatchObject({ level: 40 });
  });
});

describe('cattail serve --embedded-sim (the npm start path)', () => {
  it('serves the simulated cluster through the real upstream, says so loudly, and gets ready', async () => {
    const stdout = sink();
    const stderr = sink();
    const ac = new AbortController();
    const done = main(['serve', '--embedded-sim', '--listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--health-listen', '127.0.0.1:0', '--log-level', 'silent', '--server-id', 'embedded-test'], {
      stdout,
      stderr,
      env: { KUBECONFIG: '/this/must/be/ignored' },
      signal: ac.signal,
    });
    await new Promise<void>((resolve) => stdout.on('line', () => stdout.text().includes('connect an agent') && resolve()));
    const out = stdout.text();
    expect(out).toContain('EMBEDDED SIMULATED');
    expect(out).toMatch(/cattail agent --server ws:\/\/127\.0\.0\.1:\d+\/ --feed felix/);
    const url = /agents on (ws:\S+)/.exec(out)?.[1] as string;
    const httpUrl = /on (http:\S+)\n/.exec(out)?.[1] as string;

    // Agents are refused (503) until every feed has its initial sync; a real agent retries, this one waits.
    await waitUntil(async () => (await fetch(`${httpUrl}/readyz`)).status === 200, 'readiness', { timeoutMs: 30_000 });
    // The health port (--health-listen) is printed and gives the same answer.
    const healthUrl = /alone also on (http:\S+)\n/.exec(out)?.[1] as string;
    expect(healthUrl).not.toBe(httpUrl);
    expect((await fetch(`${healthUrl}/readyz`)).status).toBe(200);
    const agent = new TestAgent(url, { feeds: [{ name: 'felix' }, { name: 'bgp' }], caps: ['compress.deflate'] });
    await agent.until(() => agent.welcome !== undefined && agent.feed('felix').status === 'in-sync' && agent.feed('bgp').status === 'in-sync', 'both feeds in sync', 30_000);
    // Workload endpoints for the simulated pods arrived under libcalico-go keys (host-network
    // calico-node pods did not), and so did the v3 Nodes.
    // WELCOME names the data model of each built-in feed (PROTOCOL.md 3.2).
    expect(agent.welcome?.feeds.map((f) => f.model)).toEqual(['libcalico.v3', 'libcalico.v3']);
    const keys = [...agent.feed('felix').entries.keys()];
    const wep = /^\/calico\/v1\/host\/[^/]+\/workload\/k8s\/[^/]+%2f[^/]+\/endpoint\/eth0$/;
    expect(keys.some((k) => wep.test(k))).toBe(true);
    expect(keys.some((k) => k.startsWith('/calico/resources/v3/projectcalico.org/nodes/'))).toBe(true);
    expect(keys.some((k) => wep.test(k) && k.includes('calico-node'))).toBe(false);

    const ready = await fetch(`${httpUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.text()).toContain('upstream: EMBEDDED SIMULATED');
    const metrics = await (await fetch(`${httpUrl}/metrics`)).text();
    expect(metrics).toContain('cattail_connections_active');
    expect(metrics).toMatch(/cattail_upstream_/);

    ac.abort();
    expect(await done).toBe(0);
    expect(stderr.text()).not.toContain('CATTAIL_');
  });
});
