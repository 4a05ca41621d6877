/**
 * `cattail serve` with the TLS flags and `cattail agent` with its TLS flags, end to end through the
 * command lines (in-process `main`): the agent verifies the server by CN and gets the state; an
 * agent whose certificate is not on the allow-list is refused with the coded rejection.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { runCli, textSink } from '../support/cli.js';
import { createCa, issue, pemDir } from '../support/pki.js';
import { waitUntil } from '../support/wait.js';

let pem: ReturnType<typeof pemDir>;
let out: string;
const files: Record<string, string> = {};

beforeAll(async () => {
  pem = pemDir('cattail-cli-tls-');
  out = mkdtempSync(join(tmpdir(), 'cattail-cli-tls-out-'));
  const ca = await createCa('cluster-ca');
  const server = await issue(ca, { cn: 'cattail-server', usage: 'server', ipSans: ['127.0.0.1'] });
  const agent = await issue(ca, { cn: 'calico-node', usage: 'client' });
  const intruder = await issue(ca, { cn: 'intruder', usage: 'client' });
  Object.assign(files, {
    ca: pem.write('ca.crt', ca.pem),
    serverCert: pem.write('tls.crt', server.certPem),
    serverKey: pem.write('tls.key', server.keyPem),
    agentCert: pem.write('agent.crt', agent.certPem),
    agentKey: pem.write('agent.key', agent.keyPem),
    intruderCert: pem.write('intruder.crt', intruder.certPem),
    intruderKey: pem.write('intruder.key', intruder.keyPem),
  });
});
afterAll(() => {
  rmSync(pem.dir, { recursive: true, force: true });
  rmSync(out, { recursive: true, force: true });
});

const sink = textSink;

describe('cattail serve --server-cert-file … / cattail agent --ca-file … over mutual TLS', () => {
  it('serves wss:// to an agent with an allowed certificate and refuses one with another CN (4011)', async () => {
    const stdout = sink();
    const stderr = sink();
    const ac = new AbortController();
    const done = main([
      'serve', '--embedded-sim', '--listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--health-listen', '127.0.0.1:0', '--log-level', 'silent',
      '--server-cert-file', files['serverCert'] as string, '--server-key-file', files['serverKey'] as string,
      '--client-ca-file', files['ca'] as string, '--client-cn', 'calico-node',
    ], { stdout, stderr, env: {}, signal: ac.signal });
    try {
      await waitUntil(() => stdout.text().includes('connect an agent'), 'serve banner', { wake: (check) => (stdout.on('line', check), () => stdout.off('line', check)) });
      const banner = stdout.text();
      const url = /agents on (wss:\S+)/.exec(banner)?.[1] as string;
      const httpUrl = /on (http:\S+)\n/.exec(banner)?.[1] as string;
      expect(url).toMatch(/^wss:\/\/127\.0\.0\.1:\d+\/$/);
      expect(banner).toMatch(/cattail agent --server wss:\S+ --feed felix --ca-file CA_OF_SERVER_CERT --cert-file CLIENT_CERT --key-file CLIENT_KEY/);
      await waitUntil(async () => (await fetch(`${httpUrl}/readyz`)).status === 200, 'readiness', { timeoutMs: 30_000 });

      const dump = join(out, 'state.jsonl');
      const ok = await runCli(['agent', '--server', url, '--feed', 'felix', '--node', 'n1', '--once', '--dump', dump, '--timeout-ms', '20000',
        '--ca-file', files['ca'] as string, '--cert-file', files['agentCert'] as string, '--key-file', files['agentKey'] as string, '--server-cn', 'cattail-server']);
      expect(ok.err).toBe('');
      expect(ok.code).toBe(0);
      expect(readFileSync(dump, 'utf8').split('\n').some((l) => l.includes('"/calico/resources/v3/projectcalico.org/nodes/'))).toBe(true);

      const refused = await runCli(['agent', '--server', url, '--feed', 'felix', '--once', '--timeout-ms', '3000',
        '--ca-file', files['ca'] as string, '--cert-file', files['intruderCert'] as string, '--key-file', files['intruderKey'] as string, '--server-cn', 'cattail-server']);
      expect(refused.code).not.toBe(0);
      expect(refused.err).toMatch(/CATTAIL_CLIENT_SYNC_TIMEOUT.*CATTAIL_CLIENT_REJECTED/s);
      const metrics = await (await fetch(`${httpUrl}/metrics`)).text();
      expect(metrics).toMatch(/cattail_tls_refusals_total\{reason="identity-not-allowed"\} 1/);

      // A second tier follows this mutual-TLS replica with its own client certificate.
      const out2 = sink();
      const ac2 = new AbortController();
      const tier2 = main([
        'serve', '--upstream-cattail', url, '--listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--health-listen', '127.0.0.1:0', '--log-level', 'silent',
        '--upstream-cattail-ca-file', files['ca'] as string, '--upstream-cattail-cert-file', files['agentCert'] as string,
        '--upstream-cattail-key-file', files['agentKey'] as string, '--upstream-cattail-server-cn', 'cattail-server',
      ], { stdout: out2, stderr: sink(), env: {}, signal: ac2.signal });
      try {
        await waitUntil(() => out2.text().includes('connect an agent'), 'tier-2 banner', { wake: (check) => (out2.on('line', check), () => out2.off('line', check)) });
        const url2 = /agents on (ws:\S+)/.exec(out2.text())?.[1] as string;
        const dump2 = join(out, 'tier2.jsonl');
        const viaTier2 = await runCli(['agent', '--server', url2, '--feed', 'felix', '--node', 'n1', '--once', '--dump', dump2, '--timeout-ms', '20000']);
        expect(viaTier2.err).toBe('');
        expect(viaTier2.code).toBe(0);
        expect(readFileSync(dump2, 'utf8').split('\n').some((l) => l.includes('"/calico/resources/v3/projectcalico.org/nodes/'))).toBe(true);
      } finally {
        ac2.abort();
        expect(await tier2).toBe(0);
      }
    } finally {
      ac.abort();
      expect(await done).toBe(0);
    }
    expect(stderr.text()).not.toContain('CATTAIL_');
  });
});
