/**
 * Internals for tests and sibling packages (the bench agent). Not a compatibility promise.
 */
export * from './index.js';
export { ALLOWED, AsyncQueue } from './status.js';
export { Backoff } from './backoff.js';
export { EndpointRotation } from './endpoints.js';
export { FeedState, UnexpectedFrameError, type RawChangeBatch, type RawEntry } from './feed-state.js';
export { IncrementalDigest } from './digest.js';
export { behindResources, compareRv, mergeWatermarks } from './watermarks.js';
export { parseRetryAfter, Connection, LocalCloseError } from './connection.js';
export { resolveOptions, type ResolvedOptions } from './connect-options.js';
export { loadTls, uriSans } from './tls.js';
