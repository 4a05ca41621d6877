/**
 * Feed metadata that travels with revisions: the sync status, the stale flag and the per-resource
 * upstream watermarks. A `FeedMeta` is immutable (frozen) and replaced as a whole on change, so a
 * view or a delta can hand it out without copying and it can never change under a reader.
 */

/** Where the feed's upstream is: no data yet, relisting after an error, or complete. */
export type SyncStatus = 'waiting' | 'resyncing' | 'in-sync';

export const SYNC_STATUSES: readonly SyncStatus[] = Object.freeze(['waiting', 'resyncing', 'in-sync']);

export interface FeedMeta {
  readonly status: SyncStatus;
  /**
   * The revision the current status was recorded at. A status given with a changing batch belongs
   * to that batch's new revision: "in-sync" therefore only ever attaches after the batch's last
   * update, never to a partial state. A status given alone belongs to the revision current then.
   */
  readonly statusRevision: number;
  /** The upstream says its data may be outdated (e.g. a watch has been failing); data is kept. */
  readonly stale: boolean;
  /**
   * Per resource id (`pods`, `ippools.crd.projectcalico.org`), the last Kubernetes resourceVersion
   * applied, as a decimal string. Recorded as given (see `ApplyResult.watermarkRegressions`).
   */
  readonly watermarks: Readonly<Record<string, string>>;
  /** The store revision current when this metadata last changed. */
  readonly revision: number;
  /** Increments on every metadata change, including ones that create no revision. */
  readonly seq: number;
}

export const INITIAL_META: FeedMeta = Object.freeze({
  status: 'waiting',
  statusRevision: 0,
  stale: false,
  watermarks: Object.freeze({}),
  revision: 0,
  seq: 0,
});

// One comparator for the whole code base (src/resource-version.ts); re-exported for the store's users.
export { compareResourceVersions, isResourceVersion } from '../resource-version.js';
