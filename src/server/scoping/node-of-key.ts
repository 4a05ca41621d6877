/**
 * Which node a libcalico key belongs to, for per-node scoping (#20; DESIGN.md "Proposed: per-node
 * scoping"). Pure. Key paths are the ones the projections produce (upstream/projections/calico-keys.ts):
 * `/calico/v1/host/<node>/…` (workload and host endpoints, host config, wireguard) and the v3 Node
 * `/calico/resources/v3/projectcalico.org/nodes/<node>`. A CalicoNodeStatus's node is its value's
 * `spec.node` (the name is arbitrary), so it is not decided here: the caller reads the value.
 * Every other key is cluster-wide (undefined). Host names are not escaped in libcalico's paths, and
 * a Kubernetes node name holds no `/`, so the segment up to the next `/` is the whole name.
 */
const HOST_PREFIX = '/calico/v1/host/';
const NODE_PREFIX = '/calico/resources/v3/projectcalico.org/nodes/';

/** The key of a node's v3 Node resource (the libcalico projection of a Kubernetes Node). */
export function v3NodeKey(node: string): string {
  return NODE_PREFIX + node;
}

export function nodeOfKey(key: string): string | undefined {
  if (key.startsWith(HOST_PREFIX)) {
    const end = key.indexOf('/', HOST_PREFIX.length);
    const node = end < 0 ? key.slice(HOST_PREFIX.length) : key.slice(HOST_PREFIX.length, end);
    return node === '' ? undefined : node;
  }
  if (key.startsWith(NODE_PREFIX)) {
    const node = key.slice(NODE_PREFIX.length);
    return node === '' || node.includes('/') ? undefined : node;
  }
  return undefined;
}
