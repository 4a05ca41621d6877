/**
 * Shapes shared by the upstream's files. Objects arrive as raw `JSON.parse` output from lists and
 * watches alike (never the typed client's class instances: those differ from watch objects in
 * shape — `Date`s, `_continue`, missing `kind` — and would make identical objects compare unequal).
 */

/** A Kubernetes object as parsed from JSON. Only `metadata` is relied upon. */
export interface KubeObject {
  kind?: string;
  apiVersion?: string;
  metadata?: KubeMetadata;
  [field: string]: unknown;
}

export interface KubeMetadata {
  name?: string;
  namespace?: string;
  generateName?: string;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  deletionTimestamp?: string;
  [field: string]: unknown;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface WatchEvent {
  type: WatchEventType;
  object: KubeObject;
}

/** A v1 Status (error bodies and ERROR events). */
export interface KubeStatus {
  kind?: 'Status';
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
  details?: { retryAfterSeconds?: number; causes?: { reason?: string; message?: string }[] };
  metadata?: { continue?: string };
}

/**
 * How a feed turns an object into a stored value:
 * - `calico`: what Calico's syncers make of it (Pods → workload endpoints, Namespaces and
 *   ServiceAccounts → profiles, Nodes → BGP/tunnel fields; everything else stripped, keeping
 *   the status only where Calico reads it);
 * - `strip`: the object minus managedFields, status and per-write noise;
 * - `raw`: the object as the API server sent it (every write is a change);
 * - `libcalico`: what Typha's syncers send — libcalico-go keys (`/calico/v1/host/<node>/workload/…`,
 *   `/calico/resources/v3/projectcalico.org/…`) and values with libcalico-go's model field names,
 *   possibly several keys per object (docs/data-model.md). The built-in feeds use it.
 */
export type ProjectionKind = 'calico' | 'strip' | 'raw' | 'libcalico';

/** A custom feed as declared in the config file (`customFeeds:` list). */
export interface CustomFeedConfig {
  name: string;
  resources: CustomFeedResource[];
}

export interface CustomFeedResource {
  /** A resource id from src/registry.ts (`pods`, `ippools.crd.projectcalico.org`). */
  resource: string;
  /** Kubernetes label selector syntax, evaluated on our side (the resource is watched once). */
  labelSelector?: string;
  /** `path=value` / `path!=value` pairs on dotted paths (`spec.nodeName=worker-1`). */
  fieldSelector?: string;
  /** @default 'calico' */
  projection?: ProjectionKind;
}
