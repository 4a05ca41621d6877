import { isRecord, sortedRecord, stringRecord } from './encode.js';
import { normalizeNet } from './calico-keys.js';
import { normalizeSelector, prefixSelector } from './calico-selector.js';

/**
 * v3 policy rules → libcalico-go's v1 `model.Rule`, and the selector rewrites the policy update
 * processors share. Public Calico sources: `libcalico-go/lib/backend/syncersv1/updateprocessors/
 * rules.go` (`RuleAPIV2ToBackend`, `GetEntityRuleSelector`, `getEndpointSelector`,
 * `parseServiceAccounts`) and `selectors.go` (`parseSelectorAttachPrefix`, `prefixAndAppendSelector`);
 * field names and order from `lib/backend/model/rule.go`. Pure.
 *
 * The namespaced rewrite, written down: a rule's peer selector becomes
 * `(<namespace part>) && (<endpoint part>)` where the namespace part is the peer's
 * namespaceSelector with every label prefixed `pcns.` and re-printed by the selector parser
 * (`all()` → `has(projectcalico.org/namespace)`, `global()` → `!has(projectcalico.org/namespace)`),
 * or, without one, `projectcalico.org/namespace == '<ns>'` for a namespaced policy; the endpoint
 * part is the selector, AND-ed after the service-account part (`pcsa.` labels, names as
 * `projectcalico.org/serviceaccount in {"a", "b"}`) when both are there. A namespaced policy's
 * peer with only a notSelector, or only a namespaceSelector, gets the namespace part alone. A
 * global policy's peer without a namespaceSelector keeps its selector as written.
 */

export const NAMESPACE_LABEL = 'projectcalico.org/namespace';
export const SERVICE_ACCOUNT_LABEL = 'projectcalico.org/serviceaccount';
export const NAMESPACE_LABEL_PREFIX = 'pcns.';
export const SERVICE_ACCOUNT_LABEL_PREFIX = 'pcsa.';

const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string') : []);

/** selectors.go prefixAndAppendSelector. */
export function prefixAndAppendSelector(current: string, added: string, prefix: string): string {
  if (added === '') return current;
  const prefixed = prefixSelector(added, prefix);
  if (prefixed === '') return current;
  return current !== '' ? `(${current}) && ${prefixed}` : prefixed;
}

/** rules.go parseServiceAccounts. */
function serviceAccountSelector(sam: Record<string, unknown>): string {
  const sel = str(sam['selector']);
  const updated = sel !== '' ? prefixSelector(sel, SERVICE_ACCOUNT_LABEL_PREFIX) : '';
  const names = strings(sam['names']);
  if (names.length === 0) return updated;
  const byName = normalizeSelector(`${SERVICE_ACCOUNT_LABEL} in { '${names.join("', '")}' }`);
  if (byName === undefined) return ''; // a name with a quote: libcalico logs it and matches nothing extra
  return updated !== '' ? `(${updated}) && (${byName})` : byName;
}

/** rules.go getEndpointSelector. */
function endpointSelector(namespaceSelector: string, selector: string, saSelector: string, notSelector: string, ns: string): string {
  let nsSelector = '';
  if (namespaceSelector !== '') {
    nsSelector = prefixSelector(namespaceSelector, NAMESPACE_LABEL_PREFIX)
      .replaceAll('all()', `has(${NAMESPACE_LABEL})`)
      .replaceAll('global()', `!has(${NAMESPACE_LABEL})`);
  } else if (ns !== '') {
    nsSelector = `${NAMESPACE_LABEL} == '${ns}'`;
  }
  const parts = [saSelector, selector].filter((s) => s !== '');
  let out = parts.length === 0 ? '' : parts.length === 1 ? (parts[0] as string) : `(${parts.join(') && (')})`;
  if (nsSelector !== '' && (out !== '' || notSelector !== '' || namespaceSelector !== '')) {
    out = out !== '' ? `(${nsSelector}) && (${out})` : nsSelector;
  }
  return out;
}

/** rules.go GetEntityRuleSelector for one side of a rule. */
export function entityRuleSelector(er: Record<string, unknown>, ns: string): string {
  const sa = isRecord(er['serviceAccounts']) ? serviceAccountSelector(er['serviceAccounts']) : '';
  return endpointSelector(str(er['namespaceSelector']), str(er['selector']), sa, str(er['notSelector']), ns);
}

/** numorstring.Port as it marshals: a number for one port, `"a:b"` for a range, or the name. */
function port(p: unknown): number | string | undefined {
  if (typeof p === 'number') return p;
  if (typeof p !== 'string') return undefined;
  const range = /^(\d+):(\d+)$/.exec(p);
  if (range) return range[1] === range[2] ? Number(range[1]) : `${Number(range[1])}:${Number(range[2])}`;
  return /^\d+$/.test(p) ? Number(p) : p;
}

function ports(v: unknown): (number | string)[] | undefined {
  if (!Array.isArray(v) || v.length === 0) return undefined;
  return v.map(port).filter((p): p is number | string => p !== undefined);
}

/** numorstring.Protocol.ToV1: names lower-cased, numbers as they are. */
function protocol(v: unknown): number | string | undefined {
  if (typeof v === 'number') return v;
  return typeof v === 'string' ? v.toLowerCase() : undefined;
}

/** rules.go ConvertStringsToNets: masked networks, unparsable entries dropped. */
function srcNets(v: unknown): string[] | undefined {
  const out = strings(v).map(normalizeNet).filter((n): n is string => n !== undefined);
  return out.length > 0 ? out : undefined;
}

/** rules.go NormalizeIPNets: masked networks, an unparsable entry kept as nil. */
function dstNets(v: unknown): (string | null)[] | undefined {
  const list = strings(v);
  return list.length > 0 ? list.map((n) => normalizeNet(n) ?? null) : undefined;
}

const int = (v: unknown): number | undefined => (typeof v === 'number' && Number.isInteger(v) ? v : undefined);

/** rules.go RuleAPIV2ToBackend: one v3 rule → model.Rule, keys in the struct's order. */
export function ruleV3ToV1(rule: Record<string, unknown>, ns: string): Record<string, unknown> {
  const src = isRecord(rule['source']) ? rule['source'] : {};
  const dst = isRecord(rule['destination']) ? rule['destination'] : {};
  const icmp = isRecord(rule['icmp']) ? rule['icmp'] : {};
  const notIcmp = isRecord(rule['notICMP']) ? rule['notICMP'] : {};
  const srcSa = isRecord(src['serviceAccounts']) ? src['serviceAccounts'] : {};
  const dstSa = isRecord(dst['serviceAccounts']) ? dst['serviceAccounts'] : {};
  const srcSvc = isRecord(src['services']) ? src['services'] : {};
  const dstSvc = isRecord(dst['services']) ? dst['services'] : {};
  const action = str(rule['action']);
  const fields: [string, unknown][] = [
    ['action', action === 'Pass' ? 'next-tier' : action.toLowerCase()],
    ['ip_version', int(rule['ipVersion'])],
    ['protocol', protocol(rule['protocol'])],
    ['!protocol', protocol(rule['notProtocol'])],
    ['icmp_type', int(icmp['type'])],
    ['icmp_code', int(icmp['code'])],
    ['!icmp_type', int(notIcmp['type'])],
    ['!icmp_code', int(notIcmp['code'])],
    ['src_nets', srcNets(src['nets'])],
    ['src_selector', entityRuleSelector(src, ns)],
    ['src_ports', ports(src['ports'])],
    ['src_service', str(srcSvc['name'])],
    ['src_service_ns', str(srcSvc['namespace'])],
    ['dst_selector', entityRuleSelector(dst, ns)],
    ['dst_nets', dstNets(dst['nets'])],
    ['dst_ports', ports(dst['ports'])],
    ['dst_service', str(dstSvc['name'])],
    ['dst_service_ns', str(dstSvc['namespace'])],
    ['!src_nets', srcNets(src['notNets'])],
    ['!src_selector', str(src['notSelector'])],
    ['!src_ports', ports(src['notPorts'])],
    ['!dst_selector', str(dst['notSelector'])],
    ['!dst_nets', dstNets(dst['notNets'])],
    ['!dst_ports', ports(dst['notPorts'])],
    ['orig_src_selector', str(src['selector'])],
    ['orig_src_namespace_selector', str(src['namespaceSelector'])],
    ['orig_dst_selector', str(dst['selector'])],
    ['orig_dst_namespace_selector', str(dst['namespaceSelector'])],
    ['!orig_src_selector', str(src['notSelector'])],
    ['!orig_dst_selector', str(dst['notSelector'])],
    ['orig_src_service_acct_names', strings(srcSa['names'])],
    ['orig_src_service_acct_selector', str(srcSa['selector'])],
    ['orig_dst_service_acct_names', strings(dstSa['names'])],
    ['orig_dst_service_acct_selector', str(dstSa['selector'])],
  ];
  const out: Record<string, unknown> = {};
  // Go's omitempty: "" and empty lists are left out; pointers (ip_version, icmp_*) only when nil.
  for (const [k, v] of fields) if (v !== undefined && v !== '' && !(Array.isArray(v) && v.length === 0)) out[k] = v;
  if (isRecord(rule['http'])) {
    const http: Record<string, unknown> = {};
    const methods = strings(rule['http']['methods']);
    if (methods.length > 0) http['methods'] = methods;
    const paths = (Array.isArray(rule['http']['paths']) ? rule['http']['paths'] : []).filter(isRecord).map((p) => {
      const path: Record<string, string> = {};
      if (str(p['exact']) !== '') path['exact'] = str(p['exact']);
      if (str(p['prefix']) !== '') path['prefix'] = str(p['prefix']);
      return path;
    });
    if (paths.length > 0) http['paths'] = paths;
    out['http'] = http;
  }
  if (isRecord(rule['metadata']) && isRecord(rule['metadata']['annotations'])) {
    const annotations = sortedRecord(Object.entries(stringRecord(rule['metadata']['annotations'])));
    out['metadata'] = Object.keys(annotations).length > 0 ? { annotations } : {};
  }
  return out;
}

/** rules.go RulesAPIV2ToBackend: undefined (left out) for none. */
export function rulesV3ToV1(rules: unknown, ns: string): Record<string, unknown>[] | undefined {
  const list = Array.isArray(rules) ? rules.filter(isRecord) : [];
  return list.length > 0 ? list.map((r) => ruleV3ToV1(r, ns)) : undefined;
}

/** policyTypesAPIV2ToBackend: lower-cased; undefined (left out) for none — no defaulting here. */
export function policyTypesV1(types: unknown): string[] | undefined {
  const list = strings(types).map((t) => t.toLowerCase());
  return list.length > 0 ? list : undefined;
}
