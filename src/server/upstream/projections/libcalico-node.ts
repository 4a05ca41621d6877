import type { KubeObject } from '../types.js';
import { isRecord, sortedRecord, stringRecord } from './encode.js';
import { hostConfigKey, normalizeIp, normalizeNet, resourceKey, wireguardKey, type KV } from './calico-keys.js';

/**
 * Node → the keys Felix's syncer sends for a node (`libcalico` projection), Calico IPAM (no
 * `usePodCIDR`). Two public Calico sources:
 * 1. `libcalico-go/lib/backend/k8s/resources/node.go` `K8sNodeToCalico`: the v3 Node built from the
 *    Kubernetes node's labels and `projectcalico.org/*` annotations (BGP addresses, ASN,
 *    route-reflector cluster id, IPIP/VXLAN tunnel addresses and MACs, WireGuard interface
 *    addresses and public keys), `orchRefs`, pod CIDRs and the address list (Calico's BGP addresses
 *    first, then InternalIP / ExternalIP from the node status; other address types are dropped);
 * 2. `libcalico-go/lib/backend/syncersv1/updateprocessors/felixnodeprocessor.go`: from that, the
 *    host config keys `IpInIpTunnelAddr`, `IPv4VXLANTunnelAddr`, `VXLANTunnelMACAddr`,
 *    `IPv6VXLANTunnelAddr`, `VXLANTunnelMACAddrV6` (plain string values), the WireGuard key
 *    (model.Wireguard: `interfaceIPv4Addr`, `publicKey`, `interfaceIPv6Addr`, `publicKeyV6`, only
 *    when one is set) and the v3 Node itself under `/calico/resources/v3/projectcalico.org/nodes/<name>`.
 *
 * The processor sends every one of those keys on each update, nil when unset (a delete); here an
 * unset key is simply absent, which is the same state. An annotation that fails libcalico's
 * validation is dropped, as `getAnnotation` drops it. Heartbeats (conditions, images, capacity)
 * never reach the value, so they project to equal bytes. Not emitted: the bgp syncer's own node
 * keys (`/calico/bgp/v1/host/...`, bgpnodeprocessor.go); the bgp feed gets these felix keys.
 */

const A = 'projectcalico.org/';

function ipv4Cidr(v: string | undefined): string {
  return v !== undefined && v.includes('/') && !v.includes(':') && normalizeNet(v) !== undefined ? v : '';
}

function ipv6Cidr(v: string | undefined): string {
  return v !== undefined && v.includes('/') && v.includes(':') && normalizeNet(v) !== undefined ? v : '';
}

function ipv4(v: string | undefined): string {
  return v !== undefined && !v.includes(':') && normalizeNet(v) !== undefined ? v : '';
}

function ipv6(v: string | undefined): string {
  return v !== undefined && v.includes(':') && normalizeNet(v) !== undefined ? v : '';
}

function mac(v: string | undefined): string {
  return v !== undefined && /^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}$/.test(v) ? v : '';
}

/** The v3 Node (libcalico's internalapi.Node JSON), metadata without resourceVersion. */
export function calicoNodeFromK8s(node: KubeObject): Record<string, unknown> {
  const name = node.metadata?.name ?? '';
  const ann = stringRecord(node.metadata?.annotations);
  const spec: Record<string, unknown> = {};
  const bgp: Record<string, unknown> = {};
  const asn = ann[`${A}ASNumber`];
  if (asn !== undefined && /^\d+(\.\d+)?$/.test(asn)) bgp['asNumber'] = asn.includes('.') ? asn : Number(asn);
  const v4 = ipv4Cidr(ann[`${A}IPv4Address`]);
  if (v4) bgp['ipv4Address'] = v4;
  const v6 = ipv6Cidr(ann[`${A}IPv6Address`]);
  if (v6) bgp['ipv6Address'] = v6;
  const ipip = ipv4(ann[`${A}IPv4IPIPTunnelAddr`]);
  if (ipip) bgp['ipv4IPIPTunnelAddr'] = ipip;
  const rr = ipv4(ann[`${A}RouteReflectorClusterID`]);
  if (rr) bgp['routeReflectorClusterID'] = rr;
  if (Object.keys(bgp).length > 0) spec['bgp'] = bgp;
  const vx4 = ipv4(ann[`${A}IPv4VXLANTunnelAddr`]);
  if (vx4) spec['ipv4VXLANTunnelAddr'] = vx4;
  const vxMac = mac(ann[`${A}VXLANTunnelMACAddr`]);
  if (vxMac) spec['vxlanTunnelMACAddr'] = vxMac;
  const vx6 = ipv6(ann[`${A}IPv6VXLANTunnelAddr`]);
  if (vx6) spec['ipv6VXLANTunnelAddr'] = vx6;
  const vxMac6 = mac(ann[`${A}VXLANTunnelMACAddrV6`]);
  if (vxMac6) spec['vxlanTunnelMACAddrV6'] = vxMac6;
  spec['orchRefs'] = [{ nodeName: name, orchestrator: 'k8s' }];
  const wg: Record<string, unknown> = {};
  const wg4 = ipv4(ann[`${A}IPv4WireguardInterfaceAddr`]);
  if (wg4) wg['interfaceIPv4Address'] = wg4;
  const wg6 = ipv6(ann[`${A}IPv6WireguardInterfaceAddr`]);
  if (wg6) wg['interfaceIPv6Address'] = wg6;
  if (Object.keys(wg).length > 0) spec['wireguard'] = wg;
  const addresses: { address: string; type: string }[] = [];
  if (v4) addresses.push({ address: v4, type: 'CalicoNodeIP' });
  if (v6) addresses.push({ address: v6, type: 'CalicoNodeIP' });
  const status = isRecord(node['status']) ? node['status'] : {};
  for (const a of Array.isArray(status['addresses']) ? status['addresses'] : []) {
    if (!isRecord(a) || typeof a['address'] !== 'string') continue;
    if (a['type'] === 'InternalIP' || a['type'] === 'ExternalIP') addresses.push({ address: a['address'], type: a['type'] });
  }
  if (addresses.length > 0) spec['addresses'] = addresses;

  const st: Record<string, unknown> = {};
  if (ann[`${A}WireguardPublicKey`]) st['wireguardPublicKey'] = ann[`${A}WireguardPublicKey`];
  if (ann[`${A}WireguardPublicKeyV6`]) st['wireguardPublicKeyV6'] = ann[`${A}WireguardPublicKeyV6`];
  const k8sSpec = isRecord(node['spec']) ? node['spec'] : {};
  const cidrs = Array.isArray(k8sSpec['podCIDRs']) ? k8sSpec['podCIDRs'].filter((c): c is string => typeof c === 'string') : [];
  if (cidrs.length > 0) st['podCIDRs'] = cidrs;

  const metadata: Record<string, unknown> = { name };
  const labels = stringRecord(node.metadata?.labels);
  if (Object.keys(labels).length > 0) metadata['labels'] = sortedRecord(Object.entries(labels));
  const out: Record<string, unknown> = { kind: 'Node', apiVersion: 'projectcalico.org/v3', metadata, spec };
  if (Object.keys(st).length > 0) out['status'] = st;
  return out;
}

export function convertNode(node: KubeObject): KV[] {
  const name = node.metadata?.name ?? '';
  const v3 = calicoNodeFromK8s(node);
  const spec = v3['spec'] as Record<string, unknown>;
  const bgp = isRecord(spec['bgp']) ? spec['bgp'] : {};
  const wg = isRecord(spec['wireguard']) ? spec['wireguard'] : {};
  const status = isRecord(v3['status']) ? v3['status'] : {};
  const out: KV[] = [];
  // The processor prints parsed IPs (`ip.String()`), so an IPv6 tunnel address arrives compressed.
  const hostConfig: [string, unknown][] = [
    ['IpInIpTunnelAddr', typeof bgp['ipv4IPIPTunnelAddr'] === 'string' ? normalizeIp(bgp['ipv4IPIPTunnelAddr']) : undefined],
    ['IPv4VXLANTunnelAddr', typeof spec['ipv4VXLANTunnelAddr'] === 'string' ? normalizeIp(spec['ipv4VXLANTunnelAddr']) : undefined],
    ['VXLANTunnelMACAddr', spec['vxlanTunnelMACAddr']],
    ['IPv6VXLANTunnelAddr', typeof spec['ipv6VXLANTunnelAddr'] === 'string' ? normalizeIp(spec['ipv6VXLANTunnelAddr']) : undefined],
    ['VXLANTunnelMACAddrV6', spec['vxlanTunnelMACAddrV6']],
  ];
  for (const [k, v] of hostConfig) if (typeof v === 'string' && v !== '') out.push([hostConfigKey(name, k), v]);
  out.push([resourceKey('nodes', name), v3]);
  const wgValue: Record<string, string> = {};
  const wg4 = typeof wg['interfaceIPv4Address'] === 'string' ? normalizeIp(wg['interfaceIPv4Address']) : undefined;
  if (wg4) wgValue['interfaceIPv4Addr'] = wg4;
  if (typeof status['wireguardPublicKey'] === 'string') wgValue['publicKey'] = status['wireguardPublicKey'];
  const wg6 = typeof wg['interfaceIPv6Address'] === 'string' ? normalizeIp(wg['interfaceIPv6Address']) : undefined;
  if (wg6) wgValue['interfaceIPv6Addr'] = wg6;
  if (typeof status['wireguardPublicKeyV6'] === 'string') wgValue['publicKeyV6'] = status['wireguardPublicKeyV6'];
  if (Object.keys(wgValue).length > 0) out.push([wireguardKey(name), wgValue]);
  return out;
}
