import { describe, expect, it } from 'vitest';
import { waitUntil } from '../support/wait.js';
import { runCli } from '../support/cli.js';
import { harness } from '../server/helpers/harness.js';

const run = runCli;

describe('cattail agent --agents (many agents in one process)', () => {
  it('runs N agents, K of them verifying the digest, bounded by --duration-ms, with a final JSON summary', async () => {
    const h = await harness({ feeds: ['felix', 'bgp'] });
    const values: Record<string, unknown> = {};
    for (let i = 0; i < 50; i++) values[`/pods/ns/p${i}`] = { i };
    h.upstream.apply('felix', values, { status: 'in-sync' });
    h.upstream.apply('bgp', { '/nodes/n': { n: 1 } }, { status: 'in-sync' });
    const r = await run(['agent', '--server', h.server.url, '--feed', 'felix', '--feed', 'bgp', '--agents', '120', '--verify', '3', '--node-prefix', 'sim-node-', '--duration-ms', '2500', '--status-interval-ms', '500', '--json']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const final = JSON.parse(r.out.trim().split('\n').at(-1) as string) as Record<string, number | boolean>;
    expect(final).toMatchObject({ final: true, agents: 120, inSync: 120, verified: 3, violations: 0, digestMismatches: 0 });
    expect(final['snapshots']).toBe(117 * 2);
    await waitUntil(() => h.server.connectionCount() === 0, 'agents gone');
  });

  it('refuses --once and --dump with --agents (they describe one full agent)', async () => {
    const r = await run(['agent', '--server', 'ws://127.0.0.1:1/', '--agents', '5', '--once']);
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/CATTAIL_CONFIG_INVALID_VALUE.*--once and --dump/);
  });

  it('refuses a --reconnect-max-delay-ms below the initial delay (it used to be raised to 250 ms silently)', async () => {
    const r = await run(['agent', '--server', 'ws://127.0.0.1:1/', '--reconnect-max-delay-ms', '10', '--once']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/CATTAIL_CONFIG_INVALID_VALUE: invalid agent options: .*reconnectMaxDelayMs/);
  });

  it('refuses the options a load agent would not use (TLS, state, node, kubeconfig) instead of dropping them', async () => {
    for (const [flag, value] of [['--service', 'ns/svc'], ['--ca-file', '/ca.pem'], ['--state-dir', '/tmp/x'], ['--node', 'n1'], ['--kubeconfig', '/k']]) {
      for (const mode of [['--agents', '5'], ['--discard']]) {
        const r = await run(['agent', '--server', 'ws://127.0.0.1:1/', ...mode, flag as string, value as string]);
        expect(r.code, `${flag} ${mode.join(' ')}`).toBe(2);
        expect(r.err).toContain(`CATTAIL_CONFIG_INVALID_VALUE: --agents and --discard run plain load agents; ${flag} would not be used`);
      }
    }
  });
});
