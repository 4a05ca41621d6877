import type { ResourceDef } from '../../../registry.js';
import type { KubeObject } from '../types.js';
import type { KV } from './calico-keys.js';
import { convertClusterInformation } from './libcalico-cluster-info.js';
import { calicoPolicyKey, convertCalicoPolicy, type CalicoPolicyKind } from './libcalico-calico-policy.js';
import { convertFelixConfiguration } from './libcalico-felix-config.js';
import { convertHostEndpoint, hostEndpointV1Key } from './libcalico-host-endpoint.js';
import { convertNetworkSet, networkSetV1Key } from './libcalico-network-set.js';
import { convertBlock, convertIPPool } from './libcalico-ippool.js';
import { convertNetworkPolicy, convertStagedKubernetesNetworkPolicy, networkPolicyKey, stagedNetworkPolicyKey } from './libcalico-network-policy.js';
import { convertNode } from './libcalico-node.js';
import { convertNamespace, convertServiceAccount, DEFAULT_ALLOW_PROFILE } from './libcalico-profile.js';
import { kubernetesPassThrough, v3Resource } from './libcalico-resource.js';
import { convertTier, tierV1Key } from './libcalico-tier.js';
import { convertPod, workloadEndpointKeyOf, type WepOptions } from './libcalico-workload-endpoint.js';

/**
 * The `libcalico` projection: each resource the way Typha's syncers hand it to Felix, confd and
 * calico-node — libcalico-go key paths, values with libcalico-go's model field names (see
 * docs/data-model.md). One object may give several keys (a Node: host config keys, WireGuard key,
 * v3 Node; a Namespace: profile labels, rules and v3 Profile), or none (a host-network pod).
 */
export interface LibcalicoConversion {
  /** The object's key/value pairs (none: the object has no Calico counterpart right now). */
  readonly convert: (obj: KubeObject) => KV[];
  /**
   * Keys to delete when the object is deleted, beyond those it was seen with: a delete passes
   * through even for keys never sent (a pod deleted while it had no IP still names its endpoint).
   */
  readonly deleteKeys?: (obj: KubeObject) => string[];
  /** Keys that exist whatever the objects (the default-allow profile), added with the first list. */
  readonly statics?: readonly KV[];
}

const keysOf = (convert: (obj: KubeObject) => KV[]) => (obj: KubeObject): string[] => convert(obj).map(([k]) => k);

/** Calico CRDs whose v3 resource is passed through (no v1 conversion in Felix's syncer, or not yet done here). */
const V3_PASS_THROUGH = new Set([
  'bgpconfigurations', 'bgpfilters', 'bgppeers', 'blockaffinities', 'caliconodestatuses',
  'ipamconfigs', 'ipamhandles',
  'ipreservations', 'kubecontrollersconfigurations',
]);

/** Calico policy CRDs converted to v1 policies (libcalico-calico-policy.ts), by plural. */
const CALICO_POLICY_KINDS: Readonly<Record<string, CalicoPolicyKind>> = {
  networkpolicies: 'NetworkPolicy',
  globalnetworkpolicies: 'GlobalNetworkPolicy',
  stagednetworkpolicies: 'StagedNetworkPolicy',
  stagedglobalnetworkpolicies: 'StagedGlobalNetworkPolicy',
};

export function libcalicoConversion(def: ResourceDef, options: WepOptions = {}): LibcalicoConversion | undefined {
  switch (def.id) {
    case 'pods': {
      const convert = (obj: KubeObject): KV[] => convertPod(obj, options);
      return { convert, deleteKeys: (obj) => { const k = workloadEndpointKeyOf(obj); return k === undefined ? [] : [k]; } };
    }
    case 'namespaces':
      return { convert: convertNamespace, deleteKeys: keysOf(convertNamespace), statics: DEFAULT_ALLOW_PROFILE };
    case 'serviceaccounts':
      return { convert: convertServiceAccount, deleteKeys: keysOf(convertServiceAccount) };
    case 'nodes':
      return { convert: convertNode, deleteKeys: keysOf(convertNode) };
    case 'networkpolicies.networking.k8s.io':
      return { convert: convertNetworkPolicy, deleteKeys: (obj) => [networkPolicyKey(obj.metadata?.namespace ?? '', obj.metadata?.name ?? '')] };
    case 'ippools.crd.projectcalico.org':
      return { convert: convertIPPool, deleteKeys: keysOf(convertIPPool) };
    case 'clusterinformations.crd.projectcalico.org':
      return { convert: convertClusterInformation };
    case 'felixconfigurations.crd.projectcalico.org':
      return { convert: convertFelixConfiguration, deleteKeys: keysOf(convertFelixConfiguration) };
    case 'networkpolicies.crd.projectcalico.org':
    case 'globalnetworkpolicies.crd.projectcalico.org':
    case 'stagednetworkpolicies.crd.projectcalico.org':
    case 'stagedglobalnetworkpolicies.crd.projectcalico.org': {
      const kind = CALICO_POLICY_KINDS[def.plural] as CalicoPolicyKind;
      return { convert: (obj) => convertCalicoPolicy(obj, kind), deleteKeys: (obj) => [calicoPolicyKey(obj, kind)] };
    }
    case 'stagedkubernetesnetworkpolicies.crd.projectcalico.org':
      return { convert: convertStagedKubernetesNetworkPolicy, deleteKeys: (obj) => [stagedNetworkPolicyKey(obj)] };
    case 'globalnetworksets.crd.projectcalico.org':
    case 'networksets.crd.projectcalico.org':
      return { convert: convertNetworkSet, deleteKeys: (obj) => [networkSetV1Key(obj)] };
    case 'tiers.crd.projectcalico.org':
      return { convert: convertTier, deleteKeys: (obj) => [tierV1Key(obj)] };
    case 'hostendpoints.crd.projectcalico.org':
      return { convert: convertHostEndpoint, deleteKeys: (obj) => [hostEndpointV1Key(obj)] };
    case 'ipamblocks.crd.projectcalico.org':
      return { convert: convertBlock };
    case 'services':
      return { convert: (obj) => kubernetesPassThrough(obj, 'kubernetesservice', true) };
    case 'endpointslices.discovery.k8s.io':
      return { convert: (obj) => kubernetesPassThrough(obj, 'kubernetesendpointslices', false) };
    default:
      if (def.group === 'crd.projectcalico.org' && V3_PASS_THROUGH.has(def.plural)) {
        const convert = (obj: KubeObject): KV[] => v3Resource(obj, def.plural, def.kind);
        return { convert, deleteKeys: keysOf(convert) };
      }
      // No libcalico counterpart here (ClusterNetworkPolicy, KubeVirt migrations): the caller
      // falls back to the `calico` projection under the Kubernetes-style key.
      return undefined;
  }
}
