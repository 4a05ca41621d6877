import type { KubeObject } from '../types.js';
import { isRecord, sortedRecord } from './encode.js';
import { hostEndpointKey, isV6, normalizeIp, type KV } from './calico-keys.js';
import { v3Labels, v3Name } from './libcalico-resource.js';

/**
 * HostEndpoint → the v1 host endpoint Felix's syncer sends. Public Calico sources:
 * `libcalico-go/lib/backend/syncersv1/updateprocessors/hostendpointprocessor.go`, value fields
 * from `lib/backend/model/hostendpoint.go` (and model.EndpointPort).
 *
 * - Key: `/calico/v1/host/<spec.node>/endpoint/escaped(<name>)`; a HostEndpoint without a node
 *   has no key (libcalico: insufficient identifiers), so it is counted and skipped.
 * - Value, in struct order: `name` (the interface name, left out when empty), `expected_ipv4_addrs`
 *   / `expected_ipv6_addrs` (parsed IPs as Go prints them, unparsable ones dropped; left out when
 *   none), `labels` (the v3 labels, **always present**: nil when none, the field has no
 *   omitempty), `profile_ids`, `ports` (`{name, protocol, port}`, protocol lower-cased).
 */

export function hostEndpointV1Key(obj: KubeObject): string {
  const spec = isRecord(obj['spec']) ? obj['spec'] : {};
  const node = typeof spec['node'] === 'string' ? spec['node'] : '';
  if (node === '') throw new TypeError(`HostEndpoint ${JSON.stringify(obj.metadata?.name)}: no spec.node for a v1 key`);
  return hostEndpointKey(node, v3Name(obj));
}

export function convertHostEndpoint(obj: KubeObject): KV[] {
  const spec = isRecord(obj['spec']) ? obj['spec'] : {};
  const ips = (Array.isArray(spec['expectedIPs']) ? spec['expectedIPs'] : [])
    .map((ip) => (typeof ip === 'string' ? normalizeIp(ip) : undefined))
    .filter((ip): ip is string => ip !== undefined);
  const value: Record<string, unknown> = {};
  if (typeof spec['interfaceName'] === 'string' && spec['interfaceName'] !== '') value['name'] = spec['interfaceName'];
  const v4 = ips.filter((ip) => !isV6(ip));
  const v6 = ips.filter(isV6);
  if (v4.length > 0) value['expected_ipv4_addrs'] = v4;
  if (v6.length > 0) value['expected_ipv6_addrs'] = v6;
  const labels = v3Labels(obj);
  value['labels'] = Object.keys(labels).length > 0 ? sortedRecord(Object.entries(labels)) : null;
  const profiles = (Array.isArray(spec['profiles']) ? spec['profiles'] : []).filter((p): p is string => typeof p === 'string');
  if (profiles.length > 0) value['profile_ids'] = profiles;
  const ports = (Array.isArray(spec['ports']) ? spec['ports'] : []).filter(isRecord).map((p) => ({
    name: typeof p['name'] === 'string' ? p['name'] : '',
    protocol: typeof p['protocol'] === 'string' ? p['protocol'].toLowerCase() : p['protocol'],
    port: p['port'],
  }));
  if (ports.length > 0) value['ports'] = ports;
  return [[hostEndpointV1Key(obj), value]];
}
