import type { ConfigOf } from '../../config/options.js';
import type { serveOptions } from '../options.js';
import type { UpstreamOptions } from './upstream.js';

/** The createUpstream options that come from `cattail serve`'s resolved configuration. */
export function upstreamOptionsFromConfig(config: Pick<ConfigOf<typeof serveOptions>, 'kubeconfig' | 'feeds' | 'customFeeds' | 'upstreamStaleAfterMs' | 'listPageSize' | 'watchList' | 'watchInactivityTimeoutMs' | 'missingResourceRetryMs'>): Omit<UpstreamOptions, 'replicaId'> {
  const o: Omit<UpstreamOptions, 'replicaId'> = {
    feeds: config.feeds,
    customFeeds: config.customFeeds,
    upstreamStaleAfterMs: config.upstreamStaleAfterMs,
    listPageSize: config.listPageSize,
    watchList: config.watchList,
    watchInactivityTimeoutMs: config.watchInactivityTimeoutMs,
    missingResourceRetryMs: config.missingResourceRetryMs,
  };
  if (config.kubeconfig !== undefined) o.kubeconfigPath = config.kubeconfig;
  return o;
}
