/**
 * The one resourceVersion comparator of the code base: the store (src/snapshot), the upstream's
 * regression guards (src/server/upstream), the client's failover check (src/client) and the
 * server's convergence barrier all order resourceVersions with these functions.
 *
 * Kubernetes calls resourceVersions opaque, but every API server in practice issues etcd
 * revisions: decimal integers without leading zeros, and KEP-5504 makes them comparable that way.
 * PROTOCOL.md §8 therefore specifies watermarks as decimal strings compared as unsigned integers.
 * We compare without BigInt (a resourceVersion may exceed 2^53): leading zeros are ignored, then
 * the longer string is larger, then lexicographic order decides.
 *
 * Pure (no imports): the pure core may use it.
 */

const RV_PATTERN = /^[0-9]{1,64}$/;

/** True for a decimal resourceVersion as PROTOCOL.md specifies them (1 to 64 digits). */
export function isResourceVersion(value: unknown): value is string {
  return typeof value === 'string' && RV_PATTERN.test(value);
}

/** Compares two decimal resourceVersions as unsigned integers. Returns -1, 0 or 1. */
export function compareResourceVersions(a: string, b: string): number {
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
