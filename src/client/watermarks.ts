/**
 * Upstream watermarks (PROTOCOL.md §8): per resource id, the last Kubernetes resourceVersion a
 * replica applied, as a decimal string. They are the only thing comparable across replicas (feed
 * revisions are replica-local), so they decide whether failing over would go back in time.
 */

import { compareResourceVersions } from '../../proto/index.js';

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
 * behind unless the offer is in sync: a replica that has not listed it yet would hand over a state
 * without its objects, which is going back in time just the same, but an in-sync replica has
 * listed everything it serves, so a resource it does not name is one it no longer serves (a CRD
 * removed, a feed that stopped carrying it). Counted as behind there, it refused every replica
 * for ever and the agent kept a stale state (PROTOCOL.md §8).
 */
export function behindResources(applied: Watermarks, offered: Watermarks, inSync = false): BehindResource[] {
  const out: BehindResource[] = [];
  for (const [resource, have] of Object.entries(applied)) {
    const got = offered[resource];
    if (got === undefined ? !inSync : compareResourceVersions(got, have) < 0) out.push({ resource, applied: have, offered: got });
  }
  return out;
}

/**
 * The watermarks after accepting an offer: per resource the newer of the two, and, after an
 * in-sync offer, only the resources it names (those it does not name are no longer served; kept,
 * they would make a replica refuse this agent's rebase, and grow the HELLO with every resource
 * ever seen).
 */
export function adoptWatermarks(applied: Watermarks, offered: Watermarks, inSync: boolean): Record<string, string> {
  const merged = mergeWatermarks(applied, offered);
  if (!inSync) return merged;
  return Object.fromEntries(Object.entries(merged).filter(([resource]) => Object.hasOwn(offered, resource)));
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
