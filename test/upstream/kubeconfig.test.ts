/**
 * The cluster's name in a replica checkpoint's identity (kubeconfig.ts clusterIdOf): the API
 * server URL alone does not tell clusters apart in-cluster (every kubeadm cluster with the default
 * service range is https://10.96.0.1:443), so the CA is part of it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import { clusterIdOf } from '../../src/server/upstream/kubeconfig.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function kubeconfig(cluster: { server: string; caData?: string; caFile?: string }): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', skipTLSVerify: false, ...cluster }],
    users: [{ name: 'u', token: 't' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return kc;
}

describe('clusterIdOf', () => {
  const server = 'https://10.96.0.1:443';
  const caA = Buffer.from('-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n').toString('base64');
  const caB = Buffer.from('-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----\n').toString('base64');

  it('tells two clusters at the same API server address apart by their CA, and is stable for one', () => {
    expect(clusterIdOf(kubeconfig({ server, caData: caA }))).not.toBe(clusterIdOf(kubeconfig({ server, caData: caB })));
    expect(clusterIdOf(kubeconfig({ server, caData: caA }))).toBe(clusterIdOf(kubeconfig({ server, caData: caA })));
    expect(clusterIdOf(kubeconfig({ server, caData: caA }))).toMatch(/^https:\/\/10\.96\.0\.1:443 ca-sha256:[0-9a-f]{64}$/);
  });

  it('reads the CA file as in-cluster config names it, the same as the same CA inline', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cattail-kc-'));
    dirs.push(dir);
    const file = join(dir, 'ca.crt');
    writeFileSync(file, Buffer.from(caA, 'base64'));
    expect(clusterIdOf(kubeconfig({ server, caFile: file }))).toBe(clusterIdOf(kubeconfig({ server, caData: caA })));
    // Unreadable: the URL alone, as before.
    expect(clusterIdOf(kubeconfig({ server, caFile: join(dir, 'missing.crt') }))).toBe(server);
  });

  it('is the URL alone without a CA', () => {
    expect(clusterIdOf(kubeconfig({ server: 'http://127.0.0.1:8080' }))).toBe('http://127.0.0.1:8080');
  });
});
