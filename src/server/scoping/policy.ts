/**
 * Per-node scoping (#20, DESIGN.md "Per-node scoping"): which entries of a scoped feed belong to
 * one node, and what the agents of every other node get of them. Pure.
 *
 * A feed's scope policy decides, per entry, its class:
 * - cluster-wide (`node` undefined): every agent gets it in full;
 * - node-bound (`node` N): N's agents get it in full; every other agent gets its slim form
 *   (`others: 'slim'`) or nothing (`others: 'omit'`).
 *
 * The consumers' needs behind each built-in policy (public Calico sources, projectcalico/calico):
 * - felix: `felix/calc/calc_graph.go` sends only the own host's WorkloadEndpoint/HostEndpoint keys
 *   through the local endpoint dispatcher (policy resolution, dataplane); remote endpoints feed the
 *   IP-set member index (labels, profile ids, nets / expected addresses, named ports), the L3
 *   route resolver and the endpoint lookup cache. So a remote endpoint is sent slim. Every other
 *   node-bound felix key (host config such as IpInIpTunnelAddr, the WireGuard key, the v3 Node)
 *   is needed for remote nodes too (routes, tunnels, WireGuard peers): those stay cluster-wide.
 * - tunnel-ip-allocation: `node/pkg/allocateip/allocateip.go` `reconciler.OnUpdates` skips every
 *   Node whose name is not its own (`if v.Name != r.nodename { continue }`) and keeps IP pools;
 *   `reconcileTunnelAddrs` then reads its own Node and the pools. Other nodes' keys are omitted.
 * - node-status: `node/pkg/status/nodestatus.go` skips every CalicoNodeStatus whose `spec.node`
 *   is not its own node ("Node status request is not for us"). Other nodes' statuses are omitted.
 */
import { decodeValue } from '../../snapshot/value.js';
import { nodeOfKey } from './node-of-key.js';

export type OthersGet = 'slim' | 'omit';

export interface ScopePolicy {
  /** The feed this policy is for (a built-in feed name). */
  readonly feed: string;
  /** What agents of other nodes get of a node-bound entry. */
  readonly others: OthersGet;
  /**
   * The node an entry belongs to, or undefined for a cluster-wide entry. `value` is the stored
   * msgpack bytes (undefined for a deletion: then only key-bound nodes can be told).
   */
  nodeOf(key: string, value: Uint8Array | undefined): string | undefined;
  /** True when the node of a key can only be read from its value (a deletion cannot tell it). */
  valueBound(key: string): boolean;
}

const HOST_PREFIX = '/calico/v1/host/';
export const NODE_STATUS_PREFIX = '/calico/resources/v3/projectcalico.org/caliconodestatuses/';

/** A workload endpoint (`/calico/v1/host/<n>/workload/…`) or host endpoint (`/calico/v1/host/<n>/endpoint/…`) key. */
export function isEndpointKey(key: string): boolean {
  if (!key.startsWith(HOST_PREFIX)) return false;
  const slash = key.indexOf('/', HOST_PREFIX.length);
  if (slash < 0) return false;
  return key.startsWith('workload/', slash + 1) || key.startsWith('endpoint/', slash + 1);
}

/**
 * The node of a CalicoNodeStatus value: its `spec.node`. A status without one is meant for no
 * node (Calico's reporter compares spec.node with its own name): it gets the node `''`, which no
 * scoped agent can have (a scoped HELLO with an empty node is refused).
 */
export function nodeStatusNode(value: Uint8Array): string {
  let v: unknown;
  try {
    v = decodeValue(value);
  } catch {
    return '';
  }
  const spec = typeof v === 'object' && v !== null ? (v as Record<string, unknown>)['spec'] : undefined;
  const node = typeof spec === 'object' && spec !== null ? (spec as Record<string, unknown>)['node'] : undefined;
  return typeof node === 'string' ? node : '';
}

const felix: ScopePolicy = {
  feed: 'felix',
  others: 'slim',
  nodeOf: (key) => (isEndpointKey(key) ? nodeOfKey(key) : undefined),
  valueBound: () => false,
};

const tunnelIpAllocation: ScopePolicy = {
  feed: 'tunnel-ip-allocation',
  others: 'omit',
  nodeOf: (key) => nodeOfKey(key),
  valueBound: () => false,
};

const nodeStatus: ScopePolicy = {
  feed: 'node-status',
  others: 'omit',
  nodeOf: (key, value) => {
    if (key.startsWith(NODE_STATUS_PREFIX)) return value === undefined ? undefined : nodeStatusNode(value);
    return nodeOfKey(key);
  },
  valueBound: (key) => key.startsWith(NODE_STATUS_PREFIX),
};

/** The feeds that can be scoped, and how. The bgp feed is not among them (BIRD peers with remote nodes: it needs them all). */
export const SCOPE_POLICIES: ReadonlyMap<string, ScopePolicy> = new Map([felix, tunnelIpAllocation, nodeStatus].map((p) => [p.feed, p]));

export const SCOPABLE_FEEDS: readonly string[] = [...SCOPE_POLICIES.keys()];
