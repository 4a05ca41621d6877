import type { KubeObject } from '../types.js';
import { isRecord } from './encode.js';
import { normalizeNet, policyKey, type KV } from './calico-keys.js';
import { networkPolicyValue } from './libcalico-calico-policy.js';
import { v3Name } from './libcalico-resource.js';

/**
 * Kubernetes NetworkPolicy → the v1 policy Felix's syncer sends (`libcalico` projection). Public
 * Calico sources, applied in order:
 * 1. `libcalico-go/lib/backend/k8s/conversion/conversion.go` `K8sNetworkPolicyToCalico` (k8s → v3
 *    NetworkPolicy `knp.default.<name>`, order 1000) with `k8sSelectorToCalico`, `k8sRuleToCalico`,
 *    `k8sPeerToCalicoFields`, `k8sPortToCalico` and `SimplifyPorts`;
 * 2. `libcalico-go/lib/backend/syncersv1/updateprocessors/networkpolicyprocessor.go` and rules.go
 *    (v3 → v1 `model.Policy`/`model.Rule`): this file builds the v3 spec and rules, and the v3 → v1
 *    half is the one Calico NetworkPolicies use (libcalico-calico-policy.ts, libcalico-rules.ts).
 *
 * Key: `/calico/v1/policy/tier/default/policy/<ns>%2fknp.default.<name>` (see calico-keys.ts).
 * The rules, written down:
 * - the policy selector is `projectcalico.org/orchestrator == 'k8s'` AND-ed with the podSelector
 *   (matchLabels sorted by key, then matchExpressions in order), then wrapped as
 *   `(<that>) && projectcalico.org/namespace == '<ns>'`;
 * - each k8s rule yields one Calico rule per protocol (sorted; "" = any) per peer; ports with no
 *   protocol are TCP; a rule without ports allows any protocol; ports of one protocol are merged
 *   (`SimplifyPorts`: named ports first, then sorted numeric ranges, when there are 2+ numbers);
 *   `endPort` makes a range `a:b`;
 * - a pod/namespace peer becomes a v3 selector and namespaceSelector (`all()` for an empty one),
 *   which rules.go rewrites to `(<ns part>) && (<pod part>)`: the namespace selector with labels
 *   prefixed `pcns.` as Calico's selector parser prints it (double quotes, `(a && b)` for several
 *   terms; `all()` → `has(projectcalico.org/namespace)`) or, without one, the policy's namespace;
 * - an ipBlock peer becomes nets (`src_nets`/`dst_nets`, masked) and its excepts `!src_nets`/`!dst_nets`;
 * - the v1 rule also keeps the v3 selectors as `orig_*_selector` / `orig_*_namespace_selector`;
 * - types: `ingress` / `egress` as listed, `ingress` alone when none is (conversion.go defaults
 *   them; the processor does not); `apply_on_forward` left out (false), as 3.30+ processors set it.
 */

const ORCH = "projectcalico.org/orchestrator == 'k8s'";

interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

function asSelector(v: unknown): LabelSelector | undefined {
  return isRecord(v) ? (v as LabelSelector) : undefined;
}

/** conversion.go's terms of a label selector: `k == 'v'` per label (sorted), then each expression. */
function selectorTerms(s: LabelSelector): string[] {
  const parts: string[] = [];
  for (const k of Object.keys(s.matchLabels ?? {}).sort()) parts.push(`${k} == '${s.matchLabels?.[k] ?? ''}'`);
  for (const e of s.matchExpressions ?? []) {
    const values = (e.values ?? []).join("', '");
    if (e.operator === 'In') parts.push(`${e.key} in { '${values}' }`);
    else if (e.operator === 'NotIn') parts.push(`${e.key} not in { '${values}' }`);
    else if (e.operator === 'Exists') parts.push(`has(${e.key})`);
    else if (e.operator === 'DoesNotExist') parts.push(`! has(${e.key})`);
  }
  return parts;
}

/** conversion.go `k8sSelectorToCalico` for pod selectors (single quotes, never re-parsed). */
function podSelector(s: LabelSelector | undefined): string {
  if (s === undefined) return ORCH;
  return [ORCH, ...selectorTerms(s)].join(' && ');
}

/** conversion.go `k8sSelectorToCalico` for namespace selectors (the v3 form). */
function namespaceSelectorV3(s: LabelSelector): string {
  if (Object.keys(s.matchLabels ?? {}).length === 0 && (s.matchExpressions ?? []).length === 0) return 'all()';
  return selectorTerms(s).join(' && ');
}

type Port = number | string;

/** numorstring.PortFromString of `port` (+ `:endPort`): number, "a:b" range, or a name. */
function k8sPort(p: Record<string, unknown>): Port | undefined {
  const port = p['port'];
  if (port === undefined || port === null) return undefined;
  const base = String(port);
  if (typeof p['endPort'] === 'number') return `${base}:${p['endPort']}`;
  return /^\d+$/.test(base) ? Number(base) : base;
}

/**
 * conversion.go `SimplifyPorts`: the fewest ranges covering the numeric ports (named ones pass
 * through). Merged as intervals, never expanded port by port: the CRD form of a policy
 * (StagedKubernetesNetworkPolicy) bounds neither `endPort` (int32) nor a string `port`, and one
 * rule with `{port: 1, endPort: 2147483647}` beside another port pushed 2^31 numbers, past V8's
 * largest array: a fatal abort no per-object catch stops, on every replica at every list. A
 * range whose end is below its start covers nothing and is dropped, as expanding it did.
 */
function simplifyPorts(ports: Port[]): Port[] {
  if (ports.length <= 1) return ports;
  const named: Port[] = [];
  const ranges: [number, number][] = [];
  for (const p of ports) {
    if (typeof p === 'number') ranges.push([p, p]);
    else if (/^\d+:\d+$/.test(p)) {
      const [a, b] = p.split(':').map(Number) as [number, number];
      if (a <= b) ranges.push([a, b]);
    } else named.push(p);
  }
  // One number (or none) to merge: as it came, as before (a single range stays a range).
  if (ranges.length === 0 || (ranges.length === 1 && ranges[0]![0] === ranges[0]![1])) return ports;
  ranges.sort((x, y) => x[0] - y[0]);
  const out = [...named];
  let [first, last] = ranges[0] as [number, number];
  for (let i = 1; i <= ranges.length; i++) {
    const r = ranges[i];
    if (r !== undefined && r[0] <= last + 1) {
      last = Math.max(last, r[1]);
      continue;
    }
    out.push(first === last ? first : `${first}:${last}`);
    if (r !== undefined) [first, last] = r;
  }
  return out;
}

/**
 * conversion.go `k8sPeerToCalicoFields`: one peer as a v3 EntityRule (selector, namespaceSelector,
 * nets, notNets); the namespaced rewrite is rules.go's, shared with Calico policies.
 */
function peerEntity(peer: Record<string, unknown> | undefined): Record<string, unknown> {
  if (peer === undefined) return {};
  const ipBlock = peer['ipBlock'];
  if (isRecord(ipBlock)) {
    const cidr = normalizeNet(String(ipBlock['cidr'] ?? ''));
    // libcalico logs a bad CIDR and returns the peer as "no peer" (so it matches anything).
    if (cidr === undefined || !String(ipBlock['cidr']).includes('/')) return {};
    const notNets: string[] = [];
    for (const e of Array.isArray(ipBlock['except']) ? ipBlock['except'] : []) {
      const n = normalizeNet(String(e));
      if (n === undefined || !String(e).includes('/')) break;
      notNets.push(n);
    }
    return notNets.length > 0 ? { nets: [cidr], notNets } : { nets: [cidr] };
  }
  const entity: Record<string, unknown> = { selector: podSelector(asSelector(peer['podSelector'])) };
  const nsSel = asSelector(peer['namespaceSelector']);
  if (nsSel !== undefined) entity['namespaceSelector'] = namespaceSelectorV3(nsSel);
  return entity;
}

/** conversion.go `k8sRuleToCalico` then rules.go `RuleAPIV2ToBackend`, for one k8s rule. */
function convertRule(rule: Record<string, unknown>, peersField: 'from' | 'to', ns: string, ingress: boolean): Record<string, unknown>[] {
  const rawPeers = Array.isArray(rule[peersField]) ? (rule[peersField] as unknown[]).filter(isRecord) : [];
  const peers: (Record<string, unknown> | undefined)[] = rawPeers.length > 0 ? rawPeers : [undefined];
  const rawPorts = Array.isArray(rule['ports']) ? (rule['ports'] as unknown[]).filter(isRecord) : [];
  // protocol ("" = any) → ports (undefined = all ports of that protocol).
  const byProtocol = new Map<string, Port[] | undefined>();
  if (rawPorts.length === 0) byProtocol.set('', undefined);
  for (const p of rawPorts) {
    const protocol = typeof p['protocol'] === 'string' ? p['protocol'] : 'TCP';
    const port = k8sPort(p);
    if (port === undefined) byProtocol.set(protocol, undefined);
    else if (!byProtocol.has(protocol)) byProtocol.set(protocol, [port]);
    else {
      const list = byProtocol.get(protocol);
      if (list !== undefined && list.length > 0) list.push(port);
    }
  }
  const out: Record<string, unknown>[] = [];
  for (const protocol of [...byProtocol.keys()].sort()) {
    const list = byProtocol.get(protocol);
    const ports = list === undefined ? undefined : simplifyPorts(list);
    for (const peer of peers) {
      const rule: Record<string, unknown> = { action: 'Allow' };
      if (protocol !== '') rule['protocol'] = protocol;
      const entity = peerEntity(peer);
      const target: Record<string, unknown> = ports && ports.length > 0 ? { ports } : {};
      rule[ingress ? 'source' : 'destination'] = ingress ? entity : { ...entity, ...target };
      if (ingress && ports && ports.length > 0) rule['destination'] = target;
      out.push(rule);
    }
  }
  return out;
}

export function k8sPolicyName(name: string): string {
  return `knp.default.${name}`;
}

export function networkPolicyKey(namespace: string, name: string): string {
  return policyKey('default', `${namespace}/${k8sPolicyName(name)}`);
}

/** conversion.go K8sNetworkPolicyToCalico then networkpolicyprocessor.go: the policy's v1 value. */
function k8sPolicyValue(np: KubeObject): Record<string, unknown> {
  const ns = np.metadata?.namespace ?? '';
  const spec = isRecord(np['spec']) ? np['spec'] : {};
  const ingress = (Array.isArray(spec['ingress']) ? spec['ingress'] : []).filter(isRecord).flatMap((r) => convertRule(r, 'from', ns, true));
  const egress = (Array.isArray(spec['egress']) ? spec['egress'] : []).filter(isRecord).flatMap((r) => convertRule(r, 'to', ns, false));
  const declared = Array.isArray(spec['policyTypes']) ? spec['policyTypes'] : [];
  const types: string[] = [];
  if (declared.includes('Ingress')) types.push('Ingress');
  if (declared.includes('Egress')) types.push('Egress');
  if (types.length === 0) types.push('Ingress');
  const v3spec: Record<string, unknown> = { order: 1000, selector: podSelector(asSelector(spec['podSelector'])), types };
  if (ingress.length > 0) v3spec['ingress'] = ingress;
  if (egress.length > 0) v3spec['egress'] = egress;
  return networkPolicyValue(v3spec, ns);
}

export function convertNetworkPolicy(np: KubeObject): KV[] {
  return [[networkPolicyKey(np.metadata?.namespace ?? '', np.metadata?.name ?? ''), k8sPolicyValue(np)]];
}

/**
 * StagedKubernetesNetworkPolicy (stagedkubernetesnetworkpolicyprocessor.go): its spec is a
 * Kubernetes NetworkPolicy's plus `stagedAction`; the enforced form is converted as above, named
 * `<ns>/staged:knp.default.<name>` in tier default, with `staged_action`; `Delete` gives no key.
 */
export function stagedNetworkPolicyKey(obj: KubeObject): string {
  return policyKey('default', `${obj.metadata?.namespace ?? ''}/staged:${k8sPolicyName(v3Name(obj))}`);
}

export function convertStagedKubernetesNetworkPolicy(obj: KubeObject): KV[] {
  const spec = isRecord(obj['spec']) ? obj['spec'] : {};
  const action = typeof spec['stagedAction'] === 'string' ? spec['stagedAction'] : '';
  if (action === 'Delete') return [];
  const value = k8sPolicyValue(obj);
  if (action !== '') value['staged_action'] = action;
  return [[stagedNetworkPolicyKey(obj), value]];
}
