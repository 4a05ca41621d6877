import type { KubeObject } from '../types.js';
import { isRecord } from './encode.js';
import { policyKey, type KV } from './calico-keys.js';
import { v3Name } from './libcalico-resource.js';
import {
  NAMESPACE_LABEL,
  NAMESPACE_LABEL_PREFIX,
  SERVICE_ACCOUNT_LABEL,
  SERVICE_ACCOUNT_LABEL_PREFIX,
  policyTypesV1,
  prefixAndAppendSelector,
  rulesV3ToV1,
} from './libcalico-rules.js';

/**
 * Calico NetworkPolicy, GlobalNetworkPolicy and their staged kinds → the v1 policy Felix's syncer
 * sends. Public Calico sources: `libcalico-go/lib/backend/syncersv1/updateprocessors/`
 * networkpolicyprocessor.go, globalnetworkpolicyprocessor.go, stagednetworkpolicyprocessor.go,
 * stagedglobalnetworkpolicyprocessor.go (with rules.go and selectors.go, see libcalico-rules.ts),
 * and `lib/backend/model/policy.go` for the value's JSON fields and order.
 *
 * - Key: `PolicyKey{Tier, Name}`'s path `/calico/v1/policy/tier/<tier>/policy/escaped(<name>)`
 *   (see calico-keys.ts), name `<ns>/<v3 name>` for a NetworkPolicy and the v3 name for a global
 *   one, prefixed `staged:` for the staged kinds (`<ns>/staged:<name>`). The v3 name comes from the
 *   CR's metadata annotation (3.31 stores tiered policies under `<tier>.<name>` CR names); the tier
 *   is `spec.tier`, `default` when unset.
 * - NetworkPolicy: selector `(<selector>) && projectcalico.org/namespace == '<ns>'` (just the
 *   namespace term for an empty selector), then the serviceAccountSelector `pcsa.`-prefixed and
 *   AND-ed on: `(<that>) && <sa>`; rules rewritten with the policy's namespace; `apply_on_forward`
 *   false (left out), as 3.30+ processors set it.
 * - GlobalNetworkPolicy: the namespaceSelector `pcns.`-prefixed and AND-ed onto the selector, then
 *   every `all()` in the result replaced by `has(projectcalico.org/namespace)`; the same for the
 *   serviceAccountSelector (`pcsa.`, `has(projectcalico.org/serviceaccount)`); `untracked`,
 *   `pre_dnat`, `apply_on_forward` from the spec; rules rewritten with no namespace.
 * - `order` as given (left out when unset), `types` lower-cased as listed and left out when none
 *   (the processor does not default them; Felix does), `performance_hints` as given.
 * - Staged kinds: `stagedAction: Delete` gives no key; otherwise the enforced form of the spec,
 *   plus `staged_action`.
 */

export type CalicoPolicyKind = 'NetworkPolicy' | 'GlobalNetworkPolicy' | 'StagedNetworkPolicy' | 'StagedGlobalNetworkPolicy';

type Kind = CalicoPolicyKind;

const STAGED_PREFIX = 'staged:';

function isStaged(kind: Kind): boolean {
  return kind.startsWith('Staged');
}

function isNamespaced(kind: Kind): boolean {
  return kind === 'NetworkPolicy' || kind === 'StagedNetworkPolicy';
}

function spec(obj: KubeObject): Record<string, unknown> {
  return isRecord(obj['spec']) ? obj['spec'] : {};
}

/** The policy's v1 key (whatever its staged action: a delete names it too). */
export function calicoPolicyKey(obj: KubeObject, kind: Kind): string {
  const name = v3Name(obj);
  const ns = obj.metadata?.namespace ?? '';
  if (name === '' || (isNamespaced(kind) && ns === '')) throw new TypeError(`${kind}: missing name or namespace for a v1 policy key`);
  const tier = typeof spec(obj)['tier'] === 'string' && spec(obj)['tier'] !== '' ? (spec(obj)['tier'] as string) : 'default';
  const v1Name = (isStaged(kind) ? STAGED_PREFIX : '') + name;
  return policyKey(tier, isNamespaced(kind) ? `${ns}/${v1Name}` : v1Name);
}

const text = (v: unknown): string => (typeof v === 'string' ? v : '');

/**
 * A v3 NetworkPolicy's spec → model.Policy (networkpolicyprocessor.go): also the second half of a
 * Kubernetes NetworkPolicy's conversion (libcalico-network-policy.ts builds the v3 spec).
 */
export function networkPolicyValue(v3spec: Record<string, unknown>, ns: string): Record<string, unknown> {
  return policyValue(v3spec, ns, 'NetworkPolicy');
}

/** The shared model.Policy value (networkpolicyprocessor.go / globalnetworkpolicyprocessor.go). */
function policyValue(s: Record<string, unknown>, ns: string, kind: Kind): Record<string, unknown> {
  const namespaced = isNamespaced(kind);
  let selector = text(s['selector']);
  if (namespaced) {
    const nsTerm = `${NAMESPACE_LABEL} == '${ns}'`;
    selector = selector === '' ? nsTerm : `(${selector}) && ${nsTerm}`;
    selector = prefixAndAppendSelector(selector, text(s['serviceAccountSelector']), SERVICE_ACCOUNT_LABEL_PREFIX);
  } else {
    if (text(s['namespaceSelector']) !== '') {
      selector = prefixAndAppendSelector(selector, text(s['namespaceSelector']), NAMESPACE_LABEL_PREFIX).replaceAll('all()', `has(${NAMESPACE_LABEL})`);
    }
    if (text(s['serviceAccountSelector']) !== '') {
      selector = prefixAndAppendSelector(selector, text(s['serviceAccountSelector']), SERVICE_ACCOUNT_LABEL_PREFIX).replaceAll('all()', `has(${SERVICE_ACCOUNT_LABEL})`);
    }
  }
  const value: Record<string, unknown> = {};
  if (ns !== '') value['namespace'] = ns;
  if (typeof s['order'] === 'number') value['order'] = s['order'];
  const inbound = rulesV3ToV1(s['ingress'], ns);
  if (inbound) value['inbound_rules'] = inbound;
  const outbound = rulesV3ToV1(s['egress'], ns);
  if (outbound) value['outbound_rules'] = outbound;
  value['selector'] = selector; // no omitempty: "" (all endpoints) is sent as such
  if (!namespaced) {
    if (s['doNotTrack'] === true) value['untracked'] = true;
    if (s['preDNAT'] === true) value['pre_dnat'] = true;
    if (s['applyOnForward'] === true) value['apply_on_forward'] = true;
  }
  const types = policyTypesV1(s['types']);
  if (types) value['types'] = types;
  const hints = Array.isArray(s['performanceHints']) ? s['performanceHints'].filter((h): h is string => typeof h === 'string') : [];
  if (hints.length > 0) value['performance_hints'] = hints;
  const staged = text(s['stagedAction']);
  if (isStaged(kind) && staged !== '') value['staged_action'] = staged;
  return value;
}

export function convertCalicoPolicy(obj: KubeObject, kind: Kind): KV[] {
  const key = calicoPolicyKey(obj, kind);
  if (isStaged(kind) && spec(obj)['stagedAction'] === 'Delete') return [];
  return [[key, policyValue(spec(obj), isNamespaced(kind) ? (obj.metadata?.namespace ?? '') : '', kind)]];
}
