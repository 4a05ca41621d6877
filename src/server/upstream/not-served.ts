/**
 * Evidence that an optional resource is not served: the resourceVersion at which its
 * CustomResourceDefinition did not exist.
 *
 * Why it is needed. Agents refuse a replica whose watermarks (PROTOCOL.md §8) are below, or lack,
 * a resource they have applied: that replica would take them back in time. A 404 for an optional
 * resource carries no resourceVersion, so a replica that found the CRD missing had nothing to
 * report for it, and once the CRD was removed for good no replica reported it any more: every
 * agent that had applied it refused every replica, kept its old state and never synced again.
 * Nor can "not served" simply be trusted: a replica looks again only every
 * missingResourceRetryMs, so its "missing" may be older than an agent's state (the CRD was
 * installed since and the agent applied its objects from another replica).
 *
 * The evidence. A consistent LIST of customresourcedefinitions filtered to the resource's CRD
 * name (`metadata.name=<plural>.<group>`) that holds no item says: at the list's resourceVersion
 * N, no CRD existed, so the resource had no objects. The replica reports N as the resource's
 * watermark. An agent that applied the resource at R ≤ N moves forward by accepting the empty
 * state; one at R > N (the CRD came back after N) still finds the replica behind, as it is.
 *
 * The assumption. This compares a CRD list's resourceVersion with those of the custom resources
 * themselves. Kubernetes calls resourceVersions opaque; in practice they are the revision of the
 * one etcd that stores CRDs and custom resources alike (the API server's storage for
 * apiextensions and for custom resources share it unless an operator splits them with
 * `--etcd-servers-overrides`, which this replica cannot detect). DESIGN.md says so.
 *
 * What else can come back. A CRD that exists while its path answers 404 (created but not
 * established yet, serving other versions only, or an API server instance behind on it): no
 * evidence. A resource never listed stays missing without a watermark change; one listed before
 * keeps its state and backs off (recovery.ts: a blip, not a removal). A failed probe (no RBAC permission to list CRDs, a network error,
 * a throttled list): no evidence either, and no proof that the 404 is not a blip: a state listed
 * before is kept as for a CRD that exists. A resource found missing keeps the watermark it last
 * had, as before this probe existed, and the replica says so in a warn line once per resource.
 */
import { isResourceVersion } from '../../../proto/index.js';
import { UpstreamFailure } from './failure.js';
import type { ReflectorCore } from './reflector-core.js';
import { readJson } from './request.js';

/** The CRD list path; `metadata.name` is a field selector every resource supports. */
export const CRD_LIST_PATH = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions';

/**
 * A CRD object with its OpenAPI schema is tens to hundreds of KB; the filtered list holds at most
 * one. Anything beyond this is not a CRD list: no evidence.
 */
const PROBE_MAX_BYTES = 4 * 1024 * 1024;

export type NotServedEvidence =
  | { readonly kind: 'absent'; readonly rv: string }
  | { readonly kind: 'present' }
  /**
   * Nothing proven. `failed`: the probe itself failed (network, throttled, forbidden, a body that
   * is not a CRD list), so the 404 may be a blip as well; without it the list answered and proved
   * the resource is not served in a way that carries no resourceVersion (its version not served).
   */
  | { readonly kind: 'unknown'; readonly reason: string; readonly failed?: true };

/** The CRD name of an optional resource: `<plural>.<group>` (its registry id). */
export function crdNameOf(r: ReflectorCore): string {
  return `${r.o.def.plural}.${r.o.def.group}`;
}

/** Lists the resource's CRD once (consistent read) and says what that proves. Never throws. */
export async function probeNotServed(r: ReflectorCore): Promise<NotServedEvidence> {
  const q = new URLSearchParams({ fieldSelector: `metadata.name=${crdNameOf(r)}` });
  try {
    const body = await readJson(await r.request('crd-list', `${CRD_LIST_PATH}?${q.toString()}`), PROBE_MAX_BYTES, 'CRD list');
    return evidenceOf(body, r.o.def.version);
  } catch (err) {
    const f = err instanceof UpstreamFailure ? err : undefined;
    return { kind: 'unknown', reason: f?.k8sCode !== undefined ? `HTTP ${f.k8sCode}` : (err as Error)?.message ?? String(err), failed: true };
  }
}

/**
 * What a CRD list body proves (exported for tests). Garbage proves nothing. A CRD that lists its
 * versions without serving `version` (the one this replica watches) is not `present` for it: an
 * upgrade that stopped serving that version makes the 404 permanent, not a blip.
 */
export function evidenceOf(body: unknown, version?: string): NotServedEvidence {
  if (typeof body !== 'object' || body === null) return { kind: 'unknown', reason: 'the CRD list is not a JSON object', failed: true };
  const list = body as { items?: unknown; metadata?: { resourceVersion?: unknown } };
  if (!Array.isArray(list.items)) return { kind: 'unknown', reason: 'the CRD list has no items array', failed: true };
  if (list.items.length > 0) {
    const versions = (list.items[0] as { spec?: { versions?: unknown } } | null)?.spec?.versions;
    if (version !== undefined && Array.isArray(versions)) {
      const served = versions.some((v: unknown) => typeof v === 'object' && v !== null && (v as { name?: unknown }).name === version && (v as { served?: unknown }).served === true);
      if (!served) return { kind: 'unknown', reason: `the CRD does not serve version ${version}` };
    }
    return { kind: 'present' };
  }
  const rv = list.metadata?.resourceVersion;
  // Decimal only: watermarks compare as unsigned integers (PROTOCOL.md §8).
  if (!isResourceVersion(rv) || /^0+$/.test(rv)) return { kind: 'unknown', reason: `the CRD list's resourceVersion ${JSON.stringify(rv)} is not a decimal`, failed: true };
  return { kind: 'absent', rv };
}
