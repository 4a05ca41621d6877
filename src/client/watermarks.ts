/**
 * Upstream watermarks (PROTOCOL.md §8): per resource id, the last Kubernetes resourceVersion a
 * replica applied, as a decimal string. They are the only thing comparable across replicas (feed
 * revisions are replica-local), so they decide whether failing over would go back in time.
 */

import { compareResourceVersions } from '../../proto/index.js';
import { MAX_WATERMARKS, MAX_WATERMARKS_BYTES } from '../../proto/types.js';

export type Watermarks = Readonly<Record<string, string>>;


export interface BehindResource {
  resource: string;
  /** What the client already applied. */
  applied: string;
  /** What the replica offers; undefined when it has no watermark for the resource at all. */
  offered: string | undefined;
}

/**
 * The resources where `offered` is older than `applied`. A resource the replica does not report is
 * behind: a replica that has not listed it yet would hand over a state without its objects, which is
 * going back in time just the same.
 */
export function behindResources(applied: Watermarks, offered: Watermarks): BehindResource[] {
  const out: BehindResource[] = [];
  for (const [resource, have] of Object.entries(applied)) {
    const got = offered[resource];
    if (got === undefined || compareResourceVersions(got, have) < 0) out.push({ resource, applied: have, offered: got });
  }
  return out;
}

/** Per resource the newer of the two. */
export function mergeWatermarks(a: Watermarks, b: Watermarks): Record<string, string> {
  const out: Record<string, string> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    if (cur === undefined || compareResourceVersions(v, cur) > 0) out[k] = v;
  }
  return out;
}

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
