/**
 * Where `--service` discovery (`cattail agent`, `cattail converge`, and a second-tier
 * `cattail serve --upstream-cattail-service`) reads EndpointSlices from, checked before anything
 * connects.
 *
 * The client library loads the config with client-node's `loadFromDefault` order: an explicit
 * kubeconfig, KUBECONFIG, ~/.kube/config, the in-cluster service account. Its last fallback, a
 * cluster at http://localhost:8080, is never what an operator meant: it failed each attempt with
 * "HTTP protocol is not allowed when skipTLSVerify is not set" and was retried forever. And a
 * kubeconfig file that is missing or does not load is a configuration error, which no retry fixes.
 * So the commands decide here, strictly, as `cattail serve` does for its upstream (serve.ts).
 */
import { existsSync } from 'node:fs';
import { delimiter } from 'node:path';
import { type DiscoveryConfigSource, discoveryConfigSource } from './discovery.js';
import { CattailError, ConfigError } from '../errors.js';


/** The config discovery will use. */
export type DiscoveryAccess = DiscoveryConfigSource;

/** What each source is called in messages. */
const NAMED = { flag: 'option kubeconfig (--kubeconfig)', KUBECONFIG: 'KUBECONFIG', home: '~/.kube/config' } as const;

/**
 * Loads each kubeconfig file as discovery will, and requires a current cluster.
 * @throws ConfigError CATTAIL_CONFIG_INVALID_VALUE naming the file and where it was named
 */
async function checkLoadable(paths: readonly string[], named: string): Promise<void> {
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  for (const [i, path] of paths.entries()) {
    try {
      if (i === 0) kc.loadFromFile(path);
      else {
        const more = new KubeConfig();
        more.loadFromFile(path);
        kc.mergeConfig(more);
      }
    } catch (err) {
      throw new ConfigError('CATTAIL_CONFIG_INVALID_VALUE', `${named}: cannot load kubeconfig ${path}: ${(err as Error).message}`, { cause: err, details: { option: 'kubeconfig', value: path } });
    }
  }
  if (!kc.getCurrentCluster()) {
    throw new ConfigError('CATTAIL_CONFIG_INVALID_VALUE', `${named}: kubeconfig ${paths.join(delimiter)} has no current context with a cluster`, { details: { option: 'kubeconfig', value: paths.join(delimiter) } });
  }
}

/**
 * The config `option`'s discovery will use, after checking that it loads. `otherwise` names the
 * command's way around discovery (`--server URL`) for the message.
 * @throws ConfigError CATTAIL_CONFIG_INVALID_VALUE when the kubeconfig found cannot be loaded
 * @throws CattailError CATTAIL_CLIENT_NO_DISCOVERY_CONFIG when there is none
 */
export async function resolveDiscoveryAccess(
  kubeconfig: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
  otherwise: string,
  fileExists: (path: string) => boolean = existsSync,
  option = '--service',
): Promise<DiscoveryAccess> {
  const found = discoveryConfigSource(kubeconfig, env, fileExists);
  if (found?.kind === 'kubeconfig') {
    await checkLoadable(found.paths, NAMED[found.from]);
    return found;
  }
  // Stricter than client-node, which looks at the token alone: without the service variables its
  // in-cluster config has no server address.
  if (found?.kind === 'in-cluster' && env['KUBERNETES_SERVICE_HOST'] && env['KUBERNETES_SERVICE_PORT']) return found;
  throw new CattailError(
    'CATTAIL_CLIENT_NO_DISCOVERY_CONFIG',
    `${option} needs the Kubernetes API to read EndpointSlices, and there is no config for it: pass --kubeconfig FILE, set KUBECONFIG, create ~/.kube/config, or run in a pod with a service account; or give the replicas with ${otherwise}`,
    { details: { option: 'kubeconfig' } },
  );
}
