export { createUpstream, upstreamReady, type UpstreamHandle, type UpstreamOptions } from './upstream.js';
export { BUILTIN_FEEDS, builtinFeed, customFeed, resolveFeeds, type FeedSpec } from './feeds.js';
export { loadKubeConfig } from './kubeconfig.js';
export { UpstreamMetrics } from './metrics.js';
export { PROJECTION_VERSION, encodeValue, projector } from './projections/index.js';
export type { CustomFeedConfig, CustomFeedResource, ProjectionKind } from './types.js';
export { upstreamOptionsFromConfig } from './config.js';
