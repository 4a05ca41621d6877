/**
 * The node-agent client library: the public surface. Agents import only this module; tests reach
 * further through `./internal.js` (nats.js' mod.ts / internal_mod.ts split).
 *
 *   const client = connect({ endpoints: ['wss://cattail:5473'], feeds: ['felix'], tls: { caFile } });
 *   client.on('change', (batch) => apply(batch));
 *   for await (const s of client.status()) report(s);
 *
 * See src/client/README.md for the state machine, the options and examples.
 */
export { connect, Client } from './client.js';
export { FeedView, type ChangeBatch, type ClientStats, type FeedStatus, type SnapshotProgress } from './feed-view.js';
// The option tables: each option's default, unit and range (what connect() validates against).
export { connectOptions, tlsOptions, type ConnectOptions, type TlsOptions } from './connect-options.js';
export type { FeedSync } from './feed-state.js';
export { CLIENT_STATES, type ClientState, type StatusEvent } from './status.js';
// Felix's syncer callback shape (onUpdates / onStatusUpdated) beside the events above.
export { attachSyncer, type SyncerCallbacks, type SyncerUpdate, type SyncStatus, type UpdateType } from './syncer.js';
