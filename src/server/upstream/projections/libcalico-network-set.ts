import type { KubeObject } from '../types.js';
import { isRecord, sortedRecord, stringRecord } from './encode.js';
import { networkSetKey, normalizeNet, type KV } from './calico-keys.js';
import { namespaceProfileName } from './libcalico-profile.js';
import { v3Labels, v3Name } from './libcalico-resource.js';
import { NAMESPACE_LABEL } from './libcalico-rules.js';

/**
 * GlobalNetworkSet / NetworkSet → the v1 network set Felix's syncer sends. Public Calico sources:
 * `libcalico-go/lib/backend/syncersv1/updateprocessors/globalnetworksetprocessor.go` and
 * networksetprocessor.go, value fields from `lib/backend/model/networkset.go`.
 *
 * - Key: `/calico/v1/netset/<name>`, `escaped(<ns>/<name>)` for a namespaced set (v3 names, from
 *   the CR's metadata annotation).
 * - Value: `nets` (masked networks; an unparsable one is skipped, as the global processor skips
 *   it — the namespaced one would dereference nil), `labels` (the v3 labels; a namespaced set adds
 *   `projectcalico.org/namespace: <ns>`), and for a namespaced set `profile_ids: ["kns.<ns>"]` so
 *   that it inherits its namespace's labels. Empty fields are left out.
 */

export function networkSetV1Key(obj: KubeObject): string {
  const ns = obj.metadata?.namespace ?? '';
  return networkSetKey(ns !== '' ? `${ns}/${v3Name(obj)}` : v3Name(obj));
}

export function convertNetworkSet(obj: KubeObject): KV[] {
  const ns = obj.metadata?.namespace ?? '';
  const spec = isRecord(obj['spec']) ? obj['spec'] : {};
  const nets = (Array.isArray(spec['nets']) ? spec['nets'] : [])
    .map((n) => (typeof n === 'string' ? normalizeNet(n) : undefined))
    .filter((n): n is string => n !== undefined);
  const labels = stringRecord(v3Labels(obj));
  if (ns !== '') labels[NAMESPACE_LABEL] = ns;
  const value: Record<string, unknown> = {};
  if (nets.length > 0) value['nets'] = nets;
  if (Object.keys(labels).length > 0) value['labels'] = sortedRecord(Object.entries(labels));
  if (ns !== '') value['profile_ids'] = [namespaceProfileName(ns)];
  return [[networkSetV1Key(obj), value]];
}
