/**
 * Rotating the agent port's certificate under 50 connected agents (library clients over mTLS):
 * nobody is dropped, the next agent sees the new certificate, and a broken new set keeps the old
 * one, with the metric and the log saying so. The files are laid out as the kubelet mounts a
 * Secret (symlinks into `..data`, swapped atomically), and the server notices by its directory
 * watch or its periodic check (tlsCheckIntervalMs, shortened here).
 */
import { X509Certificate } from 'node:crypto';
import { mkdirSync, rmSync, symlinkSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Client } from '../../src/client/index.js';
import { type ServerHandle, startServer } from '../../src/server/server.js';
import { type Ca, type Issued, createCa, issue, pemDir } from '../support/pki.js';
import { ScriptedUpstream } from '../support/scripted-upstream.js';
import { waitUntil } from '../support/wait.js';
import { on, start, type Setup } from '../client/helpers/harness.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

/** A Secret volume: `tls.crt`, `tls.key`, `ca.crt` are symlinks into `..data`, itself a symlink to a version directory. */
class SecretVolume {
  readonly dir = pemDir('cattail-secret-');
  private n = 0;

  constructor(private readonly ca: Ca) {}

  get files(): { serverCertFile: string; serverKeyFile: string; clientCaFile: string } {
    return { serverCertFile: join(this.dir.dir, 'tls.crt'), serverKeyFile: join(this.dir.dir, 'tls.key'), clientCaFile: join(this.dir.dir, 'ca.crt') };
  }

  /** Publishes a new version atomically, as the kubelet does (rename of `..data`). */
  publish(certPem: string, keyPem: string): void {
    const version = `..v${++this.n}`;
    const d = join(this.dir.dir, version);
    mkdirSync(d);
    writeFileSync(join(d, 'tls.crt'), certPem);
    writeFileSync(join(d, 'tls.key'), keyPem);
    writeFileSync(join(d, 'ca.crt'), this.ca.pem);
    symlinkSync(version, join(this.dir.dir, '..data_tmp'));
    renameSync(join(this.dir.dir, '..data_tmp'), join(this.dir.dir, '..data'));
    if (this.n === 1) for (const f of ['tls.crt', 'tls.key', 'ca.crt']) symlinkSync(join('..data', f), join(this.dir.dir, f));
  }
}

async function metric(server: ServerHandle, name: string, labels: Record<string, string> = {}): Promise<number> {
  const data = await server.metrics.registry.getSingleMetric(name)?.get();
  return (data?.values ?? []).filter((v) => Object.entries(labels).every(([k, x]) => String((v.labels as Record<string, unknown>)[k]) === x)).reduce((a, v) => a + v.value, 0);
}

/** The fingerprint of the certificate a fresh TLS handshake gets from the server. */
function servedFingerprint(url: string, ca: Ca, client: Issued): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: u.hostname, port: Number(u.port), ca: ca.pem, cert: client.certPem, key: client.keyPem }, () => {
      const fingerprint = s.getPeerCertificate().fingerprint256;
      s.end(() => resolve(fingerprint));
    });
    s.on('error', reject);
  });
}

function fingerprintOf(certPem: string): string {
  return new X509Certificate(certPem).fingerprint256;
}

describe('server mTLS - certificate rotation', () => {
  it('rotates under 50 connected agents without dropping one; a broken set keeps the old certificate, logged and counted', async () => {
    const ca = await createCa('agents-ca');
    const first = await issue(ca, { cn: 'cattail-server', usage: 'server', ipSans: ['127.0.0.1'] });
    const second = await issue(ca, { cn: 'cattail-server', usage: 'server', ipSans: ['127.0.0.1'] });
    const agentCert = await issue(ca, { cn: 'calico-node', usage: 'client' });
    const volume = new SecretVolume(ca);
    cleanups.push(() => rmSync(volume.dir.dir, { recursive: true, force: true }));
    volume.publish(first.certPem, first.keyPem);
    const certFile = volume.dir.write('agent.crt', agentCert.certPem);
    const keyFile = volume.dir.write('agent.key', agentCert.keyPem);
    const caFile = volume.dir.write('agent-ca.crt', ca.pem);

    const logs: { level: number; msg: string }[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as { level: number; msg: string }) });
    const upstream = ScriptedUpstream.withFeeds('felix');
    const server = await startServer({
      upstream, log, defaultMetrics: false, flushWindowMs: 1, transport: 'ws', ...volume.files, clientCn: 'calico-node', tlsCheckIntervalMs: 200,
    });
    cleanups.push(() => server.close());
    upstream.apply('felix', { '/pods/a': { n: 0 } }, { status: 'in-sync', watermarks: { pods: '1' } });

    const agents: Setup[] = [];
    const agent = (i: number): Setup => {
      const s = start({ endpoints: [server.url], node: `node-${i}`, tls: { caFile, certFile, keyFile, serverCn: 'cattail-server' } });
      cleanups.push(() => s.client.destroy());
      return s;
    };
    for (let i = 0; i < 50; i++) agents.push(agent(i));
    const clients: Client[] = agents.map((a) => a.client);
    await Promise.all(clients.map((c) => c.whenInSync()));
    expect(server.connectionCount()).toBe(50);
    expect(await servedFingerprint(server.url, ca, agentCert)).toBe(fingerprintOf(first.certPem));
    expect(server.servedCertFingerprint()).toBe(fingerprintOf(first.certPem));

    // Rotation: the new pair is applied to new handshakes; the 50 open connections keep theirs.
    volume.publish(second.certPem, second.keyPem);
    await waitUntil(async () => (await metric(server, 'cattail_tls_reloads_total', { result: 'success' })) === 1, 'rotation applied');
    expect(await servedFingerprint(server.url, ca, agentCert)).toBe(fingerprintOf(second.certPem));
    expect(server.servedCertFingerprint()).toBe(fingerprintOf(second.certPem));
    expect(logs.some((l) => l.msg === 'TLS certificate reloaded')).toBe(true);

    upstream.apply('felix', { '/pods/b': { n: 1 } }, { watermarks: { pods: '2' } });
    const revision = server.stores.get('felix')!.revision;
    await waitUntil(() => clients.every((c) => c.feed('felix').revision === revision), 'all 50 agents got the change after the rotation', on(...clients));
    expect(server.connectionCount()).toBe(50);
    for (const a of agents) expect(a.guard.problems()).toEqual([]);
    expect(agents.every((a) => a.rec.states().filter((s) => s === 'connecting').length === 1)).toBe(true);

    // A new agent connects with the new certificate.
    const late = agent(50);
    await late.client.whenInSync();
    expect(late.client.feed('felix').get('/pods/b')).toEqual({ n: 1 });

    // A broken new set (the key does not match the certificate): the previous one stays in use.
    volume.publish(first.certPem, second.keyPem);
    await waitUntil(async () => (await metric(server, 'cattail_tls_reloads_total', { result: 'failure' })) === 1, 'broken set refused');
    expect(logs.find((l) => l.msg.startsWith('TLS files changed but cannot be used'))?.level).toBe(50);
    expect(await servedFingerprint(server.url, ca, agentCert)).toBe(fingerprintOf(second.certPem));
    // What the balancer pins (serve.ts) is what is served, not the file: the file now holds the
    // first certificate, and pinning it cut every peer's load off after the grace period.
    expect(server.servedCertFingerprint()).toBe(fingerprintOf(second.certPem));
    expect(await metric(server, 'cattail_tls_reloads_total', { result: 'success' })).toBe(1);
    const another = agent(51);
    await another.client.whenInSync();
    expect(server.connectionCount()).toBe(52);
  });
});
