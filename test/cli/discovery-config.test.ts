import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveDiscoveryAccess } from '../../src/client/discovery-access.js';
import { runCli } from '../support/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'cattail-discovery-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A loadable kubeconfig; its names are the file's, as files merged from KUBECONFIG must not share any. */
function kubeconfig(name: string): string {
  const path = join(dir, name);
  const n = name.replace(/\W/g, '-');
  writeFileSync(path, [
    'apiVersion: v1', 'kind: Config', `current-context: c-${n}`,
    `clusters: [{name: k-${n}, cluster: {server: "https://10.0.0.1:6443"}}]`,
    `users: [{name: u-${n}, user: {token: t}}]`,
    `contexts: [{name: c-${n}, context: {cluster: k-${n}, user: u-${n}}}]`, '',
  ].join('\n'));
  return path;
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return (err as { code: string }).code;
  }
  return 'resolved';
}

describe('--service discovery config (client-node order, no localhost fallback)', () => {
  const never = (): boolean => false;

  it('takes --kubeconfig, then KUBECONFIG (a path list), then ~/.kube/config, then the in-cluster service account', async () => {
    const flag = kubeconfig('flag');
    const a = kubeconfig('a');
    const b = kubeconfig('b');
    expect(await resolveDiscoveryAccess(flag, { KUBECONFIG: a }, '--server URL', never)).toEqual({ kind: 'kubeconfig', paths: [flag], from: 'flag' });
    expect(await resolveDiscoveryAccess(undefined, { KUBECONFIG: `${a}${delimiter}${b}` }, '--server URL', never)).toEqual({ kind: 'kubeconfig', paths: [a, b], from: 'KUBECONFIG' });
    const home = join(dir, 'home');
    mkdirSync(join(home, '.kube'), { recursive: true });
    writeFileSync(join(home, '.kube', 'config'), '');
    const homeConfig = kubeconfig(join('home', '.kube', 'config'));
    const inCluster = { KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' };
    expect(await resolveDiscoveryAccess(undefined, { HOME: home, ...inCluster }, '--server URL')).toEqual({ kind: 'kubeconfig', paths: [homeConfig], from: 'home' });
    expect(await resolveDiscoveryAccess(undefined, inCluster, '--server URL', () => true)).toEqual({ kind: 'in-cluster' });
  });

  it('with none of them: CATTAIL_CLIENT_NO_DISCOVERY_CONFIG; a service account token without the service variables is none', async () => {
    expect(await codeOf(resolveDiscoveryAccess(undefined, {}, '--server URL', never))).toBe('CATTAIL_CLIENT_NO_DISCOVERY_CONFIG');
    expect(await codeOf(resolveDiscoveryAccess(undefined, { HOME: join(dir, 'no-home') }, '--server URL', () => false))).toBe('CATTAIL_CLIENT_NO_DISCOVERY_CONFIG');
    expect(await codeOf(resolveDiscoveryAccess(undefined, {}, '--server URL', () => true))).toBe('CATTAIL_CLIENT_NO_DISCOVERY_CONFIG');
  });

  it('a kubeconfig found but unreadable, unparsable or without a current cluster: CATTAIL_CONFIG_INVALID_VALUE', async () => {
    const garbage = join(dir, 'garbage');
    writeFileSync(garbage, '{{{ not yaml');
    for (const [path, env] of [[join(dir, 'missing'), {}], [garbage, {}], [undefined, { KUBECONFIG: `${kubeconfig('ok')}${delimiter}${join(dir, 'missing')}` }]] as const) {
      expect(await codeOf(resolveDiscoveryAccess(path, env, '--server URL', never)), String(path)).toBe('CATTAIL_CONFIG_INVALID_VALUE');
    }
  });

  it('cattail converge --service refuses the same way before asking anything', async () => {
    const r = await runCli(['converge', '--service', 'calico-system/cattail', '--resource', 'pods', '--resource-version', '1']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('CATTAIL_CLIENT_NO_DISCOVERY_CONFIG');
    expect(r.err).toContain('or give the replicas with --endpoints http://HOST:PORT');
  });
});
