import type { ResourceDef } from '../../../registry.js';
import type { KubeObject } from '../types.js';
import { isRecord, sortedRecord, stringRecord } from './encode.js';

/**
 * Stripping: the object minus what changes on writes without changing meaning, so re-writes,
 * status updates and relists project to byte-identical values (and so to zero store revisions).
 *
 * Dropped from metadata: managedFields (rewritten with timestamps on every write),
 * resourceVersion (every write), generation (bumped by status writes on CRDs without a status
 * subresource, e.g. CalicoNodeStatus), uid and creationTimestamp (identity/age, not state: a
 * delete+recreate with the same content is no change to a consumer of state), selfLink,
 * finalizers, and kubectl's last-applied annotation (a second copy of the object).
 * `kind`/`apiVersion` are dropped too: list items of built-in types lack them while watch objects
 * carry them, so keeping them would make a relist differ from the watch; the key names the type.
 */

const DROPPED_ANNOTATIONS = new Set(['kubectl.kubernetes.io/last-applied-configuration', 'deployment.kubernetes.io/revision']);
const CALICO_METADATA_ANNOTATION = 'projectcalico.org/metadata';
const NOISY_METADATA = ['uid', 'resourceVersion', 'generation', 'creationTimestamp', 'managedFields', 'selfLink'];

function cleanAnnotations(annotations: unknown): Record<string, string> | undefined {
  const kept: [string, string][] = [];
  for (const [k, v] of Object.entries(stringRecord(annotations))) {
    if (DROPPED_ANNOTATIONS.has(k)) continue;
    kept.push([k, k === CALICO_METADATA_ANNOTATION ? cleanCalicoMetadata(v) : v]);
  }
  return kept.length > 0 ? sortedRecord(kept) : undefined;
}

/**
 * Calico keeps the v3 metadata as a JSON string annotation (labels of network sets live only
 * there); libcalico-go copies managedFields and timestamps into it, which we drop the same way.
 */
function cleanCalicoMetadata(text: string): string {
  try {
    const parsed: unknown = JSON.parse(text);
    if (!isRecord(parsed)) return text;
    for (const k of NOISY_METADATA) delete parsed[k];
    return JSON.stringify(parsed);
  } catch {
    return text;
  }
}

export function stripObject(obj: KubeObject, keepStatus: boolean): Record<string, unknown> {
  const meta = obj.metadata ?? {};
  const m: Record<string, unknown> = { name: meta.name ?? '' };
  if (meta.namespace) m['namespace'] = meta.namespace;
  if (meta.generateName) m['generateName'] = meta.generateName;
  const labels = stringRecord(meta.labels);
  if (Object.keys(labels).length > 0) m['labels'] = sortedRecord(Object.entries(labels));
  const annotations = cleanAnnotations(meta.annotations);
  if (annotations) m['annotations'] = annotations;
  if (Array.isArray(meta['ownerReferences']) && meta['ownerReferences'].length > 0) m['ownerReferences'] = meta['ownerReferences'];
  if (meta.deletionTimestamp) m['deletionTimestamp'] = meta.deletionTimestamp;
  const out: Record<string, unknown> = { metadata: m };
  for (const [k, v] of Object.entries(obj)) {
    if (k === 'metadata' || k === 'kind' || k === 'apiVersion') continue;
    if (k === 'status' && !keepStatus) continue;
    out[k] = v;
  }
  return out;
}

/** `raw`: the object as sent, with kind/apiVersion filled in so list items equal watch objects. */
export function rawObject(obj: KubeObject, def: ResourceDef): Record<string, unknown> {
  const { kind: _k, apiVersion: _a, ...rest } = obj;
  return { kind: def.kind, apiVersion: def.group === '' ? def.version : `${def.group}/${def.version}`, ...rest };
}
