/**
 * A fake in-cluster service-account directory, laid out so that @kubernetes/client-node 1.4's
 * `KubeConfig.loadFromCluster(pathPrefix)` finds it: the library appends the fixed path
 * `/var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt,namespace}` to `pathPrefix`, and
 * takes the server from the `KUBERNETES_SERVICE_HOST` / `KUBERNETES_SERVICE_PORT` environment
 * variables (https unless the port is 80, 8080 or 8001). There is no way to pass the host or
 * port other than the environment, so callers set those two variables (see {@link inClusterEnv}).
 *
 * The token file is rewritten atomically on rotation; client-node's FileAuth re-reads it when its
 * copy is older than 60 s (real time), as client-go does.
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CattailError } from '../../errors.js';

export const SA_SUBPATH = 'var/run/secrets/kubernetes.io/serviceaccount';

export async function writeAtomic(path: string, data: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, data, { mode: 0o600 });
  await rename(tmp, path);
}

/** Writes `root/var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt,namespace}`; returns that directory. */
export async function writeServiceAccount(root: string, files: { token: string; caPem: string; namespace: string }): Promise<string> {
  const dir = join(root, SA_SUBPATH);
  try {
    await mkdir(dir, { recursive: true });
    await writeAtomic(join(dir, 'ca.crt'), files.caPem);
    await writeAtomic(join(dir, 'namespace'), files.namespace);
    await writeAtomic(join(dir, 'token'), files.token);
    return dir;
  } catch (err) {
    throw new CattailError('CATTAIL_SIM_TLS_FAILED', `cannot write the service-account directory ${dir}: ${(err as Error).message}`, { cause: err, details: { dir } });
  }
}

/** The environment `loadFromCluster` reads for the server address. */
export function inClusterEnv(port: number): { KUBERNETES_SERVICE_HOST: string; KUBERNETES_SERVICE_PORT: string } {
  return { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(port) };
}
