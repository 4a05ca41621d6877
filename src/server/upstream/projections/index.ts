/**
 * Projections: pure functions from a parsed Kubernetes object to the value a feed stores (or null
 * for "no entry", which a watch turns into a deletion). Values are encoded once, to plain msgpack.
 */
import type { ResourceDef } from '../../../registry.js';
import type { KubeObject, ProjectionKind } from '../types.js';
import { projectNode } from './node.js';
import { projectNamespace, projectServiceAccount } from './profile.js';
import { rawObject, stripObject } from './strip.js';
import { projectPod } from './workload-endpoint.js';
import type { KV } from './calico-keys.js';
import { libcalicoConversion } from './libcalico.js';

export { encodeValue } from './encode.js';
export { interfaceName, projectPod, workloadEndpointName } from './workload-endpoint.js';
export { projectNode } from './node.js';
export { projectNamespace, projectServiceAccount } from './profile.js';
export { stripObject } from './strip.js';
export type { KV } from './calico-keys.js';
export { libcalicoConversion } from './libcalico.js';

/**
 * Bump when any projection's output changes shape: it is part of every feed's projectionVersion
 * and so of resume tokens (an agent holding values of the old shape must resync). A change of
 * meaning also bumps that projection's model version (feeds.ts MODEL_VERSIONS, PROTOCOL.md 3.2).
 */
export const PROJECTION_VERSION = 4;

export type Projector = (obj: KubeObject) => unknown;

/** Resources whose status Calico reads (the node-status feed is all status; LB IPs; migrations). */
const CALICO_KEEPS_STATUS = new Set([
  'caliconodestatuses.crd.projectcalico.org',
  'services',
  'virtualmachineinstancemigrations.kubevirt.io',
]);

/** The one-value projections (`calico`, `strip`, `raw`): the value stored under the object's own key. */
export function projector(def: ResourceDef, kind: Exclude<ProjectionKind, 'libcalico'>): Projector {
  if (kind === 'raw') return (obj) => rawObject(obj, def);
  if (kind === 'strip') return (obj) => stripObject(obj, false);
  switch (def.id) {
    case 'pods':
      return projectPod;
    case 'nodes':
      return projectNode;
    case 'namespaces':
      return projectNamespace;
    case 'serviceaccounts':
      return projectServiceAccount;
    default: {
      const keepStatus = CALICO_KEEPS_STATUS.has(def.id);
      return (obj) => stripObject(obj, keepStatus);
    }
  }
}

/**
 * Any projection as key/value pairs, which is how the resource view stores them. The one-value
 * kinds give at most one pair, under the object's registry key (`objectKey`); `libcalico` gives
 * libcalico-go keys, any number per object (a resource with no libcalico counterpart falls back
 * to `calico` under its registry key).
 */
export interface EntryProjector {
  /** The object's pairs (values never null or undefined). */
  entries(obj: KubeObject, objectKey: string): KV[];
  /** The keys a delete of the object removes, beyond those it was last seen with. */
  deleteKeys(obj: KubeObject, objectKey: string): string[];
  /** Pairs present whatever the objects (seeded by every full list). */
  readonly statics: readonly KV[];
}

export function entryProjector(def: ResourceDef, kind: ProjectionKind): EntryProjector {
  const conv = kind === 'libcalico' ? libcalicoConversion(def) : undefined;
  if (conv !== undefined) {
    return { entries: (obj) => conv.convert(obj), deleteKeys: (obj) => conv.deleteKeys?.(obj) ?? [], statics: conv.statics ?? [] };
  }
  const one = projector(def, kind === 'libcalico' ? 'calico' : kind);
  return {
    entries: (obj, key) => {
      const v = one(obj);
      return v === null || v === undefined ? [] : [[key, v]];
    },
    deleteKeys: (_obj, key) => [key],
    statics: [],
  };
}
