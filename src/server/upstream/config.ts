import type { ConfigOf } from '../../config/options.js';
import { selectOptions } from '../../config/resolve.js';
import { type serveOptions, upstreamOptions } from '../options.js';
import type { UpstreamOptions } from './upstream.js';

/** The createUpstream options that come from `cattail serve`'s resolved configuration. */
export function upstreamOptionsFromConfig(config: ConfigOf<typeof serveOptions>): Omit<UpstreamOptions, 'replicaId'> {
  const o: Omit<UpstreamOptions, 'replicaId'> = selectOptions(upstreamOptions, config);
  return config.kubeconfig === undefined ? o : { ...o, kubeconfigPath: config.kubeconfig };
}
