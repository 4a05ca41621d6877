import { existsSync } from 'node:fs';
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
