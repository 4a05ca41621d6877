/**
 * HTTPS and identity: @kubernetes/client-node lists over HTTPS with the
 * generated CA and the bearer token, from the written kubeconfig and through loadFromCluster with
 * the fake service-account directory; a wrong token gets 401, an untrusting client fails TLS, and
 * a rotated token stays valid for its grace window only (FakeClock).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { FakeClock } from '../../src/clock.js';
import { inClusterEnv, startSim, type Sim } from '../../src/sim/index.js';
import { getJson, type Loose } from './helpers.js';

let sim: Sim;
const clock = new FakeClock();
beforeAll(async () => {
  sim = await startSim({ https: true, token: 's3cret', nodes: 2, podsPerNode: 2, seed: 9, clock });
});
afterAll(() => sim.close());

function get(path: string, token: string | undefined, ca: string | null = sim.caPem ?? null): Promise<number> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };
    const req = request(`${sim.url}${path}`, { ca: ca ?? undefined, headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

async function kubeconfigWith(edit: (yaml: string) => string): Promise<KubeConfig> {
  const kc = new KubeConfig();
  kc.loadFromString(edit(await readFile(sim.kubeconfigPath, 'utf8')));
  return kc;
}

describe('sim HTTPS and identity', () => {
  it('client-node lists over HTTPS from the written kubeconfig (CA data and token in it)', async () => {
    expect(sim.url.startsWith('https://127.0.0.1:')).toBe(true);
    const kc = new KubeConfig();
    kc.loadFromFile(sim.kubeconfigPath);
    expect(kc.getCurrentCluster()?.caData).toBeTruthy();
    expect(kc.getCurrentUser()?.token).toBe('s3cret');
    const pods = await kc.makeApiClient(CoreV1Api).listPodForAllNamespaces();
    expect(pods.items.length).toBe(4);
  });

  it('a wrong or missing token gets 401', async () => {
    const kc = await kubeconfigWith((y) => y.replace('token: s3cret', 'token: wrong'));
    await expect(kc.makeApiClient(CoreV1Api).listPodForAllNamespaces()).rejects.toMatchObject({ code: 401 });
    expect(await get('/api/v1/pods', undefined)).toBe(401);
    expect(await get('/api/v1/pods', 's3cret')).toBe(200);
  });

  it('a client that does not trust the CA fails the TLS handshake', async () => {
    const kc = await kubeconfigWith((y) => {
      const doc = parse(y) as Loose;
      delete doc.clusters[0].cluster['certificate-authority-data'];
      return stringify(doc);
    });
    await expect(kc.makeApiClient(CoreV1Api).listPodForAllNamespaces()).rejects.toThrow(/certificate/i);
    await expect(get('/api/v1/pods', 's3cret', null)).rejects.toMatchObject({ code: expect.stringMatching(/SELF_SIGNED|UNABLE_TO_VERIFY/) });
  });

  it('loadFromCluster(root) with the fake service-account directory and KUBERNETES_SERVICE_HOST/PORT', async () => {
    const root = sim.serviceAccountRoot as string;
    const dir = join(root, 'var/run/secrets/kubernetes.io/serviceaccount');
    expect(await readFile(join(dir, 'token'), 'utf8')).toBe('s3cret');
    expect(await readFile(join(dir, 'ca.crt'), 'utf8')).toBe(sim.caPem);
    const saved = { ...process.env };
    Object.assign(process.env, inClusterEnv(sim.port));
    try {
      const kc = new KubeConfig();
      kc.loadFromCluster(root);
      expect(kc.getCurrentCluster()?.server).toBe(sim.url);
      const pods = await kc.makeApiClient(CoreV1Api).listPodForAllNamespaces();
      expect(pods.items.length).toBe(4);
    } finally {
      process.env = saved;
    }
  });

  it('token rotation: files rewritten, the old token valid for the grace window (clock time), then 401', async () => {
    const next = await sim.faults.rotateToken('rotated', 1_000);
    expect(next).toBe('rotated');
    expect(await readFile(join(sim.serviceAccountRoot as string, 'var/run/secrets/kubernetes.io/serviceaccount/token'), 'utf8')).toBe('rotated');
    expect(await readFile(sim.kubeconfigPath, 'utf8')).toContain('token: rotated');
    expect(await get('/api/v1/pods', 's3cret')).toBe(200);
    expect(await get('/api/v1/pods', 'rotated')).toBe(200);
    clock.advance(1_000);
    expect(await get('/api/v1/pods', 's3cret')).toBe(401);
    expect(await get('/api/v1/pods', 'rotated')).toBe(200);
  });

  it('tls_handshake_failure: the next connection fails its handshake (counted), the one after succeeds', async () => {
    sim.faults.add({ kind: 'tls_handshake_failure', times: 1 });
    await expect(get('/api/v1/pods', 'rotated')).rejects.toMatchObject({ code: expect.stringMatching(/SSL|EPROTO|ECONNRESET/) });
    expect(await get('/api/v1/pods', 'rotated')).toBe(200);
    expect(sim.admin.counters().faults).toMatchObject({ tls_handshake_failure: 1 });
  });

  it('plain HTTP with a token: 401 without it; rotateToken without auth is a coded error', async () => {
    const plain = await startSim({ token: 'abc' });
    const open = await startSim();
    try {
      expect((await getJson(`${plain.url}/api/v1/pods`)).status).toBe(401);
      const ok = await getJson(`${plain.url}/api/v1/pods`, { headers: { authorization: 'Bearer abc' } });
      expect(ok.status).toBe(200);
      expect((ok.body as Loose).kind).toBe('PodList');
      await expect(open.faults.rotateToken()).rejects.toMatchObject({ code: 'CATTAIL_INVALID_ARGUMENT' });
      await writeFile(join(plain.serviceAccountRoot as string, 'unused'), ''); // the SA root exists with auth alone
    } finally {
      await plain.close();
      await open.close();
    }
  });
});
