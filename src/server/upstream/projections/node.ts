import type { KubeObject } from '../types.js';
import { isRecord, sortedRecord, stringRecord } from './encode.js';

/**
 * Node → what Calico's syncers read: labels, addresses, pod CIDRs, and the Calico annotations that
 * carry the BGP and tunnel fields (`projectcalico.org/IPv4Address`, `…/ASNumber`,
 * `…/IPv4IPIPTunnelAddr`, `…/IPv4VXLANTunnelAddr`, `…/VXLANTunnelMACAddr`, `…/WireguardPublicKey`…).
 * Heartbeats (conditions, images, allocatable, nodeInfo) are dropped, so they project to the same
 * bytes and cost agents nothing.
 */
export interface CalicoNode {
  name: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  addresses: { type: string; address: string }[];
  podCIDRs: string[];
}

export function projectNode(node: KubeObject): CalicoNode {
  const meta = node.metadata ?? {};
  const spec = isRecord(node['spec']) ? node['spec'] : {};
  const status = isRecord(node['status']) ? node['status'] : {};
  const annotations = Object.entries(stringRecord(meta.annotations)).filter(([k]) => k.startsWith('projectcalico.org/'));
  const addresses = (Array.isArray(status['addresses']) ? status['addresses'] : []).flatMap((a) =>
    isRecord(a) && typeof a['type'] === 'string' && typeof a['address'] === 'string' ? [{ type: a['type'], address: a['address'] }] : [],
  );
  let podCIDRs: string[] = [];
  if (Array.isArray(spec['podCIDRs'])) podCIDRs = spec['podCIDRs'].filter((c): c is string => typeof c === 'string');
  else if (typeof spec['podCIDR'] === 'string' && spec['podCIDR'] !== '') podCIDRs = [spec['podCIDR']];
  return {
    name: meta.name ?? '',
    labels: sortedRecord(Object.entries(stringRecord(meta.labels))),
    annotations: sortedRecord(annotations),
    addresses,
    podCIDRs,
  };
}
