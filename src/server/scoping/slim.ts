/**
 * The slim form of a remote endpoint (#20): what Felix's IP-set calculation needs of an endpoint
 * on another node (DESIGN.md "Per-node scoping"): labels, profile ids, addresses and named ports.
 * The value keeps those fields of the libcalico projection, in their order and with their
 * presence unchanged (a workload endpoint's `ipv4_nets`/`ipv6_nets`, a host endpoint's
 * `expected_ipv4_addrs`/`expected_ipv6_addrs`), so the slim form of a value is a function of it.
 *
 * Computed once per stored value: the cache is keyed by the value's Buffer, which the store never
 * mutates and drops when the key changes, so a slim form lives as long as its full value.
 */
import { decodeValue, encodeValue } from '../../snapshot/value.js';

export const SLIM_FIELDS: readonly string[] = ['labels', 'profile_ids', 'ipv4_nets', 'ipv6_nets', 'expected_ipv4_addrs', 'expected_ipv6_addrs', 'ports'];
const KEEP = new Set(SLIM_FIELDS);

const cache = new WeakMap<Uint8Array, Buffer>();

/**
 * The slim value of an endpoint's full value. A value that is not a map (none of the built-in
 * projections makes one) slims to an empty map: kept as it was, another node's full value went to
 * every node, which PROTOCOL.md §7.3 forbids.
 */
export function slimValue(full: Buffer): Buffer {
  const hit = cache.get(full);
  if (hit !== undefined) return hit;
  let out: Buffer;
  let v: unknown;
  try {
    v = decodeValue(full);
  } catch {
    v = undefined;
  }
  if (typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array)) {
    const slim: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) if (KEEP.has(k)) slim[k] = x;
    out = encodeValue(slim);
  } else {
    out = encodeValue({});
  }
  cache.set(full, out);
  return out;
}
