/**
 * The resource registry: every Kubernetes and Calico resource Cattail knows.
 *
 * One table, from which the simulator's served paths, the upstream reflectors, the built-in
 * feeds and the RBAC rules are all derived, so they cannot drift apart. The built-in feeds mirror
 * Typha's four syncer types (Calico's libcalico-go syncersv1: felixsyncer, bgpsyncer, tunnelipsyncer, nodestatussyncer); the table covers every resource
 * any of them watches in KDD mode, plus the Calico CRDs they touch indirectly.
 */

export interface ResourceDef {
  /** kubectl-style name: `pods`, `endpointslices.discovery.k8s.io`, `ippools.crd.projectcalico.org`. */
  readonly id: string;
  /** API group; '' for the core group. */
  readonly group: string;
  readonly version: string;
  readonly plural: string;
  readonly kind: string;
  readonly namespaced: boolean;
  /**
   * Served by a CustomResourceDefinition (or an optional aggregated API): such a resource may be
   * absent from a cluster, which answers 404; the upstream then treats it as empty and in sync and
   * retries later. Built-in resources are never optional: a 404 there is an error.
   */
  readonly optional: boolean;
  /**
   * How the API server encodes it: built-in types come from Go structs (struct field order, list
   * items without kind/apiVersion); custom resources are unstructured (keys sorted, list items
   * carry kind/apiVersion). (How the API server encodes each.)
   */
  readonly encoding: 'builtin' | 'unstructured';
}

function core(plural: string, kind: string, namespaced: boolean): ResourceDef {
  return { id: plural, group: '', version: 'v1', plural, kind, namespaced, optional: false, encoding: 'builtin' };
}

function builtin(group: string, version: string, plural: string, kind: string, namespaced: boolean): ResourceDef {
  return { id: `${plural}.${group}`, group, version, plural, kind, namespaced, optional: false, encoding: 'builtin' };
}

function crd(group: string, version: string, plural: string, kind: string, namespaced: boolean): ResourceDef {
  return { id: `${plural}.${group}`, group, version, plural, kind, namespaced, optional: true, encoding: 'unstructured' };
}

const CALICO = 'crd.projectcalico.org';

/** Every resource, in a stable order (core, built-in groups, Calico, others). */
export const RESOURCES: readonly ResourceDef[] = Object.freeze([
  core('pods', 'Pod', true),
  core('nodes', 'Node', false),
  core('namespaces', 'Namespace', false),
  core('serviceaccounts', 'ServiceAccount', true),
  core('services', 'Service', true),
  builtin('discovery.k8s.io', 'v1', 'endpointslices', 'EndpointSlice', true),
  builtin('networking.k8s.io', 'v1', 'networkpolicies', 'NetworkPolicy', true),
  crd(CALICO, 'v1', 'bgpconfigurations', 'BGPConfiguration', false),
  crd(CALICO, 'v1', 'bgpfilters', 'BGPFilter', false),
  crd(CALICO, 'v1', 'bgppeers', 'BGPPeer', false),
  crd(CALICO, 'v1', 'blockaffinities', 'BlockAffinity', false),
  crd(CALICO, 'v1', 'caliconodestatuses', 'CalicoNodeStatus', false),
  crd(CALICO, 'v1', 'clusterinformations', 'ClusterInformation', false),
  crd(CALICO, 'v1', 'felixconfigurations', 'FelixConfiguration', false),
  crd(CALICO, 'v1', 'globalnetworkpolicies', 'GlobalNetworkPolicy', false),
  crd(CALICO, 'v1', 'globalnetworksets', 'GlobalNetworkSet', false),
  crd(CALICO, 'v1', 'hostendpoints', 'HostEndpoint', false),
  crd(CALICO, 'v1', 'ipamblocks', 'IPAMBlock', false),
  crd(CALICO, 'v1', 'ipamconfigs', 'IPAMConfig', false),
  crd(CALICO, 'v1', 'ipamhandles', 'IPAMHandle', false),
  crd(CALICO, 'v1', 'ippools', 'IPPool', false),
  crd(CALICO, 'v1', 'ipreservations', 'IPReservation', false),
  crd(CALICO, 'v1', 'kubecontrollersconfigurations', 'KubeControllersConfiguration', false),
  crd(CALICO, 'v1', 'networkpolicies', 'NetworkPolicy', true),
  crd(CALICO, 'v1', 'networksets', 'NetworkSet', true),
  crd(CALICO, 'v1', 'stagedglobalnetworkpolicies', 'StagedGlobalNetworkPolicy', false),
  crd(CALICO, 'v1', 'stagedkubernetesnetworkpolicies', 'StagedKubernetesNetworkPolicy', true),
  crd(CALICO, 'v1', 'stagednetworkpolicies', 'StagedNetworkPolicy', true),
  crd(CALICO, 'v1', 'tiers', 'Tier', false),
  // Felix watches these only when the cluster has them (KDD): the ClusterNetworkPolicy API of
  // sigs.k8s.io/network-policy-api and KubeVirt live migrations. Optional like CRDs.
  crd('policy.networking.k8s.io', 'v1alpha2', 'clusternetworkpolicies', 'ClusterNetworkPolicy', false),
  crd('kubevirt.io', 'v1', 'virtualmachineinstancemigrations', 'VirtualMachineInstanceMigration', true),
]);

const byId = new Map(RESOURCES.map((r) => [r.id, r]));

/** Looks a resource up by id; throws on an unknown id (a typo in a feed table is a bug). */
export function resource(id: string): ResourceDef {
  const def = byId.get(id);
  if (def === undefined) throw new RangeError(`unknown resource ${JSON.stringify(id)}`);
  return def;
}

export function findResource(id: string): ResourceDef | undefined {
  return byId.get(id);
}

/** The built-in feeds: Typha's four syncer types and the resources each watches (KDD, Calico IPAM). */
export const SYNCER_FEEDS = Object.freeze({
  felix: Object.freeze([
    'clusterinformations.crd.projectcalico.org',
    'felixconfigurations.crd.projectcalico.org',
    'globalnetworkpolicies.crd.projectcalico.org',
    'stagedglobalnetworkpolicies.crd.projectcalico.org',
    'globalnetworksets.crd.projectcalico.org',
    'ippools.crd.projectcalico.org',
    'nodes',
    'namespaces',
    'serviceaccounts',
    'pods',
    'networkpolicies.crd.projectcalico.org',
    'stagednetworkpolicies.crd.projectcalico.org',
    'stagedkubernetesnetworkpolicies.crd.projectcalico.org',
    'networksets.crd.projectcalico.org',
    'tiers.crd.projectcalico.org',
    'hostendpoints.crd.projectcalico.org',
    'bgpconfigurations.crd.projectcalico.org',
    'bgppeers.crd.projectcalico.org',
    'virtualmachineinstancemigrations.kubevirt.io',
    'networkpolicies.networking.k8s.io',
    'clusternetworkpolicies.policy.networking.k8s.io',
    'endpointslices.discovery.k8s.io',
    'services',
    'ipamblocks.crd.projectcalico.org',
  ]),
  bgp: Object.freeze([
    'ippools.crd.projectcalico.org',
    'bgpconfigurations.crd.projectcalico.org',
    'nodes',
    'bgppeers.crd.projectcalico.org',
    'bgpfilters.crd.projectcalico.org',
    'blockaffinities.crd.projectcalico.org',
  ]),
  'tunnel-ip-allocation': Object.freeze(['ippools.crd.projectcalico.org', 'nodes']),
  'node-status': Object.freeze(['caliconodestatuses.crd.projectcalico.org']),
} as const satisfies Record<string, readonly string[]>);

/**
 * The built-in feeds that can be scoped per node (#20; src/server/scoping/policy.ts has each one's
 * policy and the Calico sources behind it). Not bgp: BIRD peers with the other nodes.
 */
export const SCOPABLE_FEED_NAMES: readonly string[] = Object.freeze(['felix', 'tunnel-ip-allocation', 'node-status']);

/** The built-in feed names, in table order: the one list the options, the feed resolver and the docs use. */
export const BUILTIN_FEED_NAMES: readonly string[] = Object.freeze(Object.keys(SYNCER_FEEDS));

export type SyncerFeed = keyof typeof SYNCER_FEEDS;

/** The store key of an object: `<group>/<plural>/<namespace>/<name>` (empty parts allowed). */
export function objectKey(def: ResourceDef, namespace: string | undefined, name: string): string {
  return `${def.group}/${def.plural}/${def.namespaced ? (namespace ?? '') : ''}/${name}`;
}

/** The collection path, cluster-wide or in one namespace: `/api/v1/pods`, `/apis/g/v/namespaces/ns/plural`. */
export function collectionPath(def: ResourceDef, namespace?: string): string {
  const base = def.group === '' ? `/api/${def.version}` : `/apis/${def.group}/${def.version}`;
  return namespace !== undefined && def.namespaced ? `${base}/namespaces/${encodeURIComponent(namespace)}/${def.plural}` : `${base}/${def.plural}`;
}

export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  /** Only these objects (RBAC `resourceNames`); absent: every object. */
  resourceNames?: string[];
  verbs: string[];
}

/**
 * The ClusterRole rules a Cattail replica needs: list and watch on every resource some feed uses
 * (derived from the table, one rule per API group). Pass the resource ids actually served. The
 * reflectors never GET single objects, so `get` is not granted: least privilege, and a drift test
 * (test/deploy/manifests.test.ts) keeps deploy/base/clusterrole.yaml equal to this.
 */
export function rbacRules(ids: Iterable<string> = Object.values(SYNCER_FEEDS).flat(), verbs: readonly string[] = ['list', 'watch']): PolicyRule[] {
  const groups = new Map<string, Set<string>>();
  for (const id of ids) {
    const def = resource(id);
    let set = groups.get(def.group);
    if (!set) groups.set(def.group, (set = new Set()));
    set.add(def.plural);
  }
  return [...groups.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([group, plurals]) => ({ apiGroups: [group], resources: [...plurals].sort(), verbs: [...verbs] }));
}
