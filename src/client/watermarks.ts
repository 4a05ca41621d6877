/**
 * Upstream watermarks (PROTOCOL.md §8): per resource id, the last Kubernetes resourceVersion a
 * replica applied, as a decimal string. They are the only thing comparable across replicas (feed
 * revisions are replica-local), so they decide whether failing over would go back in time.
 */

import { MAX_WATERMARKS, MAX_WATERMARKS_BYTES } from '../../proto/types.js';

export type Watermarks = Readonly<Record<string, string>>;

// The failover check (a snapshot or STATUS older than what was applied) and the union of what was
// applied are the protocol's own: the server makes both on a HELLO's notBefore, so both sides use
// one function each.
export { behindResources, mergeWatermarks, type BehindResource } from '../../proto/index.js';

/**
 * How many resources and UTF-8 bytes `w` holds, when that is above PROTOCOL.md §8's bounds for a
 * `watermarks` map (MAX_WATERMARKS, MAX_WATERMARKS_BYTES); undefined within them. The client holds
 * its union of accepted watermarks, and its checkpoint, to the bounds a single message has.
 */
export function aboveWatermarkBounds(w: Watermarks): { resources: number; bytes: number } | undefined {
  let resources = 0;
  let bytes = 0;
  for (const [r, v] of Object.entries(w)) {
    resources++;
    bytes += Buffer.byteLength(r) + Buffer.byteLength(v);
  }
  return resources > MAX_WATERMARKS || bytes > MAX_WATERMARKS_BYTES ? { resources, bytes } : undefined;
}
