import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { FakeServer } from '../client/helpers/fake-server.js';
import { startSim } from '../../src/sim/index.js';
import { waitUntil } from '../support/wait.js';

let dir: string;
const servers: FakeServer[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cattail-agent-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(async () => {
  for (const s of servers.splice(0)) await s.stop();
});

const run = runCli;

async function server(): Promise<FakeServer> {
  const s = await FakeServer.start({ feeds: ['felix', 'bgp'], chunkEntries: 2 });
  servers.push(s);
  s.load('felix', [
    ['/pods/demo/b', { ip: '10.0.0.2', labels: { app: 'web' } }],
    ['/pods/demo/a', { ip: '10.0.0.1', raw: Buffer.from([1, 2, 3]) }],
  ]);
  s.load('bgp', [['/nodes//n1', { asn: 64512 }]]);
  return s;
}

describe('cattail agent', () => {
  it('--once --dump: exits 0 once every feed is in sync, after writing the state as JSON lines', async () => {
    const s = await server();
    const dump = join(dir, 'state.jsonl');
    const r = await run(['agent', '--server', s.url, '--feed', 'felix', '--feed', 'bgp', '--node', 'n1', '--once', '--dump', dump]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const lines = readFileSync(dump, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as unknown);
    expect(lines).toEqual([
      { feed: 'felix', key: '/pods/demo/a', value: { ip: '10.0.0.1', raw: 'AQID' } },
      { feed: 'felix', key: '/pods/demo/b', value: { ip: '10.0.0.2', labels: { app: 'web' } } },
      { feed: 'bgp', key: '/nodes//n1', value: { asn: 64512 } },
    ]);
    expect(r.out).toContain('felix: snapshot 2/2 objects (100%)');
    expect(r.out).toMatch(/in-sync \| felix rev 1 2 objects \| bgp rev 1 1 objects \| lag \d+ ms \| reconnects 0/);
    expect(s.rec.hellos[0]!.node).toBe('n1');
    expect(s.rec.clientCloses[0]?.code ?? 1000).toBe(1000);
  });

  it('--dump-format syncer: writes what Felix\'s syncer callbacks see (status edges, KVs with update types)', async () => {
    const s = await server();
    const dump = join(dir, 'kvs.jsonl');
    const r = await run(['agent', '--server', s.url, '--feed', 'felix', '--feed', 'bgp', '--once', '--dump', dump, '--dump-format', 'syncer']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const lines = readFileSync(dump, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]).toEqual({ status: 'wait-for-datastore' });
    expect(lines[1]).toEqual({ status: 'resync' });
    expect(lines.at(-1)).toEqual({ status: 'in-sync' });
    const kvs = lines.filter((l) => 'key' in l).sort((x, y) => String(x['key']).localeCompare(String(y['key'])));
    expect(kvs).toEqual([
      { feed: 'bgp', key: '/nodes//n1', value: { asn: 64512 }, updateType: 'new' },
      { feed: 'felix', key: '/pods/demo/a', value: { ip: '10.0.0.1', raw: 'AQID' }, updateType: 'new' },
      { feed: 'felix', key: '/pods/demo/b', value: { ip: '10.0.0.2', labels: { app: 'web' } }, updateType: 'new' },
    ]);
  });

  it('--once: exits non-zero with a coded message when the feeds are not in sync within --timeout-ms', async () => {
    const s = await server();
    s.setStatus('felix', { status: 'resyncing' });
    const r = await run(['agent', '--server', s.url, '--once', '--timeout-ms', '300']);
    expect(r.code).toBe(5);
    expect(r.err).toMatch(/^cattail: CATTAIL_CLIENT_SYNC_TIMEOUT: not every feed was in sync after 300 ms \(state syncing, feeds felix=resyncing\)/);
  });

  it('--once: a signal that came before the agent was waiting still stops it at once, not after --timeout-ms', async () => {
    const s = await server();
    s.setStatus('felix', { status: 'resyncing' });
    const ac = new AbortController();
    ac.abort();
    const t0 = Date.now();
    const r = await run(['agent', '--server', s.url, '--once', '--timeout-ms', '60000'], {}, ac.signal);
    expect(r.err).toContain('CATTAIL_CLIENT_CLOSED: interrupted before every feed was in sync');
    expect(r.code).not.toBe(0);
    expect(Date.now() - t0).toBeLessThan(30_000);
  });

  it('--state-dir that cannot be used: says so (problem line), warm restarts off, the agent itself still works (exit 0)', async () => {
    const s = await server();
    const file = join(dir, 'not-a-dir');
    writeFileSync(file, '');
    const r = await run(['agent', '--server', s.url, '--once', '--state-dir', join(file, 'state')]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^problem: CATTAIL_CLIENT_CHECKPOINT_(INVALID|WRITE_FAILED): .*ENOTDIR/m);
    const j = await run(['agent', '--server', s.url, '--once', '--json', '--state-dir', join(file, 'state')]);
    const problems = j.out.trim().split('\n').map((l) => JSON.parse(l) as { type: string; code?: string }).filter((l) => l.type === 'problem');
    expect(problems.map((p) => p.code)[0]).toMatch(/^CATTAIL_CLIENT_CHECKPOINT_/);
  });

  it('--checkpoint-interval-ms: taken with --state-dir (the checkpoint is written), refused out of range', async () => {
    const s = await server();
    const state = join(dir, 'ckpt-interval');
    const r = await run(['agent', '--server', s.url, '--once', '--state-dir', state, '--checkpoint-interval-ms', '300000']);
    expect(r.code).toBe(0);
    expect(readdirSync(state).length).toBeGreaterThan(0);
    const bad = await run(['agent', '--server', s.url, '--once', '--state-dir', state, '--checkpoint-interval-ms', '-1']);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('CATTAIL_CONFIG_INVALID_VALUE');
  });

  it('--json prints machine-readable status, progress and line records; flags also come from CATTAIL_* variables', async () => {
    const s = await server();
    const r = await run(['agent', '--once', '--json'], { CATTAIL_SERVER: s.url, CATTAIL_FEED: 'felix,bgp' });
    expect(r.code).toBe(0);
    const recs = r.out.trim().split('\n').map((l) => JSON.parse(l) as { type: string; state?: string; feeds?: Record<string, { objects: number }> });
    expect(recs.filter((x) => x.type === 'status').map((x) => x.state)).toEqual(['connecting', 'syncing', 'in-sync', 'closed']);
    expect(recs.some((x) => x.type === 'progress')).toBe(true);
    const line = recs.filter((x) => x.type === 'line').at(-1)!;
    expect(line.feeds).toMatchObject({ felix: { objects: 2 }, bgp: { objects: 1 } });
  });

  it('runs until interrupted, then closes gracefully and exits 0', async () => {
    const s = await server();
    const ac = new AbortController();
    const running = run(['agent', '--server', s.url], {}, ac.signal);
    await new Promise<void>((resolve) => {
      const off = s.onChange(() => {
        if (s.rec.acks.length > 0) {
          off();
          resolve();
        }
      });
    });
    ac.abort();
    const r = await running;
    expect(r.code).toBe(0);
    expect(r.out).toContain('in-sync');
    expect(r.out).toContain('closed');
  });

  it('--service: finds the replica in the Service\'s EndpointSlices with --kubeconfig', async () => {
    const s = await server();
    const sim = await startSim({ nodes: 1, podsPerNode: 1, churnPerSec: 0, seed: 9 });
    try {
      sim.admin.create('endpointslices.discovery.k8s.io', {
        apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: 'IPv4',
        metadata: { name: 'cattail-x1', namespace: 'calico-system', labels: { 'kubernetes.io/service-name': 'cattail' } },
        ports: [{ name: 'agents', port: Number(new URL(s.url).port) }],
        endpoints: [{ addresses: ['127.0.0.1'], nodeName: 'elsewhere', conditions: { ready: true } }],
      });
      const r = await run(['agent', '--service', 'calico-system/cattail', '--kubeconfig', sim.kubeconfigPath, '--feed', 'felix', '--once']);
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      expect(r.out).toContain('in-sync');
    } finally {
      await sim.close();
    }
  });

  it('--dump: refuses a path that cannot be written before connecting (coded, exit 2, nothing left behind)', async () => {
    const s = await server();
    const missing = join(dir, 'no-such-dir', 'x.jsonl');
    for (const format of ['state', 'syncer']) {
      const r = await run(['agent', '--server', s.url, '--once', '--dump', missing, '--dump-format', format]);
      expect(r.code, format).toBe(2);
      expect(r.err).toBe(`cattail: CATTAIL_CONFIG_INVALID_VALUE: option dump (--dump): its directory ${join(dir, 'no-such-dir')} does not exist, got ${JSON.stringify(missing)}\n`);
    }
    const asDir = mkdtempSync(join(dir, 'dump-dir-'));
    const r = await run(['agent', '--server', s.url, '--once', '--dump', asDir]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^cattail: CATTAIL_CONFIG_INVALID_VALUE: option dump \(--dump\): it is a directory; name a file in it/);
    const notDir = join(dir, 'plain-file');
    writeFileSync(notDir, '');
    const under = await run(['agent', '--server', s.url, '--once', '--dump', join(notDir, 'x.jsonl')]);
    expect(under.code).toBe(2);
    expect(under.err).toContain(`${notDir} is not a directory`);
    // Refused before connecting, and no temporary file beside the directory.
    expect(s.rec.hellos).toHaveLength(0);
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('--dump: a write that fails after the sync is a coded error, and the temporary file is removed', async () => {
    const s = await server();
    s.setStatus('felix', { status: 'resyncing' });
    const sub = mkdtempSync(join(dir, 'late-'));
    const target = join(sub, 'state.jsonl');
    const running = run(['agent', '--server', s.url, '--feed', 'felix', '--once', '--dump', target]);
    await new Promise<void>((resolve) => {
      const off = s.onChange(() => {
        if (s.rec.hellos.length > 0) {
          off();
          resolve();
        }
      });
    });
    // The path passed the start-up check; now it cannot be renamed onto.
    mkdirSync(target);
    s.setStatus('felix', { status: 'in-sync' });
    const r = await running;
    expect(r.code).toBe(4);
    expect(r.err).toMatch(/^cattail: CATTAIL_CLIENT_DUMP_WRITE_FAILED: cannot write the dump .*state\.jsonl: /);
    expect(readdirSync(sub)).toEqual(['state.jsonl']);
  });

  it('--dump: as a process (bin/cattail.js, needs `npm run build`), a late write failure exits with one coded line, no uncaught exception', async () => {
    const s = await server();
    s.setStatus('felix', { status: 'resyncing' });
    const sub = mkdtempSync(join(dir, 'proc-'));
    const target = join(sub, 'state.jsonl');
    const bin = fileURLToPath(new URL('../../bin/cattail.js', import.meta.url));
    const child = spawn(process.execPath, [bin, 'agent', '--server', s.url, '--feed', 'felix', '--once', '--dump', target], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await waitUntil(() => s.rec.hellos.length > 0, 'the agent\'s HELLO', { wake: (check) => s.onChange(check) });
    mkdirSync(target);
    s.setStatus('felix', { status: 'in-sync' });
    expect(await exited).toBe(4);
    expect(err).toMatch(/^cattail: CATTAIL_CLIENT_DUMP_WRITE_FAILED: cannot write the dump [^\n]*\n$/);
    expect(readdirSync(sub)).toEqual(['state.jsonl']);
  });

  it('a reader that closes stdout (`| head -1`) does not crash the process: it runs on and stops cleanly on SIGTERM', async () => {
    const bin = fileURLToPath(new URL('../../bin/cattail.js', import.meta.url));
    // Nothing listens on port 1: the agent keeps reconnecting, and --json writes a line per status.
    const child = spawn(process.execPath, [bin, 'agent', '--server', 'ws://127.0.0.1:1/', '--feed', 'felix', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    child.stdout.destroy();
    // Long enough for more status lines to hit the closed pipe (the first reconnects come fast).
    await new Promise((r) => setTimeout(r, 1_500));
    expect(child.exitCode).toBeNull();
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(err).not.toContain('EPIPE');
  });

  it.skipIf(!existsSync('/dev/full'))('--dump-format syncer: a write error is reported with its code, and the command fails with it', async () => {
    const s = await server();
    const r = await run(['agent', '--server', s.url, '--feed', 'felix', '--once', '--dump', '/dev/full', '--dump-format', 'syncer']);
    expect(r.code).toBe(4);
    expect(r.out).toMatch(/problem: CATTAIL_CLIENT_DUMP_WRITE_FAILED: cannot write the dump \/dev\/full: .*ENOSPC/);
    expect(r.err).toMatch(/^cattail: CATTAIL_CLIENT_DUMP_WRITE_FAILED: cannot write the dump \/dev\/full: .*ENOSPC/);
  });

  it('--service: fails at start with a coded error when there is no kube config anywhere (no localhost fallback)', async () => {
    const r = await run(['agent', '--service', 'calico-system/cattail', '--once', '--timeout-ms', '5000']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^cattail: CATTAIL_CLIENT_NO_DISCOVERY_CONFIG: --service needs the Kubernetes API to read EndpointSlices, and there is no config for it: pass --kubeconfig FILE, set KUBECONFIG, create ~\/\.kube\/config, or run in a pod with a service account; or give the replicas with --server URL\n$/);
    expect(r.out).not.toContain('connecting');
  });

  it('--service: a kubeconfig that is missing or does not load is a configuration error at start, not retried (with or without --once)', async () => {
    const ac = new AbortController();
    // Without --once: before, ENOENT was retried until interrupted; the abort only bounds a regression.
    const timer = setTimeout(() => ac.abort(), 10_000);
    const missing = await run(['agent', '--service', 'calico-system/cattail', '--kubeconfig', join(dir, 'nope')], {}, ac.signal);
    clearTimeout(timer);
    expect(ac.signal.aborted).toBe(false);
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/^cattail: CATTAIL_CONFIG_INVALID_VALUE: option kubeconfig \(--kubeconfig\): cannot load kubeconfig .*nope: .*ENOENT/);
    const empty = join(dir, 'empty-kubeconfig');
    writeFileSync(empty, 'apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n');
    const noCluster = await run(['agent', '--service', 'calico-system/cattail', '--once', '--kubeconfig', empty]);
    expect(noCluster.code).toBe(2);
    expect(noCluster.err).toContain('CATTAIL_CONFIG_INVALID_VALUE: option kubeconfig (--kubeconfig): kubeconfig');
    expect(noCluster.err).toContain('has no current context with a cluster');
    const fromEnv = await run(['agent', '--service', 'calico-system/cattail', '--once'], { KUBECONFIG: join(dir, 'nope-env') });
    expect(fromEnv.code).toBe(2);
    expect(fromEnv.err).toMatch(/^cattail: CATTAIL_CONFIG_INVALID_VALUE: KUBECONFIG: cannot load kubeconfig .*nope-env/);
  });

  it('requires a --server or a --service (exit 2, coded)', async () => {
    const r = await run(['agent', '--once']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('CATTAIL_CONFIG_INVALID_VALUE: give the replicas with --server URL (repeatable) or discover them with --service NAMESPACE/NAME');
    const svc = await run(['agent', '--once', '--service', 'cattail']);
    expect(svc.code).toBe(2);
    expect(svc.err).toContain('expected NAMESPACE/NAME');
    const bad = await run(['agent', '--once', '--server', 'http://127.0.0.1:1']);
    expect(bad.code).toBe(2);
    // The command validates --server with connect()'s own spec, so the message names the flag.
    expect(bad.err).toMatch(/CATTAIL_CONFIG_INVALID_VALUE: option server \(--server\): expected only ws:\/\/ or wss:\/\/ URLs/);
  });
});
