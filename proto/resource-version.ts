/**
 * Kubernetes resourceVersions as the protocol carries them (PROTOCOL.md §8): decimal strings,
 * compared as unsigned integers. Kubernetes documents resourceVersions as opaque, but every
 * API server since etcd3 issues etcd revisions, and KEP-5504 makes "comparable decimal strings"
 * the contract; the watermarks are built on that. This is the one comparator: the upstream's
 * regression guard, the store's watermark check and the client's failover check all use it.
 */

const RV_PATTERN = /^[0-9]{1,64}$/;

/** True for a decimal resourceVersion as PROTOCOL.md specifies them (1 to 64 digits). */
export function isResourceVersion(value: unknown): value is string {
  return typeof value === 'string' && RV_PATTERN.test(value);
}

/**
 * Compares two decimal resourceVersions as integers, without BigInt: leading zeros are ignored,
 * then the longer is larger, then lexicographic order decides. Returns -1, 0 or 1. Callers that
 * may hold a non-decimal value check {@link isResourceVersion} first: such a value has no order.
 */
export function compareResourceVersions(a: string, b: string): -1 | 0 | 1 {
  const sa = stripZeros(a);
  const sb = stripZeros(b);
  if (sa.length !== sb.length) return sa.length < sb.length ? -1 : 1;
  return sa < sb ? -1 : sa > sb ? 1 : 0;
}

/** A resource whose watermark `offered` is older than `applied` (undefined: not offered at all). */
export interface BehindResource {
  resource: string;
  /** What the client already applied. */
  applied: string;
  /** What the replica offers; undefined when it has no watermark for the resource at all. */
  offered: string | undefined;
}

/**
 * The resources where `offered` is older than `applied` (PROTOCOL.md §8): the check a client makes
 * on a snapshot's or an in-sync STATUS's watermarks, and the one a server makes on a HELLO's
 * `notBefore` before it sends a snapshot. A resource the replica does not report is behind: a
 * replica that has not listed it yet would hand over a state without its objects, which is going
 * back in time just the same. Values compare as compareResourceVersions does (a server checks
 * that what a client sent is decimal before it relies on it).
 */
export function behindResources(applied: Readonly<Record<string, string>>, offered: Readonly<Record<string, string>>): BehindResource[] {
  const out: BehindResource[] = [];
  for (const [resource, have] of Object.entries(applied)) {
    // Own keys only: a resource named like an Object.prototype member ("__defineGetter__", from a
    // hostile peer) must read as absent, not as an inherited function.
    const got = Object.hasOwn(offered, resource) ? offered[resource] : undefined;
    if (got === undefined || compareResourceVersions(got, have) < 0) out.push({ resource, applied: have, offered: got });
  }
  return out;
}

/**
 * Per resource the newer of the two (the union a client keeps of the watermarks it applied, §8;
 * a server's floor from a HELLO feed with both maps). Own keys only, as in behindResources.
 */
export function mergeWatermarks(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = Object.hasOwn(out, k) ? out[k] : undefined;
    if (cur === undefined || compareResourceVersions(v, cur) > 0) out[k] = v;
  }
  return out;
}

function stripZeros(rv: string): string {
  let i = 0;
  while (i < rv.length - 1 && rv.charCodeAt(i) === 48) i++;
  return i === 0 ? rv : rv.slice(i);
}
