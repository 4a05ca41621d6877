/**
 * Internals for tests and sibling packages (the bench agent). Not a compatibility promise.
 */
export * from './index.js';
export { ALLOWED, AsyncQueue } from './status.js';
export { EndpointRotation } from './endpoints.js';
export { FeedState, type RawChangeBatch, type RawEntry } from './feed-state.js';
export { IncrementalDigest } from './digest.js';
export { behindResources, mergeWatermarks } from './watermarks.js';
export { Connection } from './connection.js';
export { LocalCloseError } from './close-errors.js';
export { resolveOptions, type ResolvedOptions } from './connect-options.js';
export { loadTls } from './tls.js';
