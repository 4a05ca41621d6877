import type { KubeObject } from '../types.js';
import { isRecord } from './encode.js';
import { configKeyFn, globalConfigKey, type KV } from './calico-keys.js';

/**
 * ClusterInformation → the config keys Felix's syncer sends. `libcalico-go/lib/backend/syncersv1/
 * updateprocessors/clusterinfoprocessor.go` runs the generic config processor
 * (configurationprocessor.go) over `ClusterInformationSpec`: each set field becomes one key named
 * after the Go field — global (`/calico/v1/config/<Name>`, model GlobalConfigKey) for the resource
 * named `default`, per host (`/calico/v1/host/<node>/config/<Name>`) for `node.<node>` — with the
 * value as a string; `DatastoreReady` instead becomes the ready flag `/calico/v1/Ready` (a bool,
 * global only), the flag Felix waits on during datastore migrations. An unset field is no key.
 * Other names are an error in libcalico (counted and skipped here).
 */

const FIELDS: readonly (readonly [json: string, name: string])[] = [
  ['clusterGUID', 'ClusterGUID'],
  ['clusterType', 'ClusterType'],
  ['calicoVersion', 'CalicoVersion'],
  ['variant', 'Variant'],
];

export const READY_FLAG_KEY = '/calico/v1/Ready';

export function convertClusterInformation(ci: KubeObject): KV[] {
  const name = ci.metadata?.name ?? '';
  const key = configKeyFn('ClusterInformation', name);
  const global = key === globalConfigKey;
  const spec = isRecord(ci['spec']) ? ci['spec'] : {};
  const out: KV[] = [];
  for (const [json, field] of FIELDS) {
    const v = spec[json];
    if (typeof v === 'string' && v !== '') out.push([key(field), v]);
  }
  if (global && typeof spec['datastoreReady'] === 'boolean') out.push([READY_FLAG_KEY, spec['datastoreReady']]);
  return out;
}
