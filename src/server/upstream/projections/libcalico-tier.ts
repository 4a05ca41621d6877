import type { KubeObject } from '../types.js';
import { isRecord } from './encode.js';
import { tierKey, type KV } from './calico-keys.js';
import { v3Name } from './libcalico-resource.js';

/**
 * Tier → the v1 tier Felix's syncer sends. Public Calico sources (projectcalico/calico):
 * - `libcalico-go/lib/backend/syncersv1/felixsyncer/felixsyncerv1.go`: the felix syncer (leader
 *   part) lists Tiers with `NewTierUpdateProcessor`; the bgp, tunnel-ip-allocation and node-status
 *   syncers do not list Tiers at all, so only the felix feed carries them.
 * - `libcalico-go/lib/backend/syncersv1/updateprocessors/tierprocessor.go`: key `TierKey{Name}`
 *   from the v3 name (an empty name is an error there, thrown here so the object is counted and
 *   skipped); value `model.Tier{Order: spec.order, DefaultAction}` where the action is `Pass` when
 *   the spec says `Pass` and `Deny` for anything else, unset included.
 * - `libcalico-go/lib/backend/model/tier.go`: the key's path `/calico/v1/policy/tier/<name>/metadata`
 *   (not escaped: tier names are DNS labels); the value's JSON fields `order` (*float64,
 *   omitempty) then `defaultAction` (v3.Action, a string, omitempty).
 * - `libcalico-go/lib/backend/k8s/resources/tiers.go` with `lib/resources/tier.go`
 *   `DefaultTierFields`: in KDD every Tier read from the API server is defaulted before the
 *   processor sees it: no order → 1,000,000 (`DefaultTierOrder`, the `default` tier's order; an
 *   unordered tier sorts with it), no defaultAction → Deny. So `order` is always present here,
 *   as Typha sends it over KDD (etcd mode would send no `order` for an unordered tier).
 *
 * No tier name is special in the conversion: `default` (1,000,000, Deny), `adminnetworkpolicy`
 * (1,000, Pass) and `baselineadminnetworkpolicy` (10,000,000, Pass), which calico-node creates in
 * 3.31, take their values from their spec like any other tier. Those versions were read from the
 * code index without a release tag: the files above are the versions that have `defaultAction`
 * (as the v3.31.7 Tier CRD does); an older model.Tier had `endOfTierDrop` instead, which 3.31's
 * CRD does not fit. Not confirmed against the v3.31 tag itself.
 */

/** `DefaultTierOrder` of the v3 API (projectcalico/api tier.go): the order of an unordered tier. */
export const DEFAULT_TIER_ORDER = 1_000_000;

export function tierV1Key(obj: KubeObject): string {
  const name = v3Name(obj);
  if (name === '') throw new TypeError('Tier: missing name for a v1 tier key');
  return tierKey(name);
}

export function convertTier(obj: KubeObject): KV[] {
  const spec = isRecord(obj['spec']) ? obj['spec'] : {};
  // The CRD types order as a number; anything else could not be decoded by libcalico-go either,
  // and is taken as unset rather than failing the whole object.
  const order = typeof spec['order'] === 'number' && Number.isFinite(spec['order']) ? spec['order'] : DEFAULT_TIER_ORDER;
  const defaultAction = spec['defaultAction'] === 'Pass' ? 'Pass' : 'Deny';
  return [[tierV1Key(obj), { order, defaultAction }]];
}
