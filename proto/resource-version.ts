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

function stripZeros(rv: string): string {
  let i = 0;
  while (i < rv.length - 1 && rv.charCodeAt(i) === 48) i++;
  return i === 0 ? rv : rv.slice(i);
}
