/**
 * Felix's syncer callback shape on top of the client, so a consumer written for Typha's client
 * (libcalico-go `api.SyncerCallbacks`: `OnUpdates([]Update)` with `UpdateType` KVNew / KVUpdated /
 * KVDeleted, and `OnStatusUpdated(SyncStatus)` WaitForDatastore / ResyncInProgress / InSync) maps
 * one to one. With the built-in feeds (`libcalico.v3`, docs/data-model.md) the keys and values are
 * libcalico-go's own.
 *
 * ```ts
 * const client = connect({ endpoints, feeds: ['felix'] });
 * const detach = attachSyncer(client, {
 *   onUpdates: (kvs) => { for (const u of kvs) calcGraph.apply(u.key, u.value, u.updateType); },
 *   onStatusUpdated: (s) => log.info(`datastore ${s}`),
 * });
 * ```
 *
 * Update types come from the keys the adapter has handed out: a key it has not reported is `new`,
 * one it has is `updated`, and a delete is `deleted` with value null (deletes of keys the adapter
 * never reported do not occur: the client reports only real changes). A resync after a reconnect
 * is reconciled by the client, so it arrives as the real differences, as Felix expects.
 *
 * Status: `wait-for-datastore` until the first connection syncs, `resync` while a snapshot is being
 * loaded, `in-sync` once every feed is in sync (also while the upstream is stale: the data stays
 * served, as Typha keeps serving). A disconnection after that reports nothing new: the state is
 * kept and resumed (a resume or a range repair passes through `syncing` without a `resync`).
 * Statuses are edge-triggered. Attached to a client already in sync, the adapter reports `resync`,
 * the held state as `new`, then `in-sync`: never in-sync before the data it vouches for.
 */
import type { Client } from './client.js';
import type { ClientState } from './status.js';

export type UpdateType = 'new' | 'updated' | 'deleted';
export type SyncStatus = 'wait-for-datastore' | 'resync' | 'in-sync';

export interface SyncerUpdate {
  /** The feed the key belongs to (a Typha client has one syncer per feed; here one adapter can serve several). */
  feed: string;
  key: string;
  /** The decoded value (raw mode: the msgpack bytes); null for `deleted`. */
  value: unknown;
  updateType: UpdateType;
}

export interface SyncerCallbacks {
  onUpdates(updates: SyncerUpdate[]): void;
  onStatusUpdated(status: SyncStatus): void;
}

function statusOf(state: ClientState, everInSync: boolean): SyncStatus | undefined {
  switch (state) {
    case 'syncing':
      // Every connection passes through `syncing` (a resume, a range repair): after the first
      // in-sync it is not news to a Typha-style consumer, which never leaves InSync.
      return everInSync ? undefined : 'resync';
    case 'in-sync':
    case 'upstream-stale':
      return 'in-sync';
    case 'idle':
    case 'connecting':
    case 'reconnecting':
    case 'behind':
      return everInSync ? undefined : 'wait-for-datastore';
    default:
      return undefined;
  }
}

/**
 * Calls `callbacks` for every change of the client's feeds (all of them, or `options.feeds`) and
 * for every sync status edge. State the client already holds is reported first, as `new`.
 * Returns a function that detaches the adapter.
 */
export function attachSyncer(client: Client, callbacks: SyncerCallbacks, options: { feeds?: readonly string[] } = {}): () => void {
  const feeds = new Set(options.feeds ?? client.feedNames);
  const known = new Map<string, Set<string>>([...feeds].map((f) => [f, new Set<string>()]));
  let everInSync = false;
  let last: SyncStatus | undefined;
  const report = (s: SyncStatus | undefined): void => {
    if (s === undefined || s === last) return;
    last = s;
    if (s === 'in-sync') everInSync = true;
    callbacks.onStatusUpdated(s);
  };

  // The held state first, then in-sync: a consumer told in-sync reconciles against what it has,
  // and was told so with nothing yet (attached to a client already in sync). Attached earlier,
  // the status comes first as usual (wait-for-datastore, resync).
  const at = statusOf(client.state, false);
  if (at === 'in-sync') report('resync');
  else report(at);
  const initial: SyncerUpdate[] = [];
  for (const feed of feeds) {
    const keys = known.get(feed) as Set<string>;
    for (const [key, value] of client.feed(feed).entries()) {
      keys.add(key);
      initial.push({ feed, key, value, updateType: 'new' });
    }
  }
  if (initial.length > 0) callbacks.onUpdates(initial);
  if (at === 'in-sync') report('in-sync');

  const offChange = client.on('change', (batch) => {
    const keys = known.get(batch.feed);
    if (keys === undefined) return;
    const updates: SyncerUpdate[] = [];
    for (const { key, value } of batch.upserts) {
      updates.push({ feed: batch.feed, key, value, updateType: keys.has(key) ? 'updated' : 'new' });
      keys.add(key);
    }
    for (const key of batch.deletes) {
      keys.delete(key);
      updates.push({ feed: batch.feed, key, value: null, updateType: 'deleted' });
    }
    if (updates.length > 0) callbacks.onUpdates(updates);
  });
  const offStatus = client.on('status', (e) => report(statusOf(e.state, everInSync)));
  return () => {
    offChange();
    offStatus();
  };
}
