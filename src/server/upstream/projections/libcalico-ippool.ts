import type { KubeObject } from '../types.js';
import { isRecord } from './encode.js';
import { blockKey, ipPoolKey, normalizeNet, type KV } from './calico-keys.js';
import { v3Resource } from './libcalico-resource.js';

/**
 * IPPool → `libcalico` keys. `libcalico-go/lib/backend/syncersv1/updateprocessors/ippoolprocessor.go`
 * makes the v1 `model.IPPool` under `/calico/v1/ipam/v4/pool/<cidr with - for />` (fields from its
 * JSON tags in model/ippool.go): `cidr` (masked), `ipip` ("tunl0" when IPIP is Always or
 * CrossSubnet, else ""), `ipip_mode` / `vxlan_mode` ("always", "cross-subnet" or "" — encap.Mode),
 * `masquerade` (natOutgoing), `ipam` (= !disabled), `disabled`, `disableBGPExport`,
 * `assignment_mode` (spec.assignmentMode, "" when unset). The tunnel-ip-allocation syncer reads the
 * v3 IPPool itself, so the v3 resource is sent too (one view serves all feeds).
 */

const MODE: Record<string, string> = { Always: 'always', CrossSubnet: 'cross-subnet' };

export function convertIPPool(pool: KubeObject): KV[] {
  const spec = isRecord(pool['spec']) ? pool['spec'] : {};
  const cidr = typeof spec['cidr'] === 'string' ? normalizeNet(spec['cidr']) : undefined;
  // libcalico's processor fails on an unparsable CIDR: no v1 key, but the v3 resource still flows.
  const out: KV[] = [];
  if (cidr !== undefined) {
    const ipipMode = MODE[String(spec['ipipMode'])] ?? '';
    out.push([
      ipPoolKey(cidr),
      {
        cidr,
        ipip: ipipMode === '' ? '' : 'tunl0',
        ipip_mode: ipipMode,
        vxlan_mode: MODE[String(spec['vxlanMode'])] ?? '',
        masquerade: spec['natOutgoing'] === true,
        ipam: spec['disabled'] !== true,
        disabled: spec['disabled'] === true,
        disableBGPExport: spec['disableBGPExport'] === true,
        assignment_mode: typeof spec['assignmentMode'] === 'string' ? spec['assignmentMode'] : '',
      },
    ]);
  }
  out.push(...v3Resource(pool, 'ippools', 'IPPool'));
  return out;
}

/**
 * IPAMBlock → `/calico/ipam/v2/assignment/ipv4/block/<cidr with - for />` (model/block.go
 * `BlockKey`), value model.AllocationBlock, whose JSON tags are the CRD spec's own field names
 * (cidr, affinity, strictAffinity, allocations, unallocated, attributes, deleted, sequenceNumber,
 * sequenceNumberForAllocation): the spec is passed as it is. Sequence numbers above 2^53 arrive as
 * exact decimal strings (json.ts).
 */
export function convertBlock(block: KubeObject): KV[] {
  const spec = isRecord(block['spec']) ? block['spec'] : {};
  const cidr = typeof spec['cidr'] === 'string' ? normalizeNet(spec['cidr']) : undefined;
  if (cidr === undefined) throw new TypeError(`IPAMBlock ${block.metadata?.name ?? '?'}: no valid spec.cidr`);
  return [[blockKey(cidr), spec]];
}
