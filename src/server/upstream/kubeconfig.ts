import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import { CattailError } from '../../errors.js';

const SERVICEACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/**
 * Where the replica's API server credentials come from, in order: an explicit kubeconfig file,
 * KUBECONFIG, then the in-cluster service account (whose token file is re-read as it rotates).
 * Deliberately not ~/.kube/config and not client-node's final fallback (http://localhost:8080):
 * a server that silently picks up a developer's context, or nothing, is worse than a clear error.
 */
export function loadKubeConfig(path: string | undefined, env: Readonly<Record<string, string | undefined>> = process.env): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (path !== undefined) kc.loadFromFile(path);
    else if (env['KUBECONFIG']) kc.loadFromDefault();
    else if (env['KUBERNETES_SERVICE_HOST'] && existsSync(SERVICEACCOUNT_TOKEN)) kc.loadFromCluster();
    else throw new CattailError('CATTAIL_UPSTREAM_CONFIG', 'no kubeconfig: pass --kubeconfig, set KUBECONFIG, or run in a cluster (or use --embedded-sim for a demo)');
  } catch (err) {
    if (CattailError.is(err)) throw err;
    throw new CattailError('CATTAIL_UPSTREAM_CONFIG', `cannot load kubeconfig${path ? ` ${path}` : ''}: ${(err as Error).message}`, { cause: err, details: { path } });
  }
  if (!kc.getCurrentCluster()) throw new CattailError('CATTAIL_UPSTREAM_CONFIG', `kubeconfig${path ? ` ${path}` : ''} has no current cluster`, { details: { path } });
  return kc;
}

/**
 * What names the cluster in a replica checkpoint's identity (upstream.ts): the current cluster's
 * API server URL and, when the kubeconfig has one, a hash of its CA certificates. The URL alone
 * does not tell clusters apart in-cluster: every kubeadm cluster with the default service range
 * reaches its API server at https://10.96.0.1:443, so a state volume that outlived a cluster
 * rebuild restored the old cluster's objects into the new one (and, when the saved
 * resourceVersion was still in the new watch cache's window, never deleted them). A cluster's CA
 * is made at its creation; a rotated CA costs one cold start, the safe direction. Read once, at
 * start; an unreadable CA file leaves the URL alone (as before).
 */
export function clusterIdOf(kc: KubeConfig): string {
  const c = kc.getCurrentCluster();
  if (c === null) return '';
  let ca: Buffer | undefined;
  try {
    ca = c.caData !== undefined && c.caData !== '' ? Buffer.from(c.caData, 'base64') : c.caFile !== undefined && c.caFile !== '' ? readFileSync(c.caFile) : undefined;
  } catch {
    ca = undefined;
  }
  return ca === undefined || ca.length === 0 ? c.server : `${c.server} ca-sha256:${createHash('sha256').update(ca).digest('hex')}`;
}
