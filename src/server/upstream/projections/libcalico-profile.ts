import type { KubeObject } from '../types.js';
import { sortedRecord, stringRecord } from './encode.js';
import { convertUid, profileLabelsKey, profileRulesKey, resourceKey, type KV } from './calico-keys.js';

/**
 * Namespace / ServiceAccount → the profile keys Felix's syncer sends (`libcalico` projection).
 *
 * - conversion.go `NamespaceToProfile`: profile `kns.<ns>`, allow-all ingress and egress rules,
 *   labelsToApply = the namespace's labels prefixed `pcns.` plus `pcns.projectcalico.org/name`;
 * - conversion.go `ServiceAccountToProfile`: profile `ksa.<ns>.<sa>` (namespace "" → `default`),
 *   no rules, labels prefixed `pcsa.` plus `pcsa.projectcalico.org/name`;
 * - updateprocessors/profileprocessor.go: each profile becomes three KVs — `…/labels` (the
 *   labelsToApply map, only when non-empty), `…/rules` (model.ProfileRules: `inbound_rules`,
 *   `outbound_rules`, each rule `{action: "allow"}`), and the v3 Profile resource itself under
 *   `/calico/resources/v3/projectcalico.org/profiles/<name>`;
 * - k8s/resources/profile.go: the KDD profile client always lists `projectcalico-default-allow`
 *   (allow-all, no labels), which auto host endpoints use; {@link DEFAULT_ALLOW_PROFILE} holds its KVs.
 *
 * The v3 value keeps name, the derived uid (`ConvertUID`) and creationTimestamp; the
 * resourceVersion (`<nsRev>/<saRev>` in libcalico) is left out, so a namespace write that changes
 * nothing Calico reads leaves the bytes equal. A v3 rule keeps `source` and `destination` as empty
 * maps: Go's `omitempty` never omits a struct, so that is what libcalico's JSON carries.
 */

const ALLOW_V3 = { action: 'Allow', source: {}, destination: {} };
const ALLOW_V1 = { action: 'allow' };

function v3Profile(name: string, source: KubeObject | undefined, spec: Record<string, unknown>): Record<string, unknown> {
  const metadata: Record<string, unknown> = { name };
  const uid = typeof source?.metadata?.['uid'] === 'string' ? convertUid(source.metadata['uid']) : undefined;
  if (uid !== undefined) metadata['uid'] = uid;
  if (typeof source?.metadata?.['creationTimestamp'] === 'string') metadata['creationTimestamp'] = source.metadata['creationTimestamp'];
  return { kind: 'Profile', apiVersion: 'projectcalico.org/v3', metadata, spec };
}

function profileKvs(name: string, labels: Record<string, string>, allow: boolean, source: KubeObject | undefined): KV[] {
  const out: KV[] = [];
  if (Object.keys(labels).length > 0) out.push([profileLabelsKey(name), labels]);
  out.push([profileRulesKey(name), allow ? { inbound_rules: [ALLOW_V1], outbound_rules: [ALLOW_V1] } : {}]);
  const spec: Record<string, unknown> = allow ? { ingress: [ALLOW_V3], egress: [ALLOW_V3] } : {};
  if (Object.keys(labels).length > 0) spec['labelsToApply'] = labels;
  out.push([resourceKey('profiles', name), v3Profile(name, source, spec)]);
  return out;
}

function prefixed(labels: unknown, prefix: string, name: string): Record<string, string> {
  const entries = Object.entries(stringRecord(labels)).map(([k, v]): [string, string] => [prefix + k, v]);
  entries.push([`${prefix}projectcalico.org/name`, name]);
  return sortedRecord(entries);
}

export function namespaceProfileName(ns: string): string {
  return `kns.${ns}`;
}

export function serviceAccountProfileName(ns: string, sa: string): string {
  return `ksa.${ns === '' ? 'default' : ns}.${sa}`;
}

export function convertNamespace(ns: KubeObject): KV[] {
  const name = ns.metadata?.name ?? '';
  return profileKvs(namespaceProfileName(name), prefixed(ns.metadata?.labels, 'pcns.', name), true, ns);
}

export function convertServiceAccount(sa: KubeObject): KV[] {
  const name = sa.metadata?.name ?? '';
  return profileKvs(serviceAccountProfileName(sa.metadata?.namespace ?? '', name), prefixed(sa.metadata?.labels, 'pcsa.', name), false, sa);
}

/** The always-present default-allow profile (no labels, so no labels key). */
export const DEFAULT_ALLOW_PROFILE: readonly KV[] = Object.freeze(profileKvs('projectcalico-default-allow', {}, true, undefined));
