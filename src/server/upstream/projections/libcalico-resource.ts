import type { KubeObject } from '../types.js';
import { isRecord, sortedRecord, stringRecord } from './encode.js';
import { resourceKey, type KV } from './calico-keys.js';
import { stripObject } from './strip.js';

/**
 * Calico CRs and the Kubernetes objects Felix takes as they are → v3 resource keys
 * (`/calico/resources/v3/projectcalico.org/<plural>[/<ns>]/<name>`, model/resource.go).
 *
 * A crd.projectcalico.org/v1 object is turned back into its projectcalico.org/v3 form the way
 * `libcalico-go/lib/backend/k8s/resources/resources.go` `ConvertK8sResourceToCalicoResource` does:
 * the v3 metadata (labels, annotations, and for tiered policies the v3 name) comes from the JSON
 * annotation `projectcalico.org/metadata`; the CR's own `projectcalico.org/*` labels and other
 * annotations are not the v3 object's. What is left out, so that re-writes and status-only writes
 * that change nothing project to equal bytes: resourceVersion (the point of the issue: it moves
 * out of the value), generation, managedFields, and the CR's creationTimestamp/uid are kept only
 * as the v3 object has them. Status is kept: CalicoNodeStatus is all status.
 *
 * Services and EndpointSlices: KDD's felix syncer passes the Kubernetes objects through
 * (conversion.go `ServiceToKVP` / `EndpointSliceToKVP`) under the `kubernetesservice` (sic) and
 * `kubernetesendpointslices` plurals; the value here is the object stripped of per-write noise
 * (strip.ts), the Service keeping its status (load-balancer IPs).
 */

const METADATA_ANNOTATION = 'projectcalico.org/metadata';

function parsedMetadata(obj: KubeObject): Record<string, unknown> {
  const text = stringRecord(obj.metadata?.annotations)[METADATA_ANNOTATION];
  if (text === undefined) return {};
  try {
    const parsed: unknown = JSON.parse(text);
    return isRecord(parsed) ? parsed : {};
  } catch {
    return {};
  }
}

/** The v3 object's annotations (from the metadata annotation; the CR's own are not the v3 object's). */
export function v3Annotations(obj: KubeObject): Record<string, string> {
  return stringRecord(parsedMetadata(obj)['annotations']);
}

/** The v3 object's labels (from the metadata annotation; the CR's own are the backend's). */
export function v3Labels(obj: KubeObject): Record<string, string> {
  return stringRecord(parsedMetadata(obj)['labels']);
}

/** The v3 name: the metadata annotation's (tier-prefixed CR names of 3.31 policies), else the CR's. */
export function v3Name(obj: KubeObject): string {
  const name = parsedMetadata(obj)['name'];
  return typeof name === 'string' && name !== '' ? name : (obj.metadata?.name ?? '');
}

export function v3Resource(obj: KubeObject, plural: string, kind: string): KV[] {
  const v1meta = obj.metadata ?? {};
  const meta = parsedMetadata(obj);
  const name = v3Name(obj);
  const metadata: Record<string, unknown> = { name };
  if (v1meta.namespace) metadata['namespace'] = v1meta.namespace;
  if (typeof v1meta['uid'] === 'string') metadata['uid'] = v1meta['uid'];
  if (typeof meta['creationTimestamp'] === 'string') metadata['creationTimestamp'] = meta['creationTimestamp'];
  const labels = v3Labels(obj);
  if (Object.keys(labels).length > 0) metadata['labels'] = sortedRecord(Object.entries(labels));
  const annotations = v3Annotations(obj);
  delete annotations['kubectl.kubernetes.io/last-applied-configuration'];
  if (Object.keys(annotations).length > 0) metadata['annotations'] = sortedRecord(Object.entries(annotations));
  const value: Record<string, unknown> = { kind, apiVersion: 'projectcalico.org/v3', metadata };
  if (obj['spec'] !== undefined) value['spec'] = obj['spec'];
  if (obj['status'] !== undefined) value['status'] = obj['status'];
  return [[resourceKey(plural, name, v1meta.namespace), value]];
}

export function kubernetesPassThrough(obj: KubeObject, plural: string, keepStatus: boolean): KV[] {
  const meta = obj.metadata ?? {};
  return [[resourceKey(plural, meta.name ?? '', meta.namespace ?? ''), stripObject(obj, keepStatus)]];
}
