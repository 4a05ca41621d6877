/**
 * `cattail serve --upstream-cattail-service NAMESPACE/NAME`, end to end through the command lines
 * (in-process `main`): a tier-2 replica with no static URL finds tier 1 through the Service's
 * EndpointSlices on the (simulated) API server, and an agent of tier 2 gets the cluster's state.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { startSim } from '../../src/sim/index.js';
import { runCli, textSink } from '../support/cli.js';
import { waitUntil } from '../support/wait.js';

const out = mkdtempSync(join(tmpdir(), 'cattail-cli-tier2-svc-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

const sink = textSink;

/** Starts `cattail serve argv…` in-process; resolves with its agent URL once it prints its banner. */
async function serve(argv: string[]): Promise<{ url: string; stdout: ReturnType<typeof sink>; stop: () => Promise<number> }> {
  const stdout = sink();
  const ac = new AbortController();
  const done = main(['serve', '--listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--health-listen', '127.0.0.1:0', '--log-level', 'silent', ...argv], { stdout, stderr: sink(), env: {}, signal: ac.signal });
  await waitUntil(() => stdout.text().includes('connect an agent'), 'serve banner', { wake: (check) => (stdout.on('line', check), () => stdout.off('line', check)) });
  return { url: /agents on (ws:\S+)/.exec(stdout.text())?.[1] as string, stdout, stop: () => (ac.abort(), done) };
}

describe('cattail serve --upstream-cattail-service', () => {
  it('a tier-2 replica finds tier 1 through its Service and serves its agents the cluster', async () => {
    const sim = await startSim({ nodes: 2, podsPerNode: 2, churnPerSec: 0, seed: 9 });
    try {
      const t1 = await serve(['--kubeconfig', sim.kubeconfigPath, '--server-id', 'tier1']);
      try {
        sim.admin.create('endpointslices.discovery.k8s.io', {
          apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: 'IPv4',
          metadata: { name: 'cattail-tier1-a', namespace: 'calico-system', labels: { 'kubernetes.io/service-name': 'cattail-tier1' } },
          ports: [{ name: 'agents', port: Number(new URL(t1.url).port) }],
          endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }],
        });
        const t2 = await serve(['--upstream-cattail-service', 'calico-system/cattail-tier1', '--kubeconfig', sim.kubeconfigPath, '--server-id', 'tier2']);
        try {
          expect(t2.stdout.text()).toContain('tier 1 Cattail at Service calico-system/cattail-tier1 (port agents)');
          const dump = join(out, 'tier2.jsonl');
          const viaTier2 = await runCli(['agent', '--server', t2.url, '--feed', 'felix', '--node', 'n1', '--once', '--dump', dump, '--timeout-ms', '20000']);
          expect(viaTier2.err).toBe('');
          expect(viaTier2.code).toBe(0);
          expect(readFileSync(dump, 'utf8').split('\n').some((l) => l.includes('"/calico/resources/v3/projectcalico.org/nodes/'))).toBe(true);
        } finally {
          expect(await t2.stop()).toBe(0);
        }
      } finally {
        expect(await t1.stop()).toBe(0);
      }
    } finally {
      await sim.close();
    }
  });
});
